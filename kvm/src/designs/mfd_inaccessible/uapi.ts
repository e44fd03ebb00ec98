/**
 * The uAPI of the fd-based series v5-v7 (Chao Peng, Mar-Jul 2022; designs.md D6):
 * MFD_INACCESSIBLE at memfd_create() time (v5 "Removed userspace visible F_SEAL_INACCESSIBLE,
 * instead using an in-kernel flag (SHM_F_INACCESSIBLE for shmem)"), v7's F_SEAL_AUTO_ALLOCATE,
 * and the memslot of v3/v4 (KVM_MEM_PRIVATE, private_fd, private_offset).
 *
 * Rebased on 6.18: MFD_INACCESSIBLE was 0x0008U (MFD_NOEXEC_SEAL since 6.3) and
 * F_SEAL_AUTO_ALLOCATE 0x0020 (F_SEAL_EXEC since 6.3); the rebased values are the next free bits.
 */
export { KVM_MEM_PRIVATE } from '../memfd_seal/uapi.js';

/** MFD_INACCESSIBLE on the 6.18 base (posted as 0x0008U). */
export const MFD_INACCESSIBLE = 0x0020;
/** F_SEAL_AUTO_ALLOCATE ("prevent allocation for writes") on the 6.18 base (posted as 0x0020). */
export const F_SEAL_AUTO_ALLOCATE = 0x0040;
