/**
 * KVM's TDX support (arch/x86/kvm/vmx/tdx.c, with the vt_* dispatch of arch/x86/kvm/vmx/main.c):
 * the kvm_x86_ops of a VMX host with the TDX module, for KVM_X86_TDX_VM alongside default VMs.
 *
 * - Launch: KVM_MEMORY_ENCRYPT_OP on the VM fd (tdx_vm_ioctl: KVM_TDX_CAPABILITIES,
 *   KVM_TDX_INIT_VM, KVM_TDX_FINALIZE_VM) and on a vCPU fd (tdx_vcpu_ioctl: KVM_TDX_INIT_VCPU,
 *   KVM_TDX_INIT_MEM_REGION -> kvm_gmem_populate() -> tdx_gmem_post_populate(): kvm_tdp_map_page()
 *   into the mirror root, TDH.MEM.PAGE.ADD, 16 x TDH.MR.EXTEND per page when measured).
 * - Private memory: the TDP MMU's mirror root holds the private SPTEs; set_external_spte
 *   (tdx_sept_set_private_spte: TDH.MEM.SEPT.ADD for missing levels, TDH.MEM.PAGE.AUG, or before
 *   finalize nr_premapped) and remove_external_spte (tdx_sept_remove_private_spte: BLOCK, TRACK
 *   with a kick of every vCPU, REMOVE, PAGE.WBINVD, tdx_clear_page(), unpin) keep the S-EPT in
 *   step. Pages are 4 KiB only (tdx_gmem_private_max_mapping_level()), and pinned while mapped
 *   (get_page(): "prevent page migration").
 * - The guest: TDCALLs arrive as guest fwcalls (tdx_guest.ts): TDG.MEM.PAGE.ACCEPT is answered by
 *   the module (an EPT violation when the page is not PENDING yet), TDG.VP.VMCALL<MapGPA> becomes
 *   KVM_HC_MAP_GPA_RANGE exits in 2 MiB chunks (tdx_map_gpa()), a TDG.VP.VMCALL with R10 != 0 is a
 *   KVM hypercall (tdx_emulate_vmcall()). A guest access to a PENDING page kills the VM when the TD
 *   has SEPT_VE_DISABLE ("Guest access before accepting"), else #VE; to a line whose integrity
 *   check fails, a machine check that the module turns into a fatal TD.
 * - The shared bit: GPA bit 47 or 51 per the GPAW userspace chose in KVM_TDX_INIT_VM
 *   (kvm->arch.gfn_direct_bits); guest_access_is_private() is its absence.
 *
 * Not modelled: KVM_CAP_SPLIT_IRQCHIP (the simulator has none; tdx_vcpu_create() refuses only a
 * full in-kernel irqchip), KVM_TDX_GET_CPUID, the TDVMCALLs that exit with KVM_EXIT_TDX
 * (GetQuote, GetTdVmCallInfo: answered SUBFUNC_UNSUPPORTED), MMIO/PIO/CPUID/MSR TDVMCALLs (a
 * guest program's `pio` exits as on VMX),
 * TSC and XFAM handling beyond the checks, the misc cgroup of HKIDs.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { get_page, get_user_pages_fast, printk, put_page, vm_sysctl, x86_mce_hooks } from '@cocosim/mm';
import {
  KVM_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_LONG_MODE, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_SYSTEM_EVENT, KVM_HC_MAP_GPA_RANGE,
  APIC_DEFAULT_PHYS_BASE, KVM_MP_STATE_RUNNABLE, LAPIC_MODE_X2APIC, MSR_IA32_APICBASE_BSP,
  KVM_X86_TDX_VM, PFERR_GUEST_FINAL_MASK, PFERR_PRIVATE_ACCESS, PFERR_USER_MASK, PFERR_WRITE_MASK, PG_LEVEL_4K,
  RET_PF_EMULATE, RET_PF_RETRY, kvm_emulate_hypercall, kvm_gfn_direct_bits, kvm_gmem_populate, kvm_mmu_page_fault,
  kvm_tdp_map_page, tdp_fault_error_code, user_exit_on_hypercall, user_struct_field, vcpu_arch,
  type GuestFwcallOutcome, type GuestMemAccess, type HostAccessActorKind, type HostAccessOutcome, type Kvm, type KvmVcpu,
  type KvmX86Ops,
} from '@cocosim/kvm';
import {
  KVM_TDX_CPUID_NO_SUBLEAF, TDX_TD_CONF, tdx_alloc_page, tdx_module_of, type Td, type TdParams, type TdVp,
  type TdxModule, SEPT_BLOCKEDW, SEPT_MAPPED, SEPT_PENDING, SEPT_PENDING_BLOCKED, SEPT_PENDING_BLOCKEDW,
} from './tdx_module.js';
import {
  TDX_NON_RECOVERABLE_TD, TDX_OPERAND_ID_RCX, TDX_OPERAND_INVALID, TDX_RND_NO_ENTROPY, TDX_SEAMCALL_STATUS_MASK, TDX_SUCCESS,
  TDX_TD_FATAL, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_FLUSHVP_NOT_DONE, TDX_NO_HKID_READY_TO_WBCACHE, api_error_with_operand_id,
  tdx_operand_busy,
} from './tdx_errno.js';
import {
  EXIT_REASON_OTHER_SMI, EXIT_REASON_TDCALL, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
  KVM_SYSTEM_EVENT_TDX_FATAL, TDVMCALL_REPORT_FATAL_ERROR,
  KVM_MAP_GPA_RANGE_DECRYPTED, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAX_CPUID_ENTRIES, KVM_TDX_CAPABILITIES, KVM_TDX_FINALIZE_VM,
  KVM_TDX_GET_CPUID, KVM_TDX_INIT_MEM_REGION, KVM_TDX_INIT_VCPU, KVM_TDX_INIT_VM, KVM_TDX_MEASURE_MEMORY_REGION,
  TDG_MEM_PAGE_ACCEPT, TDG_VP_INFO, TDG_VP_VMCALL, TDVMCALL_MAP_GPA, TDVMCALL_STATUS_ALIGN_ERROR,
  TDVMCALL_STATUS_INVALID_OPERAND, TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, TDVMCALL_STATUS_SUCCESS, TDX_PS_1G, TDX_PS_2M,
  TDX_PS_4K, TDX_TD_ATTR_SEPT_VE_DISABLE,
} from './uapi.js';

/* ---- per-VM and per-vCPU state (struct kvm_tdx, struct vcpu_tdx: arch/x86/kvm/vmx/tdx.h) ---- */

/** enum kvm_tdx_state. */
export const TD_STATE_UNINITIALIZED = 0;
export const TD_STATE_INITIALIZED = 1;
export const TD_STATE_RUNNABLE = 2;

/** enum vcpu_tdx_state. */
export const VCPU_TD_STATE_UNINITIALIZED = 0;
export const VCPU_TD_STATE_INITIALIZED = 1;

/** TDX_EXTENDMR_CHUNKSIZE: TDH.MR.EXTEND measures 256 bytes. */
export const TDX_EXTENDMR_CHUNKSIZE = 256;
/** TDX_MAP_GPA_MAX_LEN: MapGPA is forwarded to user space in chunks of 2 MiB. */
export const TDX_MAP_GPA_MAX_LEN = 2n * 1024n * 1024n;

/** struct kvm_tdx. */
export class KvmTdx {
  state = TD_STATE_UNINITIALIZED;
  hkid = -1;
  /** The module's TD (TDR/TDCS), once TDH.MNG.CREATE succeeded. */
  td: Td | null = null;
  tdr_pfn = -1;
  tdcs_pfns: number[] = [];
  /** Pages mapped in the mirror root by KVM_TDX_INIT_MEM_REGION but not yet TDH.MEM.PAGE.ADDed. */
  nr_premapped = 0;
  attributes = 0n;
  xfam = 0n;
  /** The host pages given to the module as S-EPT pages (tdx_sept_link_private_spt()). */
  readonly sept_pages: number[] = [];
}

/** struct vcpu_tdx. */
export class VcpuTdx {
  state = VCPU_TD_STATE_UNINITIALIZED;
  vp: TdVp | null = null;
  tdvpr_pfn = -1;
  tdcx_pfns: number[] = [];
  map_gpa_next = 0n;
  map_gpa_end = 0n;
  /**
   * The registers the TDCALL in flight returns when the guest executes it again after its TD exit
   * was handled (vp_enter_args as TDH.VP.ENTER hands them back: rax, rcx, rdx, r8..r15).
   */
  tdcall_ret: bigint[] | null = null;
}

const vcpu_tdxs = new WeakMap<KvmVcpu, VcpuTdx>();

/** is_td(): the VM is a TD. */
export function is_td(kvm: Kvm): boolean {
  return kvm.arch.vm_type === KVM_X86_TDX_VM;
}

/** to_kvm_tdx(). */
export function to_kvm_tdx(kvm: Kvm): KvmTdx {
  return kvm.arch.vendor as KvmTdx;
}

/** to_tdx(). */
export function to_tdx(vcpu: KvmVcpu): VcpuTdx {
  let t = vcpu_tdxs.get(vcpu);
  if (t === undefined) vcpu_tdxs.set(vcpu, (t = new VcpuTdx()));
  return t;
}

/** is_hkid_assigned(). */
function is_hkid_assigned(kvm_tdx: KvmTdx): boolean {
  return kvm_tdx.hkid > 0;
}

function module_of(kvm: Kvm): TdxModule {
  return tdx_module_of(kvm.kernel);
}

/** KVM_BUG_ON(): warn once and mark the VM bugged (every ioctl -EIO from then on). */
function KVM_BUG_ON(cond: boolean, kvm: Kvm, site: string): boolean {
  if (!cond) return false;
  kvm.kernel.warn.WARN_ON_ONCE(true, site);
  kvm.vm_dead = true;
  return true;
}

/** pr_tdx_error(): "SEAMCALL %s failed: 0x%llx". */
function pr_tdx_error(kvm: Kvm, fn: string, err: bigint): void {
  printk(kvm.kernel, `kvm_intel: SEAMCALL ${fn} failed: 0x${err.toString(16)}`);
}

