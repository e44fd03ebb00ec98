/**
 * The VMM side of guest_memfd in-place conversion (designs.md D10; "guest_memfd: In-place
 * conversion support" v8, 20260618-gmem-inplace-conversion-v8-0-9d2959357853@google.com): guest
 * RAM is one guest_memfd created GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED and mapped
 * MAP_SHARED, and that mapping is the memslot's userspace_addr: there is no separate shared memfd,
 * so a page has one copy whatever its state. A conversion is KVM_SET_MEMORY_ATTRIBUTES2 on the
 * guest_memfd (file offset = gpa - base) and nothing else: with one copy there is nothing to
 * discard, so policy.discard has no effect. On -EAGAIN the kernel wrote error_offset, the first
 * page still referenced (a GUP pin); the VMM keeps it and fails the guest's request, as v8's
 * documentation leaves removing the references to user space.
 *
 * The host's configuration decides the ABI the VMM speaks (design_of(kernel)):
 *   - gmem_in_place_conversion=0 (with CONFIG_KVM_VM_MEMORY_ATTRIBUTES): the 6.18 base, so the VMM
 *     is upstream's (memfd + guest_memfd, per-VM KVM_SET_MEMORY_ATTRIBUTES, discard);
 *   - RFC v4/v5 content modes: struct kvm_memory_attributes2's flags carry the mode the VMM was
 *     configured with (gmem_inplace_vmm_with_modes()); the default VMM passes 0, the ABI every
 *     version shares, which the RFCs read as UNSPECIFIED ("By default, KVM makes no guarantees
 *     about the in-memory values"). Without content modes the flags are always 0 (v6+: -EINVAL
 *     otherwise).
 */
import { MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_SET_MEMORY_ATTRIBUTES2, KVM_SET_USER_MEMORY_REGION2,
} from '../../uapi.js';
import { design_of } from '../design.js';
import { upstream_vmm } from '../upstream/vmm.js';
import type { GmemInplaceConfig } from './guest_memfd.js';
import { KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED } from './uapi.js';

/** What the in-place VMM keeps per VM. */
export interface GmemInplaceVmmState {
  /** The guest_memfd backing all of guest memory, and its MAP_SHARED mapping (the memslot's userspace_addr). */
  readonly gmem_fd: number;
  readonly hva: bigint;
  /** error_offset of the last conversion that failed (-EAGAIN: the first page still referenced), or null. */
  error_offset: bigint | null;
}

/** The content modes a VMM asks for on a host with RFC v4/v5's content modes (flags of struct kvm_memory_attributes2). */
export interface GmemInplaceContentModes {
  readonly to_private: number;
  readonly to_shared: number;
}

const KEY = 'gmem_inplace';

/** The in-place VMM's state of `vm` (after add_memory on a host converting in place). */
export function gmem_inplace_vmm_state(vm: CvmVm): GmemInplaceVmmState {
  return vm.state.get(KEY) as GmemInplaceVmmState;
}

/** The design configuration the VM's host runs, or null when the host runs another design. */
function host_config(vm: CvmVm): GmemInplaceConfig | null {
  const installed = design_of(vm.p.kernel);
  return installed?.design.name === 'gmem_inplace' ? installed.options as GmemInplaceConfig : null;
}

/** Whether the host converts in guest_memfd (otherwise it is the 6.18 base and the VMM is upstream's). */
function in_place(vm: CvmVm): boolean {
  return host_config(vm)?.gmem_in_place_conversion ?? false;
}

/**
 * One guest_memfd (MMAP | INIT_SHARED: every page starts shared and mappable), its MAP_SHARED
 * mapping, one KVM_SET_USER_MEMORY_REGION2 slot whose userspace_addr is that mapping: the
 * selftests' vm_mem_add() with a guest_memfd that is also the shared backing.
 */
function add_memory(vm: CvmVm): number {
  if (!in_place(vm)) return upstream_vmm.add_memory(vm);
  const { p } = vm;
  const gmem_fd = p.ioctl(vm.vm_fd, KVM_CREATE_GUEST_MEMFD, { size: vm.size, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  if (gmem_fd < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_fd, 0);
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
    guest_memfd: gmem_fd, guest_memfd_offset: 0n,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { gmem_fd, hva, error_offset: null } satisfies GmemInplaceVmmState);
  return 0;
}

/** The CvmDesign of the in-place VMM asking `modes` where the host has content modes. */
export function gmem_inplace_vmm_with_modes(modes: GmemInplaceContentModes): CvmDesign {
  /** KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd over the file range of [gpa, gpa + len). */
  function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
    if (!in_place(vm)) return upstream_vmm.convert(vm, gpa, len, to_private);
    const s = gmem_inplace_vmm_state(vm);
    const flags = host_config(vm)!.content_modes === null ? 0 : to_private ? modes.to_private : modes.to_shared;
    const attrs = {
      offset: gpa - vm.base, size: len, attributes: to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags, error_offset: 0n,
    };
    const r = vm.p.ioctl(s.gmem_fd, KVM_SET_MEMORY_ATTRIBUTES2, attrs);
    s.error_offset = r < 0 ? BigInt(attrs.error_offset) : null;
    return r < 0 ? -1 : 0;
  }

  return {
    name: 'gmem_inplace',
    // v8 converts in place on every x86 CoCo type (SW_PROTECTED, SNP, TDX) and on pKVM; where a
    // VM type has no private memory, the ioctls answer for themselves.
    applies: () => undefined,
    add_memory,
    convert,
    // The one mapping of the one copy: the address keeps working while the page is shared.
    hva: (vm, gpa) => (in_place(vm) ? gmem_inplace_vmm_state(vm).hva + (gpa - vm.base) : upstream_vmm.hva(vm, gpa)),
    // Both halves are the one guest_memfd: a second process maps it, a punch acts on it.
    private_fd: (vm, gpa) => (in_place(vm) ? { fd: gmem_inplace_vmm_state(vm).gmem_fd, offset: gpa - vm.base } : upstream_vmm.private_fd!(vm, gpa)),
    shared_fd: (vm, gpa) => (in_place(vm) ? { fd: gmem_inplace_vmm_state(vm).gmem_fd, offset: gpa - vm.base } : upstream_vmm.shared_fd!(vm, gpa)),
  };
}

/** The in-place VMM (flags 0: no content mode asked). */
export const gmem_inplace_vmm: CvmDesign = gmem_inplace_vmm_with_modes({
  to_private: KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED, to_shared: KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED,
});
