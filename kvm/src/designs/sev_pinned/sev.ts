/**
 * The vendor half of a legacy SEV VM (designs.md D13) as QEMU's target/i386/sev.c drives it, and
 * the guest side as Linux's SEV guest does it:
 *
 *   - sev_kvm_init(): open /dev/sev, KVM_SEV_INIT2 on a KVM_X86_SEV_VM, then sev_launch_start()
 *     (LAUNCH_START with the guest owner's policy; QEMU starts the launch at machine init), and
 *     KVM_CAP_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE (QEMU's shared-regions list for migration);
 *   - sev_launch_update_data(): the image is written into guest RAM itself and encrypted there by
 *     KVM_SEV_LAUNCH_UPDATE_DATA (no second buffer: the firmware encrypts in place);
 *   - sev_launch_get_measure() and sev_launch_finish(): LAUNCH_MEASURE, then LAUNCH_FINISH;
 *   - the guest converts by flipping the C-bit in its own page tables (set_memory_encrypted() /
 *     set_memory_decrypted(): arch/x86/mm/mem_encrypt_amd.c, with a cache flush), which the host
 *     never sees; with KVM_FEATURE_MIGRATION_CONTROL it then tells the host with
 *     KVM_HC_MAP_GPA_RANGE (arch/x86/kernel/kvm.c kvm_sev_hc_page_enc_status(), whose result it
 *     ignores). The hypercall is bookkeeping for live migration, not a request: nothing in memory
 *     changes and the host cannot refuse.
 *
 * SEV-ES (KVM_X86_SEV_ES_VM) is not offered: its guest cannot execute VMCALL without the GHCB
 * protocol, which the cocosim guest has only for SNP.
 */
import { Errno } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmVendor, CvmVm } from '../../cvm.js';
import { cvm_enable_map_gpa_range, map_gpa_range_exit } from '../../cvm.js';
import { guestAccept, vmcall, type GuestCode } from '../../guest.js';
import {
  KVM_MAP_GPA_RANGE_DECRYPTED, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAP_GPA_RANGE_PAGE_SZ_4K, KVM_MEMORY_ENCRYPT_OP,
} from '../../uapi.js';
import {
  KVM_HC_MAP_GPA_RANGE, KVM_SEV_INIT2, KVM_SEV_LAUNCH_FINISH, KVM_SEV_LAUNCH_MEASURE, KVM_SEV_LAUNCH_START,
  KVM_SEV_LAUNCH_UPDATE_DATA, KVM_X86_SEV_VM, SEV_LAUNCH_MEASURE_LEN,
} from './uapi.js';

/** What the legacy SEV VMM keeps per VM (SevGuestState in QEMU). */
export interface SevLegacyState {
  /** The /dev/sev fd every KVM_MEMORY_ENCRYPT_OP names. */
  readonly sev_fd: number;
  /** The launch handle LAUNCH_START returned. */
  handle: number;
  /** The firmware status of the last command (kvm_sev_cmd.error). */
  fw_error: number;
  /** LAUNCH_MEASURE's blob, hex, once the launch is measured. */
  measurement?: string;
}

const KEY = 'sev_legacy';

/** The legacy SEV VMM's state of `vm` (after vm_init). */
export function sev_legacy_state(vm: CvmVm): SevLegacyState {
  return vm.state.get(KEY) as SevLegacyState;
}

/** sev_ioctl(): KVM_MEMORY_ENCRYPT_OP with struct kvm_sev_cmd; the firmware status is kept. */
function sev_ioctl(vm: CvmVm, id: number, data: unknown): number {
  const s = sev_legacy_state(vm);
  const cmd = { id, data, error: 0, sev_fd: s.sev_fd };
  const r = vm.p.ioctl(vm.vm_fd, KVM_MEMORY_ENCRYPT_OP, cmd);
  s.fw_error = cmd.error;
  return r;
}

