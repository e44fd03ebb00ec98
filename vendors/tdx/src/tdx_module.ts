/**
 * The Intel TDX module (firmware in SEAM mode) and the TDX parts of the platform under it: the
 * KeyID partition (BIOS, IA32_MKTME_KEYID_PARTITIONING), the PAMT (per physical page: type and
 * owner), each TD's control structures (TDR/TDCS, TDVPR/TDCX), its Secure EPT with the SEPT entry
 * states, TD epochs for TLB tracking, the MRTD measurement, and the memory controller's TD-owner
 * bit per cache line (Logical or Cryptographic Integrity). The host kernel's side of KeyIDs
 * (tdx_guest_keyid_alloc(), arch/x86/virt/vmx/tdx/tdx.c) is here too.
 *
 * Sources: intel/tdx-module (TDX 1.5): src/vmm_dispatcher/api_calls/tdh_mem_page_{add,aug,
 * remove}.c, tdh_mem_range_block.c, tdh_mem_track.c, tdh_mr_{extend,finalize}.c,
 * src/td_dispatcher/vm_exits/tdg_mem_page_accept.c, include/auto_gen/sept_state_lookup.c
 * (which SEAMCALL is legal in which SEPT state), include/auto_gen/tdx_error_codes_defs.h;
 * shared/research/vendor-models.md §1 (its tables, checked against those files).
 *
 * Each SEAMCALL is a method returning the module's u64 status (tdx_errno.ts) and leaves nothing
 * changed when it fails. It charges its cost entry (costs.ts) and emits cocosim_tdx_seamcall.
 *
 * Simplifications, each stated where it is made: no concurrency (TDX_OPERAND_BUSY and
 * TDX_PREVIOUS_TLB_EPOCH_BUSY never occur: the simulator is single-threaded and every TDH.MEM.TRACK
 * is followed by KVM's kick of all vCPUs); no live-migration states (BLOCKEDW, EXPORTED_*), L2
 * VMs, or TD-partitioning; SHA-384 of the measurement is node:crypto's.
 *
 * Memory contents (core's PhysMem): a TD's private pages are ciphertext under its HKID, which
 * TDH.MNG.KEY.CONFIG programs (a reused HKID gets a new key). The memory controller keeps a
 * TD-owner bit per 64-byte line of a TD page: a read with a non-TD KeyID (host CPU, device DMA) of
 * a TD-owned line returns zeros and does not poison; a non-TD write clears the line's TD-owner
 * bit (Logical Integrity) or breaks its MAC (Cryptographic Integrity), so the TD's next access to
 * the line fails its integrity check: the line is poisoned and the TD takes a machine check.
 * [TDX-MAC] (secondary, citing the TDX spec); the zeros on a non-TD read are from the TDX spec
 * as vendor-models.md §1.7 recalls it (inferred). On parts with X86_BUG_TDX_PW_MCE (Sapphire
 * and Emerald Rapids) a partial (< 64 B) non-TD write poisons the line at once
 * (Documentation/arch/x86/tdx.rst, check_tdx_erratum()).
 */
import { createHash, type Hash } from 'node:crypto';
import { Errno, L1_CACHE_BYTES, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { GFP_KERNEL, type Kernel } from '@cocosim/mm';
import { tdx_define_costs } from './costs.js';
import {
  TDX_EPT_ENTRY_NOT_PRESENT, TDX_EPT_ENTRY_STATE_INCORRECT, TDX_EPT_WALK_FAILED, TDX_GPA_RANGE_ALREADY_BLOCKED,
  TDX_GPA_RANGE_NOT_BLOCKED, TDX_HKID_NOT_FREE, TDX_KEY_CONFIGURED, TDX_LIFECYCLE_STATE_INCORRECT,
  TDX_NO_HKID_READY_TO_WBCACHE, TDX_NO_VCPUS, TDX_OPERAND_ID_ATTRIBUTES, TDX_OPERAND_ID_EPTP_CONTROLS,
  TDX_OPERAND_ID_R8, TDX_OPERAND_ID_RCX, TDX_OPERAND_ID_RDX, TDX_OPERAND_ID_XFAM, TDX_OPERAND_INVALID,
  TDX_OP_STATE_INCORRECT, TDX_PAGE_ALREADY_ACCEPTED, TDX_PAGE_METADATA_INCORRECT, TDX_PAGE_SIZE_MISMATCH,
  TDX_SUCCESS, TDX_TDCS_NOT_ALLOCATED, TDX_TDCX_NUM_INCORRECT, TDX_TD_ASSOCIATED_PAGES_EXIST, TDX_TD_KEYS_NOT_CONFIGURED,
  TDX_TLB_TRACKING_NOT_DONE, TDX_VCPU_STATE_INCORRECT, TDX_WBCACHE_NOT_COMPLETE, TDX_FLUSHVP_NOT_DONE, api_error_with_operand_id,
} from './tdx_errno.js';
import { TDX_PS_1G, TDX_PS_2M, TDX_PS_4K } from './uapi.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** A SEAMCALL or TDCALL and its status (cocosim: the TDX module has no tracepoints). */
    cocosim_tdx_seamcall: { fn: string; gpa: bigint; level: number; err: bigint };
  }
}

/* ---- platform configuration ---- */

/** TDX integrity mode: Logical (TD-owner bit per line) or Cryptographic (28-bit MAC per line). */
export type TdxIntegrity = 'li' | 'ci';

export interface TdxPlatformOptions {
  /** MKTME KeyIDs (1..n; 0 is TME's); TDX KeyIDs start after them (default 15: TDX KeyIDs from 16). */
  readonly nr_mktme_keyids?: number;
  /** TDX KeyIDs; the first is the module's global KeyID (default 48: the range [16, 64) of tdx.rst). */
  readonly nr_tdx_keyids?: number;
  /** CPU packages: TDH.MNG.KEY.CONFIG and TDH.PHYMEM.CACHE.WB run once per package (default 2). */
  readonly nr_packages?: number;
  /** The integrity mode (default 'ci'). Both modes give the same outcomes for the accesses modelled. */
  readonly integrity?: TdxIntegrity;
  /** X86_BUG_TDX_PW_MCE: a partial non-TD write poisons the line (default true: SPR/EMR parts). */
  readonly partial_write_poison?: boolean;
  /** The CPU has 5-level EPT, so a TD may have GPAW 52 (default true). */
  readonly ept_5level?: boolean;
}

/* ---- SEPT entry states (include/auto_gen/sept_state_lookup.h SEPT_STATE_*_ENCODING) ---- */

export const SEPT_NL_MAPPED = 0x00;
export const SEPT_NL_BLOCKED = 0x08;
export const SEPT_REMOVED = 0x0c;
export const SEPT_FREE = 0x0e;
export const SEPT_MAPPED = 0x60;
export const SEPT_BLOCKEDW = 0x64;
export const SEPT_BLOCKED = 0x68;
export const SEPT_PENDING = 0x70;
export const SEPT_PENDING_BLOCKEDW = 0x74;
export const SEPT_PENDING_BLOCKED = 0x78;

