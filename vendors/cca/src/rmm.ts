/**
 * The Arm CCA firmware of one host: EL3's Granule Protection Table and the Realm Management
 * Monitor (TF-RMM, tag rmm-spec-v1.0-rel0: runtime/rmi/granule.c, realm.c, rec.c, rtt.c,
 * runtime/rsi/memory.c, runtime/core/exit.c; lib/granule, lib/s2tt, lib/measurement), as the
 * host calls it through RMI and a realm through RSI.
 *
 * State (shared/research/vendor-models.md §3):
 *   gpt       the physical address space of each granule (Root, Secure, Non-secure, Realm).
 *             Only granules that are not Non-secure are kept; every access to them by the host
 *             CPU or by a device behind an RME-aware SMMU takes a Granule Protection Fault.
 *   granules  the RMM's granule state (NS, DELEGATED, RD, REC, REC_AUX, DATA, RTT) and owner.
 *   realms    per RD: the realm state (NEW, ACTIVE, SYSTEM_OFF), its RIM, and its stage-2
 *             translation tables (RTTs). An RTT entry is HIPAS x RIPAS (UNASSIGNED/ASSIGNED x
 *             EMPTY/RAM/DESTROYED for protected IPAs, UNASSIGNED_NS/ASSIGNED_NS above the
 *             protected half), the entries of existing tables keyed by (level, index) and the
 *             default entry (UNASSIGNED_EMPTY, UNASSIGNED_NS) left implicit.
 *   recs      per REC: its realm, index, and the RIPAS change request the realm made with
 *             RSI_IPA_STATE_SET that the host completes with RMI_RTT_SET_RIPAS.
 *
 * Every command returns the RMM's packed status (RMI_SUCCESS, RMI_ERROR_INPUT, RMI_ERROR_REALM,
 * RMI_ERROR_REC, or RMI_ERROR_RTT with the level the walk reached) and changes nothing when it
 * fails. Each check cites the TF-RMM function it mirrors.
 *
 * Contents: DELEGATE and DATA_DESTROY zero the granule ("any unlocked granule with state ==
 * GRANULE_STATE_DELEGATED contains only zeroes", granule_types.h), so DATA_CREATE_UNKNOWN gives
 * the realm zeros. Realm memory is plaintext in DRAM (no MEC): confidentiality comes from the GPT.
 *
 * Costs: cca_rmi_call per command, cca_gpt_transition per PAS change, page_zero_4k per granule
 * the RMM clears, page_copy_4k and cca_measure_4k for DATA_CREATE, cca_s2_tlbi per realm TLB
 * invalidation, cca_rsi_call per RSI call the RMM answers without leaving the realm world.
 *
 * Not modelled: the planes, device granules and SRO of RMM 1.1+/2.0 (TF-RMM HEAD), PSCI and host
 * calls, REMs (RSI_MEASUREMENT_EXTEND), attestation tokens, MEC.
 */
import { PAGE_SIZE, isMemPoison, type Pfn } from '@cocosim/core';
import { MM_HOST_ACCESS_FAULT, register_mm_hooks, type Kernel } from '@cocosim/mm';
import { CCA_COSTS } from './costs.js';
import {
  GRANULE_STATE_DATA, GRANULE_STATE_DELEGATED, GRANULE_STATE_NS, GRANULE_STATE_RD, GRANULE_STATE_REC, GRANULE_STATE_REC_AUX,
  GRANULE_STATE_RTT, RIPAS_DESTROYED, RIPAS_EMPTY, RIPAS_RAM, RMI_ERROR_INPUT, RMI_ERROR_REALM, RMI_ERROR_REC, RMI_ERROR_RTT,
  RMI_HASH_SHA_256, RMI_HASH_SHA_512, RMI_MEASURE_CONTENT, RMI_NO_MEASURE_CONTENT, RMI_SUCCESS, RMM_RTT_LEVEL_SHIFT,
  RMM_RTT_MAX_LEVEL, RSI_ACCEPT, RSI_ERROR_INPUT, RSI_REJECT, RSI_SUCCESS, pack_return_code, realm_num_root_rtts,
  rtt_start_level, type GranuleState, type Ripas, type RmiResult,
} from './rmi.js';
import {
  measurement_data_granule_measure, measurement_init_ripas_measure, measurement_realm_params_measure,
  measurement_rec_params_measure, type MeasuredRecParams,
} from './rim.js';

/** A physical address space of the GPT (GPI values NS 0x9, Realm 0xB, Secure 0x8, Root 0xA). */
export type Pas = 'NS' | 'REALM' | 'SECURE' | 'ROOT';

/** HIPAS: the host's view of an RTT entry. */
export type Hipas = 'UNASSIGNED' | 'ASSIGNED' | 'UNASSIGNED_NS' | 'ASSIGNED_NS';

/** An RTT entry (s2tte): HIPAS, RIPAS, and for ASSIGNED(_NS) the first pfn it maps. */
export interface Rtte {
  readonly hipas: Hipas;
  readonly ripas: Ripas;
  /** The output address (a pfn) of an ASSIGNED or ASSIGNED_NS entry, -1 otherwise. */
  readonly pa: number;
}

const UNASSIGNED_EMPTY: Rtte = Object.freeze({ hipas: 'UNASSIGNED', ripas: RIPAS_EMPTY, pa: -1 });
const UNASSIGNED_NS: Rtte = Object.freeze({ hipas: 'UNASSIGNED_NS', ripas: RIPAS_EMPTY, pa: -1 });

function ok(x1: bigint = 0n, x2: bigint = 0n): RmiResult {
  return { ret: RMI_SUCCESS, x1, x2 };
}
function err(status: number, index = 0, x1: bigint = 0n, x2: bigint = 0n): RmiResult {
  return { ret: pack_return_code(status, index), x1, x2 };
}

/** The realm parameters of RMI_REALM_CREATE (RmiRealmParams) that this model reads. */
export interface RmiRealmParams {
  readonly flags?: bigint;
  /** s2sz: the IPA width in bits. */
  readonly s2sz: number;
  readonly hash_algo: number;
  readonly rpv?: Uint8Array;
  readonly vmid: number;
  /** The root RTT granules (rtt_base and the ones concatenated after it), pfns. */
  readonly rtt_base: readonly number[];
  readonly rtt_level_start: number;
  readonly rtt_num_start: number;
}

/** The REC parameters of RMI_REC_CREATE (RmiRecParams). */
export interface RmiRecParams extends MeasuredRecParams {
  readonly mpidr: bigint;
  /** The auxiliary granules, pfns (RMI_REC_AUX_COUNT of them). */
  readonly aux: readonly number[];
}

/** RMI_REC_AUX_COUNT of this RMM: auxiliary granules per REC (TF-RMM 1.0: MAX_REC_AUX_GRANULES users). */
export const RMM_REC_AUX_COUNT = 1;

