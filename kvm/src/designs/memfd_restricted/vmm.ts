/**
 * The VMM side of memfd_restricted (designs.md D7, the fd-based series v9/v10): Chao Peng's QEMU
 * memory-backend-memfd-private of that series, whose priv_memfd_backend_memory_alloc() takes the
 * private half from qemu_memfd_restricted(backend->size, 0, errp) (memfd_restricted(0), then the
 * size, which restrictedmem allows once), beside the shared memfd mapped MAP_SHARED; one
 * KVM_SET_USER_MEMORY_REGION slot with KVM_MEM_PRIVATE, restricted_fd and restricted_offset
 * (memfd_seal/vmm.ts builds both halves).
 *
 * Private vs shared is no longer the private fd's allocation but v10's per-VM
 * KVM_SET_MEMORY_ATTRIBUTES, so a conversion is kvm_convert_memory() as QEMU kept it into the
 * guest_memfd era: the attributes, then ram_block_convert_range() discarding the side the guest
 * left ("It's used for discarding opposite memory after memory conversion to shared/private",
 * "[RFC PATCH 14/19] physmem: Add ram_block_convert_range", 20230731162201.271114-15-xiaoyao.li@intel.com,
 * carrying Chao Peng's function over): a punch of the shared memfd on to-private, of the restricted
 * fd on to-shared (restrictedmem_punch_hole() then tells KVM), unless policy.discard is off.
 */
import type { CvmDesign, CvmVm } from '../../cvm.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES } from '../../uapi.js';
import {
  private_fd_vmm_add_memory, private_fd_vmm_files, private_fd_vmm_hva, private_fd_vmm_state, ram_block_discard_range_fd, type PrivateFdVmmOps,
} from '../memfd_seal/vmm.js';
import { RESTRICTED_ABI } from './kvm.js';
import { memfd_restricted } from './syscall.js';

const KEY = 'memfd_restricted';

const memfd_restricted_ops: PrivateFdVmmOps = {
  key: KEY,
  abi: RESTRICTED_ABI,
  create_private_fd(vm) {
    const fd = memfd_restricted(vm.p, 0);
    if (fd < 0 || vm.p.ftruncate(fd, vm.size) < 0) return -1;
    return fd;
  },
};

/** kvm_convert_memory(): KVM_SET_MEMORY_ATTRIBUTES, then the discard of the side left behind. */
function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const r = vm.p.ioctl(vm.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, {
    address: gpa, size: len, attributes: to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0,
  });
  if (r < 0) return -1;
  if (!vm.policy.discard) return 0;
  const s = private_fd_vmm_state(vm, KEY);
  return ram_block_discard_range_fd(vm, to_private ? s.memfd : s.private_fd, gpa - vm.base, len);
}

export const memfd_restricted_vmm: CvmDesign = {
  name: KEY,
  // The series targeted TDX (Intel's QEMU tree) and SEV-SNP (AMD's UPM-based SNP host series);
  // KVM_MEM_PRIVATE needs a VM type with private memory, which the memslot ioctl checks itself.
  applies: () => undefined,
  add_memory: (vm) => private_fd_vmm_add_memory(vm, memfd_restricted_ops),
  convert,
  hva: (vm, gpa) => private_fd_vmm_hva(vm, KEY, gpa),
  ...private_fd_vmm_files(KEY),
};
