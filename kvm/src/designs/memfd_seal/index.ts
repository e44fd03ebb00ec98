/**
 * Design "memfd_seal" (designs.md D5): F_SEAL_INACCESSIBLE on a shmem memfd (Kirill A.
 * Shutemov's F_SEAL_GUEST, Chao Peng's fd-based series v3/v4, Dec 2021 - Jan 2022), with
 * memfile_notifier linking the file to KVM_MEM_PRIVATE memslots.
 *
 * The seal may only be added to an empty, unmapped file (-EBUSY otherwise: "we don't allow
 * F_SEAL_INACCESSIBLE on a non-empty file"). v3's MFD_INACCESSIBLE creates the file sealed. The
 * sealed file has no read/write/mmap (shmem.ts), its pages are private exactly when allocated,
 * and KVM serves them to the guest through the memslot's private half (kvm.ts).
 *
 * Option populate_then_seal models Steven Price's (Arm) request of 23 Feb 2022: populate the
 * memfd through a normal mmap(), then seal it. What it requires is what this option does: the
 * seal is accepted on a non-empty, mapped file, every existing mapping is revoked (an rmap walk
 * zapping the file's PTEs in every process), a page still pinned (GUP) refuses the seal (-EBUSY,
 * as F_SEAL_WRITE's wait for pins), and the VMAs that remain fault with SIGBUS from then on: the
 * generic fault path (handle_mm_fault) asks the seal on every fault of every process, since
 * shmem's fault-around maps page-cache pages without calling shmem_fault(). The series never
 * supported it.
 */
import { Errno, type HostRegistrar } from '@cocosim/core';
import {
  F_SEAL_WRITE, Kernel, SHMEM_I, folio_expected_ref_count, folio_ref_count, mapping_mapped, register_mm_hooks, shmem_mapping,
  VM_FAULT_SIGBUS, unmap_mapping_range, xa_is_value, type File, type Folio, type Inode, type MmHooks, type VmAreaStruct,
} from '@cocosim/mm';
import { register_kvm_hooks, kvm_private_store_register, type KvmPrivateStore } from '../../kvm_hooks.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import { MEMFILE_ABI, kvm_memfile_mem_is_private, kvm_memfile_store, kvm_vm_ioctl_set_private_memory_region } from './kvm.js';
import { shmem_inaccessible_hooks } from './shmem.js';
import { F_SEAL_INACCESSIBLE, F_SEAL_INACCESSIBLE_V4, KVM_MEM_PRIVATE, MFD_INACCESSIBLE } from './uapi.js';
import { memfd_seal_vmm } from './vmm.js';

export * from './uapi.js';
export * from './vmm.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** populate-then-seal: the mappings of a memfd revoked as it became inaccessible. */
    cocosim_memfd_seal_revoke: { ino: number; nr_pages: number };
  }
}

/** The registrar's options. */
export interface MemfdSealOptions {
  /** Arm's populate-then-seal: the seal is accepted on a populated, mapped file (see the file comment). */
  readonly populate_then_seal?: boolean;
}

/** F_SEAL_INACCESSIBLE is set on the inode. */
function seal_inaccessible(inode: Inode): boolean {
  return (SHMEM_I(inode).seals & F_SEAL_INACCESSIBLE) !== 0;
}

/** The memfile store of D5: only a sealed file binds (any other is no private memory: -EINVAL). */
const memfd_seal_store: KvmPrivateStore = {
  bind: (kvm, slot, file, offset) => (seal_inaccessible(file.f_inode) ? kvm_memfile_store.bind(kvm, slot, file, offset) : -Errno.EINVAL),
  unbind: (slot) => kvm_memfile_store.unbind(slot),
  get_pfn: (kvm, slot, gfn) => kvm_memfile_store.get_pfn(kvm, slot, gfn),
};

/** Whether a folio of `mapping` holds a reference beyond its page cache's and page tables' (a GUP pin). */
function mapping_pinned(kernel: Kernel, file: File): boolean {
  const store = kernel.store;
  let pinned = false;
  let last: Folio | -1 = -1;
  file.f_mapping.i_pages.xa_for_each((_index, folio) => {
    if (folio === last || xa_is_value(folio)) return true;
    last = folio;
    pinned = folio_ref_count(store, folio) !== folio_expected_ref_count(store, folio);
    return !pinned;
  });
  return pinned;
}

/**
 * memfd_add_seals()'s F_SEAL_INACCESSIBLE part (Kirill's F_SEAL_GUEST check, after the base's):
 * -EBUSY if the file is mapped or not empty. With populate_then_seal: -EBUSY where the base's
 * F_SEAL_WRITE would refuse after the revocation (a shared writable mapping) or a page is pinned,
 * then every mapping of the file is revoked. The seal makes the file a memfile backing store.
 */
