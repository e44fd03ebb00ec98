/**
 * The uAPI of the memfd seal series (designs.md D5): Kirill A. Shutemov's F_SEAL_GUEST (RFC,
 * 2 Sep / 12 Nov 2021) and Chao Peng's "KVM: mm: fd-based approach for supporting KVM guest
 * private memory" v3/v4 (21 Dec 2021, 18 Jan 2022): F_SEAL_INACCESSIBLE, v3's MFD_INACCESSIBLE
 * forcing it, and KVM_MEM_PRIVATE memslots with struct kvm_userspace_memory_region_ext.
 *
 * Rebased on 6.18: the series took F_SEAL_INACCESSIBLE 0x0020 and MFD_INACCESSIBLE 0x0008, which
 * Linux 6.3 gave to F_SEAL_EXEC and MFD_NOEXEC_SEAL; the rebased values are the next free bits.
 * KVM_MEM_PRIVATE (1 << 2) is the bit 6.8 gave KVM_MEM_GUEST_MEMFD, and
 * struct kvm_userspace_memory_region_ext { region; __u64 private_offset; __u32 private_fd;
 * __u32 pad1; __u64 pad2[14]; } has the layout 6.8 kept for kvm_userspace_memory_region2.
 */

/** F_SEAL_INACCESSIBLE as posted ("prevent ordinary MMU access (e.g. read/write/mmap) to file content"). */
export const F_SEAL_INACCESSIBLE_V4 = 0x0020;
/** F_SEAL_INACCESSIBLE on the 6.18 base (0x0020 is F_SEAL_EXEC there). */
export const F_SEAL_INACCESSIBLE = 0x0040;
/** MFD_INACCESSIBLE on the 6.18 base (posted as 0x0008U, MFD_NOEXEC_SEAL there). */
export const MFD_INACCESSIBLE = 0x0020;
/** KVM_MEM_PRIVATE: the memslot's private half is `private_fd` at `private_offset`. */
export const KVM_MEM_PRIVATE = 1 << 2;
