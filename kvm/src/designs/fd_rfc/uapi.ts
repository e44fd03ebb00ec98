/**
 * The uAPI of Sean Christopherson's fd-based proposal (designs.md D4: "[RFC] KVM: mm: fd-based
 * approach for supporting KVM guest private memory", 20210824005248.200037-1-seanjc@google.com)
 * as Chao Peng's RFC v1 coded it ("KVM: mm: fd-based approach for supporting KVM guest private
 * memory", 20211111141352.26311-1-chao.p.peng@linux.intel.com, patches 3-5/6), with Kirill A.
 * Shutemov's F_SEAL_GUEST backing store (same thread, 20211112192820.dbxxnqhgnqaz6dgn@box.shutemov.name
 * and his reply of Sep 2021 quoting Sean's callback exchange).
 *
 * There is no KVM_MEM_PRIVATE flag: a memslot is private because it lives in address space 2
 * (the slot number's high 16 bits), and struct kvm_userspace_memory_region grows a `__u32 fd`
 * under #ifdef KVM_PRIVATE_ADDRESS_SPACE. The struct's size, and so the ioctl number, change
 * with it: 32 bytes become 40 (padded to the __u64 alignment), 0x4020ae46 becomes 0x4028ae46.
 */
import { KVMIO } from '../../uapi.js';

/** arch/x86/include/uapi/asm/kvm.h of the RFC: the default (shared) address space. */
export const KVM_DEFAULT_ADDRESS_SPACE = 0;
/** The SMM address space (x86's second). */
export const KVM_SMM_ADDRESS_SPACE = 1;
/** Guest private memory: a third set of memslots, each backed by an enlightened fd. */
export const KVM_PRIVATE_ADDRESS_SPACE = 2;
/** KVM_ADDRESS_SPACE_NUM with the private address space: what KVM_CAP_MULTI_ADDRESS_SPACE reports. */
export const KVM_ADDRESS_SPACE_NUM = 3;

/** sizeof(struct kvm_userspace_memory_region) with the RFC's `__u32 fd` (36, padded to 40). */
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION_RFC = 40;
/** _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region) of the RFC's header: 0x4028ae46. */
export const KVM_SET_USER_MEMORY_REGION_RFC = ((1 << 30) | (SIZEOF_KVM_USERSPACE_MEMORY_REGION_RFC << 16) | (KVMIO << 8) | 0x46) >>> 0;

/** F_SEAL_GUEST as posted (include/uapi/linux/fcntl.h: 0x0020). */
export const F_SEAL_GUEST_POSTED = 0x0020;
/**
 * F_SEAL_GUEST on the 6.18 base: 0x0020 is F_SEAL_EXEC there (Linux 6.3), so the seal takes the
 * next free bit (cocosim's value; the D5 design makes the same choice for F_SEAL_INACCESSIBLE).
 */
export const F_SEAL_GUEST = 0x0040;
