/**
 * The uAPI of David Hildenbrand's per-VMA alternative to D2 ("Re: [RFCv1 7/7] KVM: unmap guest
 * memory using poisoned pages", 2021-04-07, 5e934d94-414c-90de-c58e-34456e4ab1cf@redhat.com;
 * designs.md D2 "Alternative proposed in review"). The mail names the mechanism, not values:
 * "a KVM ioctl" switches protected memory on, VM_DENYUSERWRITE marks the VMAs, "a new fancy flag"
 * lets GUP write them, and "an ioctl writes page content" of shared pages. Every name and value
 * below except VM_DENYUSERWRITE is cocosim's.
 */

/** VMA flag: user space may not write, nor regain write permission (cocosim's bit: above 6.18's VM_SEALED). */
export const VM_DENYUSERWRITE = 2 ** 50;

/** GUP may write a VM_MAYWRITE|VM_DENYUSERWRITE VMA (with FOLL_FORCE): KVM's own writes. Bit 23, the first free. */
export const FOLL_DENYUSERWRITE = 1 << 23;

/** _IO(KVMIO, 0xf0): switch protected memory on for every memslot of the VM. */
export const KVM_PROTECT_MEMORY = 0xae00 + 0xf0;

/** struct kvm_write_guest { __u64 gpa; __u64 size; __u64 data; } */
export const SIZEOF_KVM_WRITE_GUEST = 24;
/** _IOW(KVMIO, 0xf1, struct kvm_write_guest): KVM writes `size` bytes of `data` at `gpa` (shared pages only). */
export const KVM_WRITE_GUEST = 1 * 2 ** 30 + SIZEOF_KVM_WRITE_GUEST * 2 ** 16 + 0xae00 + 0xf1;
