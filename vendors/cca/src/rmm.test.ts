/**
 * The RMM's legal transitions and error codes (TF-RMM rmm-spec-v1.0-rel0), called as the host
 * calls RMI: granule delegation and the GPT, realm and REC lifecycle, RTT creation, folding and
 * splitting, DATA creation and destruction with their RIPAS rules, and RIPAS changes.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, type Pfn } from '@cocosim/core';
import { GFP_KERNEL, Kernel, mmRegistrar } from '@cocosim/mm';
import {
  GRANULE_STATE_DATA, GRANULE_STATE_DELEGATED, GRANULE_STATE_NS, GRANULE_STATE_RD, GRANULE_STATE_RTT, RIPAS_DESTROYED,
  RIPAS_EMPTY, RIPAS_RAM, RMI_ERROR_INPUT, RMI_ERROR_REALM, RMI_ERROR_REC, RMI_ERROR_RTT, RMI_HASH_SHA_256,
  RMI_MEASURE_CONTENT, RMI_SUCCESS, RSI_ACCEPT, RSI_ERROR_INPUT, RSI_SUCCESS, pack_return_code, realm_num_root_rtts,
  rtt_start_level,
} from './rmi.js';
import { Rmm, rtt_leaf, type RmmRealm } from './rmm.js';

const containers: { dispose(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function setup(): { rmm: Rmm; kernel: Kernel; page(): bigint } {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 14 }));
  containers.push(c);
  const kernel = c.resolve(Kernel);
  const rmm = new Rmm(kernel);
  return { rmm, kernel, page: () => BigInt(kernel.page_alloc.alloc_page(GFP_KERNEL)) << 12n };
}

const IA_BITS = 40;

/** A NEW realm with 40-bit IPA space: its RD PA and the RMM's realm. */
function new_realm(rmm: Rmm, page: () => bigint): { rd: bigint; realm: RmmRealm } {
  const rd = page();
  expect(rmm.smc_granule_delegate(rd).ret).toBe(RMI_SUCCESS);
  const roots: number[] = [];
  for (let i = 0; i < realm_num_root_rtts(IA_BITS); i++) {
    const r = page();
    expect(rmm.smc_granule_delegate(r).ret).toBe(RMI_SUCCESS);
    roots.push(Number(r >> 12n));
  }
  const res = rmm.smc_realm_create(rd, {
    s2sz: IA_BITS, hash_algo: RMI_HASH_SHA_256, vmid: 1, rtt_base: roots, rtt_level_start: rtt_start_level(IA_BITS), rtt_num_start: roots.length,
  });
  expect(res.ret).toBe(RMI_SUCCESS);
  return { rd, realm: rmm.realm_at(rd)! };
}

/** RTTs at levels 2 and 3 covering `ipa`. */
function tables(rmm: Rmm, page: () => bigint, rd: bigint, ipa: bigint): void {
  for (const level of [2, 3]) {
    const rtt = page();
    expect(rmm.smc_granule_delegate(rtt).ret).toBe(RMI_SUCCESS);
    const size = 1n << BigInt(9 * (4 - (level - 1)) + 3);
    expect(rmm.smc_rtt_create(rd, rtt, ipa - (ipa % size), level).ret).toBe(RMI_SUCCESS);
  }
}

const INPUT = pack_return_code(RMI_ERROR_INPUT);
const REALM = pack_return_code(RMI_ERROR_REALM);

