/**
 * The vendor half of a D14 VM: an SEV-SNP guest as the pre-UPM VMM drove it (QEMU's SNP RFC,
 * target/i386/sev.c: /dev/sev, the SNP init, SNP_LAUNCH_START at machine init, SNP_LAUNCH_FINISH
 * when the machine is done) and the guest's page state change as Linux's SNP guest does it
 * (arch/x86/coco/sev/: set_memory_encrypted() is the PSC to private then PVALIDATE, and
 * set_memory_decrypted() PVALIDATE rescind then the PSC to shared), one page at a time through the
 * GHCB MSR protocol. On 6.18 the PSC leaves KVM as a KVM_HC_MAP_GPA_RANGE exit (the vendor's
 * snp_begin_psc_msr()), which the VMM answers (vmm.ts).
 *
 * There is no launch_update: the series' SNP_LAUNCH_UPDATE took a user address, 6.18's goes
 * through guest_memfd population, which a D14 slot does not offer; the guest fills its memory
 * after it starts.
 */
import type { CvmVendor, CvmVm } from '../../cvm.js';
import { cvm_enable_map_gpa_range, map_gpa_range_exit } from '../../cvm.js';
import { fwcall, guestAccept, type GuestCode } from '../../guest.js';
import { KVM_MEMORY_ENCRYPT_OP } from '../../uapi.js';
import { snp_anon_assigned } from './sev.js';
import {
  GHCB_MSR_PSC_REQ_GFN, GHCB_MSR_PSC_RESP, GHCB_MSR_PSC_RESP_VAL, KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START,
  KVM_X86_SNP_VM, SNP_PAGE_STATE_PRIVATE, SNP_PAGE_STATE_SHARED, SNP_POLICY_DEFAULT, SVM_EXIT_VMGEXIT,
} from './uapi.js';

/** What the SNP VMM keeps per VM. */
export interface SnpAnonVendorState {
  readonly sev_fd: number;
  /** The firmware status of the last command (kvm_sev_cmd.error). */
  fw_error: number;
}

const KEY = 'snp_anon_vendor';

function state(vm: CvmVm): SnpAnonVendorState {
  return vm.state.get(KEY) as SnpAnonVendorState;
}

/** sev_ioctl(): KVM_MEMORY_ENCRYPT_OP with struct kvm_sev_cmd; the firmware status is kept. */
function sev_ioctl(vm: CvmVm, id: number, data: unknown): number {
  const s = state(vm);
  const cmd = { id, data, error: 0, sev_fd: s.sev_fd };
  const r = vm.p.ioctl(vm.vm_fd, KVM_MEMORY_ENCRYPT_OP, cmd);
  s.fw_error = cmd.error;
  return r;
}

/** sev_snp_kvm_init(): /dev/sev, KVM_SEV_INIT2, the PSC exit (KVM_HC_MAP_GPA_RANGE), SNP_LAUNCH_START. */
function snp_kvm_init(vm: CvmVm): number {
  const sev_fd = vm.p.open('/dev/sev');
  if (sev_fd < 0) return -1;
  vm.state.set(KEY, { sev_fd, fw_error: 0 } satisfies SnpAnonVendorState);
  if (sev_ioctl(vm, KVM_SEV_INIT2, { vmsa_features: 0n, flags: 0, ghcb_version: 0 }) < 0) return -1;
  if (cvm_enable_map_gpa_range(vm) < 0) return -1;
  return sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_START, { policy: SNP_POLICY_DEFAULT, flags: 0 }) < 0 ? -1 : 0;
}

/** One page's PSC through the GHCB MSR protocol: 0, or the response's error (or the whole response if malformed). */
function* snp_psc_msr(gpa: bigint, to_private: boolean): GuestCode<bigint> {
  const regs = yield* fwcall(SVM_EXIT_VMGEXIT, GHCB_MSR_PSC_REQ_GFN(gpa >> 12n, to_private ? SNP_PAGE_STATE_PRIVATE : SNP_PAGE_STATE_SHARED));
  const resp = regs[0] ?? 0n;
  if ((resp & 0xfffn) !== GHCB_MSR_PSC_RESP) return resp;
  return GHCB_MSR_PSC_RESP_VAL(resp);
}

/**
 * set_memory_encrypted() / set_memory_decrypted() of [gpa, gpa + npages pages), page by page:
 * 0, or the failing step's code (the PSC response's error, PVALIDATE's).
 */
export function* snp_anon_guest_convert(_vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  for (let i = 0n; i < npages; i++) {
    const page = gpa + i * 4096n;
    if (to_private) {
      const psc = yield* snp_psc_msr(page, true);
      if (psc) return psc;
      const rc = yield* guestAccept(page, 1, true);
      if (rc) return BigInt(rc);
    } else {
      const rc = yield* guestAccept(page, 1, false);
      if (rc) return BigInt(rc);
      const psc = yield* snp_psc_msr(page, false);
      if (psc) return psc;
    }
  }
  return 0n;
}

/**
 * The RMP assignment D14 made for `pfn` (sev.ts snp_make_page_private(): RMPUPDATE to this VM's
 * ASID at the gfn's gpa, undone by snp_make_page_shared()), as this vendor-less half can see it:
 * the RMP itself belongs to the SEV plugin, whose own half (snp_anon_vendor_cvm() of its snp_cvm)
 * reads the entry, ASID and Validated bit directly. 'guest' when D14 assigned `pfn` to this VM at
 * `gpa`; otherwise what it did instead.
 */
export function snp_anon_private_owner(vm: CvmVm, gpa: bigint, pfn: number): string {
  const a = snp_anon_assigned(vm.kvm.kernel, pfn);
  if (a === undefined) return 'hypervisor-owned (not assigned to a guest)';
  if (a.kvm !== vm.kvm) return 'RMP assigned to another VM';
  const at = BigInt(a.gfn) * 4096n;
  return at === gpa ? 'guest' : `RMP assigned to this VM at another GPA (0x${at.toString(16)})`;
}

/** The vendor half of a D14 VM (KVM_X86_SNP_VM), built by D14's vendor_cvm() on vendor "sev". */
export const snp_anon_cvm: CvmVendor = {
  name: 'sev',
  vm_type: KVM_X86_SNP_VM,
  shared_gpa: (_vm, gpa) => gpa,
  vm_init: snp_kvm_init,
  vcpu_init: () => 0,
  launch_finish: (vm) => (sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_FINISH, {}) < 0 ? -1 : 0),
  guest_convert: snp_anon_guest_convert,
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    run.hypercall.ret = ok ? 0n : 1n;
  },
  private_owner: snp_anon_private_owner,
};

const wrapped = new WeakMap<CvmVendor, CvmVendor>();

/**
 * The vendor's own SNP half with D14's launch: everything as the vendor drives an SNP VM (its
 * init, GHCB page, page state changes, launch finish) but no launch_update, whose 6.18
 * SNP_LAUNCH_UPDATE populates guest_memfd pages, which a D14 slot does not have.
 */
export function snp_anon_vendor_cvm(cvm: CvmVendor): CvmVendor {
  let w = wrapped.get(cvm);
  if (w === undefined) {
    const { launch_update: _unused, ...rest } = cvm;
    wrapped.set(cvm, (w = rest));
  }
  return w;
}