/** The RMM's feature register 0 of this model: S2SZ limit (RMI_FEATURE_REGISTER_0_S2SZ). */
export const RMM_MAX_S2SZ = 48;

/** A pending RSI_IPA_STATE_SET request of a REC (rec->set_ripas_*). */
export interface RecRipasRequest {
  readonly base: bigint;
  readonly top: bigint;
  /** How far the host has got: the next IPA to change (rec->set_ripas_addr). */
  addr: bigint;
  readonly value: Ripas;
  readonly change_destroyed: boolean;
}

/** A REC (realm execution context) granule's RMM state. */
export class RmmRec {
  /** The RIPAS change the realm asked for, until the realm is entered again and the RSI call returns. */
  ripas_req: RecRipasRequest | null = null;
  /** REC_ENTER_FLAG_RIPAS_RESPONSE given by the host: the change was rejected. */
  ripas_rejected = false;
  /** The realm was entered again after the RIPAS change exit (rec_run_loop() resumed it). */
  entered = false;

  constructor(readonly pfn: number, readonly realm: RmmRealm, readonly index: number, readonly aux: readonly number[]) {}
}

/** A realm descriptor (RD) and what hangs off it. */
export class RmmRealm {
  state: 'NEW' | 'ACTIVE' | 'SYSTEM_OFF' = 'NEW';
  /** The Realm Initial Measurement, a 64-byte slot. */
  rim: Uint8Array;
  /** RTTs beyond the root by (level, index of the block of level - 1 they cover): their granule. */
  readonly tables = new Map<number, number>();
  /** RTT entries that differ from the default, by (level, index). */
  readonly entries = new Map<number, Rtte>();
  readonly recs: RmmRec[] = [];
  /** RECs created, for the next REC's index (rd->rec_count). */
  rec_count = 0;
  readonly start_level: number;

  constructor(
    readonly rd: number,
    readonly ia_bits: number,
    readonly hash_algo: number,
    readonly vmid: number,
    readonly root_rtts: readonly number[],
    rim: Uint8Array,
  ) {
    this.rim = rim;
    this.start_level = rtt_start_level(ia_bits);
  }

  /** addr_in_par(): the IPA is in the protected half (below 2^(ia_bits - 1)). */
  addr_in_par(ipa: bigint): boolean {
    return ipa >= 0n && ipa < 1n << BigInt(this.ia_bits - 1);
  }

  /** The IPA is within the realm's IPA space at all. */
  addr_in_ipa_space(ipa: bigint): boolean {
    return ipa >= 0n && ipa < 1n << BigInt(this.ia_bits);
  }
}

/** The key of the RTT at `level` covering `ipa` (the index of the level - 1 block). */
function table_key(level: number, ipa: bigint): number {
  return level * 2 ** 40 + Number(ipa >> BigInt(RMM_RTT_LEVEL_SHIFT(level - 1)));
}
/** The key of the entry of `level` that maps `ipa`. */
function entry_key(level: number, ipa: bigint): number {
  return level * 2 ** 40 + Number(ipa >> BigInt(RMM_RTT_LEVEL_SHIFT(level)));
}
function map_size(level: number): bigint {
  return 1n << BigInt(RMM_RTT_LEVEL_SHIFT(level));
}
function align_down(a: bigint, size: bigint): bigint {
  return a - (a % size);
}

/**
 * rtt_walk_lock_unlock(): walk the realm's RTTs towards `level` for `ipa`; the level of the last
 * table reached (the start level at least).
 */
export function rtt_walk(realm: RmmRealm, ipa: bigint, level: number): number {
  let last = realm.start_level;
  for (let l = realm.start_level + 1; l <= level; l++) {
    if (!realm.tables.has(table_key(l, ipa))) break;
    last = l;
  }
  return last;
}

/** s2tte_read(): the entry of `level` that maps `ipa` (its table must exist). */
export function rtt_entry(realm: RmmRealm, ipa: bigint, level: number): Rtte {
  return realm.entries.get(entry_key(level, ipa)) ?? (realm.addr_in_par(ipa) ? UNASSIGNED_EMPTY : UNASSIGNED_NS);
}

function rtt_entry_set(realm: RmmRealm, ipa: bigint, level: number, e: Rtte): void {
  const def = realm.addr_in_par(ipa) ? UNASSIGNED_EMPTY : UNASSIGNED_NS;
  const key = entry_key(level, ipa);
  if (e.hipas === def.hipas && e.ripas === def.ripas && e.pa === -1) realm.entries.delete(key);
  else realm.entries.set(key, e);
}

/** The leaf entry mapping `ipa` in the realm's RTTs: the entry at the deepest level the walk reaches. */
export function rtt_leaf(realm: RmmRealm, ipa: bigint): { level: number; entry: Rtte } {
  const level = rtt_walk(realm, ipa, RMM_RTT_MAX_LEVEL);
  return { level, entry: rtt_entry(realm, ipa, level) };
}

/** The RMM and the GPT of one host. */
export class Rmm {
  /** The PAS of each granule that is not Non-secure, by pfn. */
  private readonly gpt = new Map<number, Pas>();
  /** The RMM's state of each granule that is not NS, by pfn, with its owner. */
  private readonly granules = new Map<number, { state: GranuleState; realm: RmmRealm | null; rec: RmmRec | null }>();
  /** Realms by RD pfn. */
  readonly realms = new Map<number, RmmRealm>();
  private readonly vmids = new Set<number>();

  /**
   * The RMM of `kernel`'s host: its cost entries are defined in the host's cost model, and the
   * GPT answers every host CPU access (mm's host_access: a granule outside the Non-secure PAS
   * takes a Granule Protection Fault).
   */
  constructor(readonly kernel: Kernel) {
    for (const e of CCA_COSTS) if (!kernel.cost.has(e.name)) kernel.cost.define(e);
    register_mm_hooks(kernel, {
      name: 'cca-gpt',
      host_access: (_k, pfn) => (this.gpt_pas(pfn) === 'NS' ? 0 : MM_HOST_ACCESS_FAULT),
    });
  }

  /**
   * The GPT, the granules' RMM states and the VMIDs in use, read-only: for the state digest and
   * the DEBUG_VM rules (cca_debug.ts).
   */
  debug_tables(): {
    readonly gpt: ReadonlyMap<number, Pas>;
    readonly granules: ReadonlyMap<number, { readonly state: GranuleState; readonly realm: RmmRealm | null; readonly rec: RmmRec | null }>;
    readonly vmids: ReadonlySet<number>;
  } {
    return { gpt: this.gpt, granules: this.granules, vmids: this.vmids };
  }

  /* ---- the GPT (EL3) ---- */

  /** How many granules are outside the Non-secure PAS. */
  get nr_protected_granules(): number {
    return this.gpt.size;
  }