describe('granules and the GPT', () => {
  test('DELEGATE: NS -> DELEGATED (zeroed, Realm PAS); again, unaligned, or Secure-owned: RMI_ERROR_INPUT', () => {
    const { rmm, kernel, page } = setup();
    const pa = page();
    const pfn = Number(pa >> 12n);
    kernel.phys.fill(pfn as Pfn, 0x77);
    expect(rmm.smc_granule_delegate(pa).ret).toBe(RMI_SUCCESS);
    expect(rmm.granule_state(pfn)).toBe(GRANULE_STATE_DELEGATED);
    expect(rmm.gpt_pas(pfn)).toBe('REALM');
    expect(kernel.phys.state(pfn as Pfn)).toBe('zero');
    expect(rmm.smc_granule_delegate(pa).ret).toBe(INPUT);
    expect(rmm.smc_granule_delegate(pa + 8n).ret).toBe(INPUT);
    const sec = page();
    rmm.gpt_assign_el3(Number(sec >> 12n), 'SECURE');
    expect(rmm.smc_granule_delegate(sec).ret).toBe(INPUT);
    expect(rmm.smc_granule_delegate(BigInt(kernel.store.end_pfn + 5) << 12n).ret).toBe(INPUT);
  });

  test('UNDELEGATE: only DELEGATED granules; an RD or DATA granule stays', () => {
    const { rmm, page } = setup();
    expect(rmm.smc_granule_undelegate(page()).ret).toBe(INPUT);
    const { rd } = new_realm(rmm, page);
    expect(rmm.smc_granule_undelegate(rd).ret).toBe(INPUT);
    expect(rmm.granule_state(Number(rd >> 12n))).toBe(GRANULE_STATE_RD);
    const pa = page();
    rmm.smc_granule_delegate(pa);
    expect(rmm.smc_granule_undelegate(pa).ret).toBe(RMI_SUCCESS);
    expect(rmm.granule_state(Number(pa >> 12n))).toBe(GRANULE_STATE_NS);
    expect(rmm.gpt_pas(Number(pa >> 12n))).toBe('NS');
  });
});

describe('realms and RECs', () => {
  test('REALM_CREATE checks its granules and parameters; ACTIVATE only once; DESTROY only when empty', () => {
    const { rmm, page } = setup();
    const rd = page();
    expect(rmm.smc_realm_create(rd, { s2sz: 40, hash_algo: 0, vmid: 1, rtt_base: [], rtt_level_start: 1, rtt_num_start: 2 }).ret).toBe(INPUT);
    rmm.smc_granule_delegate(rd);
    const r0 = page();
    const r1 = page();
    rmm.smc_granule_delegate(r0);
    rmm.smc_granule_delegate(r1);
    const roots = [Number(r0 >> 12n), Number(r1 >> 12n)];
    const good = { s2sz: 40, hash_algo: 0, vmid: 3, rtt_base: roots, rtt_level_start: 1, rtt_num_start: 2 };
    expect(rmm.smc_realm_create(rd, { ...good, s2sz: 52 }).ret).toBe(INPUT);
    expect(rmm.smc_realm_create(rd, { ...good, hash_algo: 2 }).ret).toBe(INPUT);
    expect(rmm.smc_realm_create(rd, { ...good, rtt_level_start: 0 }).ret).toBe(INPUT);
    expect(rmm.smc_realm_create(rd, { ...good, rtt_base: [roots[0]!] , rtt_num_start: 1 }).ret).toBe(INPUT);
    expect(rmm.smc_realm_create(rd, good).ret).toBe(RMI_SUCCESS);
    expect(rmm.granule_state(roots[0]!)).toBe(GRANULE_STATE_RTT);
    const rec = page();
    const aux = page();
    rmm.smc_granule_delegate(rec);
    rmm.smc_granule_delegate(aux);
    const params = { flags: 1n, mpidr: 0n, pc: 0n, gprs: [], aux: [Number(aux >> 12n)] };
    expect(rmm.smc_rec_create(rd, rec, { ...params, aux: [] }).ret).toBe(INPUT);
    expect(rmm.smc_rec_create(rd, rec, params).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_realm_activate(rd).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_realm_activate(rd).ret).toBe(REALM);
    const rec2 = page();
    const aux2 = page();
    rmm.smc_granule_delegate(rec2);
    rmm.smc_granule_delegate(aux2);
    expect(rmm.smc_rec_create(rd, rec2, { ...params, aux: [Number(aux2 >> 12n)] }).ret).toBe(REALM);
    expect(rmm.smc_realm_destroy(rd).ret).toBe(REALM);
    expect(rmm.smc_rec_destroy(rec).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_realm_destroy(rd).ret).toBe(RMI_SUCCESS);
    expect(rmm.granule_state(Number(rd >> 12n))).toBe(GRANULE_STATE_DELEGATED);
    expect(rmm.smc_realm_activate(rd).ret).toBe(INPUT);
  });
});

