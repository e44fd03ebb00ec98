/**
 * KVM's AMD SEV, SEV-ES and SEV-SNP support: arch/x86/kvm/svm/sev.c (Linux 6.18) and the SEV parts
 * of arch/x86/kvm/svm/svm.c (svm_vm_init()), with drivers/crypto/ccp/sev-dev.c's
 * snp_alloc_firmware_page(). The functions keep their kernel names and return 0 or -errno.
 *
 * VM types: KVM_X86_SEV_VM and KVM_X86_SEV_ES_VM (KVM_SEV_INIT2), and the legacy KVM_SEV_INIT /
 * KVM_SEV_ES_INIT on a KVM_X86_DEFAULT_VM, keep guest memory in the VMM's own pages, which the
 * guest encrypts by setting the C-bit (KVM_MEMORY_ENCRYPT_REG_REGION pins them, since the cipher
 * is tweaked by the physical address); KVM_X86_SNP_VM keeps private memory in guest_memfd, whose
 * pages the RMP assigns to the guest (gmem_prepare = RMPUPDATE to Guest-Invalid, gmem_invalidate
 * = back to the hypervisor + clflush).
 *
 * The guest side is hardware, modelled through the cocosim hooks of kvm_x86_ops:
 *  - guest_access_is_private: the C-bit of the guest's mapping. An SNP guest's C-bit per page is
 *    what it last set: SNP_LAUNCH_UPDATE'd pages and pages it PVALIDATEd have it set, pages it
 *    rescinded (PVALIDATE 0) have it clear; a page the guest never touched that way is mapped
 *    private exactly when its memory attribute is private (a booted guest's map). A legacy SEV
 *    guest's C-bit is set on the pages LAUNCH_UPDATE_DATA encrypted and where the guest set it
 *    (guest_accept: there is no validation on SEV/SEV-ES, only the page-table bit).
 *  - guest_mem_access: the RMP check of each access (#NPF with the RMP bit, #VC for a page not
 *    validated) and the key it goes through (the guest's ASID with C=1, the host's without).
 *  - guest_accept: PVALIDATE (SNP) or the C-bit flip (SEV).
 *  - guest_fwcall: VMGEXIT: the GHCB MSR protocol (PSC, termination request) and the PSC NAE
 *    event, whose page state changes leave to user space as KVM_HC_MAP_GPA_RANGE exits.
 *  - host_access / dma_access: what the RMP does to host and device accesses of guest pages.
 */
import { Errno, PAGE_SIZE, type Gpa, type Pfn } from '@cocosim/core';
import {
  FOLL_WRITE, GFP_KERNEL_ACCOUNT, __GFP_ZERO, for_each_process, pin_user_pages_fast, pr_warn, task_mm,
  unpin_user_pages_dirty_lock, copy_from_user as uaccess_copy_from_user, copy_to_user as uaccess_copy_to_user, type Task,
} from '@cocosim/mm';
import {
  KVM_EXIT_HYPERCALL, KVM_EXIT_SYSTEM_EVENT, KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_HC_MAP_GPA_RANGE, KVM_X86_DEFAULT_VM,
  PFERR_USER_MASK, PFERR_WRITE_MASK, gfn_to_memslot, kvm_flush_remote_tlbs, kvm_for_each_memslot_in_gfn_range,
  kvm_gmem_get_pfn, kvm_gmem_populate, kvm_mem_is_private, kvm_memslots, kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end,
  kvm_mmu_page_fault, kvm_mmu_translate, kvm_mmu_unmap_gfn_range, kvm_slot_has_gmem, kvm_vcpu_read_guest, kvm_vcpu_write_guest,
  tdp_fault_error_code, user_struct_field, vcpu_arch,
  type GuestFwcallOutcome, type GuestMemAccess, type HostAccessOutcome, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import { sev_fops, sev_host, type SevHost } from './host.js';
import { SEV_MEASURE_BLOB_LEN, type FwResult, type SnpIdBlock } from './psp.js';
import {
  PG_LEVEL_2M, PG_LEVEL_4K, PTRS_PER_PMD, psmash, rmp_make_private, rmp_make_shared, snp_leak_pages, snp_lookup_rmpentry,
} from './rmp.js';
import {
  FAIL_SIZEMISMATCH, GHCB_MSR_INFO_MASK, GHCB_MSR_PSC_REQ, GHCB_MSR_PSC_REQ_TO_GFN, GHCB_MSR_PSC_REQ_TO_OP, GHCB_MSR_PSC_RESP,
  GHCB_MSR_PSC_RESP_ERROR, GHCB_MSR_TERM_REQ, GHCB_VERSION_DEFAULT, GHCB_VERSION_MAX, GHCB_VERSION_MIN, INITIAL_VMSA_GPA,
  KVM_MAP_GPA_RANGE_DECRYPTED, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAP_GPA_RANGE_PAGE_SZ_2M, KVM_MAP_GPA_RANGE_PAGE_SZ_4K,
  KVM_SEV_ES_INIT, KVM_SEV_GUEST_STATUS, KVM_SEV_INIT, KVM_SEV_INIT2, KVM_SEV_LAUNCH_FINISH, KVM_SEV_LAUNCH_MEASURE,
  KVM_SEV_LAUNCH_START, KVM_SEV_LAUNCH_UPDATE_DATA, KVM_SEV_LAUNCH_UPDATE_VMSA, KVM_SEV_SNP_FINISH_DATA_SIZE,
  KVM_SEV_SNP_ID_AUTH_SIZE, KVM_SEV_SNP_ID_BLOCK_SIZE, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START,
  KVM_SEV_SNP_LAUNCH_UPDATE, KVM_SEV_SNP_PAGE_TYPE_CPUID, KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_SEV_SNP_PAGE_TYPE_SECRETS,
  KVM_SEV_SNP_PAGE_TYPE_UNMEASURED, KVM_SEV_SNP_PAGE_TYPE_ZERO, KVM_SYSTEM_EVENT_SEV_TERM, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM,
  KVM_X86_SNP_VM, PFERR_GUEST_ENC_MASK, PFERR_GUEST_RMP_MASK, PFERR_GUEST_SIZEM_MASK, PSC_ENTRY_SIZE, PSC_HDR_SIZE,
  RMP_PG_SIZE_2M, RMP_PG_SIZE_4K, SEV_RET_INVALID_PARAM, SNP_PAGE_STATE_PRIVATE,
  SNP_PAGE_STATE_SHARED, SNP_PAGE_TYPE_VMSA, SNP_POLICY_MASK_RSVD_MBO, SNP_POLICY_MASK_SINGLE_SOCKET, SNP_POLICY_MASK_SMT,
  SNP_POLICY_MASK_VALID, SVM_EXIT_NOT_VALIDATED, SVM_EXIT_VMGEXIT, SVM_VMGEXIT_PSC, VMGEXIT_PSC_ERROR_GENERIC,
  VMGEXIT_PSC_ERROR_INVALID_ENTRY, VMGEXIT_PSC_ERROR_INVALID_HDR, VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_OP_PRIVATE,
  VMGEXIT_PSC_OP_SHARED, X86_TRAP_VC, psc_buffer_decode, psc_buffer_encode, type PscEntry,
} from './uapi.js';

/** SVM_SEV_FEAT_SNP_ACTIVE (arch/x86/include/asm/svm.h): the VMSA feature bit KVM sets for SNP guests. */
export const SVM_SEV_FEAT_SNP_ACTIVE = 1n << 0n;
/** SEV_FW_BLOB_MAX_SIZE (include/linux/psp-sev.h): the largest blob KVM copies for the firmware. */
const SEV_FW_BLOB_MAX_SIZE = 0x4000;
/** GHCB_SCRATCH_AREA_LIMIT: the largest scratch area outside the GHCB KVM copies. */
const GHCB_SCRATCH_AREA_LIMIT = 16 * PAGE_SIZE;
/** GHCB_ERR_* (arch/x86/include/asm/sev-common.h): sw_exit_info_2 when sw_exit_info_1 is 2. */
export const GHCB_ERR_INVALID_SCRATCH_AREA = 3n;
export const GHCB_ERR_MISSING_INPUT = 4n;
export const GHCB_ERR_INVALID_EVENT = 6n;
const U64 = (1n << 64n) - 1n;

/** struct enc_region: a range pinned by KVM_MEMORY_ENCRYPT_REG_REGION. */
interface EncRegion {
  readonly pages: number[];
  readonly uaddr: bigint;
  readonly size: bigint;
}

/** The SNP page state change in flight on a vCPU (vcpu_svm->sev_es.psc_*), and its scratch buffer. */
interface PscState {
  readonly gpa: bigint;
  readonly len: number;
  cur_entry: number;
  end_entry: number;
  readonly entries: PscEntry[];
  psc_idx: number;
  psc_inflight: number;
  psc_2m: boolean;
  /** sw_exit_info_2 once the request completed. */
  ret: bigint | undefined;
}

/** struct vcpu_sev_es_state, the parts modelled. */
export class SevVcpu {
  /** The VMSA page KVM allocated (svm->sev_es.vmsa), or -1. */
  vmsa_pfn = -1;
  /** vcpu->arch.guest_state_protected. */
  guest_state_protected = false;
  psc: PscState | undefined = undefined;
  /** The GHCB MSR value an MSR-protocol request completes with. */
  msr_resp: bigint | undefined = undefined;
}

/** struct kvm_sev_info. */
export class KvmSevInfo {
  active = false;
  es_active = false;
  need_init = false;
  asid = 0;
  handle = 0;
  /** The /dev/sev fd of the launch (sev->fd). */
  fd = -1;
  vmsa_features = 0n;
  ghcb_version = 0;
  pages_locked = 0;
  readonly regions_list: EncRegion[] = [];
  /** The guest context page (sev->snp_context), or -1. */
  snp_context = -1;
  /** snp_guest_req_init()'s request page and firmware response page, or -1. */
  guest_req_buf = -1;
  guest_resp_buf = -1;
  /** cocosim: the C-bit of the guest's mapping of each gfn it set or cleared (see the file comment). */
  readonly c_bit = new Map<number, boolean>();
  readonly vcpus = new Map<KvmVcpu, SevVcpu>();
}

/** to_kvm_sev_info(). */
export function to_kvm_sev_info(kvm: Kvm): KvmSevInfo {
  return kvm.arch.vendor as KvmSevInfo;
}

/** sev_guest(): the VM was initialized as an SEV guest of any kind. */
export function sev_guest(kvm: Kvm): boolean {
  const sev = kvm.arch.vendor;
  return sev instanceof KvmSevInfo && sev.active;
}

/** sev_es_guest(). */
export function sev_es_guest(kvm: Kvm): boolean {
  return sev_guest(kvm) && to_kvm_sev_info(kvm).es_active;
}

/** sev_snp_guest(). */
export function sev_snp_guest(kvm: Kvm): boolean {
  return sev_es_guest(kvm) && (to_kvm_sev_info(kvm).vmsa_features & SVM_SEV_FEAT_SNP_ACTIVE) !== 0n;
}

function sev_vcpu(vcpu: KvmVcpu): SevVcpu {
  const sev = to_kvm_sev_info(vcpu.kvm);
  let s = sev.vcpus.get(vcpu);
  if (s === undefined) sev.vcpus.set(vcpu, (s = new SevVcpu()));
  return s;
}

/* ---- struct-argument helpers (copy_from_user / copy_to_user of the ioctl structs) ---- */

type Struct = Record<string, unknown>;

function is_struct(x: unknown): x is Struct {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array);
}