const SEPT_STATE_NAMES = new Map<number, string>([
  [SEPT_NL_MAPPED, 'NL_MAPPED'], [SEPT_NL_BLOCKED, 'NL_BLOCKED'], [SEPT_REMOVED, 'REMOVED'], [SEPT_FREE, 'FREE'],
  [SEPT_MAPPED, 'MAPPED'], [SEPT_BLOCKEDW, 'BLOCKEDW'], [SEPT_BLOCKED, 'BLOCKED'], [SEPT_PENDING, 'PENDING'],
  [SEPT_PENDING_BLOCKEDW, 'PENDING_BLOCKEDW'], [SEPT_PENDING_BLOCKED, 'PENDING_BLOCKED'],
]);

/** The SEPT state's name ("PENDING"). */
export function sept_state_name(state: number): string {
  return SEPT_STATE_NAMES.get(state) ?? `0x${state.toString(16)}`;
}

/** SEAMCALL/TDCALL leaves whose legality depends on the SEPT entry state (include/tdx_api_defs.h numbers). */
export type SeptLeaf = 'TDH.MEM.PAGE.ADD' | 'TDH.MEM.SEPT.ADD' | 'TDH.MEM.PAGE.AUG' | 'TDH.MEM.RANGE.BLOCK' | 'TDH.MEM.PAGE.DEMOTE'
  | 'TDH.MR.EXTEND' | 'TDH.MEM.PAGE.REMOVE' | 'TDH.MEM.RANGE.UNBLOCK' | 'TDG.MEM.PAGE.ACCEPT';

/**
 * seamcall_sept_state_lookup[leaf][state] (include/auto_gen/sept_state_lookup.c), restricted to
 * the states modelled: the states in which the leaf may operate on the entry.
 */
export const SEPT_STATE_LEGAL: Readonly<Record<SeptLeaf, readonly number[]>> = {
  'TDH.MEM.PAGE.ADD': [SEPT_FREE],
  'TDH.MEM.SEPT.ADD': [SEPT_FREE],
  'TDH.MEM.PAGE.AUG': [SEPT_FREE, SEPT_REMOVED],
  'TDH.MEM.RANGE.BLOCK': [SEPT_NL_MAPPED, SEPT_MAPPED, SEPT_BLOCKEDW, SEPT_PENDING, SEPT_PENDING_BLOCKEDW],
  'TDH.MEM.PAGE.DEMOTE': [SEPT_MAPPED, SEPT_BLOCKED, SEPT_PENDING, SEPT_PENDING_BLOCKED],
  'TDH.MR.EXTEND': [SEPT_MAPPED],
  'TDH.MEM.PAGE.REMOVE': [SEPT_MAPPED, SEPT_BLOCKED, SEPT_BLOCKEDW, SEPT_PENDING, SEPT_PENDING_BLOCKED, SEPT_PENDING_BLOCKEDW],
  'TDH.MEM.RANGE.UNBLOCK': [SEPT_NL_BLOCKED, SEPT_BLOCKED, SEPT_PENDING_BLOCKED],
  'TDG.MEM.PAGE.ACCEPT': [SEPT_PENDING],
};

function sept_state_is_leaf_allowed(leaf: SeptLeaf, state: number): boolean {
  return SEPT_STATE_LEGAL[leaf].includes(state);
}

function is_nl_state(state: number): boolean {
  return state === SEPT_NL_MAPPED || state === SEPT_NL_BLOCKED;
}

/** sept_state_is_any_blocked(). */
function sept_state_is_any_blocked(state: number): boolean {
  return state === SEPT_BLOCKED || state === SEPT_PENDING_BLOCKED || state === SEPT_NL_BLOCKED;
}

/** sept_state_is_guest_accessible_leaf(): the guest may access the page (MAPPED; BLOCKEDW for reads). */
function sept_state_is_guest_accessible_leaf(state: number): boolean {
  return state === SEPT_MAPPED || state === SEPT_BLOCKEDW;
}

/**
 * sept_state_is_tlb_tracking_required() (sept_special_flags_lookup): the guest may hold TLB
 * entries for the page, so REMOVE/DEMOTE of a runnable TD need it blocked and tracked. PENDING
 * pages were never guest-accessible (inferred from the flag's purpose; the lookup table itself
 * is not in the note).
 */
function sept_state_is_tlb_tracking_required(state: number): boolean {
  return state === SEPT_MAPPED || state === SEPT_BLOCKED || state === SEPT_BLOCKEDW || is_nl_state(state);
}

/* ---- PAMT (Physical Address Metadata Table) ---- */

/** PAMT page types (src/common/memory_handlers/pamt_manager.h page_type_t). */
export type PamtPageType = 'PT_NDA' | 'PT_RSVD' | 'PT_REG' | 'PT_TDR' | 'PT_TDCX' | 'PT_TDVPR' | 'PT_EPT';

/** A PAMT entry: the page's type, its owner TD (the TDR), and the epoch at which it was blocked. */
export interface PamtEntry {
  pt: PamtPageType;
  owner: Td | null;
  bepoch: number;
}

/* ---- TD and vCPU control structures ---- */

/** TDR.lifecycle_state. */
export type TdLifecycle = 'TD_HKID_ASSIGNED' | 'TD_KEYS_CONFIGURED' | 'TD_BLOCKED' | 'TD_TEARDOWN';
/** TDCS.op_state (the states KVM's flows reach). */
export type TdOpState = 'OP_STATE_UNINITIALIZED' | 'OP_STATE_INITIALIZED' | 'OP_STATE_RUNNABLE';

/** A Secure EPT entry at some level: its state and the HPA it holds (the page, or the SEPT page below). */
export interface SeptEntry {
  state: number;
  pfn: number;
}

/** TD_PARAMS as TDH.MNG.INIT reads it (the fields modelled). */
export interface TdParams {
  readonly attributes: bigint;
  readonly xfam: bigint;
  /** 48 or 52; the EPT has 4 or 5 levels. */
  readonly gpaw: 48 | 52;
  readonly max_vcpus: number;
}

/** A TD vCPU: TDVPR and TDCX pages (TDVPS). */
export class TdVp {
  readonly tdcx: number[] = [];
  initialized = false;
  /** The vCPU was flushed from its logical processor (TDH.VP.FLUSH). */
  associated = false;

  constructor(readonly td: Td, readonly tdvpr_pfn: number) {}
}

/** A trust domain: TDR, TDCS, SEPT, epochs and measurement. */
export class Td {
  lifecycle: TdLifecycle = 'TD_HKID_ASSIGNED';
  op_state: TdOpState = 'OP_STATE_UNINITIALIZED';
  /** The module declared the TD fatal (a machine check in SEAM non-root): TDH.VP.ENTER fails. */
  fatal = false;
  readonly tdcs: number[] = [];
  /** Packages whose memory controller has the TD's key (TDH.MNG.KEY.CONFIG). */
  readonly keys_configured = new Set<number>();
  /** Packages whose caches were written back for this HKID (TDH.PHYMEM.CACHE.WB), at teardown. */
  readonly cache_wb = new Set<number>();
  vpflushdone = false;
  params: TdParams | null = null;
  /** TDCS.epoch_tracking.td_epoch: TDH.MEM.TRACK increments it. */
  td_epoch = 1;
  /** TDR.chldcnt: 4 KiB pages the TD owns (private pages and SEPT pages). */
  chldcnt = 0;
  readonly vps: TdVp[] = [];
  /** TDCS.measurement_fields.td_sha_ctx until TDH.MR.FINALIZE, then MRTD. */
  sha: Hash | null = null;
  mrtd: Buffer | null = null;
  /** The SEPT: entries by TDX level (0 = 4 KiB ... 4 = PML5E), keyed by gfn / 512^level. */
  readonly sept: Map<number, SeptEntry>[] = [new Map(), new Map(), new Map(), new Map(), new Map()];

