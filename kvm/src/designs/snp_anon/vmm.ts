/**
 * The VMM side of D14 (SEV-SNP on anonymous memory, the pre-UPM series): guest RAM is anonymous
 * VMM memory, registered with KVM_MEMORY_ENCRYPT_REG_REGION (pinned: the RMP entry of a page
 * follows its pfn, so it must never move) and handed to KVM as an ordinary memslot; at a 2 MiB
 * page size it is 2 MiB aligned and MADV_HUGEPAGE, so that THPs back it (QEMU's RAM blocks are
 * THP-aligned) and 2 MiB RMP entries are possible. The VMM keeps
 * its read/write mapping of all of it. It answers the guest's page state change (the 6.18
 * KVM_HC_MAP_GPA_RANGE exit) with KVM_SET_MEMORY_ATTRIBUTES, which makes KVM RMPUPDATE the page
 * (sev.ts); in the series KVM did that inside the PSC handler without leaving to the VMM.
 */
import { MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, type Process } from '@cocosim/mm';
import type { CvmDesign, CvmVendor, CvmVm } from '../../cvm.js';
import {
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_X86_SNP_VM,
} from './uapi.js';
import { snp_anon_cvm, snp_anon_vendor_cvm } from './snp.js';

/** What the D14 VMM keeps per VM. */
export interface SnpAnonVmmState {
  /** The anonymous mapping backing guest RAM (the memslot's userspace_addr, the registered region). */
  readonly hva: bigint;
}

const KEY = 'snp_anon';

/** The D14 VMM's state of `vm` (after add_memory). */
export function snp_anon_state(vm: CvmVm): SnpAnonVmmState {
  return vm.state.get(KEY) as SnpAnonVmmState;
}

/** Anonymous memory of `size` bytes at an `align`-aligned address (MADV_HUGEPAGE above 4 KiB). */
function mmap_anon_aligned(p: Process, size: bigint, align: bigint): bigint {
  if (align <= 4096n) return p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const resv = p.mmap(0, size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (resv === MAP_FAILED) return MAP_FAILED;
  const addr = (resv + align - 1n) / align * align;
  if (addr > resv) p.munmap(resv, addr - resv);
  if (resv + align > addr) p.munmap(addr + size, resv + align - addr);
  return p.madvise(addr, size, MADV_HUGEPAGE) < 0 ? MAP_FAILED : addr;
}

/** Anonymous RAM, registered (pinned), then the memslot. */
function snp_anon_add_memory(vm: CvmVm): number {
  const { p } = vm;
  const hva = mmap_anon_aligned(p, vm.size, BigInt(vm.page_size));
  if (hva === MAP_FAILED) return -1;
  if (p.ioctl(vm.vm_fd, KVM_MEMORY_ENCRYPT_REG_REGION, { addr: hva, size: vm.size }) < 0) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { hva } satisfies SnpAnonVmmState);
  return 0;
}

/** The page state change: the attribute, whose D14 part is the RMPUPDATE of the VMM's own pages. */
function snp_anon_convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const r = vm.p.ioctl(vm.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, {
    address: gpa, size: len, attributes: to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0,
  });
  return r < 0 ? -1 : 0;
}

function is_snp(vendor: CvmVendor): boolean {
  return vendor.vm_type === KVM_X86_SNP_VM;
}

export const snp_anon_vmm: CvmDesign = {
  name: 'snp_anon',
  vendor_cvm: (vendor_name, cvm) => (vendor_name !== 'sev' ? cvm : cvm !== undefined && is_snp(cvm) ? snp_anon_vendor_cvm(cvm) : snp_anon_cvm),
  applies: (vendor) => (is_snp(vendor) ? undefined : `D14 runs on SEV-SNP only (KVM_X86_SNP_VM), not on ${vendor.name}`),
  add_memory: snp_anon_add_memory,
  convert: snp_anon_convert,
  hva: (vm, gpa) => snp_anon_state(vm).hva + (gpa - vm.base),
};