/** A __u32/__u64 field; undefined when C could not hold it (-EFAULT for the caller). */
function field(o: Struct, name: string, bits: 32 | 64): bigint | undefined {
  return user_struct_field(o, name, bits);
}

/** A __u8 array field of `len` bytes (Uint8Array or number[]); missing is zeros; undefined for a bad shape. */
function bytes_field(o: Struct, name: string, len: number): Uint8Array | undefined {
  const v = o[name];
  if (v === undefined || v === null) return new Uint8Array(len);
  const a = v instanceof Uint8Array ? Array.from(v) : Array.isArray(v) ? v : undefined;
  if (a === undefined || a.length > len || !a.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return undefined;
  const out = new Uint8Array(len);
  out.set(a as number[]);
  return out;
}

/** The VMM task whose mm the VM belongs to (current for a VM ioctl: other mms get -EIO first). */
function kvm_current(kvm: Kvm): Task | undefined {
  return for_each_process(kvm.kernel).find((t) => task_mm(t) === kvm.mm);
}

/** copy_from_user() of `len` bytes at user address `uaddr` of the VMM: the bytes or -EFAULT. */
function copy_from_user(kvm: Kvm, uaddr: bigint, len: number): Uint8Array | number {
  if (len === 0) return new Uint8Array(0);
  return uaccess_copy_from_user(kvm.mm, uaddr, len) ?? -Errno.EFAULT;
}

/** psp_copy_user_blob(): a blob of at most SEV_FW_BLOB_MAX_SIZE bytes from user space. */
function psp_copy_user_blob(kvm: Kvm, uaddr: bigint, len: number): Uint8Array | number {
  if (!uaddr || len === 0 || len > SEV_FW_BLOB_MAX_SIZE) return -Errno.EINVAL;
  return copy_from_user(kvm, uaddr, len);
}

/* ---- VM and vCPU lifetime ---- */

/**
 * svm_vm_init()'s SEV part: the confidential VM types need KVM_SEV_INIT2 (need_init); SEV-ES and
 * SNP state is protected; SNP memory is private guest_memfd, and only SNP waits for
 * SNP_LAUNCH_FINISH before KVM_PRE_FAULT_MEMORY.
 */
export function sev_vm_init(kvm: Kvm): number {
  const opts = sev_host(kvm.kernel).opts;
  const type = kvm.arch.vm_type;
  // kvm_is_vm_type_supported(): sev_set_cpu_caps() offers only the types the module enabled.
  if ((type === KVM_X86_SEV_VM && !opts.sev) || (type === KVM_X86_SEV_ES_VM && !opts.sev_es) || (type === KVM_X86_SNP_VM && !(opts.sev_snp && opts.sev_es))) {
    return -Errno.EINVAL;
  }
  const sev = new KvmSevInfo();
  kvm.arch.vendor = sev;
  if (type === KVM_X86_SEV_VM || type === KVM_X86_SEV_ES_VM || type === KVM_X86_SNP_VM) {
    kvm.arch.has_protected_state = type === KVM_X86_SEV_ES_VM || type === KVM_X86_SNP_VM;
    sev.need_init = true;
    kvm.arch.has_private_mem = type === KVM_X86_SNP_VM;
    kvm.arch.pre_fault_allowed = !kvm.arch.has_private_mem;
  }
  return 0;
}

/**
 * snp_safe_alloc_page(): a zeroed page that is not 2 MiB aligned, working around the SNP erratum
 * where a hugepage colliding with the RMP entry of a 2 MiB-aligned VMCB/VMSA page takes a
 * spurious RMP #PF. -1 when memory is exhausted.
 */
function snp_safe_alloc_page(h: SevHost): number {
  const pa = h.kernel.page_alloc;
  const aligned: number[] = [];
  let pfn = pa.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  while (pfn >= 0 && pfn % PTRS_PER_PMD === 0) {
    aligned.push(pfn);
    pfn = pa.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  }
  for (const p of aligned) pa.__free_page(p);
  return pfn;
}

/** sev_vcpu_create(): an SEV-ES/SNP vCPU gets its VMSA page. */
export function sev_vcpu_create(vcpu: KvmVcpu): number {
  if (!sev_es_guest(vcpu.kvm)) return 0;
  const pfn = snp_safe_alloc_page(sev_host(vcpu.kvm.kernel));
  if (pfn < 0) return -Errno.ENOMEM;
  sev_vcpu(vcpu).vmsa_pfn = pfn;
  return 0;
}

/**
 * sev_free_vcpu(): an SNP VMSA goes back to the hypervisor in the RMP (else it is leaked), a
 * protected one is flushed from the caches (VM_PAGE_FLUSH, or CLFLUSH when coherent), and freed.
 */
function sev_free_vcpu(kvm: Kvm, s: SevVcpu): void {
  if (s.vmsa_pfn < 0) return;
  const h = sev_host(kvm.kernel);
  if (sev_snp_guest(kvm) && h.rmp.authoritative(s.vmsa_pfn).e.assigned) {
    if (kvm_rmp_make_shared(kvm, s.vmsa_pfn, PG_LEVEL_4K)) return;
  }
  if (s.guest_state_protected) kvm.kernel.cost.charge('clflush_4k');
  kvm.kernel.page_alloc.__free_page(s.vmsa_pfn);
  s.vmsa_pfn = -1;
}

/** wbinvd_on_all_cpus(): write back and invalidate every cache (one socket's WBINVD is charged). */
function wbinvd_on_all_cpus(h: SevHost): void {
  h.kernel.cost.charge('wbinvd');
  h.fw.wbinvd();
}

/**
 * sev_vm_destroy(): WBINVD (CLFLUSH cannot flush guest-tagged lines), unpin registered regions,
 * then SNP: release the guest-request pages and SNP_DECOMMISSION; SEV: DEACTIVATE + DECOMMISSION;
 * the ASID to the reclaim bitmap. The vCPUs' VMSA pages follow (sev_free_vcpu()).
 */
export function sev_vm_destroy(kvm: Kvm): void {
  if (!sev_guest(kvm)) return;
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  wbinvd_on_all_cpus(h);
  for (const region of [...sev.regions_list]) __unregister_enc_region_locked(kvm, region);
  let leak_asid = false;
  if (sev_snp_guest(kvm)) {
    snp_guest_req_cleanup(kvm);
    leak_asid = snp_decommission_context(kvm) !== 0;
  } else {
    sev_unbind_asid(kvm, sev.handle);
  }
  if (!leak_asid) sev_asid_free(h, sev);
  for (const s of sev.vcpus.values()) sev_free_vcpu(kvm, s);
}

/* ---- ASIDs ---- */

/**
 * sev_flush_asids(): WBINVD then DF_FLUSH (SNP_DF_FLUSH on an SNP host), so that the ASIDs in
 * the reclaim bitmap can be reused; -EBUSY when none of [min, max] is waiting.
 */
function sev_flush_asids(h: SevHost, min_asid: number, max_asid: number): number {
  if (![...h.reclaim_asid_bitmap].some((a) => a >= min_asid && a <= max_asid)) return -Errno.EBUSY;
  wbinvd_on_all_cpus(h);
  const r = h.fw.df_flush(h.snp_enabled);
  if (r.rc) pr_warn(h.kernel, `kvm_amd: SEV${h.snp_enabled ? '-SNP' : ''}: DF_FLUSH failed, ret=${r.rc}, error=${r.error}`);
  return r.rc;
}

/** __sev_recycle_asids(): flush, then the reclaimed ASIDs leave the bitmap. */
function __sev_recycle_asids(h: SevHost, min_asid: number, max_asid: number): boolean {
  if (sev_flush_asids(h, min_asid, max_asid)) return false;
  for (const a of h.reclaim_asid_bitmap) h.asid_bitmap.delete(a);
  h.reclaim_asid_bitmap.clear();
  return true;
}

/**
 * sev_asid_new(): the lowest free ASID of the guest's range (SEV: min_sev_asid..max_sev_asid;
 * SEV-ES/SNP: 1..min_sev_asid - 1), recycling reclaimed ones once; -ENOTTY for an empty range,
 * -EBUSY when none is free.
 */
function sev_asid_new(h: SevHost, sev: KvmSevInfo): number {
  const { min_sev_asid, max_sev_asid } = h.opts;
  const min_asid = sev.es_active ? 1 : min_sev_asid;
  const max_asid = sev.es_active ? min_sev_asid - 1 : max_sev_asid;
  if (min_asid > max_asid) return -Errno.ENOTTY;
  for (let retry = true; ; retry = false) {
    for (let asid = min_asid; asid <= max_asid; asid++) {
      if (h.asid_bitmap.has(asid)) continue;
      h.asid_bitmap.add(asid);
      sev.asid = asid;
      return 0;
    }
    if (!retry || !__sev_recycle_asids(h, min_asid, max_asid)) return -Errno.EBUSY;
  }
}

/** sev_asid_free(): the ASID waits in the reclaim bitmap for the next DF_FLUSH. */
function sev_asid_free(h: SevHost, sev: KvmSevInfo): void {
  if (sev.asid) h.reclaim_asid_bitmap.add(sev.asid);
}

/** sev_unbind_asid(): DEACTIVATE then DECOMMISSION of the launch handle. */
function sev_unbind_asid(kvm: Kvm, handle: number): void {
  if (!handle) return;
  const fw = sev_host(kvm.kernel).fw;
  fw.deactivate(handle);
  fw.decommission(handle);
}

/* ---- KVM_SEV_INIT, KVM_SEV_ES_INIT, KVM_SEV_INIT2 ---- */

/** struct kvm_sev_cmd as KVM copied it in: argp->error is written back. */
interface SevCmd {
  readonly id: number;
  readonly data: unknown;
  error: number;
  readonly sev_fd: number;
}

/**
 * __sev_guest_init(): -EINVAL once vCPUs exist, for flags, unsupported VMSA features, a GHCB
 * version above 2 (or any for plain SEV), or a second init; then an ASID, sev_platform_init(),
 * and for SNP the guest-request pages (snp_guest_req_init()).
 */
function __sev_guest_init(kvm: Kvm, argp: SevCmd, data: { vmsa_features: bigint; flags: bigint; ghcb_version: number }, vm_type: number): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  const es_active = vm_type !== KVM_X86_SEV_VM;
  const valid_vmsa_features = 0n;
  if (kvm.created_vcpus) return -Errno.EINVAL;
  if (data.flags) return -Errno.EINVAL;
  if (data.vmsa_features & ~valid_vmsa_features) return -Errno.EINVAL;
  if (data.ghcb_version > GHCB_VERSION_MAX || (!es_active && data.ghcb_version)) return -Errno.EINVAL;
  if (sev.active) return -Errno.EINVAL;
  sev.active = true;
  sev.es_active = es_active;
  sev.vmsa_features = data.vmsa_features;
  sev.ghcb_version = data.ghcb_version;
  if (sev.es_active && !sev.ghcb_version) sev.ghcb_version = GHCB_VERSION_DEFAULT;
  if (vm_type === KVM_X86_SNP_VM) sev.vmsa_features |= SVM_SEV_FEAT_SNP_ACTIVE;
  let ret = sev_asid_new(h, sev);
  if (ret === 0) {
    const init = h.fw.platform_initialize();
    ret = init.rc;
    if (ret === 0 && vm_type === KVM_X86_SNP_VM) ret = snp_guest_req_init(kvm);
    if (ret) {
      argp.error = init.error;
      sev_asid_free(h, sev);
      h.asid_bitmap.delete(sev.asid);
      h.reclaim_asid_bitmap.delete(sev.asid);
      sev.asid = 0;
    }
  }
  if (ret) {
    sev.vmsa_features = 0n;
    sev.es_active = false;
    sev.active = false;
    return ret;
  }
  sev.need_init = false;
  return 0;
}