  constructor(readonly module: TdxModule, readonly tdr_pfn: number, readonly hkid: number) {}

  /** The EPT levels (4 or 5), from TD_PARAMS' GPAW. */
  get ept_levels(): number {
    return this.params?.gpaw === 52 ? 5 : 4;
  }
}

/** Where a walk of the SEPT to `level` ended. */
interface SeptWalk {
  /** The walk reached `level`: `entry` is there (FREE when absent). */
  readonly ok: boolean;
  /** The level the walk ended at (the requested one, or a higher one where it stopped). */
  readonly level: number;
  /** The entry it ended at (a synthetic FREE entry where there is none). */
  readonly entry: SeptEntry;
}

const FREE_ENTRY: SeptEntry = Object.freeze({ state: SEPT_FREE, pfn: -1 });

/** 4 KiB pages under a SEPT entry of TDX level `level`. */
function pages_per_level(level: number): number {
  return 512 ** level;
}

/** The memory controller's per-line state of a TD-owned page. */
interface TdLines {
  readonly td: Td;
  /** Lines written by non-TD software since the TD last owned them (TD-owner bit clear / MAC broken). */
  host_written: bigint;
}

/** What a non-TD access (host CPU, device) to a page does (cocosim: the memory controller's answer). */
export type NonTdAccess = 'ok' | 'zeros' | 'mce';

/**
 * The TDX module of one host, and the platform state under it. Created per Kernel
 * (tdx_module_of()), never shared between hosts.
 */
export class TdxModule {
  readonly nr_packages: number;
  readonly integrity: TdxIntegrity;
  readonly partial_write_poison: boolean;
  readonly ept_5level: boolean;
  /** The first TDX KeyID: the module's global KeyID (TDR, PAMT). */
  readonly tdx_keyid_start: number;
  readonly nr_tdx_keyids: number;
  /** Guest KeyIDs the host kernel allocated (tdx_guest_keyid_alloc()'s ida). */
  private readonly keyids_in_use = new Set<number>();
  /** KOT: the TD holding each HKID in the module (from TDH.MNG.CREATE to TDH.MNG.KEY.FREEID). */
  private readonly kot = new Map<number, Td>();
  private readonly pamt = new Map<number, PamtEntry>();
  private readonly lines = new Map<number, TdLines>();

  constructor(readonly kernel: Kernel, opts: TdxPlatformOptions = {}) {
    this.nr_packages = opts.nr_packages ?? 2;
    this.integrity = opts.integrity ?? 'ci';
    this.partial_write_poison = opts.partial_write_poison ?? true;
    this.ept_5level = opts.ept_5level ?? true;
    this.tdx_keyid_start = (opts.nr_mktme_keyids ?? 15) + 1;
    this.nr_tdx_keyids = opts.nr_tdx_keyids ?? 48;
    tdx_define_costs(kernel.cost);
  }

  /* ---- the host kernel's KeyIDs (arch/x86/virt/vmx/tdx/tdx.c) ---- */

  /**
   * tdx_guest_keyid_alloc(): the lowest free guest KeyID (the TDX KeyIDs after the global one),
   * or -ENOSPC (ida_alloc_range()).
   */
  tdx_guest_keyid_alloc(): number {
    for (let k = this.tdx_keyid_start + 1; k < this.tdx_keyid_start + this.nr_tdx_keyids; k++) {
      if (!this.keyids_in_use.has(k)) {
        this.keyids_in_use.add(k);
        return k;
      }
    }
    return -Errno.ENOSPC;
  }

  /** tdx_guest_keyid_free(). */
  tdx_guest_keyid_free(keyid: number): void {
    this.keyids_in_use.delete(keyid);
  }

  /* ---- inspection ---- */

  /**
   * The module's tables as they are, read-only, for the state digest and the DEBUG_VM rules
   * (tdx_debug.ts): the host's guest KeyIDs, the KOT, the PAMT and the per-line owner state.
   */
  debug_tables(): {
    readonly keyids: ReadonlySet<number>;
    readonly kot: ReadonlyMap<number, Td>;
    readonly pamt: ReadonlyMap<number, Readonly<PamtEntry>>;
    readonly lines: ReadonlyMap<number, { readonly td: Td; readonly host_written: bigint }>;
  } {
    return { keyids: this.keyids_in_use, kot: this.kot, pamt: this.pamt, lines: this.lines };
  }

  /** The PAMT entry of `pfn` (PT_NDA for a page the module does not track). */
  pamt_get(pfn: number): Readonly<PamtEntry> {
    return this.pamt.get(pfn) ?? { pt: 'PT_NDA', owner: null, bepoch: 0 };
  }

  /** The pages the PAMT gives to `td` (TDR, TDCS, TDVPS, S-EPT and private pages), by pfn. */
  pages_owned(td: Td): Map<number, PamtPageType> {
    const out = new Map<number, PamtPageType>();
    for (const [pfn, e] of this.pamt) if (e.owner === td) out.set(pfn, e.pt);
    return out;
  }

  /** The SEPT leaf mapping `gfn` (4 KiB or 2 MiB), or undefined. */
  sept_leaf(td: Td, gfn: number): { level: number; entry: SeptEntry } | undefined {
    for (let level = TDX_PS_4K; level <= TDX_PS_1G; level++) {
      const e = td.sept[level].get(Math.floor(gfn / pages_per_level(level)));
      if (e !== undefined && !is_nl_state(e.state)) return { level, entry: e };
    }
    return undefined;
  }

  /** The SEPT state name of the 4 KiB (or larger) leaf mapping `gfn`, or FREE. */
  sept_state(td: Td, gfn: number): string {
    const leaf = this.sept_leaf(td, gfn);
    return sept_state_name(leaf?.entry.state ?? SEPT_FREE);
  }

  /* ---- SEAMCALL plumbing ---- */

  /** Charge the call's cost, emit its tracepoint, return its status. */
  private done(fn: string, cost: string, gpa: bigint, level: number, err: bigint): bigint {
    const kernel = this.kernel;
    kernel.cost.charge(cost);
    if (kernel.tracer.enabled('cocosim_tdx_seamcall')) kernel.tracer.emit('cocosim_tdx_seamcall', { fn, gpa, level, err });
    return err;
  }

  /** check_gpa_validity(gpa, gpaw, PRIVATE_ONLY): below 2^GPAW and without the shared bit. */
  private private_gpa_valid(td: Td, gpa: bigint): boolean {
    const gpaw = BigInt(td.params?.gpaw ?? 48);
    return gpa < 1n << gpaw && (gpa & (1n << (gpaw - 1n))) === 0n;
  }

  /**
   * walk_private_gpa(): walk the SEPT from the root to `level`. Every level above must hold a
   * non-leaf (NL_MAPPED) entry; the walk stops at a missing one or at a leaf above `level`.
   */
  private walk(td: Td, gfn: number, level: number): SeptWalk {
    for (let l = td.ept_levels - 1; l > level; l--) {
      const e = td.sept[l].get(Math.floor(gfn / pages_per_level(l)));
      if (e === undefined || e.state === SEPT_FREE) return { ok: false, level: l, entry: e ?? FREE_ENTRY };
      if (!is_nl_state(e.state)) return { ok: false, level: l, entry: e };
      if (e.state === SEPT_NL_BLOCKED) return { ok: false, level: l, entry: e };
    }
    return { ok: true, level, entry: td.sept[level].get(Math.floor(gfn / pages_per_level(level))) ?? FREE_ENTRY };
  }