describe('RTTs, DATA and RIPAS', () => {
  const IPA = 1n << 30n;

  test('RTT_CREATE: missing parent RMI_ERROR_RTT(walk level), existing RMI_ERROR_RTT(level - 1), bad level RMI_ERROR_INPUT', () => {
    const { rmm, page } = setup();
    const { rd } = new_realm(rmm, page);
    const rtt = page();
    rmm.smc_granule_delegate(rtt);
    expect(rmm.smc_rtt_create(rd, rtt, IPA, 3).ret).toBe(pack_return_code(RMI_ERROR_RTT, 1));
    expect(rmm.smc_rtt_create(rd, rtt, IPA, 1).ret).toBe(INPUT);
    expect(rmm.smc_rtt_create(rd, rtt, IPA + 4096n, 2).ret).toBe(INPUT);
    expect(rmm.smc_rtt_create(rd, rtt, IPA, 2).ret).toBe(RMI_SUCCESS);
    const again = page();
    rmm.smc_granule_delegate(again);
    expect(rmm.smc_rtt_create(rd, again, IPA, 2).ret).toBe(pack_return_code(RMI_ERROR_RTT, 1));
  });

  test('DATA_CREATE before ACTIVATE measures and copies; after it RMI_ERROR_REALM; without the level-3 RTT RMI_ERROR_RTT', () => {
    const { rmm, kernel, page } = setup();
    const { rd, realm } = new_realm(rmm, page);
    const src = page();
    kernel.phys.fill(Number(src >> 12n) as Pfn, 0x42);
    const data = page();
    rmm.smc_granule_delegate(data);
    expect(rmm.smc_data_create(rd, data, IPA, src, RMI_MEASURE_CONTENT).ret).toBe(pack_return_code(RMI_ERROR_RTT, 1));
    tables(rmm, page, rd, IPA);
    expect(rmm.smc_data_create(rd, data, IPA, src, 7n).ret).toBe(INPUT);
    expect(rmm.smc_data_create(rd, data, IPA, data, RMI_MEASURE_CONTENT).ret).toBe(INPUT);
    expect(rmm.smc_data_create(rd, data, 1n << 39n, src, RMI_MEASURE_CONTENT).ret).toBe(INPUT);
    const rim = realm.rim.slice();
    expect(rmm.smc_data_create(rd, data, IPA, src, RMI_MEASURE_CONTENT).ret).toBe(RMI_SUCCESS);
    expect(Buffer.from(realm.rim).equals(Buffer.from(rim))).toBe(false);
    expect(rtt_leaf(realm, IPA).entry).toEqual({ hipas: 'ASSIGNED', ripas: RIPAS_RAM, pa: Number(data >> 12n) });
    expect(kernel.phys.read(Number(data >> 12n) as Pfn, 0, 4)).toEqual(Uint8Array.of(0x42, 0x42, 0x42, 0x42));
    const data2 = page();
    rmm.smc_granule_delegate(data2);
    expect(rmm.smc_data_create(rd, data2, IPA, src, 0n).ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
    expect(rmm.smc_realm_activate(rd).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_data_create(rd, data2, IPA + 4096n, src, 0n).ret).toBe(REALM);
    // DATA_CREATE_UNKNOWN is allowed in an ACTIVE realm; the entry keeps its RIPAS (EMPTY here).
    expect(rmm.smc_data_create_unknown(rd, data2, IPA + 4096n).ret).toBe(RMI_SUCCESS);
    expect(rtt_leaf(realm, IPA + 4096n).entry.ripas).toBe(RIPAS_EMPTY);
    expect(rmm.granule_state(Number(data2 >> 12n))).toBe(GRANULE_STATE_DATA);
  });

  test('DATA_DESTROY: ASSIGNED_RAM -> UNASSIGNED_DESTROYED, zeroed, DELEGATED; unassigned gives RMI_ERROR_RTT and the next IPA', () => {
    const { rmm, kernel, page } = setup();
    const { rd, realm } = new_realm(rmm, page);
    tables(rmm, page, rd, IPA);
    const src = page();
    kernel.phys.fill(Number(src >> 12n) as Pfn, 0x42);
    const data = page();
    rmm.smc_granule_delegate(data);
    expect(rmm.smc_data_create(rd, data, IPA, src, 0n).ret).toBe(RMI_SUCCESS);
    const r = rmm.smc_data_destroy(rd, IPA);
    expect(r.ret).toBe(RMI_SUCCESS);
    expect(r.x1).toBe(data);
    expect(rtt_leaf(realm, IPA).entry).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_DESTROYED });
    expect(kernel.phys.state(Number(data >> 12n) as Pfn)).toBe('zero');
    expect(rmm.granule_state(Number(data >> 12n))).toBe(GRANULE_STATE_DELEGATED);
    const again = rmm.smc_data_destroy(rd, IPA);
    expect(again.ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
    expect(again.x2).toBe(IPA + 4096n);
    const far = rmm.smc_data_destroy(rd, 3n << 30n);
    expect(far.ret).toBe(pack_return_code(RMI_ERROR_RTT, 1));
    expect(far.x2).toBe(4n << 30n);
  });

  test('RTT_FOLD of 512 contiguous DATA pages makes a 2 MiB block; DATA_DESTROY then needs a split (RTT_CREATE)', () => {
    const { rmm, kernel, page } = setup();
    const { rd, realm } = new_realm(rmm, page);
    tables(rmm, page, rd, IPA);
    // An empty level-3 table folds into an unassigned level-2 entry; make it again.
    const empty_fold = rmm.smc_rtt_fold(rd, IPA, 3);
    expect(empty_fold.ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_rtt_create(rd, empty_fold.x1, IPA, 3).ret).toBe(RMI_SUCCESS);
    const block = kernel.page_alloc.alloc_pages(GFP_KERNEL, 9);
    for (let i = 0; i < 512; i++) {
      const pa = BigInt(block + i) << 12n;
      expect(rmm.smc_granule_delegate(pa).ret).toBe(RMI_SUCCESS);
      expect(rmm.smc_data_create_unknown(rd, pa, IPA + BigInt(i * PAGE_SIZE)).ret).toBe(RMI_SUCCESS);
    }
    const odd = page();
    rmm.smc_granule_delegate(odd);
    expect(rmm.smc_data_destroy(rd, IPA + 4096n).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_data_create_unknown(rd, odd, IPA + 4096n).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_rtt_fold(rd, IPA, 3).ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
    rmm.smc_data_destroy(rd, IPA + 4096n);
    rmm.smc_granule_undelegate(odd);
    rmm.smc_granule_delegate(BigInt(block + 1) << 12n);
    expect(rmm.smc_data_create_unknown(rd, BigInt(block + 1) << 12n, IPA + 4096n).ret).toBe(RMI_SUCCESS);
    const fold = rmm.smc_rtt_fold(rd, IPA, 3);
    expect(fold.ret).toBe(RMI_SUCCESS);
    expect(rmm.granule_state(Number(fold.x1 >> 12n))).toBe(GRANULE_STATE_DELEGATED);
    expect(rtt_leaf(realm, IPA + 5n * 4096n)).toEqual({ level: 2, entry: { hipas: 'ASSIGNED', ripas: RIPAS_EMPTY, pa: block } });
    const split = rmm.smc_data_destroy(rd, IPA + 4096n);
    expect(split.ret).toBe(pack_return_code(RMI_ERROR_RTT, 2));
    expect(split.x2).toBe(IPA + 4096n);
    expect(rmm.smc_rtt_create(rd, fold.x1, IPA, 3).ret).toBe(RMI_SUCCESS);
    expect(rtt_leaf(realm, IPA + 7n * 4096n)).toEqual({ level: 3, entry: { hipas: 'ASSIGNED', ripas: RIPAS_EMPTY, pa: block + 7 } });
    expect(rmm.smc_data_destroy(rd, IPA + 4096n).ret).toBe(RMI_SUCCESS);
  });

  test('INIT_RIPAS only in NEW realms; the realm\'s RIPAS change needs its request, done in order, DESTROYED only with its consent', () => {
    const { rmm, page } = setup();
    const { rd, realm } = new_realm(rmm, page);
    tables(rmm, page, rd, IPA);
    expect(rmm.smc_rtt_init_ripas(rd, IPA, IPA + 8192n).x1).toBe(IPA + 8192n);
    expect(rmm.smc_rtt_init_ripas(rd, IPA, IPA + 3n).ret).toBe(INPUT);
    const data = page();
    rmm.smc_granule_delegate(data);
    expect(rmm.smc_data_create_unknown(rd, data, IPA).ret).toBe(RMI_SUCCESS);
    const rec_pa = page();
    const aux = page();
    rmm.smc_granule_delegate(rec_pa);
    rmm.smc_granule_delegate(aux);
    rmm.smc_rec_create(rd, rec_pa, { flags: 1n, mpidr: 0n, pc: 0n, gprs: [], aux: [Number(aux >> 12n)] });
    expect(rmm.smc_realm_activate(rd).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_rtt_init_ripas(rd, IPA + 8192n, IPA + 12288n).ret).toBe(REALM);
    const rec = rmm.rec_at(rec_pa)!;
    // No request yet.
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA, IPA + 4096n).ret).toBe(INPUT);
    // The realm's request: bad ranges come back as RSI_ERROR_INPUT without an exit.
    expect(rmm.rsi_ipa_state_set(rec, IPA, IPA, 0n, 1n)).toEqual({ kind: 'ret', regs: [RSI_ERROR_INPUT, IPA, 1n] });
    expect(rmm.rsi_ipa_state_set(rec, 1n << 39n, (1n << 39n) + 4096n, 0n, 1n)).toMatchObject({ kind: 'ret' });
    expect(rmm.rsi_ipa_state_set(rec, IPA, IPA + 8192n, BigInt(RIPAS_EMPTY), 0n)).toEqual({ kind: 'exit' });
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA + 4096n, IPA + 8192n).ret).toBe(INPUT);
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA, IPA + 12288n).ret).toBe(INPUT);
    const half = rmm.smc_rtt_set_ripas(rd, rec_pa, IPA, IPA + 4096n);
    expect(half).toMatchObject({ ret: RMI_SUCCESS, x1: IPA + 4096n });
    expect(rtt_leaf(realm, IPA).entry).toMatchObject({ hipas: 'ASSIGNED', ripas: RIPAS_EMPTY });
    expect(rmm.smc_rec_enter(rec, false)).toBe(RMI_SUCCESS);
    // The realm is told how far the host got.
    expect(rmm.rsi_ipa_state_set(rec, IPA, IPA + 8192n, 0n, 0n)).toEqual({ kind: 'ret', regs: [RSI_SUCCESS, IPA + 4096n, RSI_ACCEPT] });
    // Back to RAM, across a page the host destroyed: refused without RSI_CHANGE_DESTROYED.
    expect(rmm.smc_data_destroy(rd, IPA).ret).toBe(RMI_SUCCESS);
    rmm.smc_data_create_unknown(rd, data, IPA);
    rmm.smc_data_destroy(rd, IPA);
    expect(rtt_leaf(realm, IPA).entry.ripas).toBe(RIPAS_EMPTY);
    expect(rmm.rsi_ipa_state_set(rec, IPA + 4096n, IPA + 8192n, BigInt(RIPAS_EMPTY), 0n)).toEqual({ kind: 'exit' });
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA + 4096n, IPA + 8192n).ret).toBe(RMI_SUCCESS);
    rmm.smc_rec_enter(rec, false);
    rmm.rsi_ipa_state_set(rec, 0n, 0n, 0n, 0n);
    const d2 = page();
    rmm.smc_granule_delegate(d2);
    expect(rmm.smc_data_create_unknown(rd, d2, IPA + 8192n).ret).toBe(RMI_SUCCESS);
    expect(rtt_leaf(realm, IPA + 8192n).entry.ripas).toBe(RIPAS_EMPTY);
    rmm.smc_data_destroy(rd, IPA + 8192n);
    expect(rtt_leaf(realm, IPA + 8192n).entry.ripas).toBe(RIPAS_EMPTY);
    // A RAM page the host destroys becomes DESTROYED; the realm's RAM request only moves it with consent.
    const d3 = page();
    rmm.smc_granule_delegate(d3);
    expect(rmm.rsi_ipa_state_set(rec, IPA + 12288n, IPA + 16384n, BigInt(RIPAS_RAM), 0n)).toEqual({ kind: 'exit' });
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA + 12288n, IPA + 16384n).ret).toBe(RMI_SUCCESS);
    rmm.smc_rec_enter(rec, false);
    rmm.rsi_ipa_state_set(rec, 0n, 0n, 0n, 0n);
    expect(rmm.smc_data_create_unknown(rd, d3, IPA + 12288n).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_data_destroy(rd, IPA + 12288n).ret).toBe(RMI_SUCCESS);
    expect(rtt_leaf(realm, IPA + 12288n).entry.ripas).toBe(RIPAS_DESTROYED);
    expect(rmm.rsi_ipa_state_set(rec, IPA + 12288n, IPA + 16384n, BigInt(RIPAS_RAM), 0n)).toEqual({ kind: 'exit' });
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA + 12288n, IPA + 16384n).ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
    rmm.smc_rec_enter(rec, true);
    expect(rmm.rsi_ipa_state_set(rec, 0n, 0n, 0n, 0n)).toEqual({ kind: 'ret', regs: [RSI_SUCCESS, IPA + 12288n, 1n] });
    expect(rmm.rsi_ipa_state_set(rec, IPA + 12288n, IPA + 16384n, BigInt(RIPAS_RAM), 1n)).toEqual({ kind: 'exit' });
    expect(rmm.smc_rtt_set_ripas(rd, rec_pa, IPA + 12288n, IPA + 16384n).ret).toBe(RMI_SUCCESS);
    expect(rtt_leaf(realm, IPA + 12288n).entry.ripas).toBe(RIPAS_RAM);
  });

  test('SET_RIPAS with another realm\'s REC is RMI_ERROR_REC; unprotected mappings only above the protected half', () => {
    const { rmm, page } = setup();
    const a = new_realm(rmm, page);
    const rd2 = page();
    rmm.smc_granule_delegate(rd2);
    const roots = [page(), page()];
    for (const r of roots) rmm.smc_granule_delegate(r);
    rmm.smc_realm_create(rd2, { s2sz: 40, hash_algo: 0, vmid: 2, rtt_base: roots.map((r) => Number(r >> 12n)), rtt_level_start: 1, rtt_num_start: 2 });
    const rec_pa = page();
    const aux = page();
    rmm.smc_granule_delegate(rec_pa);
    rmm.smc_granule_delegate(aux);
    rmm.smc_rec_create(rd2, rec_pa, { flags: 0n, mpidr: 0n, pc: 0n, gprs: [], aux: [Number(aux >> 12n)] });
    expect(rmm.smc_rtt_set_ripas(a.rd, rec_pa, IPA, IPA + 4096n).ret).toBe(pack_return_code(RMI_ERROR_REC));
    const host_page = page();
    expect(rmm.smc_rtt_map_unprotected(a.rd, IPA, 3, host_page).ret).toBe(INPUT);
    const shared = (1n << 39n) | IPA;
    expect(rmm.smc_rtt_map_unprotected(a.rd, shared, 3, host_page).ret).toBe(pack_return_code(RMI_ERROR_RTT, 1));
    tables(rmm, page, a.rd, shared);
    expect(rmm.smc_rtt_map_unprotected(a.rd, shared, 3, host_page).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_rtt_map_unprotected(a.rd, shared, 3, host_page).ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
    expect(rtt_leaf(a.realm, shared).entry).toMatchObject({ hipas: 'ASSIGNED_NS', pa: Number(host_page >> 12n) });
    expect(rmm.smc_rtt_unmap_unprotected(a.rd, shared, 3).ret).toBe(RMI_SUCCESS);
    expect(rmm.smc_rtt_unmap_unprotected(a.rd, shared, 3).ret).toBe(pack_return_code(RMI_ERROR_RTT, 3));
  });
});