/** The measured TD's MRTD (48 bytes), once KVM_TDX_FINALIZE_VM ran (cocosim: what a TD report would carry). */
export function tdx_mrtd(kvm: Kvm): Uint8Array | null {
  if (!is_td(kvm)) return null;
  const td = to_kvm_tdx(kvm).td;
  return td?.mrtd ? new Uint8Array(td.mrtd) : null;
}

/** The module's TD of a VM (tests, the comparison report). */
export function tdx_td(kvm: Kvm): Td | null {
  return is_td(kvm) ? to_kvm_tdx(kvm).td : null;
}

/* ---- gpa helpers (vt_is_tdx_private_gpa, kvm_gfn_direct_bits) ---- */

/** The shared bit of the VM as a gpa mask (gfn_to_gpa(kvm_gfn_direct_bits(kvm))). */
function shared_gpa_mask(kvm: Kvm): bigint {
  return BigInt(kvm_gfn_direct_bits(kvm)) << 12n;
}

/** vt_is_tdx_private_gpa(): the gpa does not carry the shared bit. */
function vt_is_tdx_private_gpa(kvm: Kvm, gpa: bigint): boolean {
  return (gpa & shared_gpa_mask(kvm)) === 0n;
}

/** kvm_vcpu_is_legal_gpa(): below the guest's MAXPHYADDR (the TD's GPAW). */
function kvm_vcpu_is_legal_gpa(vcpu: KvmVcpu, gpa: bigint): boolean {
  const gpaw = to_kvm_tdx(vcpu.kvm).td?.params?.gpaw ?? 52;
  return gpa >= 0n && gpa < 1n << BigInt(gpaw);
}

/* ---- VM and vCPU lifetime ---- */

/**
 * tdx_vm_init(): a TD has protected state and private memory; its shared bit is unknown until
 * KVM_TDX_INIT_VM picks the GPAW.
 */
function tdx_vm_init(kvm: Kvm): number {
  kvm.arch.has_protected_state = true;
  kvm.arch.has_private_mem = true;
  kvm.arch.vendor = new KvmTdx();
  kvm.arch.gfn_direct_bits = 0;
  return 0;
}

/**
 * tdx_vcpu_create(): only after KVM_TDX_INIT_VM (-EIO), and not with a full in-kernel irqchip
 * (the TDX module mandates APICv with a split irqchip: -EINVAL).
 */
function tdx_vcpu_create(vcpu: KvmVcpu): number {
  const kvm_tdx = to_kvm_tdx(vcpu.kvm);
  if (kvm_tdx.state !== TD_STATE_INITIALIZED) return -Errno.EIO;
  if (vcpu.kvm.irqchip_in_kernel) return -Errno.EINVAL;
  vcpu_tdxs.set(vcpu, new VcpuTdx());
  return 0;
}

/**
 * tdx_vcpu_pre_run(): KVM_RUN needs an initialized vCPU of a finalized TD (-EINVAL). A TD the
 * module declared fatal cannot be entered: TDH.VP.ENTER fails with TDX_TD_FATAL, which
 * tdx_handle_exit() reports as KVM_EXIT_INTERNAL_ERROR (cocosim reports it here, before entry).
 */
function tdx_vcpu_pre_run(vcpu: KvmVcpu): number {
  const kvm_tdx = to_kvm_tdx(vcpu.kvm);
  if (to_tdx(vcpu).state !== VCPU_TD_STATE_INITIALIZED || kvm_tdx.state !== TD_STATE_RUNNABLE) return -Errno.EINVAL;
  if (kvm_tdx.td?.fatal) return tdx_unhandled_exit(vcpu, TDX_TD_FATAL);
  return 1;
}

/**
 * tdx_handle_exit()'s unhandled_exit: KVM_EXIT_INTERNAL_ERROR, suberror
 * KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON, data = { vp_enter_ret, last_vmentry_cpu }.
 */
function tdx_unhandled_exit(vcpu: KvmVcpu, vp_enter_ret: bigint): number {
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run.internal.suberror = KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON;
  run.internal.ndata = 2;
  run.internal.data = [vp_enter_ret, 0n];
  return 0;
}

/** tdx_clear_page(): MOVDIR64B of zeros with KeyID 0 over the page (also clears its poison). */
function tdx_clear_page(kvm: Kvm, pfn: number): void {
  module_of(kvm).movdir64b_clear(pfn);
}

/** tdx_clflush_page(): the wrappers flush a page from the caches before the module gets it. */
function tdx_clflush_page(kvm: Kvm): void {
  kvm.kernel.cost.charge('clflush_4k');
}

/**
 * __tdx_reclaim_page() + tdx_clear_page(): TDH.PHYMEM.PAGE.RECLAIM (only in teardown) and a
 * clear. -EIO (a WARN) when the module refuses.
 */
function tdx_reclaim_page(kvm: Kvm, pfn: number): number {
  const err = module_of(kvm).tdh_phymem_page_reclaim(pfn);
  if (kvm.kernel.warn.WARN_ON_ONCE(err !== TDX_SUCCESS, '__tdx_reclaim_page')) {
    pr_tdx_error(kvm, 'TDH_PHYMEM_PAGE_RECLAIM', err);
    return -Errno.EIO;
  }
  tdx_clear_page(kvm, pfn);
  return 0;
}

/** tdx_reclaim_control_page(): reclaim and free, or leak the page if the module refuses. */
function tdx_reclaim_control_page(kvm: Kvm, pfn: number): void {
  if (tdx_reclaim_page(kvm, pfn)) return;
  kvm.kernel.page_alloc.__free_page(pfn);
}

/** tdx_hkid_free(). */
function tdx_hkid_free(kvm: Kvm, kvm_tdx: KvmTdx): void {
  module_of(kvm).tdx_guest_keyid_free(kvm_tdx.hkid);
  kvm_tdx.hkid = -1;
}

/**
 * tdx_mmu_release_hkid() (the VM's pre-destroy): flush every vCPU (TDH.VP.FLUSH), then
 * TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB on one CPU of each package, TDH.MNG.KEY.FREEID; the
 * HKID is then free. A module error leaks the HKID (KVM_BUG_ON).
 */
export function tdx_mmu_release_hkid(kvm: Kvm): void {
  const kvm_tdx = to_kvm_tdx(kvm);
  const module = module_of(kvm);
  if (!is_hkid_assigned(kvm_tdx)) return;
  const td = kvm_tdx.td;
  if (td === null) {
    tdx_hkid_free(kvm, kvm_tdx);
    return;
  }
  for (const vcpu of kvm.vcpus.values()) {
    const vp = vcpu_tdxs.get(vcpu)?.vp;
    if (vp?.initialized) module.tdh_vp_flush(vp);
  }
  let err = module.tdh_mng_vpflushdone(td);
  if (err === TDX_FLUSHVP_NOT_DONE) return;
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_mmu_release_hkid: TDH.MNG.VPFLUSHDONE')) {
    pr_tdx_error(kvm, 'TDH_MNG_VPFLUSHDONE', err);
    return;
  }
  for (let pkg = 0; pkg < module.nr_packages; pkg++) {
    err = module.tdh_phymem_cache_wb(pkg);
    kvm.kernel.warn.WARN_ON_ONCE(err !== TDX_SUCCESS && err !== TDX_NO_HKID_READY_TO_WBCACHE, 'smp_func_do_phymem_cache_wb');
  }
  err = module.tdh_mng_key_freeid(td);
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_mmu_release_hkid: TDH.MNG.KEY.FREEID')) {
    pr_tdx_error(kvm, 'TDH_MNG_KEY_FREEID', err);
    printk(kvm.kernel, `kvm_intel: tdh_mng_key_freeid() failed. HKID ${kvm_tdx.hkid} is leaked.`);
    return;
  }
  tdx_hkid_free(kvm, kvm_tdx);
}

/** tdx_vcpu_free(): reclaim the vCPU's TDCX and TDVPR pages (not while the HKID is assigned). */
function tdx_vcpu_free(kvm: Kvm, vcpu: KvmVcpu): void {
  const tdx = vcpu_tdxs.get(vcpu);
  if (tdx === undefined || is_hkid_assigned(to_kvm_tdx(kvm))) return;
  for (const pfn of tdx.tdcx_pfns) tdx_reclaim_control_page(kvm, pfn);
  tdx.tdcx_pfns = [];
  if (tdx.tdvpr_pfn >= 0) tdx_reclaim_control_page(kvm, tdx.tdvpr_pfn);
  tdx.tdvpr_pfn = -1;
  tdx.state = VCPU_TD_STATE_UNINITIALIZED;
}

/**
 * tdx_reclaim_td_control_pages(): the TDCS pages, then the TDR (TDH.PHYMEM.PAGE.RECLAIM, then
 * TDH.PHYMEM.PAGE.WBINVD with the global KeyID, a clear and the free). Nothing while the HKID is
 * still assigned (it could not be released: the pages are leaked).
 */
function tdx_reclaim_td_control_pages(kvm: Kvm): void {
  const kvm_tdx = to_kvm_tdx(kvm);
  const module = module_of(kvm);
  if (is_hkid_assigned(kvm_tdx)) return;
  for (const pfn of kvm_tdx.tdcs_pfns) tdx_reclaim_control_page(kvm, pfn);
  kvm_tdx.tdcs_pfns = [];
  if (kvm_tdx.tdr_pfn < 0) return;
  const err = module.tdh_phymem_page_reclaim(kvm_tdx.tdr_pfn);
  if (kvm.kernel.warn.WARN_ON_ONCE(err !== TDX_SUCCESS, '__tdx_reclaim_page')) return;
  const wb = module.tdh_phymem_page_wbinvd(module.tdx_keyid_start, kvm_tdx.tdr_pfn);
  if (KVM_BUG_ON(wb !== TDX_SUCCESS, kvm, 'tdx_reclaim_td_control_pages: TDH.PHYMEM.PAGE.WBINVD')) return;
  tdx_clear_page(kvm, kvm_tdx.tdr_pfn);
  kvm.kernel.page_alloc.__free_page(kvm_tdx.tdr_pfn);
  kvm_tdx.tdr_pfn = -1;
}

