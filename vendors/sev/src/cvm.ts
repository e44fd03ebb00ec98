/**
 * SEV-SNP's half of a confidential VM (kvm/src/cvm.ts CvmVendor), as QEMU's sev-snp-guest object
 * drives the VM and as Linux's SNP guest converts its memory:
 *
 *   - vm_init: open /dev/sev, KVM_SEV_INIT2, KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL,
 *     KVM_HC_MAP_GPA_RANGE) (without it every page state change fails in the guest),
 *     KVM_SEV_SNP_LAUNCH_START (QEMU's sev_common_kvm_init() starts the launch at once), and the
 *     guest's GHCB page (below);
 *   - launch_update: KVM_SEV_SNP_LAUNCH_UPDATE of page type NORMAL over a range the design already
 *     made private; launch_finish: KVM_SEV_SNP_LAUNCH_FINISH (the VMSAs are measured there);
 *     measurement: the launch digest;
 *   - guest_convert: arch/x86/coco/sev/core.c set_pages_state() through the GHCB: for to-private
 *     the Page State Change NAE event then PVALIDATE of the pages; for to-shared PVALIDATE
 *     rescind first, then the PSC (snp_set_memory_shared()); at most VMGEXIT_PSC_MAX_ENTRY
 *     entries a request, as __set_pages_state() fills the GHCB's shared buffer;
 *   - KVM's snp_begin_psc() turns each run of entries into a KVM_EXIT_HYPERCALL
 *     KVM_HC_MAP_GPA_RANGE; a non-zero hypercall.ret fails the request
 *     (VMGEXIT_PSC_ERROR_GENERIC in the guest's sw_exit_info_2).
 *
 * The GHCB is a page the guest keeps shared for its whole life (Linux makes it decrypted at boot);
 * here it is one page of plain shared memory in a memslot of its own just above guest RAM, so that
 * no scenario's range (and no design's conversion) ever covers it.
 */
import { Errno } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import {
  KVM_SET_USER_MEMORY_REGION2, KVM_USER_MEM_SLOTS, cvm_enable_map_gpa_range, map_gpa_range_exit, type CvmVendor, type CvmVm,
  type GuestCode, type Kvm,
} from '@cocosim/kvm';
import { psc_entries, snp_set_memory_private, snp_set_memory_shared } from './guest.js';
import { sev_host } from './host.js';
import { snp_launch_digest, to_kvm_sev_info } from './sev.js';
import { snp_vm_init, snp_vm_launch_finish, snp_vm_launch_start, snp_vm_launch_update } from './sev_util.js';
import { KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_X86_SNP_VM, VMGEXIT_PSC_MAX_ENTRY } from './uapi.js';

const PAGE = 4096n;
const HUGE = 2n << 20n;

/** The memslot of the guest's GHCB page: the last user slot, out of the designs' way. */
export const SNP_CVM_GHCB_SLOT = KVM_USER_MEM_SLOTS - 1;

/** What snp_cvm keeps per VM. */
export interface SnpCvmState {
  /** /dev/sev, named in every KVM_MEMORY_ENCRYPT_OP. */
  readonly sev_fd: number;
  /** The guest's GHCB page: its gpa and the VMM's mapping of it. */
  readonly ghcb_gpa: bigint;
  readonly ghcb_hva: bigint;
}

const KEY = 'snp';

/** snp_cvm's state of `vm` (after vm_init). */
export function snp_cvm_state(vm: CvmVm): SnpCvmState {
  return vm.state.get(KEY) as SnpCvmState;
}

/** The GHCB's gpa: the first 2 MiB boundary at or above the end of guest RAM. */
function ghcb_gpa(vm: CvmVm): bigint {
  const end = vm.base + vm.size;
  return (end + HUGE - 1n) / HUGE * HUGE;
}

/**
 * The guest's conversion of [gpa, gpa + npages pages) in requests of at most VMGEXIT_PSC_MAX_ENTRY
 * entries (set_pages_state()): 0, or the first failing step's code (a PSC's sw_exit_info_2, a
 * PVALIDATE's return code, or -errno).
 */
function* snp_guest_convert(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  const scratch = snp_cvm_state(vm).ghcb_gpa;
  const entries = psc_entries(gpa, Number(npages), to_private);
  for (let i = 0; i < entries.length; i += VMGEXIT_PSC_MAX_ENTRY) {
    const batch = entries.slice(i, i + VMGEXIT_PSC_MAX_ENTRY);
    const start = batch[0]!.gfn << 12n;
    const pages = batch.reduce((n, e) => n + (e.pagesize ? 512 : 1), 0);
    const rc = to_private ? yield* snp_set_memory_private(start, pages, scratch) : yield* snp_set_memory_shared(start, pages, scratch);
    if (rc !== 0n) return rc;
  }
  return 0n;
}

