/**
 * The uAPI of "TDX and guest memory unmapping" (Kirill A. Shutemov, RFCv1 2021-04-02
 * 20210402152645.26680-1-kirill.shutemov@linux.intel.com, RFCv2 2021-04-16
 * 20210416154106.23721-1-kirill.shutemov@linux.intel.com; designs.md D2): two hypercalls the
 * guest makes and KVM handles itself, and the GUP flag KVM passes to reach poisoned pages.
 */

/**
 * The guest turns protection on (no arguments). Number 12 as in the QEMU patch of the series'
 * successor (designs.md §0 item 2); 6.18 gives 12 to KVM_HC_MAP_GPA_RANGE, which this design's
 * hypercall replaces on its platform.
 */
export const KVM_HC_ENABLE_MEM_PROTECTED = 12;
/** The guest shares pages [gfn, gfn + npages) with the host: KVM_HC_MEM_SHARE(gfn, npages). */
export const KVM_HC_MEM_SHARE = 13;

/**
 * GUP follows the page behind a hwpoison entry (follow_page_pte()). The patch's value was the
 * next free FOLL_* bit of 5.12; 6.18's base uses bits 0-22, so cocosim gives it bit 23.
 */
export const FOLL_ALLOW_POISONED = 1 << 23;

/** struct range shared_ranges[KVM_NR_SHARED_RANGES] in struct kvm (RFCv2 13/13). */
export const KVM_NR_SHARED_RANGES = 32;