/**
 * The TD's teardown as kvm_destroy_vm() runs it: tdx_mmu_release_hkid() (vm_pre_destroy), the
 * vCPUs' pages (kvm_destroy_vcpus() -> tdx_vcpu_free()), the S-EPT pages (the mirror root's
 * free_external_spt -> tdx_sept_free_private_spt(): reclaim, the cache was flushed with the
 * HKID), then tdx_vm_destroy() -> tdx_reclaim_td_control_pages().
 */
function tdx_vm_destroy(kvm: Kvm): void {
  const kvm_tdx = to_kvm_tdx(kvm);
  tdx_mmu_release_hkid(kvm);
  for (const vcpu of kvm.vcpus.values()) tdx_vcpu_free(kvm, vcpu);
  if (!is_hkid_assigned(kvm_tdx)) {
    for (const pfn of kvm_tdx.sept_pages.splice(0)) {
      if (!tdx_reclaim_page(kvm, pfn)) kvm.kernel.page_alloc.__free_page(pfn);
    }
  }
  tdx_reclaim_td_control_pages(kvm);
  kvm_tdx.state = TD_STATE_UNINITIALIZED;
}

/* ---- KVM_MEMORY_ENCRYPT_OP: struct kvm_tdx_cmd ---- */

interface TdxCmd {
  id: number;
  flags: number;
  data: unknown;
  hw_error: bigint;
}

/** copy_from_user() of struct kvm_tdx_cmd: -EFAULT for no struct or a field C cannot hold. */
function tdx_cmd_copy_from_user(argp: unknown): TdxCmd | number {
  if (typeof argp !== 'object' || argp === null) return -Errno.EFAULT;
  const o = argp as Record<string, unknown>;
  const id = user_struct_field(o, 'id', 32);
  const flags = user_struct_field(o, 'flags', 32);
  const hw_error = user_struct_field(o, 'hw_error', 64);
  if (id === undefined || flags === undefined || hw_error === undefined) return -Errno.EFAULT;
  return { id: Number(id), flags: Number(flags), data: o.data, hw_error };
}

/** copy_to_user() of the command: hw_error written back (a number while exact, as given). */
function tdx_cmd_copy_to_user(argp: unknown, cmd: TdxCmd): void {
  const o = argp as Record<string, unknown>;
  o.hw_error = typeof o.hw_error === 'bigint' || cmd.hw_error > BigInt(Number.MAX_SAFE_INTEGER) ? cmd.hw_error : Number(cmd.hw_error);
}

/** The u64 a command's `data` holds as a value (KVM_TDX_INIT_VCPU's RCX), or undefined. */
function cmd_data_u64(cmd: TdxCmd): bigint | undefined {
  return user_struct_field({ data: cmd.data }, 'data', 64);
}

/* ---- CPUID configuration (struct kvm_cpuid2 / kvm_cpuid_entry2) ---- */

interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const CPUID_FIELDS = ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx'] as const;

/** copy_from_user() of `nent` entries: -EFAULT where the array is shorter or a field is no u32. */
function copy_cpuid_entries(entries: unknown, nent: number): CpuidEntry[] | number {
  if (nent === 0) return [];
  if (!Array.isArray(entries) || entries.length < nent) return -Errno.EFAULT;
  const out: CpuidEntry[] = [];
  for (let i = 0; i < nent; i++) {
    const e = entries[i] as unknown;
    if (typeof e !== 'object' || e === null) return -Errno.EFAULT;
    const r = {} as CpuidEntry;
    for (const f of CPUID_FIELDS) {
      const v = user_struct_field(e as Record<string, unknown>, f, 32);
      if (v === undefined) return -Errno.EFAULT;
      r[f] = Number(v);
    }
    out.push(r);
  }
  return out;
}

/** kvm_find_cpuid_entry2(): the entry of `func` (and `index`, where the entry says it is significant). */
function kvm_find_cpuid_entry2(entries: readonly CpuidEntry[], func: number, index: number): CpuidEntry | undefined {
  return entries.find((e) => e.function === func && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index === index));
}

/** tdx_get_guest_phys_addr_bits() / tdx_set_guest_phys_addr_bits(): CPUID 0x80000008 EAX[23:16]. */
function tdx_get_guest_phys_addr_bits(eax: number): number {
  return (eax >>> 16) & 0xff;
}

function tdx_set_guest_phys_addr_bits(eax: number, bits: number): number {
  return ((eax & ~0x00ff_0000) | ((bits & 0xff) << 16)) >>> 0;
}

/** TDX_FEATURE_TSX (HLE | RTM in CPUID 7.0 EBX) and WAITPKG (CPUID 7.0 ECX bit 5). */
const TDX_FEATURE_TSX = (1 << 4) | (1 << 11);
const X86_FEATURE_WAITPKG_BIT = 1 << 5;

function is_leaf7(e: CpuidEntry): boolean {
  return e.function === 7 && e.index === 0;
}

/** tdx_unsupported_cpuid(): TSX or WAITPKG, which KVM cannot let a TD have. */
function tdx_unsupported_cpuid(e: CpuidEntry): boolean {
  return is_leaf7(e) && ((e.ebx & TDX_FEATURE_TSX) !== 0 || (e.ecx & X86_FEATURE_WAITPKG_BIT) !== 0);
}

/** td_init_cpuid_entry2(): the module's configurable CPUID entry `idx`, as KVM reports it. */
function td_init_cpuid_entry2(idx: number): CpuidEntry {
  const c = TDX_TD_CONF.cpuid_configs[idx]!;
  const e: CpuidEntry = { function: c.leaf, index: c.sub_leaf === KVM_TDX_CPUID_NO_SUBLEAF ? 0 : c.sub_leaf, flags: 0, eax: c.eax, ebx: c.ebx, ecx: c.ecx, edx: c.edx };
  // The module does not let the guest's phys addr bits be configured; KVM offers them as the GPAW.
  if (e.function === 0x8000_0008) e.eax = tdx_set_guest_phys_addr_bits(e.eax, 0xff);
  if (is_leaf7(e)) {
    e.ebx = (e.ebx & ~TDX_FEATURE_TSX) >>> 0;
    e.ecx = (e.ecx & ~X86_FEATURE_WAITPKG_BIT) >>> 0;
  }
  return e;
}

/** kvm_caps.supported_xcr0 | supported_xss of the simulated host: x87, SSE, AVX, AVX-512, PKRU, AMX. */
const KVM_SUPPORTED_XFAM = 0x6_02e7n;
/** KVM_SUPPORTED_TD_ATTRS: the only TD attribute KVM supports. */
const KVM_SUPPORTED_TD_ATTRS = TDX_TD_ATTR_SEPT_VE_DISABLE;

/** tdx_get_supported_attrs(). */
function tdx_get_supported_attrs(): bigint {
  const val = KVM_SUPPORTED_TD_ATTRS;
  if ((val & TDX_TD_CONF.attributes_fixed1) !== TDX_TD_CONF.attributes_fixed1) return 0n;
  return val & TDX_TD_CONF.attributes_fixed0;
}

/** tdx_get_supported_xfam(). */
function tdx_get_supported_xfam(): bigint {
  const val = KVM_SUPPORTED_XFAM;
  if ((val & TDX_TD_CONF.xfam_fixed1) !== TDX_TD_CONF.xfam_fixed1) return 0n;
  return val & TDX_TD_CONF.xfam_fixed0;
}