  /** The PAS of a granule. */
  gpt_pas(pfn: number): Pas {
    return this.gpt.get(pfn) ?? 'NS';
  }

  /**
   * EL3 firmware assigns a granule to the Secure or Root PAS (secure partitions, EL3 memory):
   * the RMM cannot delegate it afterwards. For tests of RMI_GRANULE_DELEGATE's refusal.
   */
  gpt_assign_el3(pfn: number, pas: 'SECURE' | 'ROOT'): void {
    this.gpt.set(pfn, pas);
  }

  /** The RMM's state of a granule (GRANULE_STATE_NS for one it does not track). */
  granule_state(pfn: number): GranuleState {
    return this.granules.get(pfn)?.state ?? GRANULE_STATE_NS;
  }

  private set_granule(pfn: number, state: GranuleState, realm: RmmRealm | null = null, rec: RmmRec | null = null): void {
    if (state === GRANULE_STATE_NS) this.granules.delete(pfn);
    else this.granules.set(pfn, { state, realm, rec });
  }

  /** find_lock_granule(addr, expected): the granule at a PA in the expected state, or null. */
  private find_granule(pa: bigint, expected: GranuleState): number | null {
    if (pa < 0n || pa % BigInt(PAGE_SIZE) !== 0n) return null;
    const pfn = Number(pa >> 12n);
    if (!this.kernel.store.pfn_valid(pfn)) return null;
    return this.granule_state(pfn) === expected ? pfn : null;
  }

  /** The realm whose RD is at `rd_pa`, or null (find_lock_granule(rd, GRANULE_STATE_RD)). */
  realm_at(rd_pa: bigint): RmmRealm | null {
    const pfn = this.find_granule(rd_pa, GRANULE_STATE_RD);
    return pfn === null ? null : this.realms.get(pfn) ?? null;
  }

  private rmi(cmd: string, addr: bigint, r: RmiResult): RmiResult {
    this.kernel.cost.charge('cca_rmi_call');
    const tracer = this.kernel.tracer;
    if (tracer.enabled('cocosim_cca_rmi')) tracer.emit('cocosim_cca_rmi', { cmd, addr, ret: r.ret });
    return r;
  }

  private zero_granule(pfn: number): void {
    this.kernel.phys.clear(pfn as Pfn);
    this.kernel.cost.charge('page_zero_4k');
  }

  /* ---- granules (runtime/rmi/granule.c) ---- */

  /**
   * smc_granule_delegate(): an NS granule moves to the Realm PAS (EL3's GTSI delegate) and is
   * zeroed. RMI_ERROR_INPUT for an unaligned or non-RAM address, a granule the RMM already
   * tracks, or one EL3 refuses to move (Secure or Root PAS).
   */
  smc_granule_delegate(pa: bigint): RmiResult {
    const pfn = this.find_granule(pa, GRANULE_STATE_NS);
    if (pfn === null || this.gpt_pas(pfn) !== 'NS') return this.rmi('RMI_GRANULE_DELEGATE', pa, err(RMI_ERROR_INPUT));
    this.gpt.set(pfn, 'REALM');
    this.kernel.cost.charge('cca_gpt_transition');
    this.zero_granule(pfn);
    this.set_granule(pfn, GRANULE_STATE_DELEGATED);
    return this.rmi('RMI_GRANULE_DELEGATE', pa, ok());
  }

  /**
   * smc_granule_undelegate(): a DELEGATED granule (zero by the invariant) goes back to the
   * Non-secure PAS. RMI_ERROR_INPUT for any other state.
   */
  smc_granule_undelegate(pa: bigint): RmiResult {
    const pfn = this.find_granule(pa, GRANULE_STATE_DELEGATED);
    if (pfn === null) return this.rmi('RMI_GRANULE_UNDELEGATE', pa, err(RMI_ERROR_INPUT));
    this.gpt.delete(pfn);
    this.kernel.cost.charge('cca_gpt_transition');
    this.set_granule(pfn, GRANULE_STATE_NS);
    return this.rmi('RMI_GRANULE_UNDELEGATE', pa, ok());
  }

  /* ---- realms (runtime/rmi/realm.c) ---- */

  /**
   * smc_realm_create(): RD and root RTT granules must be DELEGATED (RMI_ERROR_INPUT), the
   * parameters valid (S2SZ within the RMM's limit, a supported hash algorithm, the root level and
   * number of root RTTs that S2SZ implies, a VMID not in use: RMI_ERROR_INPUT). The realm is NEW
   * and its RIM is the hash of the measured parameters (measurement_realm_params_measure()).
   */
  smc_realm_create(rd_pa: bigint, params: RmiRealmParams): RmiResult {
    const fail = (): RmiResult => this.rmi('RMI_REALM_CREATE', rd_pa, err(RMI_ERROR_INPUT));
    const rd = this.find_granule(rd_pa, GRANULE_STATE_DELEGATED);
    if (rd === null) return fail();
    const { s2sz, hash_algo } = params;
    if (!Number.isInteger(s2sz) || s2sz < 32 || s2sz > RMM_MAX_S2SZ) return fail();
    if (hash_algo !== RMI_HASH_SHA_256 && hash_algo !== RMI_HASH_SHA_512) return fail();
    if (params.rtt_level_start !== rtt_start_level(s2sz) || params.rtt_num_start !== realm_num_root_rtts(s2sz)) return fail();
    if (params.rtt_base.length !== params.rtt_num_start) return fail();
    if (params.rtt_base.some((p) => p === rd || this.granule_state(p) !== GRANULE_STATE_DELEGATED)) return fail();
    if (new Set(params.rtt_base).size !== params.rtt_base.length) return fail();
    if (this.vmids.has(params.vmid)) return fail();
    const rim = measurement_realm_params_measure(hash_algo, {
      flags: params.flags ?? 0n, s2sz, sve_vl: 0, num_bps: 0, num_wps: 0, pmu_num_ctrs: 0, hash_algo,
    });
    const realm = new RmmRealm(rd, s2sz, hash_algo, params.vmid, [...params.rtt_base], rim);
    this.realms.set(rd, realm);
    this.vmids.add(params.vmid);
    this.set_granule(rd, GRANULE_STATE_RD, realm);
    for (const p of params.rtt_base) this.set_granule(p, GRANULE_STATE_RTT, realm);
    return this.rmi('RMI_REALM_CREATE', rd_pa, ok());
  }