/** sev_guest_init(): KVM_SEV_INIT / KVM_SEV_ES_INIT, only on a KVM_X86_DEFAULT_VM (GHCB v1 for ES). */
function sev_guest_init(kvm: Kvm, argp: SevCmd): number {
  if (kvm.arch.vm_type !== KVM_X86_DEFAULT_VM) return -Errno.EINVAL;
  const vm_type = argp.id === KVM_SEV_INIT ? KVM_X86_SEV_VM : KVM_X86_SEV_ES_VM;
  return __sev_guest_init(kvm, argp, { vmsa_features: 0n, flags: 0n, ghcb_version: vm_type === KVM_X86_SEV_ES_VM ? GHCB_VERSION_MIN : 0 }, vm_type);
}

/** sev_guest_init2(): KVM_SEV_INIT2 with struct kvm_sev_init on an SEV, SEV-ES or SNP VM. */
function sev_guest_init2(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev.need_init) return -Errno.EINVAL;
  const t = kvm.arch.vm_type;
  if (t !== KVM_X86_SEV_VM && t !== KVM_X86_SEV_ES_VM && t !== KVM_X86_SNP_VM) return -Errno.EINVAL;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const vmsa_features = field(argp.data, 'vmsa_features', 64);
  const flags = field(argp.data, 'flags', 32);
  const ghcb_version = field(argp.data, 'ghcb_version', 32);
  if (vmsa_features === undefined || flags === undefined || ghcb_version === undefined || ghcb_version > 0xffffn) return -Errno.EFAULT;
  return __sev_guest_init(kvm, argp, { vmsa_features, flags, ghcb_version: Number(ghcb_version) }, t);
}

/* ---- legacy launch: LAUNCH_START, LAUNCH_UPDATE_DATA, LAUNCH_UPDATE_VMSA, LAUNCH_MEASURE, LAUNCH_FINISH ---- */

/** __sev_issue_cmd()'s fd check: -EBADF unless `fd` is the VMM's open /dev/sev. */
function sev_fd_ok(kvm: Kvm, fd: number): boolean {
  const file = kvm_current(kvm)?.files.lookup(fd);
  return file !== undefined && file.f_op === sev_fops;
}

/** Record the firmware's status in argp->error and turn it into the return value. */
function fw_ret(argp: SevCmd, r: FwResult): number {
  argp.error = r.error;
  return r.rc;
}

/** sev_bind_asid(): ACTIVATE the launch handle with the VM's ASID. */
function sev_bind_asid(kvm: Kvm, handle: number, argp: SevCmd): number {
  return fw_ret(argp, sev_host(kvm.kernel).fw.activate(handle, to_kvm_sev_info(kvm).asid));
}

/**
 * sev_launch_start(): LAUNCH_START with the guest owner's policy and session blob (the DH
 * certificate and session are copied with psp_copy_user_blob()), then ACTIVATE; the handle goes
 * back to user space.
 */
function sev_launch_start(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const p = argp.data;
  const handle = field(p, 'handle', 32);
  const policy = field(p, 'policy', 32);
  const dh_uaddr = field(p, 'dh_uaddr', 64);
  const dh_len = field(p, 'dh_len', 32);
  const session_uaddr = field(p, 'session_uaddr', 64);
  const session_len = field(p, 'session_len', 32);
  if ([handle, policy, dh_uaddr, dh_len, session_uaddr, session_len].includes(undefined)) return -Errno.EFAULT;
  if (dh_uaddr) {
    const dh = psp_copy_user_blob(kvm, dh_uaddr!, Number(dh_len));
    if (typeof dh === 'number') return dh;
  }
  let session: Uint8Array | null = null;
  if (session_uaddr) {
    const s = psp_copy_user_blob(kvm, session_uaddr!, Number(session_len));
    if (typeof s === 'number') return s;
    session = s;
  }
  if (!sev_fd_ok(kvm, argp.sev_fd)) return -Errno.EBADF;
  const start = h.fw.launch_start(Number(handle), Number(policy), session);
  if (start.rc) return fw_ret(argp, start);
  const ret = sev_bind_asid(kvm, start.handle!, argp);
  if (ret) {
    h.fw.decommission(start.handle!);
    return ret;
  }
  p.handle = start.handle!;
  sev.handle = start.handle!;
  sev.fd = argp.sev_fd;
  return 0;
}

/**
 * sev_pin_memory(): pin the user range (pin_user_pages_fast(FOLL_WRITE)), counting it against
 * RLIMIT_MEMLOCK unless the VMM has CAP_IPC_LOCK (-ENOMEM over the limit, or when a page cannot
 * be pinned); -EINVAL for an empty or wrapping range.
 */
function sev_pin_memory(kvm: Kvm, uaddr: bigint, ulen: bigint, write: boolean): number[] | number {
  const sev = to_kvm_sev_info(kvm);
  if (ulen === 0n || uaddr + ulen > U64) return -Errno.EINVAL;
  const first = uaddr / BigInt(PAGE_SIZE);
  const last = (uaddr + ulen - 1n) / BigInt(PAGE_SIZE);
  const npages = Number(last - first + 1n);
  const locked = sev.pages_locked + npages;
  const task = kvm_current(kvm);
  const lock_limit = Number((task?.rlimit_memlock ?? 0n) / BigInt(PAGE_SIZE));
  if (locked > lock_limit && !(task?.cap_ipc_lock ?? false)) {
    pr_warn(kvm.kernel, `kvm_amd: SEV: ${locked} locked pages exceed the lock limit of ${lock_limit}.`);
    return -Errno.ENOMEM;
  }
  if (npages > 0x7fffffff) return -Errno.EINVAL;
  const pages: number[] = [];
  const npinned = first >= 1n << 52n ? -Errno.EFAULT : pin_user_pages_fast(kvm.mm, Number(first), npages, write ? FOLL_WRITE : 0, pages);
  if (npinned !== npages) {
    pr_warn(kvm.kernel, `kvm_amd: SEV: Failure locking ${npages} pages.`);
    if (npinned > 0) unpin_user_pages_dirty_lock(kvm.kernel, pages, npinned, false);
    return -Errno.ENOMEM;
  }
  sev.pages_locked = locked;
  return pages;
}

/** sev_unpin_memory(). */
function sev_unpin_memory(kvm: Kvm, pages: readonly number[], dirty: boolean): void {
  unpin_user_pages_dirty_lock(kvm.kernel, pages, pages.length, dirty);
  to_kvm_sev_info(kvm).pages_locked -= pages.length;
}

/** sev_clflush_pages(): flush the pages before their C-bit alias is used, unless SME_COHERENT. */
function sev_clflush_pages(kvm: Kvm, npages: number): void {
  if (sev_host(kvm.kernel).opts.sme_coherent || npages === 0) return;
  kvm.kernel.cost.charge('clflush_4k', npages);
}

/** get_num_contig_pages(): how many of pages[idx..] are physically contiguous. */
function get_num_contig_pages(idx: number, pages: readonly number[]): number {
  let n = 1;
  while (idx + n < pages.length && pages[idx + n] === pages[idx + n - 1]! + 1) n++;
  return n;
}

/** The gfns whose memslot maps host address `hva` (the guest's view of a launch-encrypted page). */
function hva_to_gfns(kvm: Kvm, hva: bigint): number[] {
  const out: number[] = [];
  for (const slot of kvm_memslots(kvm).id_hash.values()) {
    const end = slot.userspace_addr + BigInt(slot.npages) * BigInt(PAGE_SIZE);
    if (hva >= slot.userspace_addr && hva < end) out.push(slot.base_gfn + Number((hva - slot.userspace_addr) / BigInt(PAGE_SIZE)));
  }
  return out;
}

/**
 * sev_launch_update_data(): pin the range, flush it, and LAUNCH_UPDATE_DATA each physically
 * contiguous run: the firmware measures the plaintext and encrypts it in place. The guest maps
 * those pages encrypted (its C-bit, cocosim).
 */
function sev_launch_update_data(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const uaddr = field(argp.data, 'uaddr', 64);
  const ulen = field(argp.data, 'len', 32);
  if (uaddr === undefined || ulen === undefined) return -Errno.EFAULT;
  const inpages = sev_pin_memory(kvm, uaddr, ulen, true);
  if (typeof inpages === 'number') return inpages;
  sev_clflush_pages(kvm, inpages.length);
  let vaddr = uaddr;
  const vaddr_end = uaddr + ulen;
  let size = Number(ulen);
  let ret = 0;
  for (let i = 0; vaddr < vaddr_end; ) {
    const offset = Number(vaddr % BigInt(PAGE_SIZE));
    const pages = get_num_contig_pages(i, inpages);
    const len = Math.min(pages * PAGE_SIZE - offset, size);
    if (!sev_fd_ok(kvm, sev.fd)) {
      ret = -Errno.EBADF;
      break;
    }
    ret = fw_ret(argp, h.fw.launch_update_data(sev.handle, BigInt(inpages[i]!) * BigInt(PAGE_SIZE) + BigInt(offset), len));
    if (ret) break;
    for (let a = vaddr - BigInt(offset); a < vaddr + BigInt(len); a += BigInt(PAGE_SIZE)) for (const gfn of hva_to_gfns(kvm, a)) sev.c_bit.set(gfn, true);
    size -= len;
    vaddr += BigInt(len);
    i += pages;
  }
  sev_unpin_memory(kvm, inpages, true);
  return ret;
}