/** Out-values of a struct: a number while exact, else a bigint. */
function out_u64(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * tdx_get_capabilities() (KVM_TDX_CAPABILITIES): flags must be 0; `data` is struct
 * kvm_tdx_capabilities, whose cpuid.nent must hold the module's configurable leaves (-E2BIG);
 * out: supported_attrs, supported_xfam and the leaves.
 */
function tdx_get_capabilities(cmd: TdxCmd): number {
  if (cmd.flags) return -Errno.EINVAL;
  const caps = cmd.data;
  if (typeof caps !== 'object' || caps === null) return -Errno.EFAULT;
  const c = caps as Record<string, unknown>;
  const cpuid = c.cpuid ?? {};
  if (typeof cpuid !== 'object' || cpuid === null) return -Errno.EFAULT;
  const nent = user_struct_field(cpuid as Record<string, unknown>, 'nent', 32);
  if (nent === undefined) return -Errno.EFAULT;
  const n = TDX_TD_CONF.cpuid_configs.length;
  if (nent < BigInt(n)) return -Errno.E2BIG;
  const supported_attrs = tdx_get_supported_attrs();
  if (!supported_attrs) return -Errno.EIO;
  const supported_xfam = tdx_get_supported_xfam();
  if (!supported_xfam) return -Errno.EIO;
  c.supported_attrs = out_u64(supported_attrs);
  c.supported_xfam = out_u64(supported_xfam);
  const entries = Array.from({ length: n }, (_, i) => td_init_cpuid_entry2(i));
  c.cpuid = { ...(cpuid as object), nent: n, entries: entries.map((e) => ({ ...e })) };
  return 0;
}

/* ---- KVM_TDX_INIT_VM ---- */

interface InitVm {
  attributes: bigint;
  xfam: bigint;
  cpuid: CpuidEntry[];
}

/** An array field of u64s (mrconfigid[6]...): undefined entries are 0; -EFAULT for what C cannot hold. */
function u64_array(o: Record<string, unknown>, name: string, len: number): bigint[] | undefined {
  const v = o[name];
  if (v === undefined || v === null) return new Array<bigint>(len).fill(0n);
  if (!Array.isArray(v)) return undefined;
  const out: bigint[] = [];
  for (let i = 0; i < len; i++) {
    const x = user_struct_field({ x: v[i] as unknown }, 'x', 64);
    if (x === undefined) return undefined;
    out.push(x);
  }
  return out;
}

/**
 * The copy_from_user()s and checks of tdx_td_init() before the TD is set up: -EFAULT, -E2BIG for
 * more than KVM_MAX_CPUID_ENTRIES, -EINVAL for reserved bytes or cpuid.padding.
 */
function tdx_init_vm_copy(data: unknown): InitVm | number {
  if (typeof data !== 'object' || data === null) return -Errno.EFAULT;
  const o = data as Record<string, unknown>;
  const attributes = user_struct_field(o, 'attributes', 64);
  const xfam = user_struct_field(o, 'xfam', 64);
  const digests = ['mrconfigid', 'mrowner', 'mrownerconfig'].map((f) => u64_array(o, f, 6));
  const reserved = u64_array(o, 'reserved', 12);
  const cpuid = o.cpuid ?? {};
  if (attributes === undefined || xfam === undefined || digests.some((d) => d === undefined) || reserved === undefined) return -Errno.EFAULT;
  if (typeof cpuid !== 'object' || cpuid === null) return -Errno.EFAULT;
  const c = cpuid as Record<string, unknown>;
  const nent = user_struct_field(c, 'nent', 32);
  const padding = user_struct_field(c, 'padding', 32);
  if (nent === undefined || padding === undefined) return -Errno.EFAULT;
  if (nent > BigInt(KVM_MAX_CPUID_ENTRIES)) return -Errno.E2BIG;
  const entries = copy_cpuid_entries(c.entries, Number(nent));
  if (typeof entries === 'number') return entries;
  if (reserved.some((r) => r !== 0n)) return -Errno.EINVAL;
  if (padding) return -Errno.EINVAL;
  return { attributes, xfam, cpuid: entries };
}

/**
 * setup_tdparams() with setup_tdparams_eptp_controls() and setup_tdparams_cpuids(): no vCPU yet
 * (-EBUSY); attributes and XFAM within what KVM supports; CPUID 0x80000008 gives the GPAW, 48 or
 * 52 (52 needs 5-level EPT); every CPUID entry must be one of the module's configurable leaves and
 * not offer TSX or WAITPKG (-EINVAL).
 */
function setup_tdparams(kvm: Kvm, init_vm: InitVm): TdParams | number {
  const module = module_of(kvm);
  if (kvm.created_vcpus) return -Errno.EBUSY;
  if (init_vm.attributes & ~tdx_get_supported_attrs()) return -Errno.EINVAL;
  if (init_vm.xfam & ~tdx_get_supported_xfam()) return -Errno.EINVAL;
  const pa = kvm_find_cpuid_entry2(init_vm.cpuid, 0x8000_0008, 0);
  if (pa === undefined) return -Errno.EINVAL;
  const guest_pa = tdx_get_guest_phys_addr_bits(pa.eax);
  if (guest_pa !== 48 && guest_pa !== 52) return -Errno.EINVAL;
  if (guest_pa === 52 && !module.ept_5level) return -Errno.EINVAL;
  let copy_cnt = 0;
  for (let i = 0; i < TDX_TD_CONF.cpuid_configs.length; i++) {
    const tmp = td_init_cpuid_entry2(i);
    const e = kvm_find_cpuid_entry2(init_vm.cpuid, tmp.function, tmp.index);
    if (e === undefined) continue;
    if (tdx_unsupported_cpuid(e)) return -Errno.EINVAL;
    copy_cnt++;
  }
  if (copy_cnt !== init_vm.cpuid.length) return -Errno.EINVAL;
  return {
    attributes: init_vm.attributes | TDX_TD_CONF.attributes_fixed1,
    xfam: init_vm.xfam | TDX_TD_CONF.xfam_fixed1,
    gpaw: guest_pa,
    max_vcpus: kvm.max_vcpus,
  };
}

/** Give back what __tdx_td_init() allocated before the TD existed (its free_* labels). */
function tdx_td_init_free(kvm: Kvm, kvm_tdx: KvmTdx, pages: number[]): void {
  for (const pfn of pages) kvm.kernel.page_alloc.__free_page(pfn);
  kvm_tdx.tdr_pfn = -1;
  kvm_tdx.tdcs_pfns = [];
  tdx_hkid_free(kvm, kvm_tdx);
}

/**
 * __tdx_td_init(): an HKID (-ENOSPC when none is left), the TDR and TDCS pages (-ENOMEM),
 * TDH.MNG.CREATE (-EAGAIN for TDX_RND_NO_ENTROPY), TDH.MNG.KEY.CONFIG on every package,
 * TDH.MNG.ADDCX per TDCS page, TDH.MNG.INIT (TDX_OPERAND_INVALID: -EINVAL with the status in
 * hw_error). A failure after TDH.MNG.CREATE tears the TD down (release the HKID, reclaim).
 */
function __tdx_td_init(kvm: Kvm, params: TdParams, cmd: TdxCmd): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  const module = module_of(kvm);
  cmd.hw_error = 0n;
  const hkid = module.tdx_guest_keyid_alloc();
  if (hkid < 0) return hkid;
  kvm_tdx.hkid = hkid;
  const pages: number[] = [];
  const nr_tdcs = TDX_TD_CONF.tdcs_nr_pages;
  for (let i = 0; i < 1 + nr_tdcs; i++) {
    const pfn = tdx_alloc_page(kvm.kernel);
    if (pfn < 0) {
      tdx_td_init_free(kvm, kvm_tdx, pages);
      return -Errno.ENOMEM;
    }
    pages.push(pfn);
  }
  const [tdr, ...tdcs] = pages as [number, ...number[]];
  tdx_clflush_page(kvm);
  const created = module.tdh_mng_create(tdr, hkid);
  if (created.err !== TDX_SUCCESS) {
    tdx_td_init_free(kvm, kvm_tdx, pages);
    if (created.err === TDX_RND_NO_ENTROPY) return -Errno.EAGAIN;
    kvm.kernel.warn.WARN_ON_ONCE(true, '__tdx_td_init: TDH.MNG.CREATE');
    pr_tdx_error(kvm, 'TDH_MNG_CREATE', created.err);
    return -Errno.EIO;
  }
  const td = created.td!;
  kvm_tdx.td = td;
  kvm_tdx.tdr_pfn = tdr;
  const teardown = (ret: number, unadded: number[]): number => {
    for (const pfn of unadded) kvm.kernel.page_alloc.__free_page(pfn);
    tdx_mmu_release_hkid(kvm);
    tdx_reclaim_td_control_pages(kvm);
    return ret;
  };
  for (let pkg = 0; pkg < module.nr_packages; pkg++) {
    const err = module.tdh_mng_key_config(td, pkg);
    if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, '__tdx_td_init: TDH.MNG.KEY.CONFIG')) {
      pr_tdx_error(kvm, 'TDH_MNG_KEY_CONFIG', err);
      return teardown(-Errno.EIO, tdcs);
    }
  }
  for (let i = 0; i < tdcs.length; i++) {
    tdx_clflush_page(kvm);
    const err = module.tdh_mng_addcx(td, tdcs[i]!, nr_tdcs);
    if (err !== TDX_SUCCESS) {
      kvm.kernel.warn.WARN_ON_ONCE(true, '__tdx_td_init: TDH.MNG.ADDCX');
      pr_tdx_error(kvm, 'TDH_MNG_ADDCX', err);
      return teardown(-Errno.EIO, tdcs.slice(i));
    }
    kvm_tdx.tdcs_pfns.push(tdcs[i]!);
  }
  const err = module.tdh_mng_init(td, params, TDX_TD_CONF, nr_tdcs);
  if ((err & TDX_SEAMCALL_STATUS_MASK) === TDX_OPERAND_INVALID) {
    cmd.hw_error = err;
    return teardown(-Errno.EINVAL, []);
  }
  if (err !== TDX_SUCCESS) {
    kvm.kernel.warn.WARN_ON_ONCE(true, '__tdx_td_init: TDH.MNG.INIT');
    pr_tdx_error(kvm, 'TDH_MNG_INIT', err);
    return teardown(-Errno.EIO, []);
  }
  return 0;
}

/**
 * tdx_td_init() (KVM_TDX_INIT_VM): once (-EINVAL), flags 0, then the struct's checks,
 * setup_tdparams() and __tdx_td_init(); the shared bit follows the GPAW and the TD is
 * initialized: vCPUs may be created.
 */
function tdx_td_init(kvm: Kvm, cmd: TdxCmd): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  if (kvm_tdx.state !== TD_STATE_UNINITIALIZED) return -Errno.EINVAL;
  if (cmd.flags) return -Errno.EINVAL;
  const init_vm = tdx_init_vm_copy(cmd.data);
  if (typeof init_vm === 'number') return init_vm;
  const params = setup_tdparams(kvm, init_vm);
  if (typeof params === 'number') return params;
  const ret = __tdx_td_init(kvm, params, cmd);
  if (ret) return ret;
  kvm_tdx.attributes = params.attributes;
  kvm_tdx.xfam = params.xfam;
  // TDX_SHARED_BIT_PWL_5 / _4 as gfn bits.
  kvm.arch.gfn_direct_bits = params.gpaw === 52 ? 2 ** 39 : 2 ** 35;
  kvm_tdx.state = TD_STATE_INITIALIZED;
  return 0;
}

/**
 * tdx_td_finalize() (KVM_TDX_FINALIZE_VM): with an HKID and not yet runnable (-EINVAL), every
 * premapped page added (-EINVAL), TDH.MR.FINALIZE (status in hw_error; busy -EBUSY, else a bug:
 * -EIO); the TD is runnable and KVM_PRE_FAULT_MEMORY allowed.
 */
function tdx_td_finalize(kvm: Kvm, cmd: TdxCmd): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  if (!is_hkid_assigned(kvm_tdx) || kvm_tdx.state === TD_STATE_RUNNABLE) return -Errno.EINVAL;
  if (kvm_tdx.nr_premapped) return -Errno.EINVAL;
  cmd.hw_error = module_of(kvm).tdh_mr_finalize(kvm_tdx.td!);
  if (tdx_operand_busy(cmd.hw_error)) return -Errno.EBUSY;
  if (KVM_BUG_ON(cmd.hw_error !== TDX_SUCCESS, kvm, 'tdx_td_finalize')) {
    pr_tdx_error(kvm, 'TDH_MR_FINALIZE', cmd.hw_error);
    return -Errno.EIO;
  }
  kvm_tdx.state = TD_STATE_RUNNABLE;
  kvm.arch.pre_fault_allowed = true;
  return 0;
}

