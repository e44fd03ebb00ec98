/**
 * Design "mfd_inaccessible" (designs.md D6): memfd_create(MFD_INACCESSIBLE) of the fd-based series
 * v5/v6 (Chao Peng, Mar/May 2022), with v7's F_SEAL_AUTO_ALLOCATE (Jul 2022). It is D5 without
 * the seal user space could see: the file is created inaccessible (an in-kernel shmem flag), can
 * never be sealed (F_SEAL_SEAL; MFD_ALLOW_SEALING with it is -EINVAL), is unevictable and
 * unmovable, and is bound to KVM_MEM_PRIVATE memslots through memfile_notifier exactly as in D5
 * (this design builds on memfd_seal's memfile_notifier.ts, shmem.ts and kvm.ts, as v5 built on v4).
 *
 * F_SEAL_AUTO_ALLOCATE is for the other memfd, the shared half: "This new seal prevents such
 * automatically allocating, either this is from a direct write() or a write on the previously
 * mmap-ed area", so that the VMM, which backs guest memory with two memfds, never has a page
 * allocated in both (double allocation). A fault on a hole of a sealed file is SIGBUS, a write to
 * a hole -ENOENT (SGP_NOALLOC), a write past EOF -EINVAL; fallocate() still allocates.
 *
 * Not modelled: v5's RLIMIT_MEMLOCK accounting (removed in v6) and v7's per-VM private/shared
 * xarray set through KVM_MEMORY_ENCRYPT_{UN,}REG_REGION.
 *
 * memfd_create()'s -EINVAL for MFD_INACCESSIBLE | MFD_ALLOW_SEALING comes from mm_hooks'
 * memfd_create hook, which runs after the name is read: with a bad name too, the simulator
 * answers the name's errno where v5 answered -EINVAL.
 */
import { Errno, type HostRegistrar } from '@cocosim/core';
import {
  F_SEAL_SEAL, Kernel, MFD_ALLOW_SEALING, SGP_CACHE, SGP_NOALLOC, SGP_WRITE, SHMEM_I, __GFP_MOVABLE, register_mm_hooks, shmem_mapping,
  type File, type Inode, type MmHooks,
} from '@cocosim/mm';
import { register_kvm_hooks, kvm_private_store_register, type KvmPrivateStore } from '../../kvm_hooks.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import { MEMFILE_ABI, kvm_memfile_mem_is_private, kvm_memfile_store, kvm_vm_ioctl_set_private_memory_region } from '../memfd_seal/kvm.js';
import { shmem_inaccessible_hooks } from '../memfd_seal/shmem.js';
import { F_SEAL_AUTO_ALLOCATE, KVM_MEM_PRIVATE, MFD_INACCESSIBLE } from './uapi.js';
import { mfd_inaccessible_vmm } from './vmm.js';

export { F_SEAL_AUTO_ALLOCATE } from './uapi.js';
export { mfd_inaccessible_vmm } from './vmm.js';

/** SHM_F_INACCESSIBLE: the inodes memfd_create(MFD_INACCESSIBLE) made (shmem_inode_info->xflags). */
const shm_f_inaccessible = new WeakSet<Inode>();

function is_inaccessible(inode: Inode): boolean {
  return shm_f_inaccessible.has(inode);
}

/** The memfile store of D6: only an MFD_INACCESSIBLE file binds. */
const mfd_inaccessible_store: KvmPrivateStore = {
  bind: (kvm, slot, file, offset) => (is_inaccessible(file.f_inode) ? kvm_memfile_store.bind(kvm, slot, file, offset) : -Errno.EINVAL),
  unbind: (slot) => kvm_memfile_store.unbind(slot),
  get_pfn: (kvm, slot, gfn) => kvm_memfile_store.get_pfn(kvm, slot, gfn),
};

/**
 * memfd_create()'s MFD_INACCESSIBLE part (v5 "mm/memfd: Introduce MFD_INACCESSIBLE flag"): not
 * with MFD_ALLOW_SEALING (-EINVAL); shmem_file_setup_xflags(SHM_F_INACCESSIBLE); the mapping
 * unevictable and its gfp without __GFP_MOVABLE ("they behave like long-term pinned pages");
 * seals F_SEAL_SEAL ("future sealing is also impossible").
 */
function mfd_inaccessible_memfd_create(file: File, flags: number): number {
  if (!(flags & MFD_INACCESSIBLE)) return 0;
  if (flags & MFD_ALLOW_SEALING) return -Errno.EINVAL;
  if (!shmem_mapping(file.f_mapping)) return 0;
  const mapping = file.f_mapping;
  mapping.gfp_mask &= ~__GFP_MOVABLE;
  // Unevictable, and never migrated (designs.md §1 D6 "Same" as D5: "migration -ENOTSUPP").
  mapping.mapping_set_inaccessible();
  SHMEM_I(file.f_inode).seals = F_SEAL_SEAL;
  shm_f_inaccessible.add(file.f_inode);
  kvm_private_store_register(file.f_inode, mfd_inaccessible_store);
  return 0;
}

/** The design's mm hooks: the inaccessible file's, MFD_INACCESSIBLE, and F_SEAL_AUTO_ALLOCATE's SGP_NOALLOC. */
function mfd_inaccessible_mm_hooks(): MmHooks {
  const inaccessible = shmem_inaccessible_hooks('mfd_inaccessible', is_inaccessible);
  return {
    ...inaccessible,
    mfd_flags: MFD_INACCESSIBLE,
    seal_flags: F_SEAL_AUTO_ALLOCATE,
    memfd_create: mfd_inaccessible_memfd_create,
    // v7 shmem_fault() / shmem_write_begin(): "if (unlikely(info->seals & F_SEAL_AUTO_ALLOCATE)) sgp = SGP_NOALLOC".
    shmem_sgp(inode: Inode, sgp: number): number {
      const r = inaccessible.shmem_sgp!(inode, sgp);
      if (r) return r;
      return (sgp === SGP_CACHE || sgp === SGP_WRITE) && SHMEM_I(inode).seals & F_SEAL_AUTO_ALLOCATE ? SGP_NOALLOC : 0;
    },
  };
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function mfdInaccessibleRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, mfd_inaccessible, {});
    register_mm_hooks(kernel, mfd_inaccessible_mm_hooks());
    register_kvm_hooks(kernel, {
      name: 'mfd_inaccessible',
      vm_ioctl: (kvm, cmd, arg, current) => kvm_vm_ioctl_set_private_memory_region(kvm, cmd, arg, current, MEMFILE_ABI),
      mem_is_private: kvm_memfile_mem_is_private,
    });
  };
}

export const mfd_inaccessible: Design = {
  name: 'mfd_inaccessible',
  title: 'memfd_create(MFD_INACCESSIBLE) + memfile_notifier, F_SEAL_AUTO_ALLOCATE (fd-based series v5-v7, Mar-Jul 2022)',
  rows: ['D6'],
  uapi: { MFD_INACCESSIBLE, F_SEAL_AUTO_ALLOCATE, KVM_MEM_PRIVATE, KVM_SET_USER_MEMORY_REGION },
  options: {},
  vmm: mfd_inaccessible_vmm,
  registrar: mfdInaccessibleRegistrar,
};