/**
 * sev_es_sync_vmsa(): the VMSA image of the vCPU's registers (struct sev_es_save_area offsets:
 * rflags 0x170, rip 0x178, rsp 0x1d8, rax 0x1f8, rcx 0x308, rdx 0x310, rbx 0x318, rbp 0x328,
 * rsi 0x330, rdi 0x338, r8..r15 0x340..0x378, sev_features 0x3b0, xcr0 0x3e8).
 */
export function sev_es_sync_vmsa(vcpu: KvmVcpu): Uint8Array {
  const regs = vcpu_arch(vcpu).regs;
  const out = new Uint8Array(PAGE_SIZE);
  const v = new DataView(out.buffer);
  const put = (off: number, x: bigint): void => v.setBigUint64(off, BigInt.asUintN(64, x), true);
  put(0x170, regs.rflags);
  put(0x178, regs.rip);
  put(0x1d8, regs.rsp);
  put(0x1f8, regs.rax);
  put(0x308, regs.rcx);
  put(0x310, regs.rdx);
  put(0x318, regs.rbx);
  put(0x328, regs.rbp);
  put(0x330, regs.rsi);
  put(0x338, regs.rdi);
  [regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15].forEach((r, i) => put(0x340 + 8 * i, r));
  put(0x3b0, to_kvm_sev_info(vcpu.kvm).vmsa_features);
  put(0x3e8, 1n);
  return out;
}

/**
 * sev_launch_update_vmsa(): for each vCPU, sync its VMSA, flush it and LAUNCH_UPDATE_VMSA (the
 * firmware measures and encrypts it); its state is protected from then on.
 */
function sev_launch_update_vmsa(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_es_guest(kvm)) return -Errno.ENOTTY;
  for (const vcpu of kvm.vcpus.values()) {
    const s = sev_vcpu(vcpu);
    if (s.vmsa_pfn < 0) return -Errno.EINVAL;
    kvm.kernel.phys.write(s.vmsa_pfn as Pfn, 0, sev_es_sync_vmsa(vcpu));
    kvm.kernel.cost.charge('clflush_4k');
    if (!sev_fd_ok(kvm, sev.fd)) return -Errno.EBADF;
    const ret = fw_ret(argp, sev_host(kvm.kernel).fw.launch_update_vmsa(sev.handle, s.vmsa_pfn));
    if (ret) return ret;
    s.guest_state_protected = true;
  }
  return 0;
}

/**
 * sev_launch_measure(): LAUNCH_MEASURE into the user buffer; a zero length asks for the blob's
 * length (the firmware's INVALID_LEN answer carries it), a length above SEV_FW_BLOB_MAX_SIZE is
 * -EINVAL. params.len is written back either way.
 */
function sev_launch_measure(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const p = argp.data;
  const uaddr = field(p, 'uaddr', 64);
  const len = field(p, 'len', 32);
  if (uaddr === undefined || len === undefined) return -Errno.EFAULT;
  let buf_len = 0;
  if (len && uaddr) {
    if (len > BigInt(SEV_FW_BLOB_MAX_SIZE)) return -Errno.EINVAL;
    buf_len = Number(len);
  }
  if (!sev_fd_ok(kvm, sev.fd)) return -Errno.EBADF;
  const r = sev_host(kvm.kernel).fw.launch_measure(sev.handle, buf_len);
  let ret = fw_ret(argp, r);
  if (len && !ret && r.blob !== undefined && uaddr) {
    if (copy_to_user(kvm, uaddr, r.blob)) ret = -Errno.EFAULT;
  }
  p.len = r.len;
  return ret;
}

/** copy_to_user() into the VMM's memory: 0 or -EFAULT. */
function copy_to_user(kvm: Kvm, uaddr: bigint, data: Uint8Array): number {
  return uaccess_copy_to_user(kvm.mm, uaddr, data);
}

/** sev_launch_finish(): LAUNCH_FINISH. */
function sev_launch_finish(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!sev_fd_ok(kvm, sev.fd)) return -Errno.EBADF;
  return fw_ret(argp, sev_host(kvm.kernel).fw.launch_finish(sev.handle));
}

/** sev_guest_status(): GUEST_STATUS into struct kvm_sev_guest_status (policy, state, handle). */
function sev_guest_status(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!sev_fd_ok(kvm, sev.fd)) return -Errno.EBADF;
  const r = sev_host(kvm.kernel).fw.guest_status(sev.handle);
  const ret = fw_ret(argp, r);
  if (ret) return ret;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  Object.assign(argp.data, { policy: r.policy, state: r.state, handle: sev.handle });
  return 0;
}

/* ---- KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION ---- */

/**
 * sev_mem_enc_register_region(): pin [addr, addr + size) for the guest's lifetime (the guest may
 * flip the C-bit on it at any time, and the address-tweaked cipher forbids moving it) and flush
 * it. -ENOTTY on a VM that is not SEV, -EINVAL beyond ULONG_MAX, sev_pin_memory()'s errors.
 */
export function sev_mem_enc_register_region(kvm: Kvm, arg: unknown): number {
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  if (!is_struct(arg)) return -Errno.EFAULT;
  const addr = field(arg, 'addr', 64);
  const size = field(arg, 'size', 64);
  if (addr === undefined || size === undefined) return -Errno.EFAULT;
  const pages = sev_pin_memory(kvm, addr, size, true);
  if (typeof pages === 'number') return pages;
  sev_clflush_pages(kvm, pages.length);
  to_kvm_sev_info(kvm).regions_list.push({ pages, uaddr: addr, size });
  return 0;
}

/** __unregister_enc_region_locked(). */
function __unregister_enc_region_locked(kvm: Kvm, region: EncRegion): void {
  sev_unpin_memory(kvm, region.pages, false);
  const list = to_kvm_sev_info(kvm).regions_list;
  list.splice(list.indexOf(region), 1);
}

/**
 * sev_mem_enc_unregister_region(): the region registered with exactly this addr and size
 * (-EINVAL otherwise) is unpinned after a WBINVD ("CLFLUSH will not do this").
 */
export function sev_mem_enc_unregister_region(kvm: Kvm, arg: unknown): number {
  if (!is_struct(arg)) return -Errno.EFAULT;
  const addr = field(arg, 'addr', 64);
  const size = field(arg, 'size', 64);
  if (addr === undefined || size === undefined) return -Errno.EFAULT;
  if (!sev_guest(kvm)) return -Errno.ENOTTY;
  const region = to_kvm_sev_info(kvm).regions_list.find((r) => r.uaddr === addr && r.size === size);
  if (region === undefined) return -Errno.EINVAL;
  wbinvd_on_all_cpus(sev_host(kvm.kernel));
  __unregister_enc_region_locked(kvm, region);
  return 0;
}

/* ---- SNP ---- */

/**
 * snp_alloc_firmware_page() (drivers/crypto/ccp/sev-dev.c): a page the firmware owns (RMP
 * Firmware state: assigned to ASID 0, immutable), or -1.
 */
export function snp_alloc_firmware_page(h: SevHost): number {
  const pfn = h.kernel.page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  if (pfn < 0) return -1;
  if (rmp_make_private(h, pfn, 0n, PG_LEVEL_4K, 0, true)) {
    h.kernel.page_alloc.__free_page(pfn);
    return -1;
  }
  return pfn;
}

/**
 * snp_free_firmware_page(): SNP_PAGE_RECLAIM and RMPUPDATE back to the hypervisor, then free; a
 * page that cannot be reclaimed is leaked.
 */
export function snp_free_firmware_page(h: SevHost, pfn: number): void {
  if (h.fw.snp_page_reclaim(pfn).rc || rmp_make_shared(h, pfn, PG_LEVEL_4K)) {
    snp_leak_pages(h, pfn, 1);
    return;
  }
  h.kernel.page_alloc.__free_page(pfn);
}

/** snp_guest_req_init(): the guest-request bounce pages; the response page is firmware-owned. */
function snp_guest_req_init(kvm: Kvm): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  const req = kvm.kernel.page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  if (req < 0) return -Errno.ENOMEM;
  const resp = snp_alloc_firmware_page(h);
  if (resp < 0) {
    kvm.kernel.page_alloc.__free_page(req);
    return -Errno.EIO;
  }
  sev.guest_req_buf = req;
  sev.guest_resp_buf = resp;
  return 0;
}

/** snp_guest_req_cleanup(). */
function snp_guest_req_cleanup(kvm: Kvm): void {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  if (sev.guest_resp_buf >= 0) snp_free_firmware_page(h, sev.guest_resp_buf);
  if (sev.guest_req_buf >= 0) kvm.kernel.page_alloc.__free_page(sev.guest_req_buf);
  sev.guest_req_buf = -1;
  sev.guest_resp_buf = -1;
}

/**
 * kvm_rmp_make_shared(): back to the Hypervisor state; a failure bugs the VM and leaks the pages
 * ("it will no longer be usable by the host due to RMP protections").
 */
function kvm_rmp_make_shared(kvm: Kvm, pfn: number, level: number): number {
  const h = sev_host(kvm.kernel);
  if (rmp_make_shared(h, pfn, level)) {
    kvm.kernel.warn.record('KVM_BUG_ON', `kvm_rmp_make_shared: pfn 0x${pfn.toString(16)}`);
    kvm.vm_dead = true;
    snp_leak_pages(h, pfn, level === PG_LEVEL_2M ? PTRS_PER_PMD : 1);
    return -Errno.EIO;
  }
  return 0;
}

/**
 * snp_page_reclaim(): SNP_PAGE_RECLAIM then RMPUPDATE to shared, for pages in firmware-owned
 * states (Pre-Guest, Firmware); failure bugs the VM and leaks the page.
 */
function snp_page_reclaim(kvm: Kvm, pfn: number): number {
  const h = sev_host(kvm.kernel);
  const r = h.fw.snp_page_reclaim(pfn);
  if (r.rc) {
    kvm.kernel.warn.record('KVM_BUG', `Failed to reclaim PFN ${pfn.toString(16)}, rc ${r.rc} fw_err ${r.error}`);
    kvm.vm_dead = true;
    snp_leak_pages(h, pfn, 1);
    return -Errno.EIO;
  }
  return kvm_rmp_make_shared(kvm, pfn, PG_LEVEL_4K);
}

/** snp_context_create(): a firmware page and SNP_GCTX_CREATE in it; -1 on failure. */
function snp_context_create(kvm: Kvm, argp: SevCmd): number {
  const h = sev_host(kvm.kernel);
  const context = snp_alloc_firmware_page(h);
  if (context < 0) return -1;
  const r = h.fw.snp_gctx_create(context);
  if (r.rc) {
    argp.error = r.error;
    pr_warn(kvm.kernel, `kvm_amd: Failed to create SEV-SNP context, rc ${r.rc} fw_error ${r.error}`);
    snp_free_firmware_page(h, context);
    return -1;
  }
  return context;
}