/**
 * tdx_vm_ioctl() (vt_mem_enc_ioctl(): -ENOTTY for a VM that is no TD): copy the command (-EFAULT),
 * hw_error must be 0 (-EINVAL), dispatch; an unknown command is -EINVAL without a copy back.
 */
export function tdx_vm_ioctl(kvm: Kvm, argp: unknown): number {
  if (!is_td(kvm)) return -Errno.ENOTTY;
  const cmd = tdx_cmd_copy_from_user(argp);
  if (typeof cmd === 'number') return cmd;
  if (cmd.hw_error) return -Errno.EINVAL;
  let r: number;
  switch (cmd.id) {
    case KVM_TDX_CAPABILITIES:
      r = tdx_get_capabilities(cmd);
      break;
    case KVM_TDX_INIT_VM:
      r = tdx_td_init(kvm, cmd);
      break;
    case KVM_TDX_FINALIZE_VM:
      r = tdx_td_finalize(kvm, cmd);
      break;
    default:
      return -Errno.EINVAL;
  }
  tdx_cmd_copy_to_user(argp, cmd);
  return r;
}

/* ---- vCPU ioctls: KVM_TDX_INIT_VCPU, KVM_TDX_INIT_MEM_REGION ---- */

/**
 * tdx_td_vcpu_init(): the TDVPR and TDCX pages (-ENOMEM), TDH.VP.CREATE, TDH.VP.ADDCX each,
 * TDH.VP.INIT with the initial RCX; the vCPU is runnable.
 */
function tdx_td_vcpu_init(vcpu: KvmVcpu, _vcpu_rcx: bigint): number {
  const kvm = vcpu.kvm;
  const kvm_tdx = to_kvm_tdx(kvm);
  const tdx = to_tdx(vcpu);
  const module = module_of(kvm);
  const nr_tdcx = TDX_TD_CONF.tdvps_nr_pages - 1;
  const pages: number[] = [];
  for (let i = 0; i < 1 + nr_tdcx; i++) {
    const pfn = tdx_alloc_page(kvm.kernel);
    if (pfn < 0) {
      for (const p of pages) kvm.kernel.page_alloc.__free_page(p);
      return -Errno.ENOMEM;
    }
    pages.push(pfn);
  }
  const [tdvpr, ...tdcx] = pages as [number, ...number[]];
  tdx_clflush_page(kvm);
  const created = module.tdh_vp_create(kvm_tdx.td!, tdvpr);
  if (KVM_BUG_ON(created.err !== TDX_SUCCESS, kvm, 'tdx_td_vcpu_init: TDH.VP.CREATE')) {
    pr_tdx_error(kvm, 'TDH_VP_CREATE', created.err);
    for (const p of pages) kvm.kernel.page_alloc.__free_page(p);
    return -Errno.EIO;
  }
  tdx.vp = created.vp!;
  tdx.tdvpr_pfn = tdvpr;
  for (let i = 0; i < tdcx.length; i++) {
    tdx_clflush_page(kvm);
    const err = module.tdh_vp_addcx(tdx.vp, tdcx[i]!);
    if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_td_vcpu_init: TDH.VP.ADDCX')) {
      pr_tdx_error(kvm, 'TDH_VP_ADDCX', err);
      for (const p of tdcx.slice(i)) kvm.kernel.page_alloc.__free_page(p);
      return -Errno.EIO;
    }
    tdx.tdcx_pfns.push(tdcx[i]!);
  }
  const err = module.tdh_vp_init(tdx.vp, nr_tdcx);
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_td_vcpu_init: TDH.VP.INIT')) {
    pr_tdx_error(kvm, 'TDH_VP_INIT', err);
    return -Errno.EIO;
  }
  vcpu_arch(vcpu).mp_state = KVM_MP_STATE_RUNNABLE;
  return 0;
}

/** tdx_vcpu_init() (KVM_TDX_INIT_VCPU): flags 0, once per vCPU (-EINVAL); `data` is the initial RCX. */
function tdx_vcpu_init(vcpu: KvmVcpu, cmd: TdxCmd): number {
  const tdx = to_tdx(vcpu);
  if (cmd.flags) return -Errno.EINVAL;
  if (tdx.state !== VCPU_TD_STATE_UNINITIALIZED) return -Errno.EINVAL;
  /* "TDX requires X2APIC": kvm_apic_set_base() (the guest CPUID's X2APIC bit is not modelled) */
  const arch = vcpu_arch(vcpu);
  arch.apic_base = (arch.apic_base & MSR_IA32_APICBASE_BSP) | APIC_DEFAULT_PHYS_BASE | LAPIC_MODE_X2APIC;
  const rcx = cmd_data_u64(cmd);
  if (rcx === undefined) return -Errno.EFAULT;
  const ret = tdx_td_vcpu_init(vcpu, rcx);
  if (ret) return ret;
  tdx.state = VCPU_TD_STATE_INITIALIZED;
  return 0;
}

/**
 * tdx_gmem_post_populate(): the source page (GUP of the user's address: its error, or -ENOMEM),
 * the private GPA mapped in the mirror root (kvm_tdp_map_page(): S-EPT levels, the premapped
 * count), TDH.MEM.PAGE.ADD (-EBUSY / -EIO), then with KVM_TDX_MEASURE_MEMORY_REGION one
 * TDH.MR.EXTEND per 256 bytes (-EIO).
 */
function tdx_gmem_post_populate(vcpu: KvmVcpu, flags: number, src_addr: bigint, gfn: number, pfn: number): number {
  const kvm = vcpu.kvm;
  const kernel = kvm.kernel;
  const kvm_tdx = to_kvm_tdx(kvm);
  const module = module_of(kvm);
  const gpa = BigInt(gfn) << 12n;
  const src_pages: number[] = [];
  const got = get_user_pages_fast(kvm.mm, Number(src_addr / BigInt(PAGE_SIZE)), 1, 0, src_pages);
  if (got < 0) return got;
  if (got !== 1) return -Errno.ENOMEM;
  const src_page = src_pages[0]!;
  let ret = 0;
  const level = { level: PG_LEVEL_4K };
  ret = kvm_tdp_map_page(vcpu, gpa, PFERR_GUEST_FINAL_MASK | PFERR_PRIVATE_ACCESS, level);
  if (ret >= 0) {
    ret = 0;
    const src = kernel.phys.read(src_page as Pfn, 0, PAGE_SIZE);
    tdx_clflush_page(kvm);
    const err = src instanceof Uint8Array ? module.tdh_mem_page_add(kvm_tdx.td!, gpa, pfn, src) : api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX);
    if (err !== TDX_SUCCESS) {
      ret = tdx_operand_busy(err) ? -Errno.EBUSY : -Errno.EIO;
    } else {
      if (!KVM_BUG_ON(kvm_tdx.nr_premapped === 0, kvm, 'tdx_gmem_post_populate: nr_premapped')) kvm_tdx.nr_premapped--;
      if (flags & KVM_TDX_MEASURE_MEMORY_REGION) {
        for (let i = 0; i < PAGE_SIZE; i += TDX_EXTENDMR_CHUNKSIZE) {
          if (module.tdh_mr_extend(kvm_tdx.td!, gpa + BigInt(i)) !== TDX_SUCCESS) {
            ret = -Errno.EIO;
            break;
          }
        }
      }
    }
  }
  put_page(kernel.store, src_page);
  return ret;
}

/**
 * tdx_vcpu_init_mem_region() (KVM_TDX_INIT_MEM_REGION): an initialized vCPU of a TD not yet
 * finalized, flags within KVM_TDX_MEASURE_MEMORY_REGION, `data` struct kvm_tdx_init_mem_region:
 * page-aligned source and gpa, nr_pages > 0, no wrap, a private range (-EINVAL). One page at a
 * time through kvm_gmem_populate(); the struct is advanced past the pages done and copied back,
 * whatever the result.
 */
function tdx_vcpu_init_mem_region(vcpu: KvmVcpu, cmd: TdxCmd): number {
  const kvm = vcpu.kvm;
  const tdx = to_tdx(vcpu);
  const kvm_tdx = to_kvm_tdx(kvm);
  if (tdx.state !== VCPU_TD_STATE_INITIALIZED) return -Errno.EINVAL;
  if (kvm_tdx.state === TD_STATE_RUNNABLE) return -Errno.EINVAL;
  if (cmd.flags & ~KVM_TDX_MEASURE_MEMORY_REGION) return -Errno.EINVAL;
  const data = cmd.data;
  if (typeof data !== 'object' || data === null) return -Errno.EFAULT;
  const o = data as Record<string, unknown>;
  let source_addr = user_struct_field(o, 'source_addr', 64);
  let gpa = user_struct_field(o, 'gpa', 64);
  let nr_pages = user_struct_field(o, 'nr_pages', 64);
  if (source_addr === undefined || gpa === undefined || nr_pages === undefined) return -Errno.EFAULT;
  const page = BigInt(PAGE_SIZE);
  const end = BigInt.asUintN(64, gpa + BigInt.asUintN(64, nr_pages << 12n));
  if (source_addr % page || gpa % page || !nr_pages || end <= gpa ||
    !vt_is_tdx_private_gpa(kvm, gpa) || !vt_is_tdx_private_gpa(kvm, end - 1n)) {
    return -Errno.EINVAL;
  }
  let ret = 0;
  while (nr_pages) {
    const src = source_addr;
    const gmem_ret = kvm_gmem_populate(kvm, Number(gpa >> 12n), null, 1,
      (_kvm, gfn, pfn) => tdx_gmem_post_populate(vcpu, cmd.flags, src, gfn, pfn));
    if (gmem_ret < 0) {
      ret = gmem_ret;
      break;
    }
    if (gmem_ret !== 1) {
      ret = -Errno.EIO;
      break;
    }
    source_addr += page;
    gpa += page;
    nr_pages--;
  }
  o.source_addr = out_u64(source_addr);
  o.gpa = out_u64(gpa);
  o.nr_pages = out_u64(nr_pages);
  return ret;
}

