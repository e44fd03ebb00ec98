/**
 * TDX's half of a confidential VM (kvm/src/cvm.ts CvmVendor), as QEMU's TDX support and the TDX
 * selftests drive a TD and as Linux's TDX guest converts its memory:
 *
 *   - vm_init: KVM_TDX_CAPABILITIES, KVM_TDX_INIT_VM (GPAW 48, SEPT_VE_DISABLE), and
 *     KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, KVM_HC_MAP_GPA_RANGE) for the guest's MapGPA;
 *   - vcpu_init: KVM_TDX_INIT_VCPU;
 *   - launch_update: KVM_TDX_INIT_MEM_REGION with KVM_TDX_MEASURE_MEMORY_REGION, one page an
 *     ioctl (TDH.MEM.PAGE.ADD and TDH.MR.EXTEND) over a range the design already made private;
 *     launch_finish: KVM_TDX_FINALIZE_VM (TDH.MR.FINALIZE); measurement: MRTD;
 *   - guest_convert: arch/x86/coco/tdx/tdx.c tdx_enc_status_changed(): TDG.VP.VMCALL<MapGPA> of
 *     the range (with the shared bit for to-shared), then TDG.MEM.PAGE.ACCEPT of each page on
 *     to-private;
 *   - the request reaches the VMM as tdx_map_gpa() makes it: KVM_EXIT_HYPERCALL
 *     KVM_HC_MAP_GPA_RANGE in 2 MiB chunks, the gpa without the shared bit; the VMM answers in
 *     hypercall.ret (tdx_complete_vmcall_map_gpa(): non-zero fails the MapGPA with
 *     TDVMCALL_STATUS_INVALID_OPERAND, R11 the chunk it stopped at).
 */
import { Errno } from '@cocosim/core';
import { KVM_X86_TDX_VM, cvm_enable_map_gpa_range, kvm_gfn_direct_bits, map_gpa_range_exit, type CvmVendor, type CvmVm, type Kvm } from '@cocosim/kvm';
import { tdx_mrtd, tdx_td } from './tdx.js';
import { SEPT_MAPPED, SEPT_PENDING, sept_state_name, tdx_module_of } from './tdx_module.js';
import { tdx_enc_status_changed } from './tdx_guest.js';
import { tdx_guest_page_tables, vm_tdx_finalize, vm_tdx_init_mem_region, vm_tdx_init_vcpu, vm_tdx_init_vm } from './tdx_util.js';

const PAGE = 4096n;

/** The guest physical address width QEMU gives a TD on a host with 4-level EPT (shared bit 47). */
export const TDX_CVM_GPAW = 48;

/** The TD's shared bit as a gpa mask: gfn_to_gpa(kvm_gfn_direct_bits()), set by KVM_TDX_INIT_VM. */
export function tdx_cvm_shared_mask(vm: CvmVm): bigint {
  return BigInt(kvm_gfn_direct_bits(vm.kvm)) << 12n;
}

/**
 * What the TDX module holds for `pfn` at the TD's private `gpa`, as TDH.MEM.SEPT.RD (the Secure EPT
 * leaf for the GPA) and TDH.PHYMEM.PAGE.RDMD (the page's PAMT entry) would report it: 'guest' when
 * the S-EPT leaf is MAPPED (accepted by the guest) and translates the GPA to `pfn`, and the PAMT
 * has `pfn` as a PT_REG page of this TD (its TDR and HKID); otherwise the first thing that differs.
 */
export function tdx_cvm_private_owner(vm: CvmVm, gpa: bigint, pfn: number): string {
  return tdx_private_owner(vm.kvm, gpa, pfn);
}

/**
 * tdx_cvm_private_owner() of a TD `kvm`; with `pending_ok`, an S-EPT leaf the guest has not yet
 * accepted (PENDING, from TDH.MEM.PAGE.AUG) counts as the TD's too ('guest'), as it does for the
 * DEBUG_VM rule (tdx_debug.ts): KVM maps it and the module holds it for the TD.
 */
export function tdx_private_owner(kvm: Kvm, gpa: bigint, pfn: number, pending_ok = false): string {
  const td = tdx_td(kvm);
  if (td === null) return 'no TD';
  const module = tdx_module_of(kvm.kernel);
  const gfn = Number(gpa / PAGE);
  const leaf = module.sept_leaf(td, gfn);
  if (leaf === undefined) return 'S-EPT FREE at this GPA';
  if (leaf.entry.state !== SEPT_MAPPED && !(pending_ok && leaf.entry.state === SEPT_PENDING)) return `S-EPT ${sept_state_name(leaf.entry.state)} at this GPA`;
  const mapped = leaf.entry.pfn + (gfn % 512 ** leaf.level);
  if (mapped !== pfn) return `S-EPT maps this GPA to pfn 0x${mapped.toString(16)}`;
  const e = module.pamt_get(pfn);
  const owner = e.owner === null ? '' : e.owner === td ? ' of this TD' : ` of the TD with HKID ${e.owner.hkid}`;
  return e.pt === 'PT_REG' && e.owner === td ? 'guest' : `PAMT ${e.pt}${owner}`;
}

/** TDX: a TD created, launched and converted through KVM's TDX uAPI and the TDCALLs of a Linux guest. */
export const tdx_cvm: CvmVendor = {
  name: 'tdx',
  vm_type: KVM_X86_TDX_VM,
  shared_gpa: (vm, gpa) => gpa | tdx_cvm_shared_mask(vm),
  page_tables: tdx_guest_page_tables,
  vm_init(vm) {
    if (vm_tdx_init_vm(vm.p, vm.vm_fd, TDX_CVM_GPAW) < 0) return -1;
    return cvm_enable_map_gpa_range(vm);
  },
  vcpu_init: (vm) => vm_tdx_init_vcpu(vm.p, vm.vcpu_fd),
  launch_update(vm, gpa, src, len) {
    // struct kvm_tdx_init_mem_region counts pages: a length that is not a page multiple cannot be said.
    if (len % PAGE !== 0n) {
      vm.p.errno = Errno.EINVAL;
      return -1;
    }
    return vm_tdx_init_mem_region(vm.p, vm.vcpu_fd, gpa, src, len / PAGE);
  },
  launch_finish: (vm) => vm_tdx_finalize(vm.p, vm.vm_fd),
  measurement(vm) {
    const mrtd = tdx_mrtd(vm.kvm);
    return mrtd === null ? '' : Buffer.from(mrtd).toString('hex');
  },
  /**
   * set_memory_encrypted() / set_memory_decrypted() of a TD guest: tdx_enc_status_changed(), and
   * -EIO when it fails, as __set_memory_enc_pgtable() returns (arch/x86/mm/pat/set_memory.c).
   */
  *guest_convert(vm, gpa, npages, to_private) {
    const ok = yield* tdx_enc_status_changed(gpa, Number(npages), to_private, tdx_cvm_shared_mask(vm));
    return ok ? 0n : -BigInt(Errno.EIO);
  },
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    // Any non-zero ret fails the chunk in 6.18; EINVAL is also what the proposed retry uAPI reads as a failure.
    run.hypercall.ret = ok ? 0n : BigInt(Errno.EINVAL);
  },
  private_owner: tdx_cvm_private_owner,
};