/**
 * What the RMP holds for `pfn` at the guest's private `gpa` (the fields RMPREAD returns, and the
 * Validated bit PVALIDATE sets): 'guest' when the authoritative entry (the 2 MiB one where the
 * page is part of a 2 MiB entry) is assigned, not immutable, to this VM's ASID at this GPA, and
 * validated; otherwise the first thing that differs.
 */
export function snp_cvm_private_owner(vm: CvmVm, gpa: bigint, pfn: number): string {
  return snp_private_owner(vm.kvm, gpa, pfn);
}

/**
 * snp_cvm_private_owner() of an SNP VM `kvm`; with `unvalidated_ok`, a page assigned to the VM
 * that the guest has not PVALIDATEd yet counts as the guest's too ('guest'), as it does for the
 * DEBUG_VM rule (sev_debug.ts): sev_gmem_prepare() assigns the page when KVM faults it in, and
 * the guest validates it later.
 */
export function snp_private_owner(kvm: Kvm, gpa: bigint, pfn: number, unvalidated_ok = false): string {
  const { rmp } = sev_host(kvm.kernel);
  if (!rmp.covers(pfn)) return 'outside the RMP';
  const { e } = rmp.authoritative(pfn);
  if (!e.assigned) return 'hypervisor-owned (RMP not assigned)';
  const asid = to_kvm_sev_info(kvm).asid;
  const at = rmp.gpa_of(pfn);
  if (e.asid !== asid) return `RMP assigned to ASID ${e.asid} at gpa 0x${at.toString(16)}`;
  if (at !== gpa) return `RMP assigned to ASID ${e.asid} at another GPA (0x${at.toString(16)})`;
  if (e.immutable) return 'RMP assigned but immutable (pre-guest or firmware page)';
  return e.validated || unvalidated_ok ? 'guest' : 'RMP assigned, not validated';
}

/** SEV-SNP: a VM created, launched and converted through KVM's SEV uAPI and the GHCB protocol of a Linux guest. */
export const snp_cvm: CvmVendor = {
  name: 'snp',
  vm_type: KVM_X86_SNP_VM,
  // The C-bit lives in the guest's page tables: shared and private views share the GPA.
  shared_gpa: (_vm, gpa) => gpa,
  vm_init(vm) {
    const { p } = vm;
    const sev_fd = p.open('/dev/sev', O_RDWR);
    if (sev_fd < 0) return -1;
    if (snp_vm_init(p, vm.vm_fd, sev_fd) < 0 || cvm_enable_map_gpa_range(vm) < 0) return -1;
    if (snp_vm_launch_start(p, vm.vm_fd, sev_fd) < 0) return -1;
    const gpa = ghcb_gpa(vm);
    const hva = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hva === MAP_FAILED) return -1;
    const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION2, {
      slot: SNP_CVM_GHCB_SLOT, flags: 0, guest_phys_addr: gpa, memory_size: PAGE, userspace_addr: hva, guest_memfd: 0, guest_memfd_offset: 0n,
    });
    if (r < 0) return -1;
    vm.state.set(KEY, { sev_fd, ghcb_gpa: gpa, ghcb_hva: hva } satisfies SnpCvmState);
    return 0;
  },
  // The boot vCPU's VMSA is measured and encrypted by KVM_SEV_SNP_LAUNCH_FINISH: nothing per vCPU before.
  vcpu_init: () => 0,
  launch_update: (vm, gpa, src, len) => snp_vm_launch_update(vm.p, vm.vm_fd, snp_cvm_state(vm).sev_fd, gpa, src, len, KVM_SEV_SNP_PAGE_TYPE_NORMAL),
  launch_finish: (vm) => snp_vm_launch_finish(vm.p, vm.vm_fd, snp_cvm_state(vm).sev_fd),
  measurement: (vm) => snp_launch_digest(vm.kvm)?.toString('hex') ?? '',
  guest_convert: snp_guest_convert,
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    // snp_complete_one_psc() / snp_complete_psc_msr() fail the request on any non-zero ret.
    run.hypercall.ret = ok ? 0n : BigInt(Errno.EINVAL);
  },
  private_owner: snp_cvm_private_owner,
};