/**
 * tdx_vcpu_ioctl() (vt_vcpu_mem_enc_ioctl(): -EINVAL for a vCPU of a VM that is no TD): only with
 * an HKID and before finalize (-EINVAL), copy the command (-EFAULT), hw_error 0 (-EINVAL).
 * KVM_TDX_GET_CPUID is not modelled (-EINVAL).
 */
export function tdx_vcpu_ioctl(vcpu: KvmVcpu, argp: unknown): number {
  const kvm = vcpu.kvm;
  if (!is_td(kvm)) return -Errno.EINVAL;
  const kvm_tdx = to_kvm_tdx(kvm);
  if (!is_hkid_assigned(kvm_tdx) || kvm_tdx.state === TD_STATE_RUNNABLE) return -Errno.EINVAL;
  const cmd = tdx_cmd_copy_from_user(argp);
  if (typeof cmd === 'number') return cmd;
  if (cmd.hw_error) return -Errno.EINVAL;
  switch (cmd.id) {
    case KVM_TDX_INIT_VCPU:
      return tdx_vcpu_init(vcpu, cmd);
    case KVM_TDX_INIT_MEM_REGION:
      return tdx_vcpu_init_mem_region(vcpu, cmd);
    case KVM_TDX_GET_CPUID:
    default:
      return -Errno.EINVAL;
  }
}

/* ---- the mirror root: S-EPT entries ---- */

/** pg_level_to_tdx_sept_level(). */
function pg_level_to_tdx_sept_level(level: number): number {
  return level - 1;
}

/**
 * tdx_sept_link_private_spt() for every S-EPT level the walk to `gfn` lacks (kvm_tdp_mmu_map()
 * links the mirror page tables on its way down, each with TDH.MEM.SEPT.ADD of a fresh page).
 */
function tdx_sept_link_path(kvm: Kvm, gfn: number): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  const td = kvm_tdx.td!;
  const module = module_of(kvm);
  for (let level = td.ept_levels - 1; level >= TDX_PS_2M; level--) {
    const idx = Math.floor(gfn / 512 ** level);
    if (td.sept[level].has(idx)) continue;
    const pfn = tdx_alloc_page(kvm.kernel);
    if (pfn < 0) return pfn;
    tdx_clflush_page(kvm);
    const gpa = BigInt(idx * 512 ** level) << 12n;
    const err = module.tdh_mem_sept_add(td, gpa, level, pfn);
    if (err !== TDX_SUCCESS) {
      kvm.kernel.page_alloc.__free_page(pfn);
      if (tdx_operand_busy(err)) return -Errno.EBUSY;
      KVM_BUG_ON(true, kvm, 'tdx_sept_link_private_spt');
      pr_tdx_error(kvm, 'TDH_MEM_SEPT_ADD', err);
      return -Errno.EIO;
    }
    kvm_tdx.sept_pages.push(pfn);
  }
  return 0;
}

/** tdx_unpin(): drop the reference tdx_sept_set_private_spte() took. */
function tdx_unpin(kvm: Kvm, pfn: number): void {
  put_page(kvm.kernel.store, pfn);
}

/** tdx_mem_page_aug(): TDH.MEM.PAGE.AUG; busy -EBUSY, any other error a bug (-EIO); both unpin. */
function tdx_mem_page_aug(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const err = module_of(kvm).tdh_mem_page_aug(to_kvm_tdx(kvm).td!, BigInt(gfn) << 12n, pg_level_to_tdx_sept_level(level), pfn);
  if (tdx_operand_busy(err)) {
    tdx_unpin(kvm, pfn);
    return -Errno.EBUSY;
  }
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_mem_page_aug')) {
    pr_tdx_error(kvm, 'TDH_MEM_PAGE_AUG', err);
    tdx_unpin(kvm, pfn);
    return -Errno.EIO;
  }
  return 0;
}

/**
 * tdx_sept_set_private_spte() (set_external_spte): 4 KiB only; the page is pinned ("guest_memfd
 * doesn't support page migration"); a runnable TD gets TDH.MEM.PAGE.AUG (a PENDING page), a TD
 * being built counts the page as premapped, to be TDH.MEM.PAGE.ADDed by KVM_TDX_INIT_MEM_REGION.
 */
function tdx_sept_set_private_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  if (KVM_BUG_ON(level !== PG_LEVEL_4K, kvm, 'tdx_sept_set_private_spte: level')) return -Errno.EINVAL;
  const r = tdx_sept_link_path(kvm, gfn);
  if (r) return r;
  get_page(kvm.kernel.store, pfn);
  if (kvm_tdx.state === TD_STATE_RUNNABLE) return tdx_mem_page_aug(kvm, gfn, level, pfn);
  // tdx_mem_page_record_premap_cnt()
  if (KVM_BUG_ON(kvm.arch.pre_fault_allowed, kvm, 'tdx_mem_page_record_premap_cnt')) return -Errno.EINVAL;
  kvm_tdx.nr_premapped++;
  return 0;
}

/**
 * tdx_track(): TDH.MEM.TRACK, then kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE): every
 * vCPU is kicked out of the TD, so the next TDH.VP.ENTER flushes its TLB. Nothing before finalize.
 */
function tdx_track(kvm: Kvm): void {
  const kvm_tdx = to_kvm_tdx(kvm);
  if (kvm_tdx.state !== TD_STATE_RUNNABLE) return;
  const err = module_of(kvm).tdh_mem_track(kvm_tdx.td!);
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_track')) pr_tdx_error(kvm, 'TDH_MEM_TRACK', err);
  if (kvm.vcpus.size) kvm.kernel.cost.charge('tdx_vcpu_kick_ipi', kvm.vcpus.size);
}

/**
 * tdx_is_sept_zap_err_due_to_premap(): TDH.MEM.RANGE.BLOCK found a FREE leaf in a TD not yet
 * finalized: the page was premapped and never TDH.MEM.PAGE.ADDed.
 */
function tdx_is_sept_zap_err_due_to_premap(kvm_tdx: KvmTdx, err: bigint): boolean {
  if (err === TDX_SUCCESS || kvm_tdx.state === TD_STATE_RUNNABLE) return false;
  return err === api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX);
}

/**
 * tdx_sept_zap_private_spte(): TDH.MEM.RANGE.BLOCK. A premapped page only drops its count and pin
 * (0); an error is a bug (-EIO); 1: blocked.
 */
function tdx_sept_zap_private_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  const err = module_of(kvm).tdh_mem_range_block(kvm_tdx.td!, BigInt(gfn) << 12n, pg_level_to_tdx_sept_level(level));
  if (tdx_is_sept_zap_err_due_to_premap(kvm_tdx, err) && !KVM_BUG_ON(kvm_tdx.nr_premapped === 0, kvm, 'tdx_sept_zap_private_spte: nr_premapped')) {
    kvm_tdx.nr_premapped--;
    tdx_unpin(kvm, pfn);
    return 0;
  }
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_sept_zap_private_spte')) {
    pr_tdx_error(kvm, 'TDH_MEM_RANGE_BLOCK', err);
    return -Errno.EIO;
  }
  return 1;
}

/**
 * tdx_sept_drop_private_spte(): TDH.MEM.PAGE.REMOVE, TDH.PHYMEM.PAGE.WBINVD with the TD's HKID,
 * tdx_clear_page(), unpin. Errors are bugs (-EIO).
 */
function tdx_sept_drop_private_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  const kvm_tdx = to_kvm_tdx(kvm);
  const module = module_of(kvm);
  if (KVM_BUG_ON(level !== PG_LEVEL_4K, kvm, 'tdx_sept_drop_private_spte: level')) return -Errno.EINVAL;
  if (KVM_BUG_ON(!is_hkid_assigned(kvm_tdx), kvm, 'tdx_sept_drop_private_spte: hkid')) return -Errno.EINVAL;
  const removed = module.tdh_mem_page_remove(kvm_tdx.td!, BigInt(gfn) << 12n, pg_level_to_tdx_sept_level(level));
  if (KVM_BUG_ON(removed.err !== TDX_SUCCESS, kvm, 'tdx_sept_drop_private_spte: TDH.MEM.PAGE.REMOVE')) {
    pr_tdx_error(kvm, 'TDH_MEM_PAGE_REMOVE', removed.err);
    return -Errno.EIO;
  }
  const err = module.tdh_phymem_page_wbinvd(kvm_tdx.hkid, pfn);
  if (KVM_BUG_ON(err !== TDX_SUCCESS, kvm, 'tdx_sept_drop_private_spte: TDH.PHYMEM.PAGE.WBINVD')) {
    pr_tdx_error(kvm, 'TDH_PHYMEM_PAGE_WBINVD', err);
    return -Errno.EIO;
  }
  tdx_clear_page(kvm, pfn);
  tdx_unpin(kvm, pfn);
  return 0;
}

/**
 * tdx_sept_remove_private_spte() (remove_external_spte): with the HKID assigned, BLOCK, TRACK
 * (and the kick), REMOVE, WBINVD, clear, unpin: the page's contents are destroyed.
 */
function tdx_sept_remove_private_spte(kvm: Kvm, gfn: number, level: number, pfn: number): number {
  if (KVM_BUG_ON(!is_hkid_assigned(to_kvm_tdx(kvm)), kvm, 'tdx_sept_remove_private_spte')) return -Errno.EINVAL;
  const ret = tdx_sept_zap_private_spte(kvm, gfn, level, pfn);
  if (ret <= 0) return ret;
  tdx_track(kvm);
  return tdx_sept_drop_private_spte(kvm, gfn, level, pfn);
}

/** tdx_gmem_private_max_mapping_level(): private memory of a TD is mapped 4 KiB only. */
function tdx_gmem_max_mapping_level(kvm: Kvm, _pfn: number, is_private: boolean): number {
  return is_td(kvm) && is_private ? PG_LEVEL_4K : 0;
}

/* ---- TD exits: EPT violations, machine checks, TDCALLs ---- */

/**
 * tdx_handle_ept_violation(): an access the S-EPT could not translate. A private GPA that faulted
 * on a PENDING page ("unexpected pending": SEPT_VE_DISABLE) kills the VM (-EIO); otherwise the
 * fault is handled as a write (private) and retried locally while it asks to.
 */
