/**
 * The uAPI of "KVM protected memory extension" (Kirill A. Shutemov: RFC, 22 May 2020,
 * https://lore.kernel.org/all/20200522125214.31348-1-kirill.shutemov@linux.intel.com/; RFCv2,
 * 20 Oct 2020, https://lore.kernel.org/all/20201020061859.18385-1-kirill.shutemov@linux.intel.com/).
 */
import { VM_HIGH_ARCH_6 } from '@cocosim/mm';

/**
 * include/uapi/linux/kvm_para.h ("[RFC 03/16] x86/kvm: Make DMA pages shared" and 10/16): the
 * guest's hypercalls, handled inside KVM (kvm_emulate_hypercall()). 12 is KVM_HC_MAP_GPA_RANGE
 * since Linux 5.14 (commit 0dbb11230437); on the 6.18 base the design takes it back.
 */
export const KVM_HC_ENABLE_MEM_PROTECTED = 12;
/** (gfn, npages): make the range accessible to the host again (kvm_protect_memory(..., false)). */
export const KVM_HC_MEM_SHARE = 13;
/** (gfn, npages): protect the range again (kvm_protect_memory(..., true)). */
export const KVM_HC_MEM_UNSHARE = 14;

/**
 * include/linux/mm.h ("[RFCv2 09/16] KVM: mm: Introduce VM_KVM_PROTECTED"): "access to
 * VM_KVM_PROTECTED VMAs". RFCv2's 0x100000 is 6.18's FOLL_FAST_ONLY (1 << 20), so cocosim takes
 * the first bit above 6.18's FOLL_* (bit 23).
 */
export const FOLL_KVM = 1 << 23;

/**
 * include/linux/mm.h: the VMA flag of protected memslot memory. The series defined it as
 * VM_HIGH_ARCH_5 on x86 (after Mike Rapoport's review of RFC 10/16), which is VM_SHADOW_STACK in
 * 6.18, so cocosim takes VM_HIGH_ARCH_6, unused on x86.
 */
export const VM_KVM_PROTECTED = VM_HIGH_ARCH_6;