/** snp_decommission_context(): SNP_DECOMMISSION (unbinding the ASID), then free the context page. */
function snp_decommission_context(kvm: Kvm): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  if (sev.snp_context < 0) return 0;
  const r = h.fw.snp_decommission(sev.snp_context);
  if (kvm.kernel.warn.WARN_ON_ONCE(r.rc !== 0, 'snp_decommission_context', `Failed to release guest context, ret ${r.rc}`)) return r.rc;
  snp_free_firmware_page(h, sev.snp_context);
  sev.snp_context = -1;
  return 0;
}

/**
 * snp_launch_start(): struct kvm_sev_snp_launch_start. -ENOTTY on a VM that is not SNP; -EINVAL
 * for a second context, flags, policy bits KVM does not know, a policy without the must-be-one
 * bit or SMT, or with SINGLE_SOCKET; then the context (-ENOTTY if it cannot be created),
 * SNP_LAUNCH_START and SNP_ACTIVATE with the VM's ASID.
 */
function snp_launch_start(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  if (!sev_snp_guest(kvm)) return -Errno.ENOTTY;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const policy = field(argp.data, 'policy', 64);
  const flags = field(argp.data, 'flags', 32);
  const gosvw = bytes_field(argp.data, 'gosvw', 16);
  if (policy === undefined || flags === undefined || flags > 0xffffn || gosvw === undefined) return -Errno.EFAULT;
  if (sev.snp_context >= 0) return -Errno.EINVAL;
  if (flags) return -Errno.EINVAL;
  if (policy & ~SNP_POLICY_MASK_VALID) return -Errno.EINVAL;
  if (!(policy & SNP_POLICY_MASK_RSVD_MBO) || !(policy & SNP_POLICY_MASK_SMT)) return -Errno.EINVAL;
  if (policy & SNP_POLICY_MASK_SINGLE_SOCKET) return -Errno.EINVAL;
  if (!sev_fd_ok(kvm, argp.sev_fd)) return -Errno.EBADF;
  const context = snp_context_create(kvm, argp);
  if (context < 0) return -Errno.ENOTTY;
  sev.snp_context = context;
  let rc = fw_ret(argp, h.fw.snp_launch_start(context, policy, gosvw));
  if (!rc) {
    sev.fd = argp.sev_fd;
    rc = fw_ret(argp, h.fw.snp_activate(context, sev.asid));
  }
  if (rc) snp_decommission_context(kvm);
  return rc;
}

/** struct sev_gmem_populate_args. */
interface SevGmemPopulateArgs {
  readonly type: number;
  readonly uaddr: bigint;
  readonly gfn_start: number;
  fw_error: number;
}

/**
 * sev_gmem_post_populate(): for each page, the RMP entry must still be shared (-EINVAL if it
 * cannot be read, -EEXIST if assigned); the source page is copied from user space into the gmem
 * page (plaintext, by the host), the page becomes Pre-Guest (rmp_make_private(..., immutable)),
 * and SNP_LAUNCH_UPDATE encrypts and measures it. On a firmware error that page is reclaimed (a
 * rejected CPUID page is copied back to the source for user space to inspect) and the pages made
 * private so far go back to shared.
 */
function sev_gmem_post_populate(kvm: Kvm, gfn_start: number, pfn: number, order: number, args: SevGmemPopulateArgs): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  const npages = 2 ** order;
  let n_private = 0;
  let ret = 0;
  let i = 0;
  const src_of = (k: number): bigint => args.uaddr + BigInt(gfn_start - args.gfn_start + k) * BigInt(PAGE_SIZE);
  for (; i < npages; i++) {
    const gfn = gfn_start + i;
    const e = snp_lookup_rmpentry(h, pfn + i);
    if (typeof e === 'number' || e.assigned) {
      ret = typeof e === 'number' ? -Errno.EINVAL : -Errno.EEXIST;
      break;
    }
    if (args.type !== KVM_SEV_SNP_PAGE_TYPE_ZERO) {
      const src = copy_from_user(kvm, src_of(i), PAGE_SIZE);
      if (typeof src === 'number') {
        ret = src;
        break;
      }
      kvm.kernel.phys.write((pfn + i) as Pfn, 0, src);
    }
    ret = rmp_make_private(h, pfn + i, BigInt(gfn) * BigInt(PAGE_SIZE), PG_LEVEL_4K, sev.asid, true);
    if (ret) break;
    n_private++;
    const fw = h.fw.snp_launch_update(sev.snp_context, pfn + i, 0, args.type);
    if (fw.rc) {
      args.fw_error = fw.error;
      ret = fw.rc;
      if (!snp_page_reclaim(kvm, pfn + i) && args.type === KVM_SEV_SNP_PAGE_TYPE_CPUID && fw.error === SEV_RET_INVALID_PARAM) {
        const page = kvm.kernel.phys.read((pfn + i) as Pfn, 0, PAGE_SIZE);
        if (page instanceof Uint8Array) copy_to_user(kvm, src_of(i), page);
      }
      n_private--;
      break;
    }
    sev.c_bit.set(gfn, true);
  }
  if (ret) for (let k = 0; k < n_private; k++) kvm_rmp_make_shared(kvm, pfn + k, PG_LEVEL_4K);
  return ret;
}

/** kvm_slot_can_be_private(): a memslot backed by guest_memfd. */
function kvm_slot_can_be_private(slot: ReturnType<typeof gfn_to_memslot>): boolean {
  return slot !== undefined && kvm_slot_has_gmem(slot);
}

/**
 * snp_launch_update(): struct kvm_sev_snp_launch_update. -EINVAL without a launch context, for a
 * length that is not page aligned, flags, or a page type user space may not give; the range must
 * start in a private memslot; kvm_gmem_populate() with sev_gmem_post_populate(). A failure is
 * -EIO with the firmware's status in argp->error; otherwise the fields are advanced past the pages
 * done (gfn_start, len, uaddr) and written back.
 */
function snp_launch_update(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_snp_guest(kvm) || sev.snp_context < 0) return -Errno.EINVAL;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const p = argp.data;
  const gfn_start = field(p, 'gfn_start', 64);
  const uaddr = field(p, 'uaddr', 64);
  const len = field(p, 'len', 64);
  const type = field(p, 'type', 32);
  const flags = field(p, 'flags', 32);
  if ([gfn_start, uaddr, len, type, flags].includes(undefined) || type! > 0xffn || flags! > 0xffffn) return -Errno.EFAULT;
  const t = Number(type);
  if (len! % BigInt(PAGE_SIZE) !== 0n || flags ||
    (t !== KVM_SEV_SNP_PAGE_TYPE_NORMAL && t !== KVM_SEV_SNP_PAGE_TYPE_ZERO && t !== KVM_SEV_SNP_PAGE_TYPE_UNMEASURED &&
      t !== KVM_SEV_SNP_PAGE_TYPE_SECRETS && t !== KVM_SEV_SNP_PAGE_TYPE_CPUID)) return -Errno.EINVAL;
  if (gfn_start! >= 1n << 40n || len! / BigInt(PAGE_SIZE) > 0x7fffffffn) return -Errno.EINVAL;
  const npages = Number(len! / BigInt(PAGE_SIZE));
  const memslot = gfn_to_memslot(kvm, Number(gfn_start));
  if (!kvm_slot_can_be_private(memslot)) return -Errno.EINVAL;
  if (!sev_fd_ok(kvm, argp.sev_fd)) return -Errno.EBADF;
  const args: SevGmemPopulateArgs = { type: t, uaddr: t === KVM_SEV_SNP_PAGE_TYPE_ZERO ? 0n : uaddr!, gfn_start: Number(gfn_start), fw_error: 0 };
  const count = kvm_gmem_populate(kvm, Number(gfn_start), null, npages, (k, gfn, pfn, _src, order) => sev_gmem_post_populate(k, gfn, pfn, order, args));
  if (count < 0) {
    argp.error = args.fw_error;
    return -Errno.EIO;
  }
  p.gfn_start = gfn_start! + BigInt(count);
  p.len = len! - BigInt(count) * BigInt(PAGE_SIZE);
  if (t !== KVM_SEV_SNP_PAGE_TYPE_ZERO) p.uaddr = uaddr! + BigInt(count) * BigInt(PAGE_SIZE);
  return 0;
}

/**
 * snp_launch_update_vmsa(): each vCPU's VMSA is synced, made a guest page at INITIAL_VMSA_GPA
 * (immutable) and measured with SNP_LAUNCH_UPDATE of type VMSA; a firmware failure reclaims it.
 */
function snp_launch_update_vmsa(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  const h = sev_host(kvm.kernel);
  for (const vcpu of kvm.vcpus.values()) {
    const s = sev_vcpu(vcpu);
    if (s.vmsa_pfn < 0) return -Errno.EINVAL;
    kvm.kernel.phys.write(s.vmsa_pfn as Pfn, 0, sev_es_sync_vmsa(vcpu));
    let ret = rmp_make_private(h, s.vmsa_pfn, INITIAL_VMSA_GPA, PG_LEVEL_4K, sev.asid, true);
    if (ret) return ret;
    ret = fw_ret(argp, h.fw.snp_launch_update(sev.snp_context, s.vmsa_pfn, 0, SNP_PAGE_TYPE_VMSA));
    if (ret) {
      snp_page_reclaim(kvm, s.vmsa_pfn);
      return ret;
    }
    s.guest_state_protected = true;
  }
  return 0;
}

/**
 * snp_launch_finish(): struct kvm_sev_snp_launch_finish. The VMSAs are measured first; the ID
 * block (96 bytes) and its authentication (4096) are copied when id_block_en; SNP_LAUNCH_FINISH;
 * then "private pages can be given to the guest simply by marking the RMP entry as private",
 * so KVM_PRE_FAULT_MEMORY is allowed.
 */
function snp_launch_finish(kvm: Kvm, argp: SevCmd): number {
  const sev = to_kvm_sev_info(kvm);
  if (!sev_snp_guest(kvm)) return -Errno.ENOTTY;
  if (sev.snp_context < 0) return -Errno.EINVAL;
  if (!is_struct(argp.data)) return -Errno.EFAULT;
  const p = argp.data;
  const id_block_uaddr = field(p, 'id_block_uaddr', 64);
  const id_auth_uaddr = field(p, 'id_auth_uaddr', 64);
  const id_block_en = field(p, 'id_block_en', 32);
  const flags = field(p, 'flags', 32);
  const host_data = bytes_field(p, 'host_data', KVM_SEV_SNP_FINISH_DATA_SIZE);
  if ([id_block_uaddr, id_auth_uaddr, id_block_en, flags].includes(undefined) || host_data === undefined || id_block_en! > 0xffn || flags! > 0xffffn) {
    return -Errno.EFAULT;
  }
  if (flags) return -Errno.EINVAL;
  if (!sev_fd_ok(kvm, sev.fd)) return -Errno.EBADF;
  let ret = snp_launch_update_vmsa(kvm, argp);
  if (ret) return ret;
  let id_block: SnpIdBlock | null = null;
  if (id_block_en) {
    const blk = psp_copy_user_blob(kvm, id_block_uaddr!, KVM_SEV_SNP_ID_BLOCK_SIZE);
    if (typeof blk === 'number') return blk;
    const auth = psp_copy_user_blob(kvm, id_auth_uaddr!, KVM_SEV_SNP_ID_AUTH_SIZE);
    if (typeof auth === 'number') return auth;
    // struct sev_data_snp_id_block: ld[48], family_id[16], image_id[16], version, guest_svn (u32 each), policy (u64).
    id_block = { ld: blk.subarray(0, 48), policy: new DataView(blk.buffer, blk.byteOffset).getBigUint64(88, true) };
  }
  ret = fw_ret(argp, sev_host(kvm.kernel).fw.snp_launch_finish(sev.snp_context, id_block, host_data));
  if (!ret) kvm.arch.pre_fault_allowed = true;
  return ret;
}

