/**
 * The VMM side of MFD_INACCESSIBLE (designs.md D6, the fd-based series v5/v6): Chao Peng's QEMU
 * memory-backend-memfd-private as for D5 (memfd_seal/vmm.ts), its private fd now created by
 * qemu_memfd_create(..., inaccessible=true) as memfd_create(MFD_INACCESSIBLE) (the only way
 * to get one since v5), sized once. Conversion is v3-v6's ram_block_convert_range(): private iff
 * allocated in the private fd.
 *
 * Two things of the series' later QEMU are not this VMM: privmem-v7's QEMU fallocated the whole
 * private fd at start-up (v7 recorded private/shared in a per-VM xarray through
 * KVM_MEMORY_ENCRYPT_{UN,}REG_REGION, which this design does not model: here allocation is the
 * state, so preallocating would make all of memory private), and neither tree sealed the shared
 * memfd with v7's F_SEAL_AUTO_ALLOCATE (privmem-v7's priv_memfd_backend_memory_alloc() passes no
 * seals to the shared memfd).
 */
import { MFD_CLOEXEC } from '@cocosim/mm';
import type { CvmDesign } from '../../cvm.js';
import { MEMFILE_ABI } from '../memfd_seal/kvm.js';
import { private_fd_vmm_add_memory, private_fd_vmm_files, private_fd_vmm_hva, ram_block_convert_range, type PrivateFdVmmOps } from '../memfd_seal/vmm.js';
import { MFD_INACCESSIBLE } from './uapi.js';

const KEY = 'mfd_inaccessible';

const mfd_inaccessible_ops: PrivateFdVmmOps = {
  key: KEY,
  abi: MEMFILE_ABI,
  create_private_fd(vm) {
    const fd = vm.p.memfd_create('memory-backend-memfd-private', MFD_CLOEXEC | MFD_INACCESSIBLE);
    if (fd < 0 || vm.p.ftruncate(fd, vm.size) < 0) return -1;
    return fd;
  },
};

export const mfd_inaccessible_vmm: CvmDesign = {
  name: KEY,
  // The series targeted TDX (and was tested on SEV-SNP by AMD); KVM_MEM_PRIVATE needs a VM type
  // with private memory, which the memslot ioctl checks itself (-EINVAL).
  applies: () => undefined,
  add_memory: (vm) => private_fd_vmm_add_memory(vm, mfd_inaccessible_ops),
  convert: (vm, gpa, len, to_private) => ram_block_convert_range(vm, KEY, gpa, len, to_private),
  hva: (vm, gpa) => private_fd_vmm_hva(vm, KEY, gpa),
  ...private_fd_vmm_files(KEY),
};