function tdx_handle_ept_violation(vcpu: KvmVcpu, gpa: bigint, write: boolean, unexpected_pending: boolean): number {
  const kvm = vcpu.kvm;
  let error_code: bigint;
  if (vt_is_tdx_private_gpa(kvm, gpa)) {
    if (unexpected_pending) {
      printk(kvm.kernel, `kvm_intel: Guest access before accepting 0x${gpa.toString(16)} on vCPU ${vcpu.vcpu_id}`);
      kvm.vm_dead = true;
      return -Errno.EIO;
    }
    error_code = tdp_fault_error_code(vcpu, gpa, true) | PFERR_WRITE_MASK;
  } else {
    error_code = tdp_fault_error_code(vcpu, gpa, write) | (write ? PFERR_WRITE_MASK : PFERR_USER_MASK);
  }
  kvm.kernel.cost.charge('kvm_exit_roundtrip');
  for (let tries = 0; ; tries++) {
    const r = kvm_mmu_page_fault(vcpu, gpa, error_code);
    if (r < 0) return r;
    if (r === RET_PF_EMULATE) return -Errno.EFAULT;
    if (r !== RET_PF_RETRY || tries >= 8) return 1;
  }
}

/**
 * A machine check taken by the TD (an integrity failure of a line: SEAM non-root): the host's
 * handler marks the page poisoned (memory_failure(), "TDX private memory error"), the module
 * declares the TD fatal, and TDH.VP.ENTER returns TDX_NON_RECOVERABLE_TD, which
 * tdx_handle_exit() cannot handle: KVM_EXIT_INTERNAL_ERROR (the EXIT_REASON_OTHER_SMI comment of
 * tdx_handle_exit(); tdx_dump_mce_info()).
 */
function tdx_machine_check(vcpu: KvmVcpu, pfn: number): number {
  const kvm = vcpu.kvm;
  const kernel = kvm.kernel;
  const td = to_kvm_tdx(kvm).td!;
  td.fatal = true;
  printk(kernel, 'tdx: TDX private memory error. Possible kernel bug.');
  const mf = x86_mce_hooks.memory_failure;
  if (vm_sysctl(kernel).memory_failure && mf !== undefined) mf(kernel, pfn as Pfn, 0);
  return tdx_unhandled_exit(vcpu, TDX_NON_RECOVERABLE_TD | BigInt(EXIT_REASON_OTHER_SMI));
}

/**
 * guest_mem_access: a TD's load or store that the SPTE translated. Shared GPAs go through KeyID 0.
 * A private GPA is checked against the S-EPT and the lines' integrity: MAPPED goes through the
 * TD's HKID; a line written by non-TD software machine-checks the TD; a PENDING page exits to KVM
 * (SEPT_VE_DISABLE: the VM is killed) or raises #VE in the guest; any other state is an EPT
 * violation for KVM.
 */
function tdx_guest_mem_access(vcpu: KvmVcpu, gpa: bigint, pfn: number, write: boolean, is_private: boolean, len?: number): GuestMemAccess {
  const kvm = vcpu.kvm;
  if (!is_td(kvm) || !is_private) return { kind: 'ok', key: 0 };
  const kvm_tdx = to_kvm_tdx(kvm);
  const td = kvm_tdx.td!;
  const module = module_of(kvm);
  const leaf = module.sept_leaf(td, Number(gpa >> 12n));
  const state = leaf?.entry.state;
  if (state === SEPT_MAPPED || (state === SEPT_BLOCKEDW && !write)) {
    const bad = module.td_access(td, pfn, Number(gpa % BigInt(PAGE_SIZE)), len ?? 1);
    if (bad.length) return { kind: 'exit', ret: tdx_machine_check(vcpu, pfn) };
    return { kind: 'ok', key: td.hkid };
  }
  if (state === SEPT_PENDING || state === SEPT_PENDING_BLOCKED || state === SEPT_PENDING_BLOCKEDW) {
    if (kvm_tdx.attributes & TDX_TD_ATTR_SEPT_VE_DISABLE) return { kind: 'exit', ret: tdx_handle_ept_violation(vcpu, gpa, write, true) };
    return { kind: 'exception', vector: 20, name: '#VE', error_code: 0n };
  }
  return { kind: 'exit', ret: tdx_handle_ept_violation(vcpu, gpa, write, false) };
}

/** The registers a TDCALL returns: rax, rcx, rdx, r8, r9, r10, r11, r12, r13, r14, r15. */
function tdcall_regs(rax: bigint, r10 = 0n, r11 = 0n): bigint[] {
  return [rax, 0n, 0n, 0n, 0n, r10, r11, 0n, 0n, 0n, 0n];
}

/** tdvmcall_set_return_code() / tdvmcall_set_return_val(): what the TDCALL returns when executed again. */
function tdvmcall_return(vcpu: KvmVcpu, code: bigint, r11 = 0n): void {
  to_tdx(vcpu).tdcall_ret = tdcall_regs(TDX_SUCCESS, code, r11);
}

/**
 * __tdx_map_gpa(): one chunk of at most TDX_MAP_GPA_MAX_LEN to user space as KVM_EXIT_HYPERCALL
 * KVM_HC_MAP_GPA_RANGE: the gpa without the shared bit, pages, ENCRYPTED for a private range.
 */
function __tdx_map_gpa(vcpu: KvmVcpu): void {
  const tdx = to_tdx(vcpu);
  const kvm = vcpu.kvm;
  const gpa = tdx.map_gpa_next;
  let size = tdx.map_gpa_end - tdx.map_gpa_next;
  if (size > TDX_MAP_GPA_MAX_LEN) size = TDX_MAP_GPA_MAX_LEN;
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_HYPERCALL;
  run.hypercall.nr = BigInt(KVM_HC_MAP_GPA_RANGE);
  // Zeroed for QEMU <= 9.2, which assumed KVM never changes it.
  run.hypercall.ret = 0n;
  run.hypercall.args[0] = gpa & ~shared_gpa_mask(kvm);
  run.hypercall.args[1] = size / BigInt(PAGE_SIZE);
  run.hypercall.args[2] = vt_is_tdx_private_gpa(kvm, gpa) ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED;
  run.hypercall.flags = KVM_EXIT_HYPERCALL_LONG_MODE;
  vcpu_arch(vcpu).complete_userspace_io = tdx_complete_vmcall_map_gpa;
}

/**
 * tdx_complete_vmcall_map_gpa(): user space failed the chunk (INVALID_OPERAND, R11 the gpa it
 * stopped at), or the next chunk goes out, or the MapGPA is done (SUCCESS). No interrupt is ever
 * pending in the simulator, so TDVMCALL_STATUS_RETRY is never returned.
 */
function tdx_complete_vmcall_map_gpa(vcpu: KvmVcpu): number {
  const tdx = to_tdx(vcpu);
  const ret = vcpu.run.hypercall.ret as bigint | number;
  if (ret !== 0n && ret !== 0) {
    tdvmcall_return(vcpu, TDVMCALL_STATUS_INVALID_OPERAND, tdx.map_gpa_next);
    return 1;
  }
  tdx.map_gpa_next += TDX_MAP_GPA_MAX_LEN;
  if (tdx.map_gpa_next >= tdx.map_gpa_end) {
    tdvmcall_return(vcpu, TDVMCALL_STATUS_SUCCESS);
    return 1;
  }
  __tdx_map_gpa(vcpu);
  return 0;
}

/**
 * tdx_map_gpa() (TDG.VP.VMCALL<MapGPA>, R12 gpa, R13 size): user space must have enabled
 * KVM_HC_MAP_GPA_RANGE exits (else SUBFUNC_UNSUPPORTED); a range that is empty, wraps, leaves the
 * GPAW or mixes private and shared is INVALID_OPERAND; unaligned is ALIGN_ERROR; otherwise the
 * first chunk exits to user space (0).
 */
function tdx_map_gpa(vcpu: KvmVcpu, gpa: bigint, size: bigint): number {
  const kvm = vcpu.kvm;
  const tdx = to_tdx(vcpu);
  let code: bigint;
  const last = BigInt.asUintN(64, gpa + size - 1n);
  if (!user_exit_on_hypercall(kvm, KVM_HC_MAP_GPA_RANGE)) {
    code = TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED;
  } else if (BigInt.asUintN(64, gpa + size) <= gpa || !kvm_vcpu_is_legal_gpa(vcpu, gpa) || !kvm_vcpu_is_legal_gpa(vcpu, last) ||
    vt_is_tdx_private_gpa(kvm, gpa) !== vt_is_tdx_private_gpa(kvm, last)) {
    code = TDVMCALL_STATUS_INVALID_OPERAND;
  } else if (gpa % BigInt(PAGE_SIZE) || size % BigInt(PAGE_SIZE)) {
    code = TDVMCALL_STATUS_ALIGN_ERROR;
  } else {
    tdx.map_gpa_end = gpa + size;
    tdx.map_gpa_next = gpa;
    __tdx_map_gpa(vcpu);
    return 0;
  }
  tdvmcall_return(vcpu, code, gpa);
  return 1;
}

/**
 * tdx_emulate_vmcall(): a TDG.VP.VMCALL with R10 != 0 is a KVM hypercall, nr in R10, a0..a3 in
 * R11..R14 (moved to rax, rbx, rcx, rdx, rsi); x86.ts's kvm_emulate_hypercall() handles it and
 * completes the instruction with the hypercall's result (the guest's R10).
 */
function tdx_emulate_vmcall(vcpu: KvmVcpu, r: readonly bigint[]): number {
  const regs = vcpu_arch(vcpu).regs;
  [regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi] = [r[4] ?? 0n, r[5] ?? 0n, r[6] ?? 0n, r[7] ?? 0n, r[8] ?? 0n].map((x) => BigInt.asUintN(64, x)) as [bigint, bigint, bigint, bigint, bigint];
  return kvm_emulate_hypercall(vcpu);
}

/**
 * tdx_report_fatal_error() (TDG.VP.VMCALL<ReportFatalError>): KVM_EXIT_SYSTEM_EVENT of type
 * KVM_SYSTEM_EVENT_TDX_FATAL with the 16 GPRs in ascending order (RAX: vp_enter_ret, the TDCALL
 * exit; RBX, RSI, RDI and the two unused slots are not part of a guest fwcall here: 0).
 */