/* ---- KVM_MEMORY_ENCRYPT_OP ---- */

/**
 * sev_mem_enc_ioctl(): KVM_MEMORY_ENCRYPT_OP with struct kvm_sev_cmd { id, data (the command's
 * struct), error, sev_fd }. -ENOTTY without SEV on the host; a NULL argument is 0; -EFAULT for
 * no struct; an SNP guest may only use the SNP commands (-EPERM); argp->error is written back.
 * DBG_DECRYPT/ENCRYPT, LAUNCH_SECRET, the attestation report and the SEND/RECEIVE migration
 * commands are not modelled and answer -EINVAL like an unknown command.
 */
export function sev_mem_enc_ioctl(kvm: Kvm, arg: unknown): number {
  const h = sev_host(kvm.kernel);
  if (!h.opts.sev) return -Errno.ENOTTY;
  if (arg === null || arg === undefined || arg === 0 || arg === 0n) return 0;
  if (!is_struct(arg)) return -Errno.EFAULT;
  const id = field(arg, 'id', 32);
  const error = field(arg, 'error', 32);
  const sev_fd = field(arg, 'sev_fd', 32);
  if (id === undefined || error === undefined || sev_fd === undefined) return -Errno.EFAULT;
  const argp: SevCmd = { id: Number(id), data: arg.data, error: Number(error), sev_fd: Number(sev_fd) };
  if (sev_snp_guest(kvm) && argp.id < KVM_SEV_SNP_LAUNCH_START) return -Errno.EPERM;
  let r: number;
  switch (argp.id) {
    case KVM_SEV_ES_INIT:
      if (!h.opts.sev_es) return -Errno.ENOTTY;
      r = sev_guest_init(kvm, argp);
      break;
    case KVM_SEV_INIT:
      r = sev_guest_init(kvm, argp);
      break;
    case KVM_SEV_INIT2:
      r = sev_guest_init2(kvm, argp);
      break;
    case KVM_SEV_LAUNCH_START:
      r = sev_launch_start(kvm, argp);
      break;
    case KVM_SEV_LAUNCH_UPDATE_DATA:
      r = sev_launch_update_data(kvm, argp);
      break;
    case KVM_SEV_LAUNCH_UPDATE_VMSA:
      r = sev_launch_update_vmsa(kvm, argp);
      break;
    case KVM_SEV_LAUNCH_MEASURE:
      r = sev_launch_measure(kvm, argp);
      break;
    case KVM_SEV_LAUNCH_FINISH:
      r = sev_launch_finish(kvm, argp);
      break;
    case KVM_SEV_GUEST_STATUS:
      r = sev_guest_status(kvm, argp);
      break;
    case KVM_SEV_SNP_LAUNCH_START:
      r = snp_launch_start(kvm, argp);
      break;
    case KVM_SEV_SNP_LAUNCH_UPDATE:
      r = snp_launch_update(kvm, argp);
      break;
    case KVM_SEV_SNP_LAUNCH_FINISH:
      r = snp_launch_finish(kvm, argp);
      break;
    default:
      return -Errno.EINVAL;
  }
  arg.error = argp.error;
  return r;
}

/* ---- guest_memfd: RMP state of private pages ---- */

/** is_pfn_range_shared(): no page of [start, end) is assigned in the RMP. */
function is_pfn_range_shared(h: SevHost, start: number, end: number): boolean {
  for (let pfn = start; pfn < end; pfn++) {
    const e = snp_lookup_rmpentry(h, pfn);
    if (typeof e === 'number' || e.assigned) return false;
  }
  return true;
}

/**
 * sev_gmem_prepare(): a freshly zeroed guest_memfd folio becomes Guest-Invalid in the RMP (not
 * immutable), as one 2 MiB entry when the folio is 2 MiB or larger and its whole 2 MiB range is
 * shared (is_large_rmp_possible()). Already assigned: nothing to do. -ENOENT if the entry cannot
 * be read, -EINVAL if RMPUPDATE fails.
 */
export function sev_gmem_prepare(kvm: Kvm, pfn: number, gfn: number, max_order: number): number {
  if (!sev_snp_guest(kvm)) return 0;
  const h = sev_host(kvm.kernel);
  const e = snp_lookup_rmpentry(h, pfn);
  if (typeof e === 'number') return -Errno.ENOENT;
  if (e.assigned) return 0;
  const aligned = pfn - (pfn % PTRS_PER_PMD);
  const large = max_order >= 9 && is_pfn_range_shared(h, aligned, aligned + PTRS_PER_PMD);
  const level = large ? PG_LEVEL_2M : PG_LEVEL_4K;
  const pfn_aligned = large ? aligned : pfn;
  const gfn_aligned = large ? gfn - (gfn % PTRS_PER_PMD) : gfn;
  if (rmp_make_private(h, pfn_aligned, BigInt(gfn_aligned) * BigInt(PAGE_SIZE), level, to_kvm_sev_info(kvm).asid, false)) return -Errno.EINVAL;
  return 0;
}

/**
 * sev_gmem_invalidate(): guest_memfd pages [start, end) leave the page cache: every assigned one
 * goes back to the hypervisor (PSMASH first for a 4 KiB page of a 2 MiB entry, one 2 MiB update
 * when the whole aligned 2 MiB goes) and is flushed from the caches before the host reuses it.
 */
export function sev_gmem_invalidate(kvm: Kvm, start: number, end: number): void {
  const h = sev_host(kvm.kernel);
  if (!h.snp_enabled) return;
  for (let pfn = start; pfn < end; ) {
    const e = snp_lookup_rmpentry(h, pfn);
    let use_2m_update = false;
    if (typeof e !== 'number' && e.assigned) {
      use_2m_update = pfn % PTRS_PER_PMD === 0 && end >= pfn + PTRS_PER_PMD && e.level > PG_LEVEL_4K;
      if (!use_2m_update && e.level > PG_LEVEL_4K) {
        const rc = psmash(h, pfn - (pfn % PTRS_PER_PMD));
        kvm.kernel.warn.WARN_ON_ONCE(rc !== 0, 'sev_gmem_invalidate_psmash', `SEV: Failed to PSMASH RMP entry for PFN 0x${pfn.toString(16)} error ${rc}`);
      }
      const rc = rmp_make_shared(h, pfn, use_2m_update ? PG_LEVEL_2M : PG_LEVEL_4K);
      if (!kvm.kernel.warn.WARN_ON_ONCE(rc !== 0, 'sev_gmem_invalidate_rmpupdate', `SEV: Failed to update RMP entry for PFN 0x${pfn.toString(16)} error ${rc}`)) {
        kvm.kernel.cost.charge('clflush_4k', use_2m_update ? PTRS_PER_PMD : 1);
      }
    }
    pfn += use_2m_update ? PTRS_PER_PMD : 1;
  }
}

/**
 * sev_private_max_mapping_level(): a private NPT mapping may not be larger than the page's RMP
 * entry (4 KiB when it is not assigned); no limit for shared mappings or non-SNP VMs (0).
 */
export function sev_private_max_mapping_level(kvm: Kvm, pfn: number, is_private: boolean): number {
  if (!sev_snp_guest(kvm) || !is_private) return 0;
  const e = snp_lookup_rmpentry(sev_host(kvm.kernel), pfn);
  if (typeof e === 'number' || !e.assigned) return PG_LEVEL_4K;
  return e.level;
}

/* ---- #NPF with the RMP bit ---- */

/** kvm_zap_gfn_range(): zap every SPTE of [gfn_start, gfn_end), shared and private. */
function kvm_zap_gfn_range(kvm: Kvm, gfn_start: number, gfn_end: number): void {
  let flush = false;
  kvm_mmu_invalidate_begin(kvm);
  kvm_for_each_memslot_in_gfn_range(kvm_memslots(kvm), gfn_start, gfn_end, (slot) => {
    const start = Math.max(gfn_start, slot.base_gfn);
    const end = Math.min(gfn_end, slot.base_gfn + slot.npages);
    flush = kvm_mmu_unmap_gfn_range(kvm, { slot, start, end, attr_filter: KVM_FILTER_SHARED | KVM_FILTER_PRIVATE, may_block: true }) || flush;
  });
  if (flush) kvm_flush_remote_tlbs(kvm);
  kvm_mmu_invalidate_end(kvm);
}

/**
 * sev_handle_rmp_fault(): an #NPF with the RMP bit. Only private gfns of private memslots with an
 * assigned RMP entry are expected (otherwise a ratelimited warning, and the guest retries); a
 * 2 MiB RMP entry is PSMASHed into 4 KiB entries and the 2 MiB of SPTEs zapped, so that the
 * access faults in again at 4 KiB. Emits kvm_rmp_fault.
 */
export function sev_handle_rmp_fault(vcpu: KvmVcpu, gpa: bigint, error_code: bigint): void {
  const kvm = vcpu.kvm;
  const h = sev_host(kvm.kernel);
  const gfn = Number(gpa >> 12n);
  if (!kvm_mem_is_private(kvm, gfn)) {
    pr_warn(kvm.kernel, `kvm_amd: SEV: Unexpected RMP fault for non-private GPA 0x${gpa.toString(16)}`);
    return;
  }
  const slot = gfn_to_memslot(kvm, gfn);
  if (!kvm_slot_can_be_private(slot)) {
    pr_warn(kvm.kernel, `kvm_amd: SEV: Unexpected RMP fault, non-private slot for GPA 0x${gpa.toString(16)}`);
    return;
  }
  const got = kvm_gmem_get_pfn(kvm, slot!, gfn);
  if (typeof got === 'number') {
    pr_warn(kvm.kernel, `kvm_amd: SEV: Unexpected RMP fault, no backing page for private GPA 0x${gpa.toString(16)}`);
    return;
  }
  const pfn = got.pfn;
  let e = snp_lookup_rmpentry(h, pfn);
  if (typeof e === 'number' || !e.assigned) {
    pr_warn(kvm.kernel, `kvm_amd: SEV: Unexpected RMP fault, no assigned RMP entry found for GPA 0x${gpa.toString(16)} PFN 0x${pfn.toString(16)}`);
    return;
  }
  const rmp_level = e.level;
  let ret = 0;
  if (rmp_level !== PG_LEVEL_4K) {
    ret = psmash(h, pfn - (pfn % PTRS_PER_PMD));
    e = snp_lookup_rmpentry(h, pfn);
    if (ret && !(typeof e !== 'number' && e.assigned && e.level === PG_LEVEL_4K)) {
      pr_warn(kvm.kernel, `kvm_amd: SEV: Unable to split RMP entry for GPA 0x${gpa.toString(16)} PFN 0x${pfn.toString(16)} ret ${ret}`);
    }
    kvm_zap_gfn_range(kvm, gfn, gfn + PTRS_PER_PMD);
  }
  kvm.kernel.tracer.emit('kvm_rmp_fault', { vcpu_id: vcpu.vcpu_id, gpa: gpa as Gpa, pfn: pfn as Pfn, error_code, rmp_level, psmash_ret: ret });
}