/** sev_launch_start(): LAUNCH_START with policy 0 (debugging and migration allowed, no session). */
function sev_launch_start(vm: CvmVm): number {
  const start = { handle: 0, policy: 0, dh_uaddr: 0n, dh_len: 0, session_uaddr: 0n, session_len: 0 };
  if (sev_ioctl(vm, KVM_SEV_LAUNCH_START, start) < 0) return -1;
  sev_legacy_state(vm).handle = start.handle;
  return 0;
}

/** sev_kvm_init(): /dev/sev, KVM_SEV_INIT2, the hypercall exit, LAUNCH_START. */
function sev_kvm_init(vm: CvmVm): number {
  const sev_fd = vm.p.open('/dev/sev');
  if (sev_fd < 0) return -1;
  vm.state.set(KEY, { sev_fd, handle: 0, fw_error: 0 } satisfies SevLegacyState);
  if (sev_ioctl(vm, KVM_SEV_INIT2, { vmsa_features: 0n, flags: 0, ghcb_version: 0 }) < 0) return -1;
  if (cvm_enable_map_gpa_range(vm) < 0) return -1;
  return sev_launch_start(vm);
}

/**
 * sev_launch_update_data(): the image at user buffer `src` goes into guest RAM at `gpa` (QEMU
 * loads the firmware there), then LAUNCH_UPDATE_DATA measures and encrypts it in place.
 */
function sev_launch_update_data(vm: CvmVm, gpa: bigint, src: bigint, len: bigint): number {
  const { p } = vm;
  const hva = vm.design.hva(vm, gpa);
  if (hva === undefined) {
    p.errno = Errno.EFAULT;
    return -1;
  }
  const image = p.load(src, Number(len));
  if (!(image instanceof Uint8Array) || p.store(hva, image) !== 0) {
    p.errno = Errno.EFAULT;
    return -1;
  }
  return sev_ioctl(vm, KVM_SEV_LAUNCH_UPDATE_DATA, { uaddr: hva, len: Number(len) }) < 0 ? -1 : 0;
}

/** sev_launch_get_measure() then sev_launch_finish(). */
function sev_launch_finish(vm: CvmVm): number {
  const { p } = vm;
  const buf = p.mmap(0, 4096n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf === MAP_FAILED) return -1;
  const r = sev_ioctl(vm, KVM_SEV_LAUNCH_MEASURE, { uaddr: buf, len: SEV_LAUNCH_MEASURE_LEN });
  if (r < 0) return -1;
  const blob = p.load(buf, SEV_LAUNCH_MEASURE_LEN);
  p.munmap(buf, 4096n);
  if (blob instanceof Uint8Array) sev_legacy_state(vm).measurement = Buffer.from(blob).toString('hex');
  return sev_ioctl(vm, KVM_SEV_LAUNCH_FINISH, {}) < 0 ? -1 : 0;
}

/**
 * The legacy SEV guest's set_memory_encrypted()/set_memory_decrypted() of [gpa, gpa + npages
 * pages): flip the C-bit (and flush), then kvm_sev_hc_page_enc_status()'s notification. Returns
 * the C-bit flip's status: the hypercall's result is ignored, as the guest ignores it.
 */
export function* sev_legacy_guest_convert(_vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  const rc = yield* guestAccept(gpa, Number(npages), to_private);
  if (rc) return BigInt(rc);
  yield* vmcall(KVM_HC_MAP_GPA_RANGE, gpa, npages,
    (to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED) | KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
  return 0n;
}

/** The vendor half of a legacy SEV VM (KVM_X86_SEV_VM), built by D13's vendor_cvm() on vendor "sev". */
export const sev_legacy_cvm: CvmVendor = {
  name: 'sev',
  vm_type: KVM_X86_SEV_VM,
  shared_gpa: (_vm, gpa) => gpa,
  vm_init: sev_kvm_init,
  vcpu_init: () => 0,
  launch_update: sev_launch_update_data,
  launch_finish: sev_launch_finish,
  measurement: (vm) => sev_legacy_state(vm).measurement ?? '',
  guest_convert: sev_legacy_guest_convert,
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    run.hypercall.ret = ok ? 0n : 1n;
  },
};
