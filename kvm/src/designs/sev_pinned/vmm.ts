/**
 * The VMM side of D13 (legacy SEV pinning, designs.md D13): guest RAM is ordinary anonymous VMM
 * memory (QEMU's memory-backend-ram), a plain KVM_SET_USER_MEMORY_REGION memslot, registered
 * with KVM_MEMORY_ENCRYPT_REG_REGION by QEMU's RAMBlockNotifier (sev_ram_block_added()), which
 * makes KVM pin every page (sev_pin_memory(): RLIMIT_MEMLOCK unless CAP_IPC_LOCK, then
 * pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM)) and flush it.
 *
 * Nothing hides guest memory: the VMM keeps its read/write mapping (hva), reads ciphertext where
 * the guest set the C-bit and corrupts the page silently where it writes (no integrity). A
 * conversion is the guest's own C-bit flip; KVM_HC_MAP_GPA_RANGE only updates QEMU's
 * shared-regions list, which live migration uses to send shared pages in the clear
 * (AMDESE QEMU "kvm: Add support for SEV shared regions list and KVM_EXIT_HYPERCALL", Ashish
 * Kalra, 2021): convert() changes no memory.
 */
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVendor, CvmVm } from '../../cvm.js';
import { KVM_MEMORY_ENCRYPT_REG_REGION, KVM_SET_USER_MEMORY_REGION, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM } from './uapi.js';
import { sev_legacy_cvm } from './sev.js';

/** What the D13 VMM keeps per VM. */
export interface SevPinnedVmmState {
  /** The anonymous mapping backing guest RAM (the memslot's userspace_addr and the registered region). */
  readonly hva: bigint;
  /**
   * QEMU's shared_regions_list: the gfn ranges [start, end) the guest reported decrypted, kept
   * sorted and merged (sev_add_shared_regions_list() / sev_remove_shared_regions_list()).
   */
  readonly shared: [bigint, bigint][];
}

const KEY = 'sev_pinned';

/** The D13 VMM's state of `vm` (after add_memory). */
export function sev_pinned_state(vm: CvmVm): SevPinnedVmmState {
  return vm.state.get(KEY) as SevPinnedVmmState;
}

/** sev_ram_block_added(): anonymous RAM, registered (pinned), then the memslot. */
function sev_pinned_add_memory(vm: CvmVm): number {
  const { p } = vm;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hva === MAP_FAILED) return -1;
  if (p.ioctl(vm.vm_fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: hva, size: vm.size }) < 0) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { hva, shared: [] } satisfies SevPinnedVmmState);
  return 0;
}

/** Remove [start, end) from the sorted, disjoint range list. */
function ranges_remove(list: [bigint, bigint][], start: bigint, end: bigint): void {
  const out: [bigint, bigint][] = [];
  for (const [s, e] of list) {
    if (e <= start || s >= end) out.push([s, e]);
    else {
      if (s < start) out.push([s, start]);
      if (e > end) out.push([end, e]);
    }
  }
  list.splice(0, list.length, ...out);
}

/** Add [start, end), merging with overlapping or adjacent ranges. */
function ranges_add(list: [bigint, bigint][], start: bigint, end: bigint): void {
  ranges_remove(list, start, end);
  list.push([start, end]);
  list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const r of list) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last[1] >= r[0]) last[1] = last[1] > r[1] ? last[1] : r[1];
    else merged.push([r[0], r[1]]);
  }
  list.splice(0, list.length, ...merged);
}

/**
 * The VMM's answer to KVM_HC_MAP_GPA_RANGE on legacy SEV: the shared-regions list follows the
 * guest's report; guest memory, the pins and the memslot are untouched.
 */
function sev_pinned_convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const s = sev_pinned_state(vm);
  const start = gpa >> 12n;
  const end = (gpa + len + 4095n) >> 12n;
  if (to_private) ranges_remove(s.shared, start, end);
  else ranges_add(s.shared, start, end);
  return 0;
}

/** Whether `vendor` runs legacy SEV guests (D13 has no other platform). */
function is_sev_legacy(vendor: CvmVendor): boolean {
  return vendor.vm_type === KVM_X86_SEV_VM || vendor.vm_type === KVM_X86_SEV_ES_VM;
}

export const sev_pinned_vmm: CvmDesign = {
  name: 'sev_pinned',
  vendor_cvm: (vendor_name, cvm) => (vendor_name === 'sev' ? sev_legacy_cvm : cvm),
  applies: (vendor) => (is_sev_legacy(vendor) ? undefined : `D13 runs on SEV only (legacy SEV/SEV-ES guests, KVM_X86_SEV_VM), not on ${vendor.name}`),
  add_memory: sev_pinned_add_memory,
  convert: sev_pinned_convert,
  hva: (vm, gpa) => sev_pinned_state(vm).hva + (gpa - vm.base),
};