  private set_entry(td: Td, level: number, gfn: number, e: SeptEntry | null): void {
    const idx = Math.floor(gfn / pages_per_level(level));
    if (e === null) td.sept[level].delete(idx);
    else td.sept[level].set(idx, e);
  }

  /** check_lock_and_map_explicit_*: a page given to the module must be PT_NDA (else TDX_PAGE_METADATA_INCORRECT). */
  private page_is_free(pfn: number): boolean {
    return !this.pamt.has(pfn);
  }

  private pamt_set(pfn: number, pt: PamtPageType, owner: Td): void {
    this.pamt.set(pfn, { pt, owner, bepoch: 0 });
  }

  /* ---- TD creation: TDH.MNG.* ---- */

  /**
   * TDH.MNG.CREATE: a TDR at `tdr_pfn` (PT_NDA) for HKID `hkid`, a private TDX KeyID no other TD
   * holds.
   */
  tdh_mng_create(tdr_pfn: number, hkid: number): { err: bigint; td?: Td } {
    if (!this.page_is_free(tdr_pfn)) return { err: this.done('TDH.MNG.CREATE', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX)) };
    if (hkid <= this.tdx_keyid_start || hkid >= this.tdx_keyid_start + this.nr_tdx_keyids) {
      return { err: this.done('TDH.MNG.CREATE', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RDX)) };
    }
    if (this.kot.has(hkid)) return { err: this.done('TDH.MNG.CREATE', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_HKID_NOT_FREE, TDX_OPERAND_ID_RDX)) };
    const td = new Td(this, tdr_pfn, hkid);
    this.kot.set(hkid, td);
    this.pamt_set(tdr_pfn, 'PT_TDR', td);
    return { err: this.done('TDH.MNG.CREATE', 'tdx_seamcall', 0n, 0, TDX_SUCCESS), td };
  }

  /**
   * TDH.MNG.KEY.CONFIG on a CPU of package `pkg`: program the TD's key into that package's memory
   * controller (PCONFIG); when every package has it, the TD's keys are configured. A package
   * already done answers TDX_KEY_CONFIGURED.
   */
  tdh_mng_key_config(td: Td, pkg: number): bigint {
    if (td.lifecycle !== 'TD_HKID_ASSIGNED') return this.done('TDH.MNG.KEY.CONFIG', 'tdx_seamcall', 0n, 0, TDX_LIFECYCLE_STATE_INCORRECT);
    if (td.keys_configured.has(pkg)) return this.done('TDH.MNG.KEY.CONFIG', 'tdx_seamcall', 0n, 0, TDX_KEY_CONFIGURED);
    // A new key for the KeyID: a reused HKID never decrypts its previous owner's pages.
    if (td.keys_configured.size === 0) this.kernel.phys.programKey(td.hkid);
    td.keys_configured.add(pkg);
    if (td.keys_configured.size === this.nr_packages) td.lifecycle = 'TD_KEYS_CONFIGURED';
    return this.done('TDH.MNG.KEY.CONFIG', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /** TDH.MNG.ADDCX: a TDCS page (PT_NDA) once the keys are configured, up to `nr` pages. */
  tdh_mng_addcx(td: Td, pfn: number, nr: number): bigint {
    if (td.lifecycle !== 'TD_KEYS_CONFIGURED') return this.done('TDH.MNG.ADDCX', 'tdx_seamcall', 0n, 0, TDX_TD_KEYS_NOT_CONFIGURED);
    if (td.tdcs.length >= nr) return this.done('TDH.MNG.ADDCX', 'tdx_seamcall', 0n, 0, TDX_TDCX_NUM_INCORRECT);
    if (!this.page_is_free(pfn)) return this.done('TDH.MNG.ADDCX', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX));
    td.tdcs.push(pfn);
    this.pamt_set(pfn, 'PT_TDCX', td);
    return this.done('TDH.MNG.ADDCX', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /**
   * TDH.MNG.INIT: TD_PARAMS checked against the module's TD configuration (attributes and XFAM
   * within the fixed bits, GPAW 48 or 52 with 5-level EPT); the measurement starts.
   */
  tdh_mng_init(td: Td, params: TdParams, conf: TdxTdConf, nr_tdcs: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MNG.INIT', 'tdx_seamcall', 0n, 0, err);
    if (td.lifecycle !== 'TD_KEYS_CONFIGURED') return fail(TDX_TD_KEYS_NOT_CONFIGURED);
    if (td.tdcs.length !== nr_tdcs) return fail(TDX_TDCS_NOT_ALLOCATED);
    if (td.op_state !== 'OP_STATE_UNINITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if ((params.attributes & conf.attributes_fixed1) !== conf.attributes_fixed1 || params.attributes & ~conf.attributes_fixed0) {
      return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_ATTRIBUTES));
    }
    if ((params.xfam & conf.xfam_fixed1) !== conf.xfam_fixed1 || params.xfam & ~conf.xfam_fixed0) {
      return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_XFAM));
    }
    if (params.gpaw === 52 && !this.ept_5level) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_EPTP_CONTROLS));
    td.params = params;
    td.sha = createHash('sha384');
    td.op_state = 'OP_STATE_INITIALIZED';
    return fail(TDX_SUCCESS);
  }

  /* ---- vCPUs: TDH.VP.* ---- */

  /** TDH.VP.CREATE: a TDVPR page for a new vCPU of an initialized (not yet runnable) TD. */
  tdh_vp_create(td: Td, tdvpr_pfn: number): { err: bigint; vp?: TdVp } {
    if (td.op_state !== 'OP_STATE_INITIALIZED') return { err: this.done('TDH.VP.CREATE', 'tdx_seamcall', 0n, 0, TDX_OP_STATE_INCORRECT) };
    if (!this.page_is_free(tdvpr_pfn)) return { err: this.done('TDH.VP.CREATE', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX)) };
    const vp = new TdVp(td, tdvpr_pfn);
    this.pamt_set(tdvpr_pfn, 'PT_TDVPR', td);
    td.vps.push(vp);
    return { err: this.done('TDH.VP.CREATE', 'tdx_seamcall', 0n, 0, TDX_SUCCESS), vp };
  }

  /** TDH.VP.ADDCX: a TDCX page of the vCPU. */
  tdh_vp_addcx(vp: TdVp, pfn: number): bigint {
    if (vp.initialized) return this.done('TDH.VP.ADDCX', 'tdx_seamcall', 0n, 0, TDX_VCPU_STATE_INCORRECT);
    if (!this.page_is_free(pfn)) return this.done('TDH.VP.ADDCX', 'tdx_seamcall', 0n, 0, api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX));
    vp.tdcx.push(pfn);
    this.pamt_set(pfn, 'PT_TDCX', vp.td);
    return this.done('TDH.VP.ADDCX', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /** TDH.VP.INIT: the vCPU's TDVPS is complete (`nr_tdcx` pages) and initialized. */
  tdh_vp_init(vp: TdVp, nr_tdcx: number): bigint {
    if (vp.initialized || vp.tdcx.length !== nr_tdcx) return this.done('TDH.VP.INIT', 'tdx_seamcall', 0n, 0, TDX_VCPU_STATE_INCORRECT);
    vp.initialized = true;
    vp.associated = true;
    return this.done('TDH.VP.INIT', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /** The TD's vCPUs that TDH.MR.FINALIZE counts (num_vcpus: created and initialized). */
  private num_vcpus(td: Td): number {
    return td.vps.filter((v) => v.initialized).length;
  }

  /* ---- SEPT: TDH.MEM.SEPT.ADD ---- */

  /**
   * TDH.MEM.SEPT.ADD: link SEPT page `pfn` (PT_NDA) under the entry of TDX level `level` (1 = a
   * PD entry, getting a 4 KiB page table...) covering `gpa`, which must be FREE.
   */
  tdh_mem_sept_add(td: Td, gpa: bigint, level: number, pfn: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MEM.SEPT.ADD', 'tdx_seamcall', gpa, level, err);
    if (td.op_state === 'OP_STATE_UNINITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (level < TDX_PS_2M || level >= td.ept_levels) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    if (!this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    if (!sept_state_is_leaf_allowed('TDH.MEM.SEPT.ADD', w.entry.state)) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    if (!this.page_is_free(pfn)) return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_R8));
    this.set_entry(td, level, gfn, { state: SEPT_NL_MAPPED, pfn });
    this.pamt_set(pfn, 'PT_EPT', td);
    td.chldcnt++;
    return fail(TDX_SUCCESS);
  }

  /* ---- the initial image: TDH.MEM.PAGE.ADD, TDH.MR.EXTEND, TDH.MR.FINALIZE ---- */

  /** sha384_update_128B() of one { api_name[16], gpa, 0... } block. */
  private measure_api(td: Td, api: string, gpa: bigint): void {
    const block = Buffer.alloc(128);
    block.write(api, 0, 'latin1');
    block.writeBigUInt64LE(gpa, 16);
    td.sha!.update(block);
  }

  /**
   * TDH.MEM.PAGE.ADD (before finalize): copy the 4 KiB `src` into private page `pfn` (PT_NDA) at
   * private `gpa` with the TD's key (MOVDIR64B), map it MAPPED, and extend MRTD with
   * "MEM.PAGE.ADD" and the GPA (not the contents).
   */
  tdh_mem_page_add(td: Td, gpa: bigint, pfn: number, src: Uint8Array): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MEM.PAGE.ADD', 'tdx_tdh_mem_page_add', gpa, TDX_PS_4K, err);
    if (td.op_state !== 'OP_STATE_INITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (gpa % BigInt(PAGE_SIZE) !== 0n || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, TDX_PS_4K);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    if (!sept_state_is_leaf_allowed('TDH.MEM.PAGE.ADD', w.entry.state)) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    if (!this.page_is_free(pfn)) return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_R8));
    this.td_write_page(td, pfn, src);
    this.set_entry(td, TDX_PS_4K, gfn, { state: SEPT_MAPPED, pfn });
    this.measure_api(td, 'MEM.PAGE.ADD', gpa);
    td.chldcnt++;
    this.pamt_set(pfn, 'PT_REG', td);
    return fail(TDX_SUCCESS);
  }

  /**
   * TDH.MR.EXTEND (before finalize): extend MRTD with "MR.EXTEND" and the GPA, then the 256 bytes
   * of the MAPPED page at `gpa` (256-byte aligned), read with the TD's key.
   */
  tdh_mr_extend(td: Td, gpa: bigint): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MR.EXTEND', 'tdx_tdh_mr_extend', gpa, TDX_PS_4K, err);
    if (td.op_state !== 'OP_STATE_INITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (gpa % 256n !== 0n || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, TDX_PS_4K);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_NOT_PRESENT, TDX_OPERAND_ID_RCX));
    if (!sept_state_is_leaf_allowed('TDH.MR.EXTEND', w.entry.state)) return fail(TDX_EPT_ENTRY_NOT_PRESENT);
    const data = this.kernel.phys.read(w.entry.pfn as Pfn, Number(gpa % BigInt(PAGE_SIZE)), 256, td.hkid);
    if (!(data instanceof Uint8Array)) return fail(TDX_EPT_ENTRY_NOT_PRESENT);
    this.measure_api(td, 'MR.EXTEND', gpa);
    td.sha!.update(data);
    return fail(TDX_SUCCESS);
  }

  /** TDH.MR.FINALIZE: MRTD is the SHA-384 of what was extended; the TD (with >= 1 vCPU) becomes runnable. */
  tdh_mr_finalize(td: Td): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MR.FINALIZE', 'tdx_seamcall', 0n, 0, err);
    if (td.op_state !== 'OP_STATE_INITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (this.num_vcpus(td) === 0) return fail(TDX_NO_VCPUS);
    td.mrtd = td.sha!.digest();
    td.sha = null;
    td.op_state = 'OP_STATE_RUNNABLE';
    return fail(TDX_SUCCESS);
  }

  /* ---- the running TD's memory: AUG, BLOCK, TRACK, REMOVE, DEMOTE ---- */

  /**
   * TDH.MEM.PAGE.AUG (runnable TD): map `pfn` (4 KiB, or a 2 MiB-aligned run of 512 PT_NDA
   * pages) at private `gpa` as PENDING. The contents are not touched: the guest's ACCEPT zeroes.
   */
  tdh_mem_page_aug(td: Td, gpa: bigint, level: number, pfn: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MEM.PAGE.AUG', 'tdx_tdh_mem_page_aug', gpa, level, err);
    if (td.op_state !== 'OP_STATE_RUNNABLE') return fail(TDX_OP_STATE_INCORRECT);
    if (level !== TDX_PS_4K && level !== TDX_PS_2M) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const n = pages_per_level(level);
    if (gpa % BigInt(n * PAGE_SIZE) !== 0n || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    if (!sept_state_is_leaf_allowed('TDH.MEM.PAGE.AUG', w.entry.state)) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    if (pfn % n !== 0) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_R8));
    for (let i = 0; i < n; i++) if (!this.page_is_free(pfn + i)) return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_R8));
    this.set_entry(td, level, gfn, { state: SEPT_PENDING, pfn });
    for (let i = 0; i < n; i++) this.pamt_set(pfn + i, 'PT_REG', td);
    td.chldcnt += n;
    return fail(TDX_SUCCESS);
  }

  /**
   * TDH.MEM.RANGE.BLOCK: the entry at `gpa`/`level` no longer translates (RWX cleared; a guest
   * access exits to the host); the TD's epoch is recorded in the page's PAMT entry (BEPOCH).
   */
  tdh_mem_range_block(td: Td, gpa: bigint, level: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MEM.RANGE.BLOCK', 'tdx_seamcall', gpa, level, err);
    if (td.op_state === 'OP_STATE_UNINITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (level < TDX_PS_4K || level >= td.ept_levels || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    const e = w.entry;
    if (!sept_state_is_leaf_allowed('TDH.MEM.RANGE.BLOCK', e.state)) {
      return fail(api_error_with_operand_id(sept_state_is_any_blocked(e.state) ? TDX_GPA_RANGE_ALREADY_BLOCKED : TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    }
    e.state = e.state === SEPT_NL_MAPPED ? SEPT_NL_BLOCKED : e.state === SEPT_PENDING || e.state === SEPT_PENDING_BLOCKEDW ? SEPT_PENDING_BLOCKED : SEPT_BLOCKED;
    const p = this.pamt.get(e.pfn);
    if (p !== undefined) p.bepoch = td.td_epoch;
    return fail(TDX_SUCCESS);
  }

  /**
   * TDH.MEM.TRACK: the TD's epoch advances; a page blocked in an earlier epoch is tracked once
   * every vCPU left guest mode (KVM kicks them all right after).
   */
  tdh_mem_track(td: Td): bigint {
    if (td.op_state === 'OP_STATE_UNINITIALIZED') return this.done('TDH.MEM.TRACK', 'tdx_seamcall', 0n, 0, TDX_OP_STATE_INCORRECT);
    td.td_epoch++;
    return this.done('TDH.MEM.TRACK', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /**
   * TDH.MEM.PAGE.REMOVE: unmap the leaf at `gpa`/`level` (FREE) and give its page(s) back to the
   * host (PT_NDA). In a runnable TD a page the guest could access must first be blocked
   * (TDX_GPA_RANGE_NOT_BLOCKED) and tracked (TDX_TLB_TRACKING_NOT_DONE).
   * @returns the status and the pfn removed
   */
  tdh_mem_page_remove(td: Td, gpa: bigint, level: number): { err: bigint; pfn: number } {
    const fail = (err: bigint, pfn = -1): { err: bigint; pfn: number } => ({ err: this.done('TDH.MEM.PAGE.REMOVE', 'tdx_seamcall', gpa, level, err), pfn });
    if (td.op_state === 'OP_STATE_UNINITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (level < TDX_PS_4K || level > TDX_PS_1G || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    const e = w.entry;
    if (is_nl_state(e.state) || !sept_state_is_leaf_allowed('TDH.MEM.PAGE.REMOVE', e.state)) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    if (sept_state_is_tlb_tracking_required(e.state) && td.op_state === 'OP_STATE_RUNNABLE') {
      if (!sept_state_is_any_blocked(e.state)) return fail(api_error_with_operand_id(TDX_GPA_RANGE_NOT_BLOCKED, TDX_OPERAND_ID_RCX));
      if (!(this.pamt.get(e.pfn)!.bepoch < td.td_epoch)) return fail(api_error_with_operand_id(TDX_TLB_TRACKING_NOT_DONE, TDX_OPERAND_ID_RCX));
    }
    const n = pages_per_level(level);
    this.set_entry(td, level, gfn, null);
    for (let i = 0; i < n; i++) this.pamt.delete(e.pfn + i);
    td.chldcnt -= n;
    return fail(TDX_SUCCESS, e.pfn);
  }

  /**
   * TDH.MEM.PAGE.DEMOTE: split the 2 MiB leaf at `gpa` into 512 4 KiB leaves in a new SEPT page
   * (`sept_pfn`, PT_NDA). A runnable TD's MAPPED leaf must be blocked and tracked first; the new
   * leaves take the unblocked state (MAPPED, PENDING).
   */
  tdh_mem_page_demote(td: Td, gpa: bigint, level: number, sept_pfn: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.MEM.PAGE.DEMOTE', 'tdx_seamcall', gpa, level, err);
    if (td.op_state === 'OP_STATE_UNINITIALIZED') return fail(TDX_OP_STATE_INCORRECT);
    if (level !== TDX_PS_2M || !this.private_gpa_valid(td, gpa)) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) return fail(api_error_with_operand_id(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX));
    const e = w.entry;
    if (!sept_state_is_leaf_allowed('TDH.MEM.PAGE.DEMOTE', e.state)) return fail(api_error_with_operand_id(TDX_EPT_ENTRY_STATE_INCORRECT, TDX_OPERAND_ID_RCX));
    if (sept_state_is_tlb_tracking_required(e.state) && td.op_state === 'OP_STATE_RUNNABLE') {
      if (!sept_state_is_any_blocked(e.state)) return fail(api_error_with_operand_id(TDX_GPA_RANGE_NOT_BLOCKED, TDX_OPERAND_ID_RCX));
      if (!(this.pamt.get(e.pfn)!.bepoch < td.td_epoch)) return fail(api_error_with_operand_id(TDX_TLB_TRACKING_NOT_DONE, TDX_OPERAND_ID_RCX));
    }
    if (!this.page_is_free(sept_pfn)) return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_R8));
    const small = e.state === SEPT_BLOCKED || e.state === SEPT_MAPPED ? SEPT_MAPPED : SEPT_PENDING;
    const base = gfn - (gfn % 512);
    for (let i = 0; i < 512; i++) this.set_entry(td, TDX_PS_4K, base + i, { state: small, pfn: e.pfn + i });
    this.set_entry(td, level, gfn, { state: SEPT_NL_MAPPED, pfn: sept_pfn });
    this.pamt_set(sept_pfn, 'PT_EPT', td);
    td.chldcnt++;
    return fail(TDX_SUCCESS);
  }

  /* ---- the guest: TDG.MEM.PAGE.ACCEPT ---- */

  /**
   * TDG.MEM.PAGE.ACCEPT (a TDCALL; level 0 = 4 KiB, 1 = 2 MiB): a PENDING page at private `gpa`
   * is zeroed with the TD's key and becomes MAPPED. A guest-accessible leaf at or above the level
   * answers TDX_PAGE_ALREADY_ACCEPTED, a page table where a leaf of that size was asked
   * TDX_PAGE_SIZE_MISMATCH (both with the level found in bits 31:0); anything else (FREE, a missing
   * SEPT level, BLOCKED) is an EPT violation: the TD exits to KVM (`violation`).
   */
  tdg_mem_page_accept(td: Td, gpa: bigint, level: number): { err: bigint; violation: boolean } {
    const ret = (err: bigint, violation = false): { err: bigint; violation: boolean } => {
      if (err === TDX_SUCCESS && !violation) this.kernel.cost.charge('tdx_tdg_mem_page_accept_4k', pages_per_level(level));
      const tracer = this.kernel.tracer;
      if (tracer.enabled('cocosim_tdx_seamcall')) tracer.emit('cocosim_tdx_seamcall', { fn: 'TDG.MEM.PAGE.ACCEPT', gpa, level, err });
      return { err, violation };
    };
    if (level !== TDX_PS_4K && level !== TDX_PS_2M) return ret(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const n = pages_per_level(level);
    if (gpa % BigInt(n * PAGE_SIZE) !== 0n || !this.private_gpa_valid(td, gpa)) return ret(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    const gfn = Number(gpa >> 12n);
    const w = this.walk(td, gfn, level);
    if (!w.ok) {
      if (sept_state_is_guest_accessible_leaf(w.entry.state)) return ret(api_error_with_operand_id(TDX_PAGE_ALREADY_ACCEPTED, BigInt(w.level)));
      return ret(TDX_SUCCESS, true);
    }
    const e = w.entry;
    if (e.state !== SEPT_FREE && is_nl_state(e.state)) return ret(api_error_with_operand_id(TDX_PAGE_SIZE_MISMATCH, BigInt(level)));
    if (sept_state_is_guest_accessible_leaf(e.state)) return ret(api_error_with_operand_id(TDX_PAGE_ALREADY_ACCEPTED, BigInt(level)));
    if (!sept_state_is_leaf_allowed('TDG.MEM.PAGE.ACCEPT', e.state)) return ret(TDX_SUCCESS, true);
    for (let i = 0; i < n; i++) this.td_clear_page(td, e.pfn + i);
    e.state = SEPT_MAPPED;
    return ret(TDX_SUCCESS);
  }

  /* ---- teardown: VPFLUSHDONE, CACHE.WB, KEY.FREEID, PAGE.RECLAIM, PAGE.WBINVD ---- */

  /** TDH.VP.FLUSH: the vCPU's cached state is flushed from its logical processor. */
  tdh_vp_flush(vp: TdVp): bigint {
    vp.associated = false;
    return this.done('TDH.VP.FLUSH', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /** TDH.MNG.VPFLUSHDONE: every vCPU is flushed; the TD's HKID can be reclaimed (TD_BLOCKED). */
  tdh_mng_vpflushdone(td: Td): bigint {
    if (td.vps.some((v) => v.associated)) return this.done('TDH.MNG.VPFLUSHDONE', 'tdx_seamcall', 0n, 0, TDX_FLUSHVP_NOT_DONE);
    if (td.lifecycle !== 'TD_KEYS_CONFIGURED' && td.lifecycle !== 'TD_HKID_ASSIGNED') return this.done('TDH.MNG.VPFLUSHDONE', 'tdx_seamcall', 0n, 0, TDX_LIFECYCLE_STATE_INCORRECT);
    td.vpflushdone = true;
    td.lifecycle = 'TD_BLOCKED';
    return this.done('TDH.MNG.VPFLUSHDONE', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /**
   * TDH.PHYMEM.CACHE.WB on package `pkg`: write back the caches of every HKID being reclaimed
   * (a WBINVD of the package). Nothing to do answers TDX_NO_HKID_READY_TO_WBCACHE.
   */
  tdh_phymem_cache_wb(pkg: number): bigint {
    let any = false;
    for (const td of this.kot.values()) {
      if (td.lifecycle === 'TD_BLOCKED' && !td.cache_wb.has(pkg)) {
        td.cache_wb.add(pkg);
        any = true;
      }
    }
    this.kernel.cost.charge('wbinvd');
    return this.done('TDH.PHYMEM.CACHE.WB', 'tdx_seamcall', 0n, 0, any ? TDX_SUCCESS : TDX_NO_HKID_READY_TO_WBCACHE);
  }

  /** TDH.MNG.KEY.FREEID: after VPFLUSHDONE and CACHE.WB on every package the HKID is free (TD_TEARDOWN). */
  tdh_mng_key_freeid(td: Td): bigint {
    if (td.lifecycle !== 'TD_BLOCKED') return this.done('TDH.MNG.KEY.FREEID', 'tdx_seamcall', 0n, 0, TDX_LIFECYCLE_STATE_INCORRECT);
    if (td.cache_wb.size !== this.nr_packages) return this.done('TDH.MNG.KEY.FREEID', 'tdx_seamcall', 0n, 0, TDX_WBCACHE_NOT_COMPLETE);
    this.kot.delete(td.hkid);
    td.lifecycle = 'TD_TEARDOWN';
    return this.done('TDH.MNG.KEY.FREEID', 'tdx_seamcall', 0n, 0, TDX_SUCCESS);
  }

  /**
   * TDH.PHYMEM.PAGE.RECLAIM: give back a page of a TD in teardown (its TDR last, once it has no
   * other page): PT_NDA. Allowed only after TDH.MNG.KEY.FREEID.
   */
  tdh_phymem_page_reclaim(pfn: number): bigint {
    const p = this.pamt.get(pfn);
    const fail = (err: bigint): bigint => this.done('TDH.PHYMEM.PAGE.RECLAIM', 'tdx_seamcall', 0n, 0, err);
    if (p === undefined || p.owner === null) return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX));
    const td = p.owner;
    if (td.lifecycle !== 'TD_TEARDOWN') return fail(TDX_LIFECYCLE_STATE_INCORRECT);
    if (p.pt === 'PT_TDR' && td.chldcnt + td.tdcs.length + td.vps.length > 0) return fail(TDX_TD_ASSOCIATED_PAGES_EXIST);
    this.pamt.delete(pfn);
    this.lines.delete(pfn);
    if (p.pt === 'PT_REG' || p.pt === 'PT_EPT') td.chldcnt--;
    if (p.pt === 'PT_TDCX') {
      const i = td.tdcs.indexOf(pfn);
      if (i >= 0) td.tdcs.splice(i, 1);
      for (const vp of td.vps) {
        const j = vp.tdcx.indexOf(pfn);
        if (j >= 0) vp.tdcx.splice(j, 1);
      }
    }
    if (p.pt === 'PT_TDVPR') {
      const i = td.vps.findIndex((v) => v.tdvpr_pfn === pfn);
      if (i >= 0 && td.vps[i]!.tdcx.length === 0) td.vps.splice(i, 1);
      else if (i >= 0) return fail(TDX_TD_ASSOCIATED_PAGES_EXIST);
    }
    return fail(TDX_SUCCESS);
  }

  /**
   * TDH.PHYMEM.PAGE.WBINVD (wbinvd_hkid): write back and invalidate the lines of `pfn` cached with
   * `hkid`, once the page is no longer the TD's (after TDH.MEM.PAGE.REMOVE).
   */
  tdh_phymem_page_wbinvd(hkid: number, pfn: number): bigint {
    const fail = (err: bigint): bigint => this.done('TDH.PHYMEM.PAGE.WBINVD', 'tdx_tdh_phymem_page_wbinvd', 0n, 0, err);
    if (hkid < this.tdx_keyid_start || hkid >= this.tdx_keyid_start + this.nr_tdx_keyids) return fail(api_error_with_operand_id(TDX_OPERAND_INVALID, TDX_OPERAND_ID_RCX));
    if (this.pamt.get(pfn)?.pt === 'PT_REG') return fail(api_error_with_operand_id(TDX_PAGE_METADATA_INCORRECT, TDX_OPERAND_ID_RCX));
    return fail(TDX_SUCCESS);
  }

  /** The TD holding `hkid` in the module's key ownership table (inspection). */
  hkid_owner(hkid: number): Td | undefined {
    return this.kot.get(hkid);
  }

  /* ---- the memory controller: TD-owner bits per line ---- */

  /** The module writes a whole page with the TD's key (MOVDIR64B): every line TD-owned, poison cleared. */
  private td_write_page(td: Td, pfn: number, src: Uint8Array): void {
    const phys = this.kernel.phys;
    phys.unpoison(pfn as Pfn);
    phys.write(pfn as Pfn, 0, src.length === PAGE_SIZE ? src : padded(src), td.hkid);
    this.lines.set(pfn, { td, host_written: 0n });
  }

  /** zero_area_cacheline() with the TD's key (ACCEPT): zeros, TD-owned, poison cleared. */
  private td_clear_page(td: Td, pfn: number): void {
    const phys = this.kernel.phys;
    phys.unpoison(pfn as Pfn);
    phys.clear(pfn as Pfn, td.hkid);
    this.lines.set(pfn, { td, host_written: 0n });
  }

  /**
   * MOVDIR64B of zeros with KeyID 0 over the whole page (the host's tdx_clear_page()): plain
   * zeros, no TD-owner bit, no poison.
   */
  movdir64b_clear(pfn: number): void {
    const phys = this.kernel.phys;
    phys.unpoison(pfn as Pfn);
    phys.clear(pfn as Pfn);
    this.lines.delete(pfn);
    this.kernel.cost.charge('tdx_clear_page_4k');
  }

  /** The TD whose lines `pfn` holds (written by the module with the TD's key), if any. */
  td_of_page(pfn: number): Td | undefined {
    return this.lines.get(pfn)?.td;
  }

  /**
   * A non-TD access (host CPU with KeyID 0, a device's DMA) of `len` bytes at `offset` in `pfn`.
   * Reads: a poisoned line machine-checks ('mce'); TD-owned lines read as zeros ('zeros'), lines
   * the host wrote since are its own ('ok'). Writes proceed ('ok'): each line written clears its
   * TD-owner bit, or, being partial on a part with X86_BUG_TDX_PW_MCE, is poisoned.
   */
  non_td_access(pfn: number, write: boolean, offset: number, len: number): NonTdAccess {
    const l = this.lines.get(pfn);
    if (l === undefined || len <= 0) return 'ok';
    const phys = this.kernel.phys;
    const first = Math.floor(offset / L1_CACHE_BYTES);
    const last = Math.floor((offset + len - 1) / L1_CACHE_BYTES);
    const poisoned = new Set(phys.poisonedLines(pfn as Pfn));
    if (!write) {
      let all_host = true;
      for (let line = first; line <= last; line++) {
        if (poisoned.has(line)) return 'mce';
        if (!(l.host_written & (1n << BigInt(line)))) all_host = false;
      }
      return all_host ? 'ok' : 'zeros';
    }
    for (let line = first; line <= last; line++) {
      const full = offset <= line * L1_CACHE_BYTES && offset + len >= (line + 1) * L1_CACHE_BYTES;
      if (!full && this.partial_write_poison) phys.poison(pfn as Pfn, line);
      else l.host_written |= 1n << BigInt(line);
    }
    return 'ok';
  }

  /**
   * A TD access (its private key) of `len` bytes at `offset` in `pfn`: the lines whose integrity
   * check fails (written by non-TD software, or poisoned), each now poisoned; empty when the
   * access is good.
   */
  td_access(td: Td, pfn: number, offset: number, len: number): number[] {
    const l = this.lines.get(pfn);
    const phys = this.kernel.phys;
    const poisoned = new Set(phys.poisonedLines(pfn as Pfn));
    const bad: number[] = [];
    const first = Math.floor(offset / L1_CACHE_BYTES);
    const last = Math.floor((offset + Math.max(len, 1) - 1) / L1_CACHE_BYTES);
    for (let line = first; line <= last; line++) {
      const host = l !== undefined && l.td === td && (l.host_written & (1n << BigInt(line))) !== 0n;
      if (host || poisoned.has(line)) {
        if (!poisoned.has(line)) phys.poison(pfn as Pfn, line);
        bad.push(line);
      }
    }
    return bad;
  }
}

/** A short source (the end of the user's buffer) padded to a page, as the module copies a whole page. */
function padded(src: Uint8Array): Uint8Array {
  const p = new Uint8Array(PAGE_SIZE);
  p.set(src.subarray(0, PAGE_SIZE));
  return p;
}

/* ---- the TD configuration the module reports (TDH.SYS.RD: struct tdx_sys_info_td_conf) ---- */

/** A CPUID leaf the TD configures through TD_PARAMS (td_conf.cpuid_config_leaves / _values). */
export interface TdxCpuidConfig {
  readonly leaf: number;
  /** The sub-leaf, or KVM_TDX_CPUID_NO_SUBLEAF (0xffffffff). */
  readonly sub_leaf: number;
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/** struct tdx_sys_info_td_conf: what TDH.MNG.INIT accepts. */
export interface TdxTdConf {
  readonly attributes_fixed0: bigint;
  readonly attributes_fixed1: bigint;
  readonly xfam_fixed0: bigint;
  readonly xfam_fixed1: bigint;
  readonly max_vcpus_per_td: number;
  readonly cpuid_configs: readonly TdxCpuidConfig[];
  /** td_ctrl: TDCS and TDVPS sizes in pages. */
  readonly tdcs_nr_pages: number;
  readonly tdvps_nr_pages: number;
}

/** KVM_TDX_CPUID_NO_SUBLEAF. */
export const KVM_TDX_CPUID_NO_SUBLEAF = 0xffffffff;

/**
 * The simulated module's TD configuration: attribute bits a TD may set (DEBUG, SEPT_VE_DISABLE,
 * PKS, KL, PERFMON), XFAM x87|SSE required and up to AMX, five configurable CPUID leaves. (The
 * real values come from TDH.SYS.RD on the platform; these are a plausible TDX 1.5 set.)
 */
export const TDX_TD_CONF: TdxTdConf = {
  attributes_fixed0: (1n << 0n) | (1n << 28n) | (1n << 30n) | (1n << 31n) | (1n << 63n),
  attributes_fixed1: 0n,
  xfam_fixed0: 0x6_02ffn,
  xfam_fixed1: 0x3n,
  max_vcpus_per_td: 1024,
  cpuid_configs: [
    { leaf: 0x1, sub_leaf: KVM_TDX_CPUID_NO_SUBLEAF, eax: 0, ebx: 0x00ff_0000, ecx: 0x31da_3203, edx: 0x0000_0000 },
    { leaf: 0x7, sub_leaf: 0, eax: 0, ebx: 0xd19f_2fbb, ecx: 0x1a40_5fe0, edx: 0xfc1c_4010 },
    { leaf: 0xd, sub_leaf: 0, eax: 0x0006_02e7, ebx: 0, ecx: 0, edx: 0 },
    { leaf: 0xd, sub_leaf: 1, eax: 0x0000_000f, ebx: 0, ecx: 0, edx: 0 },
    { leaf: 0x8000_0008, sub_leaf: KVM_TDX_CPUID_NO_SUBLEAF, eax: 0x0000_0000, ebx: 0x0000_0200, ecx: 0, edx: 0 },
  ],
  tdcs_nr_pages: 4,
  tdvps_nr_pages: 6,
};

/* ---- one module per host ---- */

const modules = new WeakMap<Kernel, TdxModule>();

/**
 * The TDX module of `kernel`'s host: the one tdxRegistrar() created, or one with the default
 * platform options made on first use.
 */
export function tdx_module_of(kernel: Kernel): TdxModule {
  let m = modules.get(kernel);
  if (m === undefined) modules.set(kernel, (m = new TdxModule(kernel)));
  return m;
}

/** Install `kernel`'s TDX module with `opts` (tdxRegistrar()); a host has one. */
export function tdx_module_init(kernel: Kernel, opts: TdxPlatformOptions): TdxModule {
  const m = new TdxModule(kernel, opts);
  modules.set(kernel, m);
  return m;
}

/** alloc_page(GFP_KERNEL) for a page given to the module, or -ENOMEM. */
export function tdx_alloc_page(kernel: Kernel): number {
  const pfn = kernel.page_alloc.alloc_page(GFP_KERNEL);
  return pfn < 0 ? -Errno.ENOMEM : pfn;
}
