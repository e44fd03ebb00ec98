/**
 * The uAPI of memfd_restricted() (the fd-based series v9/v10, Oct/Dec 2022; designs.md D7): the
 * system call, and the memslot of v10 (KVM_MEM_PRIVATE with restricted_fd / restricted_offset in
 * struct kvm_userspace_memory_region_ext). Private vs shared is the per-VM
 * KVM_SET_MEMORY_ATTRIBUTES that v10 introduced (the base's, with KVM_MEMORY_ATTRIBUTE_PRIVATE).
 */
export { KVM_MEM_PRIVATE } from '../memfd_seal/uapi.js';

/**
 * __NR_memfd_restricted in v10's x86_64 table (on 6.1). In 6.18 the number is cachestat's; the
 * simulator has no numbered system call table, so the call is the memfd_restricted() wrapper.
 */
export const __NR_memfd_restricted = 451;