function tdx_report_fatal_error(vcpu: KvmVcpu, r: readonly bigint[]): number {
  const ev = vcpu.run.system_event;
  vcpu.run.exit_reason = KVM_EXIT_SYSTEM_EVENT;
  ev.type = KVM_SYSTEM_EVENT_TDX_FATAL;
  ev.ndata = 16;
  ev.data = [BigInt(EXIT_REASON_TDCALL), r[0] ?? 0n, r[1] ?? 0n, 0n, 0n, 0n, 0n, 0n, ...[2, 3, 4, 5, 6, 7, 8, 9].map((i) => r[i] ?? 0n)];
  return 0;
}

/**
 * handle_tdvmcall(): MapGPA and ReportFatalError; GetQuote and GetTdVmCallInfo (which exit with
 * KVM_EXIT_TDX, not in cocosim's struct kvm_run) are not modelled and, like any unknown
 * sub-function, answer SUBFUNC_UNSUPPORTED.
 */
function handle_tdvmcall(vcpu: KvmVcpu, r: readonly bigint[]): number {
  const leaf = r[5] ?? 0n;
  if (leaf === TDVMCALL_MAP_GPA) return tdx_map_gpa(vcpu, r[6] ?? 0n, r[7] ?? 0n);
  if (leaf === TDVMCALL_REPORT_FATAL_ERROR) return tdx_report_fatal_error(vcpu, r);
  tdvmcall_return(vcpu, TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED);
  return 1;
}

/**
 * guest_fwcall: a TDCALL of the TD, `fn` its leaf (RAX), `args` RCX, RDX, R8, R9, R10, R11, R12,
 * R13, R14, R15; the result: RAX, RCX, RDX, R8..R15. TDG.MEM.PAGE.ACCEPT and TDG.VP.INFO are the
 * module's; TDG.VP.VMCALL exits to KVM (EXIT_REASON_TDCALL), which re-enters the TD with the
 * registers set, or goes to user space first. An unknown leaf is TDX_OPERAND_INVALID.
 */
function tdx_guest_fwcall(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): GuestFwcallOutcome {
  const kvm = vcpu.kvm;
  if (!is_td(kvm)) return { kind: 'ret', regs: [BigInt.asUintN(64, -1n)] };
  const tdx = to_tdx(vcpu);
  if (tdx.tdcall_ret !== null) {
    const regs = tdx.tdcall_ret;
    tdx.tdcall_ret = null;
    return { kind: 'ret', regs };
  }
  const td = to_kvm_tdx(kvm).td!;
  const module = module_of(kvm);
  switch (fn) {
    case TDG_MEM_PAGE_ACCEPT: {
      const rcx = args[0] ?? 0n;
      const gpa = rcx & ~0xfffn;
      const r = module.tdg_mem_page_accept(td, gpa, Number(rcx & 7n));
      if (r.violation) return { kind: 'fault', gpa, write: true };
      return { kind: 'ret', regs: tdcall_regs(r.err) };
    }
    case TDG_VP_INFO: {
      const gpaw = BigInt(td.params?.gpaw ?? 48);
      return { kind: 'ret', regs: [TDX_SUCCESS, gpaw, td.params?.attributes ?? 0n, BigInt(td.vps.length), 0n, 0n, 0n, 0n, 0n, 0n, 0n] };
    }
    case TDG_VP_VMCALL: {
      kvm.kernel.tracer.emit('cocosim_tdx_seamcall', { fn: 'TDG.VP.VMCALL', gpa: args[6] ?? 0n, level: 0, err: args[5] ?? 0n });
      if ((args[4] ?? 0n) !== 0n) return { kind: 'exit', ret: tdx_emulate_vmcall(vcpu, args) };
      return { kind: 'exit', ret: handle_tdvmcall(vcpu, args) };
    }
    default:
      return { kind: 'ret', regs: tdcall_regs(api_error_with_operand_id(TDX_OPERAND_INVALID, 0n)) };
  }
}

/**
 * guest_accept: the guest kernel's tdx_accept_memory() for [gpa, gpa + npages pages): per chunk
 * TDG.MEM.PAGE.ACCEPT of 1 GiB, then 2 MiB, then 4 KiB (the module refuses 1 GiB). cocosim's
 * generic `accept` instruction retires without a VM exit, so the EPT violation of a page not yet
 * AUGed is handled in place (kvm_mmu_page_fault(), charged as an exit); a fault KVM cannot fix
 * (the gfn is still shared: KVM_EXIT_MEMORY_FAULT) is the guest's -EFAULT. The faithful path is
 * the TDCALL (tdx_guest.ts). Releasing memory (to_private false) needs no acceptance.
 */
function tdx_guest_accept(vcpu: KvmVcpu, gpa: bigint, npages: number, to_private: boolean): number {
  const kvm = vcpu.kvm;
  if (!is_td(kvm) || !to_private) return 0;
  const td = to_kvm_tdx(kvm).td!;
  const module = module_of(kvm);
  const try_accept_one = (start: bigint, len: bigint, level: number): bigint | number => {
    const size = BigInt(PAGE_SIZE) * 512n ** BigInt(level);
    if (start % size || len < size) return 0n;
    for (let tries = 0; tries < 4; tries++) {
      const r = module.tdg_mem_page_accept(td, start, level);
      if (!r.violation) return r.err === TDX_SUCCESS ? size : 0n;
      const f = tdx_handle_ept_violation(vcpu, start, true, false);
      if (f < 0) return f;
    }
    return 0n;
  };
  let start = gpa & ~shared_gpa_mask(kvm);
  const end = start + BigInt(npages) * BigInt(PAGE_SIZE);
  while (start < end) {
    let accepted: bigint | number = 0n;
    for (const level of [TDX_PS_1G, TDX_PS_2M, TDX_PS_4K]) {
      accepted = try_accept_one(start, end - start, level);
      if (typeof accepted === 'number') return -Errno.EFAULT;
      if (accepted) break;
    }
    if (!accepted) return -Errno.EIO;
    start += accepted as bigint;
  }
  return 0;
}

/** guest_access_is_private: for a TD, the absence of the shared bit (vt_is_tdx_private_gpa()). */
function tdx_guest_access_is_private(vcpu: KvmVcpu, gpa: bigint): boolean {
  return is_td(vcpu.kvm) && vt_is_tdx_private_gpa(vcpu.kvm, gpa);
}

/* ---- host and device accesses (the memory controller) ---- */

/**
 * host_access: a host CPU access (user or kernel; both use KeyID 0) of a page the TD's
 * guest_memfd holds. On a page the TD owns (written with its key), a read of TD-owned lines gets
 * zeros, of a poisoned line a machine check; a write proceeds and clears the lines' TD-owner bit,
 * or poisons a partially written line on X86_BUG_TDX_PW_MCE parts. Pages the TD does not own (not
 * yet accepted, or shared) are plain memory.
 */
function tdx_host_access(kvm: Kvm, pfn: number, write: boolean, _actor?: HostAccessActorKind, offset = 0, len = PAGE_SIZE): HostAccessOutcome {
  if (!is_td(kvm)) return { kind: 'ok' };
  const module = module_of(kvm);
  const td = to_kvm_tdx(kvm).td;
  if (td === null || module.td_of_page(pfn) !== td) return { kind: 'ok' };
  const r = module.non_td_access(pfn, write, offset, len);
  if (r === 'zeros') return { kind: 'zeros' };
  if (r === 'mce') return { kind: 'mce', reason: 'TDX private memory error: a poisoned line of a TD page (X86_BUG_TDX_PW_MCE partial write or integrity failure)' };
  return { kind: 'ok' };
}

/**
 * dma_access: a device's DMA to a page the TD owns, as a whole page (the IOMMU does not know TDX:
 * nothing is refused). Reads return zeros; a write clears the TD-owner bits of every line, so
 * the TD's next read of the page machine-checks. vfio's device DMA asks tdxIommuOps instead,
 * per transfer.
 */
function tdx_dma_access(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome {
  return tdx_host_access(kvm, pfn, write, 'kernel', 0, PAGE_SIZE);
}

/** The vendor table: VMX with the TDX module (vt_x86_ops' TDX half). */
export const tdx_x86_ops: KvmX86Ops = {
  name: 'tdx',
  supported_vm_types: 1 << KVM_X86_TDX_VM,
  tdp_enabled: true,
  // The shared bit is per VM (kvm->arch.gfn_direct_bits, set by KVM_TDX_INIT_VM); none for default VMs.
  gfn_attr_mask: 0,
  // kvm_has_mirrored_tdp() (arch/x86/kvm/mmu.h): a TD's private mappings live in the mirror root.
  has_mirrored_tdp: (kvm) => is_td(kvm),
  vm_init: (kvm) => (is_td(kvm) ? tdx_vm_init(kvm) : 0),
  vm_destroy: (kvm) => {
    if (is_td(kvm)) tdx_vm_destroy(kvm);
  },
  vcpu_create: (vcpu) => (is_td(vcpu.kvm) ? tdx_vcpu_create(vcpu) : 0),
  vcpu_pre_run: (vcpu) => (is_td(vcpu.kvm) ? tdx_vcpu_pre_run(vcpu) : 1),
  gmem_max_mapping_level: tdx_gmem_max_mapping_level,
  set_external_spte: (kvm, gfn, level, pfn) => (is_td(kvm) ? tdx_sept_set_private_spte(kvm, gfn, level, pfn) : 0),
  remove_external_spte: (kvm, gfn, level, pfn) => (is_td(kvm) ? tdx_sept_remove_private_spte(kvm, gfn, level, pfn) : 0),
  mem_enc_ioctl: tdx_vm_ioctl,
  vcpu_mem_enc_ioctl: tdx_vcpu_ioctl,
  guest_access_is_private: tdx_guest_access_is_private,
  guest_accept: tdx_guest_accept,
  guest_fwcall: tdx_guest_fwcall,
  guest_mem_access: tdx_guest_mem_access,
  host_access: tdx_host_access,
  dma_access: tdx_dma_access,
};