/* ---- the guest's side (hardware) ---- */

/** The C-bit of the guest's mapping of `gfn` (see the file comment). */
function guest_c_bit(kvm: Kvm, gfn: number): boolean {
  const v = to_kvm_sev_info(kvm).c_bit.get(gfn);
  if (v !== undefined) return v;
  return sev_snp_guest(kvm) && kvm_mem_is_private(kvm, gfn);
}

/** kvm_x86_ops.guest_access_is_private for SNP: the C-bit (PFERR_GUEST_ENC of the #NPF). */
export function sev_guest_access_is_private(vcpu: KvmVcpu, gpa: bigint): boolean {
  return sev_snp_guest(vcpu.kvm) && guest_c_bit(vcpu.kvm, Number(gpa >> 12n));
}

/**
 * kvm_x86_ops.guest_mem_access: the RMP check of an SNP guest's access (#NPF with the RMP bit to
 * sev_handle_rmp_fault(), #VC "page not validated" into the guest) and the key of any SEV
 * guest's access: its ASID with the C-bit, the host's without.
 */
export function sev_guest_mem_access(vcpu: KvmVcpu, gpa: bigint, pfn: number, write: boolean, is_private: boolean): GuestMemAccess {
  const kvm = vcpu.kvm;
  if (!sev_guest(kvm)) return { kind: 'ok', key: 0 };
  const sev = to_kvm_sev_info(kvm);
  const gfn = Number(gpa >> 12n);
  if (!sev_snp_guest(kvm)) return { kind: 'ok', key: guest_c_bit(kvm, gfn) ? sev.asid : 0 };
  const h = sev_host(kvm.kernel);
  const page = gpa - (gpa % BigInt(PAGE_SIZE));
  switch (h.rmp.guest_check(sev.asid, page, pfn, is_private)) {
    case 'ok':
      return { kind: 'ok', key: is_private ? sev.asid : 0 };
    case 'not_validated': {
      const error_code = BigInt(SVM_EXIT_NOT_VALIDATED);
      kvm.kernel.tracer.emit('cocosim_sev_guest_exception', { vcpu_id: vcpu.vcpu_id, vector: X86_TRAP_VC, error_code, gpa: gpa as Gpa });
      return { kind: 'exception', vector: X86_TRAP_VC, name: '#VC', error_code };
    }
    case 'npf': {
      const error_code = PFERR_GUEST_RMP_MASK | (is_private ? PFERR_GUEST_ENC_MASK : 0n) | (write ? PFERR_WRITE_MASK : PFERR_USER_MASK);
      sev_handle_rmp_fault(vcpu, gpa, error_code);
      return { kind: 'exit', ret: 1 };
    }
  }
}

/**
 * Translate `gpa` for an instruction the guest executes on a private page: the pfn the SPTE maps,
 * faulting it in through KVM as the #NPF the instruction takes would (charged as a VM exit); a
 * negative errno when KVM cannot map it (on hardware: KVM_EXIT_MEMORY_FAULT to user space).
 */
function guest_private_pfn(vcpu: KvmVcpu, gpa: bigint): number {
  for (let tries = 0; tries < 4; tries++) {
    const pfn = kvm_mmu_translate(vcpu, Number(gpa >> 12n), false, true);
    if (pfn !== undefined) return pfn;
    vcpu.kvm.kernel.cost.charge('kvm_exit_roundtrip');
    const r = kvm_mmu_page_fault(vcpu, gpa, tdp_fault_error_code(vcpu, gpa, false) | PFERR_USER_MASK);
    if (r < 0) return r;
  }
  return -Errno.EFAULT;
}

/**
 * One PVALIDATE of the guest (4 KiB or 2 MiB at `gpa`): the RMP's EAX code, or -errno when the
 * page cannot be reached (see guest_private_pfn(), or an RMP #NPF KVM cannot resolve: on hardware
 * the guest would retry forever).
 */
function snp_pvalidate(vcpu: KvmVcpu, gpa: bigint, pagesize: number, validate: boolean): number {
  const kvm = vcpu.kvm;
  const h = sev_host(kvm.kernel);
  const asid = to_kvm_sev_info(kvm).asid;
  for (let tries = 0; tries < 4; tries++) {
    const pfn = guest_private_pfn(vcpu, gpa);
    if (pfn < 0) return pfn;
    kvm.kernel.cost.charge('sev_pvalidate_4k');
    const rc = h.rmp.pvalidate(asid, gpa, pfn, pagesize, validate);
    if (typeof rc === 'number') return rc;
    kvm.kernel.cost.charge('kvm_exit_roundtrip');
    sev_handle_rmp_fault(vcpu, gpa, PFERR_GUEST_RMP_MASK | PFERR_GUEST_ENC_MASK | (rc.sizem ? PFERR_GUEST_SIZEM_MASK : 0n));
    if (!rc.sizem) return -Errno.EFAULT;
  }
  return -Errno.EFAULT;
}

/**
 * kvm_x86_ops.guest_accept. SNP: the guest maps the pages with the C-bit and PVALIDATEs them
 * (validate: to_private), 2 MiB at a time where aligned, falling back to 4 KiB on
 * FAIL_SIZEMISMATCH as Linux's pvalidate_pages() does; on rescind it clears the C-bit after. An
 * already validated page (PVALIDATE_FAIL_NOUPDATE) is an error the guest sees, as Linux's guest
 * treats it. SEV/SEV-ES: the guest only flips the C-bit of its mapping (and flushes the pages).
 * Returns 0, the first failing PVALIDATE code, or -errno.
 */
export function sev_guest_accept(vcpu: KvmVcpu, gpa: bigint, npages: number, to_private: boolean): number {
  const kvm = vcpu.kvm;
  if (!sev_guest(kvm)) return 0;
  const sev = to_kvm_sev_info(kvm);
  const base = Number(gpa >> 12n);
  if (!sev_snp_guest(kvm)) {
    for (let i = 0; i < npages; i++) sev.c_bit.set(base + i, to_private);
    kvm.kernel.cost.charge('clflush_4k', npages);
    return 0;
  }
  for (let i = 0; i < npages; ) {
    const gfn = base + i;
    const huge = gfn % PTRS_PER_PMD === 0 && npages - i >= PTRS_PER_PMD;
    const n = huge ? PTRS_PER_PMD : 1;
    if (to_private) for (let k = 0; k < n; k++) sev.c_bit.set(gfn + k, true);
    let rc = snp_pvalidate(vcpu, BigInt(gfn) * BigInt(PAGE_SIZE), huge ? RMP_PG_SIZE_2M : RMP_PG_SIZE_4K, to_private);
    if (huge && rc === FAIL_SIZEMISMATCH) {
      rc = 0;
      for (let k = 0; k < n && !rc; k++) rc = snp_pvalidate(vcpu, BigInt(gfn + k) * BigInt(PAGE_SIZE), RMP_PG_SIZE_4K, to_private);
    }
    if (rc) return rc;
    if (!to_private) for (let k = 0; k < n; k++) sev.c_bit.set(gfn + k, false);
    i += n;
  }
  return 0;
}

/* ---- VMGEXIT: GHCB MSR protocol and the PSC NAE event ---- */

/** snp_complete_psc_msr(): the GHCB MSR response to an MSR-protocol PSC, from user space's answer. */
function snp_complete_psc_msr(vcpu: KvmVcpu): number {
  sev_vcpu(vcpu).msr_resp = vcpu.run.hypercall.ret ? GHCB_MSR_PSC_RESP_ERROR : GHCB_MSR_PSC_RESP;
  return 1;
}

/**
 * snp_begin_psc_msr(): one page to private or shared through KVM_HC_MAP_GPA_RANGE (4K), if user
 * space enabled that exit; otherwise, or for another operation, the error response at once.
 */
function snp_begin_psc_msr(vcpu: KvmVcpu, ghcb_msr: bigint): GuestFwcallOutcome {
  const gpa = GHCB_MSR_PSC_REQ_TO_GFN(ghcb_msr) << 12n;
  const op = GHCB_MSR_PSC_REQ_TO_OP(ghcb_msr);
  if ((op !== SNP_PAGE_STATE_PRIVATE && op !== SNP_PAGE_STATE_SHARED) || !(vcpu.kvm.arch.hypercall_exit_enabled & (1 << KVM_HC_MAP_GPA_RANGE))) {
    return { kind: 'ret', regs: [GHCB_MSR_PSC_RESP_ERROR] };
  }
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_HYPERCALL;
  run.hypercall.nr = BigInt(KVM_HC_MAP_GPA_RANGE);
  run.hypercall.args[0] = gpa;
  run.hypercall.args[1] = 1n;
  run.hypercall.args[2] = (op === SNP_PAGE_STATE_PRIVATE ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED) | KVM_MAP_GPA_RANGE_PAGE_SZ_4K;
  vcpu_arch(vcpu).complete_userspace_io = snp_complete_psc_msr;
  return { kind: 'exit', ret: 0 };
}

/** snp_complete_psc(): the request is over with `psc_ret` in sw_exit_info_2. */
function snp_complete_psc(psc: PscState, psc_ret: bigint): void {
  psc.psc_inflight = 0;
  psc.psc_idx = 0;
  psc.psc_2m = false;
  psc.ret = psc_ret;
}

/** __snp_complete_one_psc(): the entries in flight are done (cur_page = their size); cur_entry moves past them. */
function __snp_complete_one_psc(psc: PscState): void {
  let idx = psc.psc_idx;
  for (; psc.psc_inflight; psc.psc_inflight--, idx++) {
    const entry = psc.entries[idx]!;
    entry.cur_page = entry.pagesize ? PTRS_PER_PMD : 1;
  }
  psc.cur_entry = idx;
}

/** The PSC entry at `idx` (zeros past the guest's buffer, as KVM's zeroed scratch copy reads). */
function psc_entry(psc: PscState, idx: number): PscEntry {
  while (psc.entries.length <= idx) psc.entries.push({ cur_page: 0, gfn: 0n, operation: 0, pagesize: 0 });
  return psc.entries[idx]!;
}

