/**
 * The uAPI of "guest_memfd: In-place conversion support" (Ackerley Tng, Sean Christopherson et
 * al.; v8 of 2026-06-18, 20260618-gmem-inplace-conversion-v8-0-9d2959357853@google.com): the
 * include/uapi/linux/kvm.h lines the series adds. KVM_SET_MEMORY_ATTRIBUTES2 itself (0xc080aed2)
 * is in kvm/src/uapi.ts. The content modes are those of RFC v4 (2026-03-26) and RFC v5
 * (2026-04-28), dropped in v6 after the PUCK call of 2026-05-06.
 */

/** v8 "KVM: guest_memfd: Advertise KVM_SET_MEMORY_ATTRIBUTES2 ioctl" (249 was taken by KVM_CAP_S390_HPAGE_2G). */
export const KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = 250;
/** RFC v4 to v7 numbered it 249. */
export const KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES_RFC = 249;
/** RFC v4/v5: the content modes KVM_SET_MEMORY_ATTRIBUTES2 supports (a mask of the flags below). */
export const KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS = 250;

/** struct kvm_memory_attributes2 flags of RFC v4/v5: no guarantee on the contents. */
export const KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED = 0;
/** Everyone allowed to read the memory reads zeros (private-to-shared only). */
export const KVM_SET_MEMORY_ATTRIBUTES2_ZERO = 1 << 0;
/** The contents are those last written in the clear. */
export const KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE = 1 << 1;

/** The 11 __u64 reserved[] words after error_offset (struct kvm_memory_attributes2 is 128 bytes). */
export const KVM_MEMORY_ATTRIBUTES2_NR_RESERVED = 11;
