/**
 * The uAPI of "1G page support for guest_memfd" (Ackerley Tng, RFC v2 of 2025-05-14,
 * cover.1747264138.git.ackerleytng@google.com; RFC v1 cover.1726009989.git.ackerleytng@google.com):
 * include/uapi/linux/kvm.h's GUEST_MEMFD_FLAG_HUGETLB and include/uapi/linux/guestmem.h's page
 * size bits, which follow mmap()'s MAP_HUGE_* encoding (log2 of the size) at bit 58 of
 * struct kvm_create_guest_memfd's flags.
 *
 * RFC v2 numbered the flags of its own base (SUPPORT_SHARED 1 << 0, INIT_PRIVATE 1 << 1, HUGETLB
 * 1 << 2); on 6.18 bits 0 and 1 are GUEST_MEMFD_FLAG_MMAP and GUEST_MEMFD_FLAG_INIT_SHARED and
 * bit 2 is free, so HUGETLB keeps its value. The later rebase on in-place conversion (intel/tdx
 * virt/kvm/guest_memfd.c, 2026) moved the size to a page_order field of the struct; this design
 * keeps RFC v2's flag encoding.
 */

/** GUEST_MEMFD_FLAG_HUGETLB (1UL << 2): allocate from HugeTLB, the size in the bits below. */
export const GUEST_MEMFD_FLAG_HUGETLB = 1 << 2;
/** GUESTMEM_HUGETLB_FLAG_SHIFT: the page size's log2 sits at bit 58 of the flags. */
export const GUESTMEM_HUGETLB_FLAG_SHIFT = 58;
/** GUESTMEM_HUGETLB_FLAG_MASK (0x3fUL), after the shift. */
export const GUESTMEM_HUGETLB_FLAG_MASK = 0x3f;
/** GUESTMEM_HUGETLB_FLAG_2MB (21UL << 58). */
export const GUESTMEM_HUGETLB_FLAG_2MB = 21n << 58n;
/** GUESTMEM_HUGETLB_FLAG_1GB (30UL << 58). */
export const GUESTMEM_HUGETLB_FLAG_1GB = 30n << 58n;