/**
 * snp_begin_psc(): find the next range of the PSC buffer that needs work, coalesce the following
 * entries with the same operation, adjacent gfns and size into one KVM_HC_MAP_GPA_RANGE exit (a
 * partially done 2 MiB entry continues at 4 KiB); SMASH/UNSMASH and other operations complete
 * without an exit. Returns 0 for an exit to user space, 1 when the request is complete.
 */
function snp_begin_psc(vcpu: KvmVcpu, psc: PscState): number {
  if (!(vcpu.kvm.arch.hypercall_exit_enabled & (1 << KVM_HC_MAP_GPA_RANGE))) {
    snp_complete_psc(psc, VMGEXIT_PSC_ERROR_GENERIC);
    return 1;
  }
  for (;;) {
    if (vcpu.kvm.kernel.warn.WARN_ON_ONCE(psc.psc_inflight !== 0, 'snp_begin_psc_inflight')) {
      snp_complete_psc(psc, VMGEXIT_PSC_ERROR_GENERIC);
      return 1;
    }
    const idx_start = psc.cur_entry;
    const idx_end = psc.end_entry;
    if (idx_end >= VMGEXIT_PSC_MAX_COUNT) {
      snp_complete_psc(psc, VMGEXIT_PSC_ERROR_INVALID_HDR);
      return 1;
    }
    let idx = idx_start;
    let entry_start: PscEntry = psc_entry(psc, idx);
    let gfn = 0n;
    let huge = false;
    let npages = 0;
    for (; idx <= idx_end; idx++, psc.cur_entry++) {
      entry_start = { ...psc_entry(psc, idx) };
      gfn = entry_start.gfn;
      huge = entry_start.pagesize !== 0;
      npages = huge ? PTRS_PER_PMD : 1;
      if (entry_start.cur_page > npages || gfn % BigInt(npages) !== 0n) {
        snp_complete_psc(psc, VMGEXIT_PSC_ERROR_INVALID_ENTRY);
        return 1;
      }
      if (entry_start.cur_page) {
        npages -= entry_start.cur_page;
        gfn += BigInt(entry_start.cur_page);
        huge = false;
      }
      if (npages) break;
    }
    if (idx > idx_end) {
      snp_complete_psc(psc, 0n);
      return 1;
    }
    psc.psc_2m = huge;
    psc.psc_idx = idx;
    psc.psc_inflight = 1;
    while (++idx <= idx_end) {
      const entry = psc_entry(psc, idx);
      if (entry.operation !== entry_start.operation || entry.gfn !== entry_start.gfn + BigInt(npages) || entry.cur_page || (entry.pagesize !== 0) !== huge) break;
      psc.psc_inflight++;
      npages += huge ? PTRS_PER_PMD : 1;
    }
    if (entry_start.operation === VMGEXIT_PSC_OP_PRIVATE || entry_start.operation === VMGEXIT_PSC_OP_SHARED) {
      const run = vcpu.run;
      run.exit_reason = KVM_EXIT_HYPERCALL;
      run.hypercall.nr = BigInt(KVM_HC_MAP_GPA_RANGE);
      run.hypercall.args[0] = gfn << 12n;
      run.hypercall.args[1] = BigInt(npages);
      run.hypercall.args[2] = (entry_start.operation === VMGEXIT_PSC_OP_PRIVATE ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED) |
        (entry_start.pagesize ? KVM_MAP_GPA_RANGE_PAGE_SZ_2M : KVM_MAP_GPA_RANGE_PAGE_SZ_4K);
      vcpu_arch(vcpu).complete_userspace_io = snp_complete_one_psc;
      return 0;
    }
    __snp_complete_one_psc(psc);
  }
}

/** snp_complete_one_psc(): user space answered the exit; a failure ends the request, else the next range. */
function snp_complete_one_psc(vcpu: KvmVcpu): number {
  const psc = sev_vcpu(vcpu).psc!;
  if (vcpu.run.hypercall.ret) {
    snp_complete_psc(psc, VMGEXIT_PSC_ERROR_GENERIC);
    return 1;
  }
  __snp_complete_one_psc(psc);
  return snp_begin_psc(vcpu, psc);
}

/** sev_es_unmap_ghcb()'s sync of the scratch area back to guest memory, then the result registers. */
function snp_finish_psc(vcpu: KvmVcpu, s: SevVcpu): GuestFwcallOutcome {
  const psc = s.psc!;
  s.psc = undefined;
  const n = Math.max(0, Math.floor((psc.len - PSC_HDR_SIZE) / PSC_ENTRY_SIZE));
  const buf = psc_buffer_encode(psc.cur_entry, psc.end_entry, psc.entries.slice(0, n)).subarray(0, psc.len);
  if (kvm_vcpu_write_guest(vcpu, psc.gpa, buf)) return { kind: 'exit', ret: -Errno.EFAULT };
  return { kind: 'ret', regs: [0n, psc.ret ?? 0n] };
}

/**
 * kvm_x86_ops.guest_fwcall: the guest's VMGEXIT (sev_handle_vmgexit()). fn SVM_EXIT_VMGEXIT with
 * the GHCB MSR value in args[0] is the MSR protocol (PSC request, termination request; other
 * requests leave the MSR as it is); fn SVM_VMGEXIT_PSC with the scratch area's gpa and length is
 * the Page State Change NAE event. Results: the new GHCB MSR value, or sw_exit_info_1 and
 * sw_exit_info_2. A request that exits to user space is completed at the next KVM_RUN.
 */
export function sev_guest_fwcall(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): GuestFwcallOutcome {
  const kvm = vcpu.kvm;
  if (!sev_es_guest(kvm)) return { kind: 'ret', regs: [U64] };
  const s = sev_vcpu(vcpu);
  if (fn === BigInt(SVM_EXIT_VMGEXIT)) {
    const msr = args[0] ?? 0n;
    if (s.msr_resp !== undefined) {
      const resp = s.msr_resp;
      s.msr_resp = undefined;
      return { kind: 'ret', regs: [resp] };
    }
    switch (msr & GHCB_MSR_INFO_MASK) {
      case GHCB_MSR_PSC_REQ:
        if (!sev_snp_guest(kvm)) return sev_es_terminate(vcpu, msr);
        return snp_begin_psc_msr(vcpu, msr);
      case GHCB_MSR_TERM_REQ:
        return sev_es_terminate(vcpu, msr);
      default:
        return { kind: 'ret', regs: [msr] };
    }
  }
  if (fn === SVM_VMGEXIT_PSC) {
    if (s.psc !== undefined && s.psc.ret !== undefined) return snp_finish_psc(vcpu, s);
    if (!sev_snp_guest(kvm)) return { kind: 'ret', regs: [2n, GHCB_ERR_MISSING_INPUT] };
    const gpa = args[0] ?? 0n;
    const len = Number(args[1] ?? 0n);
    if (!gpa || len < PSC_HDR_SIZE || len > GHCB_SCRATCH_AREA_LIMIT) return { kind: 'ret', regs: [2n, GHCB_ERR_INVALID_SCRATCH_AREA] };
    const buf = kvm_vcpu_read_guest(vcpu, gpa, len);
    if (typeof buf === 'number') return { kind: 'exit', ret: -Errno.EFAULT };
    const n = Math.floor((len - PSC_HDR_SIZE) / PSC_ENTRY_SIZE);
    const d = psc_buffer_decode(buf, n);
    s.psc = { gpa, len, cur_entry: d.cur_entry, end_entry: d.end_entry, entries: d.entries, psc_idx: 0, psc_inflight: 0, psc_2m: false, ret: undefined };
    if (snp_begin_psc(vcpu, s.psc)) return snp_finish_psc(vcpu, s);
    return { kind: 'exit', ret: 0 };
  }
  return { kind: 'ret', regs: [2n, GHCB_ERR_INVALID_EVENT] };
}

/**
 * The MSR protocol's termination request (and a PSC request from a guest that is not SNP):
 * KVM_EXIT_SYSTEM_EVENT of type KVM_SYSTEM_EVENT_SEV_TERM with the GHCB MSR value.
 */
function sev_es_terminate(vcpu: KvmVcpu, msr: bigint): GuestFwcallOutcome {
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_SYSTEM_EVENT;
  run.system_event = { type: KVM_SYSTEM_EVENT_SEV_TERM, ndata: 1, data: [msr] };
  return { kind: 'exit', ret: 0 };
}

/* ---- host and device accesses to guest pages ---- */

/**
 * kvm_x86_ops.host_access: the RMP check of a host CPU access to a page of the VM's guest_memfd.
 * A write to an assigned (or immutable) page takes an RMP #PF (X86_PF_RMP): the host kernel
 * oopses, user space would get SIGBUS; a read returns the ciphertext. Partial and full writes
 * alike: the RMP works on pages.
 */
export function sev_host_access(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome {
  const rmp = sev_host(kvm.kernel).rmp;
  if (write && rmp.host_write_faults(pfn)) return { kind: 'fault', reason: 'RMP violation (#PF with X86_PF_RMP)' };
  return rmp.authoritative(pfn).e.assigned ? { kind: 'ciphertext' } : { kind: 'ok' };
}

/**
 * kvm_x86_ops.dma_access: the AMD IOMMU enforces the RMP on DMA when SNP is enabled
 * (snp_rmptable_init() requires amd_iommu_snp_en): a device write to an assigned page is blocked
 * as an I/O page fault; a read returns the ciphertext (inferred: vendor-models.md §2.7).
 */
export function sev_dma_access(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome {
  const rmp = sev_host(kvm.kernel).rmp;
  if (write && rmp.host_write_faults(pfn)) return { kind: 'fault', reason: 'RMP violation (AMD IOMMU: device write to a page assigned in the RMP)' };
  return rmp.authoritative(pfn).e.assigned ? { kind: 'ciphertext' } : { kind: 'ok' };
}

/* ---- inspection for tests and reports (cocosim) ---- */

/** The SNP launch digest of the VM so far (48 bytes), or undefined without a launch context. */
export function snp_launch_digest(kvm: Kvm): Buffer | undefined {
  const sev = to_kvm_sev_info(kvm);
  const ctx = sev_host(kvm.kernel).fw.snp_guests.get(sev.snp_context);
  return ctx?.ld;
}

/** The legacy SEV launch digest (GCTX.LD, SHA-256) once LAUNCH_MEASURE took it. */
export function sev_launch_digest(kvm: Kvm): Buffer | undefined {
  return sev_host(kvm.kernel).fw.guests.get(to_kvm_sev_info(kvm).handle)?.ld_final;
}

/** The legacy LAUNCH_MEASURE blob's length (MEASURE || MNONCE). */
export const SEV_LAUNCH_MEASURE_LEN = SEV_MEASURE_BLOB_LEN;