function memfd_seal_add_seals(kernel: Kernel, opts: MemfdSealOptions, file: File, seals: number): number {
  if (!(seals & F_SEAL_INACCESSIBLE) || !shmem_mapping(file.f_mapping)) return 0;
  const inode = file.f_inode;
  if (seal_inaccessible(inode)) return 0;
  const mapping = file.f_mapping;
  if (!opts.populate_then_seal) {
    if (mapping_mapped(mapping)) return -Errno.EBUSY;
    if (inode.i_size) return -Errno.EBUSY;
  } else {
    if (seals & F_SEAL_WRITE && mapping.i_mmap_writable > 0) return -Errno.EBUSY;
    if (mapping_pinned(kernel, file)) return -Errno.EBUSY;
    unmap_mapping_range(kernel, mapping, 0n, 0n, false);
    kernel.tracer.emit('cocosim_memfd_seal_revoke', { ino: inode.i_ino, nr_pages: mapping.nrpages });
  }
  memfd_seal_make_inaccessible(file);
  return 0;
}

/**
 * What sealing does to the file beyond the seal bit: its pages are never swapped (v4's
 * shmem_writepage() redirties a page of an F_SEAL_INACCESSIBLE file, designs.md §2 S9) nor
 * migrated (designs.md §1 D5 "migration -ENOTSUPP": KVM maps the pfns with no notifier to follow
 * a move), and it becomes a memfile backing store for KVM. The simulator marks the mapping
 * inaccessible, 6.18's flag for exactly that pair (unevictable, and move_to_new_folio() refuses).
 */
function memfd_seal_make_inaccessible(file: File): void {
  file.f_mapping.mapping_set_inaccessible();
  kvm_private_store_register(file.f_inode, memfd_seal_store);
}

/** The design's mm hooks on one host. */
function memfd_seal_mm_hooks(kernel: Kernel, opts: MemfdSealOptions): MmHooks {
  const hooks: MmHooks = {
    ...shmem_inaccessible_hooks('memfd_seal', seal_inaccessible),
    seal_flags: F_SEAL_INACCESSIBLE,
    mfd_flags: MFD_INACCESSIBLE,
    memfd_add_seals: (file, seals) => memfd_seal_add_seals(kernel, opts, file, seals),
    // v3: "Added MFD_INACCESSIBLE flag to force F_SEAL_INACCESSIBLE."
    memfd_create(file: File, flags: number): number {
      if (!(flags & MFD_INACCESSIBLE) || !shmem_mapping(file.f_mapping)) return 0;
      SHMEM_I(file.f_inode).seals |= F_SEAL_INACCESSIBLE;
      memfd_seal_make_inaccessible(file);
      return 0;
    },
  };
  if (!opts.populate_then_seal) return hooks;
  // The VMAs of a revoked mapping remain: every fault on them must be refused, including the
  // fault-around that maps page-cache pages without calling shmem_fault().
  return {
    ...hooks,
    handle_mm_fault(vma: VmAreaStruct): number {
      const file = vma.vm_file;
      return file !== null && shmem_mapping(file.f_mapping) && seal_inaccessible(file.f_inode) ? VM_FAULT_SIGBUS : 0;
    },
  };
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function memfdSealRegistrar(opts: MemfdSealOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, memfd_seal, { populate_then_seal: opts.populate_then_seal ?? false });
    register_mm_hooks(kernel, memfd_seal_mm_hooks(kernel, opts));
    register_kvm_hooks(kernel, {
      name: 'memfd_seal',
      vm_ioctl: (kvm, cmd, arg, current) => kvm_vm_ioctl_set_private_memory_region(kvm, cmd, arg, current, MEMFILE_ABI),
      mem_is_private: kvm_memfile_mem_is_private,
    });
  };
}

export const memfd_seal: Design<MemfdSealOptions> = {
  name: 'memfd_seal',
  title: 'F_SEAL_INACCESSIBLE memfd + memfile_notifier, KVM_MEM_PRIVATE memslots (fd-based RFC v3/v4, Dec 2021 - Jan 2022)',
  rows: ['D5'],
  uapi: { F_SEAL_INACCESSIBLE, F_SEAL_INACCESSIBLE_V4, MFD_INACCESSIBLE, KVM_MEM_PRIVATE, KVM_SET_USER_MEMORY_REGION },
  options: {
    populate_then_seal: 'Arm\'s populate-then-seal (Steven Price, Feb 2022): seal a populated, mapped memfd by revoking its mappings',
  },
  vmm: memfd_seal_vmm,
  registrar: memfdSealRegistrar,
};