  /** smc_realm_activate(): NEW -> ACTIVE; RMI_ERROR_INPUT without an RD, RMI_ERROR_REALM in any other state. */
  smc_realm_activate(rd_pa: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null) return this.rmi('RMI_REALM_ACTIVATE', rd_pa, err(RMI_ERROR_INPUT));
    if (realm.state !== 'NEW') return this.rmi('RMI_REALM_ACTIVATE', rd_pa, err(RMI_ERROR_REALM));
    realm.state = 'ACTIVE';
    return this.rmi('RMI_REALM_ACTIVATE', rd_pa, ok());
  }

  /**
   * smc_realm_destroy(): only a realm with no REC and no RTT below the root (the RD's refcount is
   * 0: RMI_ERROR_REALM); the RD and root RTTs become DELEGATED again.
   */
  smc_realm_destroy(rd_pa: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null) return this.rmi('RMI_REALM_DESTROY', rd_pa, err(RMI_ERROR_INPUT));
    if (realm.recs.length > 0 || realm.tables.size > 0) return this.rmi('RMI_REALM_DESTROY', rd_pa, err(RMI_ERROR_REALM));
    for (const p of realm.root_rtts) this.set_granule(p, GRANULE_STATE_DELEGATED);
    this.set_granule(realm.rd, GRANULE_STATE_DELEGATED);
    this.realms.delete(realm.rd);
    this.vmids.delete(realm.vmid);
    return this.rmi('RMI_REALM_DESTROY', rd_pa, ok());
  }

  /* ---- RECs (runtime/rmi/rec.c) ---- */

  /** smc_rec_aux_count(): the auxiliary granules a REC of this realm needs. */
  smc_rec_aux_count(rd_pa: bigint): RmiResult {
    if (this.realm_at(rd_pa) === null) return this.rmi('RMI_REC_AUX_COUNT', rd_pa, err(RMI_ERROR_INPUT));
    return this.rmi('RMI_REC_AUX_COUNT', rd_pa, ok(BigInt(RMM_REC_AUX_COUNT)));
  }

  /**
   * smc_rec_create(): REC and auxiliary granules DELEGATED and the right number of them
   * (RMI_ERROR_INPUT), the realm NEW (RMI_ERROR_REALM); the REC's parameters are measured into the
   * RIM (measurement_rec_params_measure()).
   */
  smc_rec_create(rd_pa: bigint, rec_pa: bigint, params: RmiRecParams): RmiResult {
    const fail = (s: number): RmiResult => this.rmi('RMI_REC_CREATE', rec_pa, err(s));
    const rec = this.find_granule(rec_pa, GRANULE_STATE_DELEGATED);
    const realm = this.realm_at(rd_pa);
    if (rec === null || realm === null) return fail(RMI_ERROR_INPUT);
    if (params.aux.length !== RMM_REC_AUX_COUNT || params.aux.some((p) => p === rec || this.granule_state(p) !== GRANULE_STATE_DELEGATED)) {
      return fail(RMI_ERROR_INPUT);
    }
    if (realm.state !== 'NEW') return fail(RMI_ERROR_REALM);
    const r = new RmmRec(rec, realm, realm.rec_count++, [...params.aux]);
    realm.recs.push(r);
    realm.rim = measurement_rec_params_measure(realm.rim, realm.hash_algo, params);
    this.set_granule(rec, GRANULE_STATE_REC, realm, r);
    for (const p of params.aux) this.set_granule(p, GRANULE_STATE_REC_AUX, realm, r);
    return this.rmi('RMI_REC_CREATE', rec_pa, ok());
  }

  /** The REC at a PA, or null. */
  rec_at(rec_pa: bigint): RmmRec | null {
    const pfn = this.find_granule(rec_pa, GRANULE_STATE_REC);
    return pfn === null ? null : this.granules.get(pfn)!.rec;
  }

  /** smc_rec_destroy(): the REC and its auxiliary granules become DELEGATED. */
  smc_rec_destroy(rec_pa: bigint): RmiResult {
    const rec = this.rec_at(rec_pa);
    if (rec === null) return this.rmi('RMI_REC_DESTROY', rec_pa, err(RMI_ERROR_INPUT));
    const recs = rec.realm.recs;
    recs.splice(recs.indexOf(rec), 1);
    this.set_granule(rec.pfn, GRANULE_STATE_DELEGATED);
    for (const p of rec.aux) this.set_granule(p, GRANULE_STATE_DELEGATED);
    return this.rmi('RMI_REC_DESTROY', rec_pa, ok());
  }

  /* ---- RTTs (runtime/rmi/rtt.c) ---- */

  /** validate_rtt_structure_cmds(): a level below the root, at most 3, an IPA in the space and aligned for the level above. */
  private valid_rtt_cmd(realm: RmmRealm, ipa: bigint, level: number): boolean {
    return Number.isInteger(level) && level > realm.start_level && level <= RMM_RTT_MAX_LEVEL &&
      realm.addr_in_ipa_space(ipa) && ipa % map_size(level - 1) === 0n;
  }

  /**
   * smc_rtt_create(): a DELEGATED granule becomes the RTT at `level` for `ipa`. RMI_ERROR_INPUT for
   * a bad level or alignment or a granule not DELEGATED; RMI_ERROR_RTT(walk level) when the parent
   * table is missing, RMI_ERROR_RTT(level - 1) when the table exists already. The new table's 512
   * entries inherit the parent entry: an unassigned one its HIPAS/RIPAS, an ASSIGNED block its
   * consecutive granules (the split of a block mapping).
   */
  smc_rtt_create(rd_pa: bigint, rtt_pa: bigint, ipa: bigint, level: number): RmiResult {
    const realm = this.realm_at(rd_pa);
    const rtt = this.find_granule(rtt_pa, GRANULE_STATE_DELEGATED);
    if (realm === null || rtt === null || !this.valid_rtt_cmd(realm, ipa, level)) return this.rmi('RMI_RTT_CREATE', ipa, err(RMI_ERROR_INPUT));
    const walk = rtt_walk(realm, ipa, level - 1);
    if (walk < level - 1) return this.rmi('RMI_RTT_CREATE', ipa, err(RMI_ERROR_RTT, walk));
    if (realm.tables.has(table_key(level, ipa))) return this.rmi('RMI_RTT_CREATE', ipa, err(RMI_ERROR_RTT, level - 1));
    const parent = rtt_entry(realm, ipa, level - 1);
    realm.tables.set(table_key(level, ipa), rtt);
    realm.entries.delete(entry_key(level - 1, ipa));
    const def = realm.addr_in_par(ipa) ? UNASSIGNED_EMPTY : UNASSIGNED_NS;
    if (parent !== def) {
      const step = map_size(level);
      const stride = Number(step >> 12n);
      for (let i = 0; i < 512; i++) {
        const pa = parent.pa < 0 ? -1 : parent.pa + i * stride;
        rtt_entry_set(realm, ipa + BigInt(i) * step, level, { hipas: parent.hipas, ripas: parent.ripas, pa });
      }
    }
    this.set_granule(rtt, GRANULE_STATE_RTT, realm);
    return this.rmi('RMI_RTT_CREATE', ipa, ok());
  }

  /**
   * smc_rtt_fold(): the RTT at `level` covering `ipa` folds into one entry of its parent when its
   * 512 entries are homogeneous: all unassigned with the same RIPAS, or all ASSIGNED (or
   * ASSIGNED_NS) with the same RIPAS and contiguous granules aligned to the block
   * (RMI_ERROR_RTT(level) otherwise). The RTT granule is returned in x1, DELEGATED again.
   */
  smc_rtt_fold(rd_pa: bigint, ipa: bigint, level: number): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null || !this.valid_rtt_cmd(realm, ipa, level)) return this.rmi('RMI_RTT_FOLD', ipa, err(RMI_ERROR_INPUT));
    const walk = rtt_walk(realm, ipa, level);
    if (walk < level) return this.rmi('RMI_RTT_FOLD', ipa, err(RMI_ERROR_RTT, walk));
    const step = map_size(level);
    const stride = Number(step >> 12n);
    const first = rtt_entry(realm, ipa, level);
    for (let i = 1; i < 512; i++) {
      const e = rtt_entry(realm, ipa + BigInt(i) * step, level);
      const contiguous = first.pa < 0 ? e.pa < 0 : e.pa === first.pa + i * stride;
      if (e.hipas !== first.hipas || e.ripas !== first.ripas || !contiguous) return this.rmi('RMI_RTT_FOLD', ipa, err(RMI_ERROR_RTT, level));
    }
    if (first.pa >= 0 && first.pa % (512 * stride) !== 0) return this.rmi('RMI_RTT_FOLD', ipa, err(RMI_ERROR_RTT, level));
    // Blocks exist at level 1 and 2 only (s2tte_is_homogeneous(): a level-1 table may not fold into a level-0 block).
    if (first.pa >= 0 && level - 1 < 1) return this.rmi('RMI_RTT_FOLD', ipa, err(RMI_ERROR_RTT, level));
    for (let i = 0; i < 512; i++) realm.entries.delete(entry_key(level, ipa + BigInt(i) * step));
    const rtt = realm.tables.get(table_key(level, ipa))!;
    realm.tables.delete(table_key(level, ipa));
    rtt_entry_set(realm, ipa, level - 1, first);
    this.set_granule(rtt, GRANULE_STATE_DELEGATED);
    this.kernel.cost.charge('cca_s2_tlbi');
    return this.rmi('RMI_RTT_FOLD', ipa, ok(BigInt(rtt) << 12n));
  }

  /**
   * smc_rtt_destroy(): the RTT at `level` for `ipa` goes (its granule DELEGATED, returned in x1)
   * when no entry of it is ASSIGNED or ASSIGNED_NS (RMI_ERROR_RTT(level) otherwise); the parent
   * entry becomes UNASSIGNED_DESTROYED for a protected IPA (the RIPAS below it is lost),
   * UNASSIGNED_NS above. A missing table is RMI_ERROR_RTT(walk level) with x2 the next IPA to try.
   */
  smc_rtt_destroy(rd_pa: bigint, ipa: bigint, level: number): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null || !this.valid_rtt_cmd(realm, ipa, level)) return this.rmi('RMI_RTT_DESTROY', ipa, err(RMI_ERROR_INPUT));
    const walk = rtt_walk(realm, ipa, level);
    if (walk < level) {
      const next = align_down(ipa, map_size(walk)) + map_size(walk);
      return this.rmi('RMI_RTT_DESTROY', ipa, err(RMI_ERROR_RTT, walk, 0n, next));
    }
    const step = map_size(level);
    for (let i = 0; i < 512; i++) {
      const a = ipa + BigInt(i) * step;
      if (level < RMM_RTT_MAX_LEVEL && realm.tables.has(table_key(level + 1, a))) return this.rmi('RMI_RTT_DESTROY', ipa, err(RMI_ERROR_RTT, level, 0n, ipa));
      const e = rtt_entry(realm, a, level);
      if (e.hipas === 'ASSIGNED' || e.hipas === 'ASSIGNED_NS') return this.rmi('RMI_RTT_DESTROY', ipa, err(RMI_ERROR_RTT, level, 0n, ipa));
    }
    for (let i = 0; i < 512; i++) realm.entries.delete(entry_key(level, ipa + BigInt(i) * step));
    const rtt = realm.tables.get(table_key(level, ipa))!;
    realm.tables.delete(table_key(level, ipa));
    rtt_entry_set(realm, ipa, level - 1, realm.addr_in_par(ipa) ? { hipas: 'UNASSIGNED', ripas: RIPAS_DESTROYED, pa: -1 } : UNASSIGNED_NS);
    this.set_granule(rtt, GRANULE_STATE_DELEGATED);
    this.kernel.cost.charge('cca_s2_tlbi');
    return this.rmi('RMI_RTT_DESTROY', ipa, ok(BigInt(rtt) << 12n, ipa + map_size(level - 1)));
  }

  /** smc_rtt_read_entry(): the entry of `level` for `ipa` as the walk finds it: x1 the level reached, the entry itself. */
  smc_rtt_read_entry(rd_pa: bigint, ipa: bigint, level: number): { ret: number; walk_level: number; entry: Rtte | null } {
    const realm = this.realm_at(rd_pa);
    if (realm === null || !realm.addr_in_ipa_space(ipa) || level < realm.start_level || level > RMM_RTT_MAX_LEVEL || ipa % map_size(level) !== 0n) {
      this.rmi('RMI_RTT_READ_ENTRY', ipa, err(RMI_ERROR_INPUT));
      return { ret: RMI_ERROR_INPUT, walk_level: 0, entry: null };
    }
    const walk = rtt_walk(realm, ipa, level);
    this.rmi('RMI_RTT_READ_ENTRY', ipa, ok());
    return { ret: RMI_SUCCESS, walk_level: walk, entry: rtt_entry(realm, ipa, walk) };
  }

  /* ---- DATA granules ---- */

  /** validate_map_addr(): a protected, page-aligned IPA. */
  private valid_data_ipa(realm: RmmRealm, ipa: bigint): boolean {
    return realm.addr_in_par(ipa) && ipa % BigInt(PAGE_SIZE) === 0n;
  }

  /**
   * smc_data_create(): copy the Non-secure granule at `src_pa` into the DELEGATED granule at
   * `data_pa` and map it at `ipa` as ASSIGNED with RIPAS RAM, extending the RIM with a DATA
   * descriptor (with the content's hash under RMI_MEASURE_CONTENT). Checks in TF-RMM's order:
   * RMI_ERROR_INPUT (flags, data not DELEGATED, source not in the Non-secure PAS or unreadable,
   * IPA not protected or unaligned), RMI_ERROR_REALM (the realm is not NEW), RMI_ERROR_RTT (no
   * level-3 table: the level reached; the entry is not UNASSIGNED: 3).
   */
  smc_data_create(rd_pa: bigint, data_pa: bigint, ipa: bigint, src_pa: bigint, flags: bigint): RmiResult {
    const fail = (s: number, i = 0): RmiResult => this.rmi('RMI_DATA_CREATE', ipa, err(s, i));
    if (flags !== RMI_NO_MEASURE_CONTENT && flags !== RMI_MEASURE_CONTENT) return fail(RMI_ERROR_INPUT);
    const data = this.find_granule(data_pa, GRANULE_STATE_DELEGATED);
    const realm = this.realm_at(rd_pa);
    if (data === null || realm === null) return fail(RMI_ERROR_INPUT);
    const src = this.find_granule(src_pa, GRANULE_STATE_NS);
    if (src === null || this.gpt_pas(src) !== 'NS') return fail(RMI_ERROR_INPUT);
    if (!this.valid_data_ipa(realm, ipa)) return fail(RMI_ERROR_INPUT);
    if (realm.state !== 'NEW') return fail(RMI_ERROR_REALM);
    const walk = rtt_walk(realm, ipa, RMM_RTT_MAX_LEVEL);
    if (walk < RMM_RTT_MAX_LEVEL) return fail(RMI_ERROR_RTT, walk);
    if (rtt_entry(realm, ipa, RMM_RTT_MAX_LEVEL).hipas !== 'UNASSIGNED') return fail(RMI_ERROR_RTT, RMM_RTT_MAX_LEVEL);
    // ns_buffer_read(): the RMM reads the source through the Non-secure PAS.
    const content = this.kernel.phys.read(src as Pfn, 0, PAGE_SIZE);
    if (isMemPoison(content)) return fail(RMI_ERROR_INPUT);
    this.kernel.phys.write(data as Pfn, 0, content);
    this.kernel.cost.charge('page_copy_4k');
    if (flags === RMI_MEASURE_CONTENT) this.kernel.cost.charge('cca_measure_4k');
    realm.rim = measurement_data_granule_measure(realm.rim, realm.hash_algo, content, ipa, flags);
    rtt_entry_set(realm, ipa, RMM_RTT_MAX_LEVEL, { hipas: 'ASSIGNED', ripas: RIPAS_RAM, pa: data });
    this.set_granule(data, GRANULE_STATE_DATA, realm);
    return this.rmi('RMI_DATA_CREATE', ipa, ok());
  }

  /**
   * smc_data_create_unknown(): map the DELEGATED (hence zero) granule at `ipa`, the entry's RIPAS
   * unchanged (UNASSIGNED_x -> ASSIGNED_x); no measurement, allowed in NEW and ACTIVE realms.
   * RMI_ERROR_INPUT, RMI_ERROR_REALM (SYSTEM_OFF), RMI_ERROR_RTT as for smc_data_create().
   */
  smc_data_create_unknown(rd_pa: bigint, data_pa: bigint, ipa: bigint): RmiResult {
    const fail = (s: number, i = 0): RmiResult => this.rmi('RMI_DATA_CREATE_UNKNOWN', ipa, err(s, i));
    const data = this.find_granule(data_pa, GRANULE_STATE_DELEGATED);
    const realm = this.realm_at(rd_pa);
    if (data === null || realm === null || !this.valid_data_ipa(realm, ipa)) return fail(RMI_ERROR_INPUT);
    if (realm.state === 'SYSTEM_OFF') return fail(RMI_ERROR_REALM);
    const walk = rtt_walk(realm, ipa, RMM_RTT_MAX_LEVEL);
    if (walk < RMM_RTT_MAX_LEVEL) return fail(RMI_ERROR_RTT, walk);
    const e = rtt_entry(realm, ipa, RMM_RTT_MAX_LEVEL);
    if (e.hipas !== 'UNASSIGNED') return fail(RMI_ERROR_RTT, RMM_RTT_MAX_LEVEL);
    rtt_entry_set(realm, ipa, RMM_RTT_MAX_LEVEL, { hipas: 'ASSIGNED', ripas: e.ripas, pa: data });
    this.set_granule(data, GRANULE_STATE_DATA, realm);
    return this.rmi('RMI_DATA_CREATE_UNKNOWN', ipa, ok());
  }

  /**
   * smc_data_destroy(): unmap the DATA granule at `ipa`, zero it and make it DELEGATED; the entry
   * becomes ASSIGNED_RAM -> UNASSIGNED_DESTROYED (the realm sees it was taken), ASSIGNED_EMPTY ->
   * UNASSIGNED_EMPTY, ASSIGNED_DESTROYED -> UNASSIGNED_DESTROYED, with a TLB invalidation. x1 is
   * the granule's PA, x2 the next IPA. RMI_ERROR_RTT(level) where the entry is not an ASSIGNED
   * page: an unassigned entry gives x2 past it (the host skips it), an ASSIGNED block x2 = ipa
   * (the host must split it with RMI_RTT_CREATE).
   */
  smc_data_destroy(rd_pa: bigint, ipa: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null || !this.valid_data_ipa(realm, ipa)) return this.rmi('RMI_DATA_DESTROY', ipa, err(RMI_ERROR_INPUT));
    const walk = rtt_walk(realm, ipa, RMM_RTT_MAX_LEVEL);
    const e = rtt_entry(realm, ipa, walk);
    if (walk < RMM_RTT_MAX_LEVEL || e.hipas !== 'ASSIGNED') {
      const next = e.hipas === 'ASSIGNED' ? ipa : align_down(ipa, map_size(walk)) + map_size(walk);
      return this.rmi('RMI_DATA_DESTROY', ipa, err(RMI_ERROR_RTT, walk, 0n, next));
    }
    const ripas: Ripas = e.ripas === RIPAS_EMPTY ? RIPAS_EMPTY : RIPAS_DESTROYED;
    rtt_entry_set(realm, ipa, RMM_RTT_MAX_LEVEL, { hipas: 'UNASSIGNED', ripas, pa: -1 });
    this.kernel.cost.charge('cca_s2_tlbi');
    this.zero_granule(e.pa);
    this.set_granule(e.pa, GRANULE_STATE_DELEGATED);
    return this.rmi('RMI_DATA_DESTROY', ipa, ok(BigInt(e.pa) << 12n, ipa + BigInt(PAGE_SIZE)));
  }

  /* ---- RIPAS ---- */

  /**
   * The entries from `base` up to `top` in the table the walk reached, for INIT/SET_RIPAS: the
   * level, or RMI_ERROR_RTT when the entry covering `base` also covers addresses below it.
   */
  private ripas_walk(realm: RmmRealm, base: bigint): number {
    const level = rtt_walk(realm, base, RMM_RTT_MAX_LEVEL);
    return base % map_size(level) === 0n ? level : -level - 1;
  }

  /**
   * smc_rtt_init_ripas(): in a NEW realm (RMI_ERROR_REALM), make the UNASSIGNED_EMPTY entries from
   * `base` RAM, entry by entry up to `top` or the end of the table, each extending the RIM with a
   * RIPAS descriptor; stops at an entry in another state. x1 is how far it got; RMI_ERROR_RTT
   * (level) when it could not change the first entry (an unaligned block: go deeper).
   */
  smc_rtt_init_ripas(rd_pa: bigint, base: bigint, top: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    const fail = (s: number, i = 0): RmiResult => this.rmi('RMI_RTT_INIT_RIPAS', base, err(s, i));
    if (realm === null || base % BigInt(PAGE_SIZE) !== 0n || top % BigInt(PAGE_SIZE) !== 0n || top <= base) return fail(RMI_ERROR_INPUT);
    if (!realm.addr_in_par(base) || !realm.addr_in_par(top - BigInt(PAGE_SIZE))) return fail(RMI_ERROR_INPUT);
    if (realm.state !== 'NEW') return fail(RMI_ERROR_REALM);
    const w = this.ripas_walk(realm, base);
    if (w < 0) return fail(RMI_ERROR_RTT, -w - 1);
    const size = map_size(w);
    const table_end = align_down(base, size * 512n) + size * 512n;
    let addr = base;
    for (; addr < table_end; addr += size) {
      const next = addr + size;
      if (next > top) break;
      const e = rtt_entry(realm, addr, w);
      if (e.hipas === 'UNASSIGNED' && e.ripas === RIPAS_EMPTY) rtt_entry_set(realm, addr, w, { hipas: 'UNASSIGNED', ripas: RIPAS_RAM, pa: -1 });
      else if (!(e.hipas === 'UNASSIGNED' && e.ripas === RIPAS_RAM)) break;
      realm.rim = measurement_init_ripas_measure(realm.rim, realm.hash_algo, addr, next);
    }
    if (addr === base) return fail(RMI_ERROR_RTT, w);
    return this.rmi('RMI_RTT_INIT_RIPAS', base, ok(addr));
  }

  /**
   * smc_rtt_set_ripas(): the host completes part of the RIPAS change the REC asked for.
   * RMI_ERROR_INPUT without an RD or REC there, RMI_ERROR_REC for a REC of another realm,
   * RMI_ERROR_INPUT when the REC has no request pending or `base` is not where the request stands
   * or `top` lies beyond it.
   * Entry by entry in the table reached: to EMPTY, UNASSIGNED_* and ASSIGNED_* keep HIPAS and
   * become EMPTY (with a TLB invalidation for an assigned one); to RAM, EMPTY entries become RAM;
   * a DESTROYED entry changes only if the realm allowed it (RSI_CHANGE_DESTROYED), else the walk
   * stops there. x1 is how far it got; RMI_ERROR_RTT(level) when it could not change the first
   * entry (an unaligned block, or a DESTROYED entry the realm protected).
   */
  smc_rtt_set_ripas(rd_pa: bigint, rec_pa: bigint, base: bigint, top: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    const rec = this.rec_at(rec_pa);
    const fail = (s: number, i = 0): RmiResult => this.rmi('RMI_RTT_SET_RIPAS', base, err(s, i));
    if (realm === null || rec === null) return fail(RMI_ERROR_INPUT);
    if (rec.realm !== realm) return fail(RMI_ERROR_REC);
    const req = rec.ripas_req;
    if (req === null || rec.entered) return fail(RMI_ERROR_INPUT);
    if (base !== req.addr || top <= base || top > req.top || top % BigInt(PAGE_SIZE) !== 0n) return fail(RMI_ERROR_INPUT);
    const w = this.ripas_walk(realm, base);
    if (w < 0) return fail(RMI_ERROR_RTT, -w - 1);
    const size = map_size(w);
    const table_end = align_down(base, size * 512n) + size * 512n;
    let addr = base;
    let tlbi = 0;
    for (; addr < table_end; addr += size) {
      if (addr + size > top) break;
      const e = rtt_entry(realm, addr, w);
      if (e.ripas === RIPAS_DESTROYED && !req.change_destroyed) break;
      if (e.hipas !== 'UNASSIGNED' && e.hipas !== 'ASSIGNED') break;
      if (e.ripas !== req.value) {
        rtt_entry_set(realm, addr, w, { hipas: e.hipas, ripas: req.value, pa: e.pa });
        if (e.hipas === 'ASSIGNED' && req.value === RIPAS_EMPTY) tlbi++;
      }
    }
    if (addr === base) return fail(RMI_ERROR_RTT, w);
    if (tlbi) this.kernel.cost.charge('cca_s2_tlbi', tlbi);
    req.addr = addr;
    return this.rmi('RMI_RTT_SET_RIPAS', base, ok(addr));
  }

  /* ---- unprotected mappings ---- */

  /**
   * smc_rtt_map_unprotected(): map the Non-secure granule `pa` at unprotected `ipa` at `level`:
   * RMI_ERROR_INPUT for a protected or unaligned IPA, RMI_ERROR_RTT(walk level) without the table,
   * RMI_ERROR_RTT(level) when the entry is not UNASSIGNED_NS.
   */
  smc_rtt_map_unprotected(rd_pa: bigint, ipa: bigint, level: number, pa: bigint): RmiResult {
    const realm = this.realm_at(rd_pa);
    const fail = (s: number, i = 0): RmiResult => this.rmi('RMI_RTT_MAP_UNPROTECTED', ipa, err(s, i));
    if (realm === null || !realm.addr_in_ipa_space(ipa) || realm.addr_in_par(ipa) || level !== RMM_RTT_MAX_LEVEL || ipa % map_size(level) !== 0n) return fail(RMI_ERROR_INPUT);
    if (pa < 0n || pa % BigInt(PAGE_SIZE) !== 0n) return fail(RMI_ERROR_INPUT);
    const walk = rtt_walk(realm, ipa, level);
    if (walk < level) return fail(RMI_ERROR_RTT, walk);
    if (rtt_entry(realm, ipa, level).hipas !== 'UNASSIGNED_NS') return fail(RMI_ERROR_RTT, level);
    rtt_entry_set(realm, ipa, level, { hipas: 'ASSIGNED_NS', ripas: RIPAS_EMPTY, pa: Number(pa >> 12n) });
    return this.rmi('RMI_RTT_MAP_UNPROTECTED', ipa, ok());
  }

  /**
   * smc_rtt_unmap_unprotected(): the ASSIGNED_NS entry at `ipa`/`level` becomes UNASSIGNED_NS
   * with a TLB invalidation; x1 the next IPA. RMI_ERROR_RTT(walk level) with x1 past an entry
   * that maps nothing.
   */
  smc_rtt_unmap_unprotected(rd_pa: bigint, ipa: bigint, level: number): RmiResult {
    const realm = this.realm_at(rd_pa);
    if (realm === null || !realm.addr_in_ipa_space(ipa) || realm.addr_in_par(ipa) || level < realm.start_level + 1 || level > RMM_RTT_MAX_LEVEL || ipa % map_size(level) !== 0n) {
      return this.rmi('RMI_RTT_UNMAP_UNPROTECTED', ipa, err(RMI_ERROR_INPUT));
    }
    const walk = rtt_walk(realm, ipa, level);
    const e = rtt_entry(realm, ipa, walk);
    if (walk < level || e.hipas !== 'ASSIGNED_NS') {
      const next = e.hipas === 'ASSIGNED_NS' ? ipa : align_down(ipa, map_size(walk)) + map_size(walk);
      return this.rmi('RMI_RTT_UNMAP_UNPROTECTED', ipa, err(RMI_ERROR_RTT, walk, next));
    }
    rtt_entry_set(realm, ipa, level, UNASSIGNED_NS);
    this.kernel.cost.charge('cca_s2_tlbi');
    return this.rmi('RMI_RTT_UNMAP_UNPROTECTED', ipa, ok(ipa + map_size(level)));
  }

  /* ---- REC entry and the realm's calls (runtime/rmi/run.c, runtime/rsi/memory.c, runtime/core/exit.c) ---- */

  /**
   * smc_rec_enter()'s part that matters here: the host's REC entry flags are taken and a REC
   * that exited for a RIPAS change is resumed (its RSI_IPA_STATE_SET returns on the next call).
   * RMI_ERROR_REALM unless the realm is ACTIVE.
   */
  smc_rec_enter(rec: RmmRec, reject_ripas: boolean): number {
    if (rec.realm.state !== 'ACTIVE') return pack_return_code(RMI_ERROR_REALM);
    if (rec.ripas_req !== null && !rec.entered) {
      rec.entered = true;
      rec.ripas_rejected = reject_ripas;
    }
    return RMI_SUCCESS;
  }

  private rsi(cmd: string, base: bigint, top: bigint, regs: readonly bigint[]): readonly bigint[] {
    this.kernel.cost.charge('cca_rsi_call');
    const tracer = this.kernel.tracer;
    if (tracer.enabled('cocosim_cca_rsi')) tracer.emit('cocosim_cca_rsi', { cmd, base, top, ret: regs[0]! });
    return regs;
  }

  /**
   * handle_rsi_ipa_state_set(): a realm asks to change the RIPAS of [base, top) (rsi_cmds.h
   * rsi_set_addr_range_state()). A REC that was resumed after its RIPAS change exit returns
   * (RSI_SUCCESS, how far the host got, RSI_ACCEPT or RSI_REJECT). Otherwise the request is
   * checked (RSI_ERROR_INPUT: unaligned, empty, not protected, a RIPAS other than EMPTY/RAM or
   * flags other than CHANGE_DESTROYED / NO_CHANGE_DESTROYED: no exit) and recorded, and the REC
   * exits to the host (RMI_EXIT_RIPAS_CHANGE): 'exit' is returned.
   */
  rsi_ipa_state_set(rec: RmmRec, base: bigint, top: bigint, ripas: bigint, flags: bigint): { kind: 'ret'; regs: readonly bigint[] } | { kind: 'exit' } {
    const req = rec.ripas_req;
    if (req !== null && rec.entered) {
      rec.ripas_req = null;
      rec.entered = false;
      const regs = rec.ripas_rejected ? [RSI_SUCCESS, req.base, RSI_REJECT] : [RSI_SUCCESS, req.addr, RSI_ACCEPT];
      rec.ripas_rejected = false;
      return { kind: 'ret', regs: this.rsi('RSI_IPA_STATE_SET', req.base, req.top, regs) };
    }
    const realm = rec.realm;
    const page = BigInt(PAGE_SIZE);
    if (base % page !== 0n || top % page !== 0n || top <= base || !realm.addr_in_par(base) || !realm.addr_in_par(top - page) ||
      (ripas !== BigInt(RIPAS_EMPTY) && ripas !== BigInt(RIPAS_RAM)) || flags > 1n || flags < 0n) {
      return { kind: 'ret', regs: this.rsi('RSI_IPA_STATE_SET', base, top, [RSI_ERROR_INPUT, base, RSI_REJECT]) };
    }
    rec.ripas_req = { base, top, addr: base, value: Number(ripas) as Ripas, change_destroyed: flags === 1n };
    rec.entered = false;
    this.kernel.cost.charge('cca_rsi_call');
    return { kind: 'exit' };
  }

  /** handle_rsi_ipa_state_get(): the RIPAS at `base` and how far it stays the same (up to `end` or the entry's end). */
  rsi_ipa_state_get(rec: RmmRec, base: bigint, end: bigint): readonly bigint[] {
    const realm = rec.realm;
    const page = BigInt(PAGE_SIZE);
    if (base % page !== 0n || end <= base || !realm.addr_in_par(base) || !realm.addr_in_par(end - page)) {
      return this.rsi('RSI_IPA_STATE_GET', base, end, [RSI_ERROR_INPUT]);
    }
    const ripas = rtt_leaf(realm, base).entry.ripas;
    let top = base;
    while (top < end && rtt_leaf(realm, top).entry.ripas === ripas) top += page;
    return this.rsi('RSI_IPA_STATE_GET', base, end, [RSI_SUCCESS, top, BigInt(ripas)]);
  }

  /** handle_rsi_read_measurement(): slot 0 is the RIM, as eight little-endian u64 registers. */
  rsi_measurement_read(rec: RmmRec, index: bigint): readonly bigint[] {
    if (index !== 0n) return this.rsi('RSI_MEASUREMENT_READ', index, 0n, [RSI_ERROR_INPUT]);
    const view = new DataView(rec.realm.rim.buffer, rec.realm.rim.byteOffset, 64);
    const regs = [RSI_SUCCESS];
    for (let i = 0; i < 8; i++) regs.push(view.getBigUint64(8 * i, true));
    return this.rsi('RSI_MEASUREMENT_READ', index, 0n, regs);
  }
}

/** The RMM of each host, created on first use (never module-wide state: one per Kernel). */
const rmms = new WeakMap<Kernel, Rmm>();

/** The host's RMM (created with its first realm). */
export function rmm_of(kernel: Kernel, create: (k: Kernel) => Rmm = (k) => new Rmm(k)): Rmm {
  let rmm = rmms.get(kernel);
  if (rmm === undefined) {
    rmm = create(kernel);
    rmms.set(kernel, rmm);
  }
  return rmm;
}

/** The host's RMM if one was created. */
export function rmm_if_any(kernel: Kernel): Rmm | undefined {
  return rmms.get(kernel);
}
