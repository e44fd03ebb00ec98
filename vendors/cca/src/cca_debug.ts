/**
 * CCA's part of the state digest and of DEBUG_VM (core/src/state_digest.ts, mm/src/debug_vm.ts),
 * after kvm/src/kvm_debug.ts.
 *
 * Digest part "cca.rmm", the host's GPT and RMM (rmm.ts): the PAS of each granule outside the
 * Non-secure PAS by pfn; the RMM's state of each tracked granule by pfn with its realm and REC;
 * the VMIDs in use; every realm by RD (state, IPA size, hash algorithm, VMID, root RTTs, start
 * level, RIM, the RTTs beyond the root and the non-default RTT entries by (level, index): HIPAS,
 * RIPAS, output granule; its RECs: granule, index, AUX granules, the RIPAS change in flight and
 * the host's answer). Digest part "cca.vms", KVM's half (struct realm) of each live realm VM in
 * creation order: state, RPV, hash algorithm, RD and root RTT granules, VMID, AUX count, and per
 * vCPU its REC (granules, the exit and the RIPAS change KVM reads from it, the entry flags).
 * "cca.rmm" mirrors "kvm.vms": a zap of KVM's SPTEs unmaps the realm's RTT entries
 * (RMI_RTT_UNMAP_UNPROTECTED, or the DATA granule's destruction).
 * Left out: the RECs' SEA counts (statistics) and rec_count only through the RECs' indices.
 *
 * DEBUG_VM rules ("cca:<rule>"), over live realm VMs that are not bugged:
 *   rtt_map       every leaf of a realm's mirror root (its protected IPAs) maps granules the
 *                 realm's RTT maps ASSIGNED at that IPA, DATA granules in the Realm PAS
 *                 (cca_private_owner()), whatever the RIPAS: KVM maps what it gave the realm and
 *                 the realm's own view (RAM, EMPTY, DESTROYED) is the RMM's business.
 *   rtt_orphan    every ASSIGNED entry of the realm's RTTs is a mirror leaf's: KVM destroys the
 *                 DATA granule when it zaps the mirror SPTE (kvm_realm_remove_external_spte()).
 *   granule_free  every granule the RMM tracks (delegated, RD, REC, AUX, DATA, RTT) or the GPT
 *                 puts in the Realm PAS has a page refcount > 0: the host undelegates a granule
 *                 before it frees it, and leaks it when it cannot. Whether a host user PTE maps
 *                 such a granule is not asserted: the hardware answers the host's access with a
 *                 Granule Protection Fault, and the kernel does not keep such a mapping from
 *                 existing.
 *   granule_owner every DATA, REC and RTT granule belongs to a realm the RMM still has.
 */
import { type HostRegistrar, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, page_count, type Kernel } from '@cocosim/mm';
import { KvmModule, KVM_PAGES_PER_HPAGE, tdp_mmu_for_each_leaf, type Kvm, type KvmTdpMmu } from '@cocosim/kvm';
import { cca_private_owner } from './cvm.js';
import { GRANULE_STATE_DATA, GRANULE_STATE_NS, RMM_RTT_LEVEL_SHIFT } from './rmi.js';
import { rmm_if_any, type RmmRealm } from './rmm.js';
import { kvm_is_realm, kvm_realm } from './rme.js';

const ROOT_GFNS = 512 ** 5;

const hex = (n: number): string => `0x${n.toString(16)}`;
const by_num = (a: number, b: number): number => a - b;

/** The host's composition root, as a registrar gets it. */
type Root = Parameters<HostRegistrar>[0];

/** The KVM module of the host, once kvmRegistrar() registered it. */
function kvm_module(root: Root): KvmModule | undefined {
  return root.isRegistered(KvmModule, true) ? root.resolve(KvmModule) : undefined;
}

/** The (level, index) key of the RMM's maps, decoded: the level and the first IPA. */
function key_ipa(key: number): { level: number; ipa: bigint } {
  const level = Math.floor(key / 2 ** 40);
  return { level, ipa: BigInt(key - level * 2 ** 40) << BigInt(RMM_RTT_LEVEL_SHIFT(level)) };
}

/* ---- the digest ---- */

function hash_realm(h: StateHash, r: RmmRealm): void {
  h.num(r.rd);
  h.str(r.state);
  h.num(r.ia_bits);
  h.num(r.hash_algo);
  h.num(r.vmid);
  h.num(r.root_rtts.length);
  for (const p of r.root_rtts) h.num(p);
  h.num(r.start_level);
  h.bytes(r.rim);
  const tables = [...r.tables.keys()].sort(by_num);
  h.num(tables.length);
  for (const k of tables) {
    h.num(k);
    h.num(r.tables.get(k)!);
  }
  const entries = [...r.entries.keys()].sort(by_num);
  h.num(entries.length);
  for (const k of entries) {
    const e = r.entries.get(k)!;
    h.num(k);
    h.str(e.hipas);
    h.num(e.ripas);
    h.num(e.pa);
  }
  h.num(r.rec_count);
  h.num(r.recs.length);
  for (const rec of r.recs) {
    h.num(h.id(rec).id);
    h.num(rec.pfn);
    h.num(rec.index);
    h.num(rec.aux.length);
    for (const a of rec.aux) h.num(a);
    const q = rec.ripas_req;
    if (q === null) h.num(-1);
    else {
      h.big(q.base);
      h.big(q.top);
      h.big(q.addr);
      h.num(q.value);
      h.bool(q.change_destroyed);
    }
    h.bool(rec.ripas_rejected);
    h.bool(rec.entered);
  }
}

/** The GPT and the RMM of `kernel`'s host (the file comment). */
function hash_rmm(h: StateHash, kernel: Kernel): void {
  const rmm = rmm_if_any(kernel);
  if (rmm === undefined) {
    h.num(-1);
    return;
  }
  const realms = [...rmm.realms.keys()].sort(by_num);
  h.num(realms.length);
  for (const rd of realms) {
    const r = rmm.realms.get(rd)!;
    h.num(h.id(r).id);
    hash_realm(h, r);
  }
  const t = rmm.debug_tables();
  const gpt = [...t.gpt.keys()].sort(by_num);
  h.num(gpt.length);
  for (const pfn of gpt) {
    h.num(pfn);
    h.str(t.gpt.get(pfn)!);
  }
  const granules = [...t.granules.keys()].sort(by_num);
  h.num(granules.length);
  for (const pfn of granules) {
    const g = t.granules.get(pfn)!;
    h.num(pfn);
    h.num(g.state);
    h.num(g.realm === null ? 0 : h.id(g.realm).id);
    h.num(g.rec === null ? 0 : h.id(g.rec).id);
  }
  const vmids = [...t.vmids].sort(by_num);
  h.num(vmids.length);
  for (const v of vmids) h.num(v);
}

/** KVM's half (struct realm) of each live realm VM. */
function hash_vms(h: StateHash, module: KvmModule | undefined): void {
  const vms = module === undefined ? [] : [...module.vms].filter(kvm_is_realm);
  h.num(vms.length);
  for (const kvm of vms) {
    const r = kvm_realm(kvm);
    h.num(h.id(kvm).id);
    h.str(r.state);
    h.bytes(r.rpv);
    h.num(r.hash_algo);
    h.num(r.rd);
    h.num(r.pgd.length);
    for (const p of r.pgd) h.num(p);
    h.num(r.vmid);
    h.num(r.num_aux);
    const recs = [...r.recs.entries()].sort((a, b) => a[0].vcpu_id - b[0].vcpu_id);
    h.num(recs.length);
    for (const [vcpu, rec] of recs) {
      h.num(vcpu.vcpu_id);
      h.num(rec.rec_pfn);
      h.num(rec.aux_pfns.length);
      for (const a of rec.aux_pfns) h.num(a);
      h.num(h.id(rec.rec).id);
      h.num(rec.exit_reason);
      h.big(rec.ripas_base);
      h.big(rec.ripas_top);
      h.num(rec.ripas_value);
      h.num(rec.enter_flags);
    }
  }
}

/* ---- the checks ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

/** The rtt_map and rtt_orphan rules for one realm VM. */
function check_realm(kvm: Kvm, vm: string, report: Report): void {
  const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
  const rmm = rmm_if_any(kvm.kernel);
  const rd = rmm?.realm_at(kvm_realm(kvm).rd_pa) ?? null;
  if (mmu?.mirror_root == null || kvm.vm_dead || rd === null) return;
  const mirror = new Map<number, number>();
  tdp_mmu_for_each_leaf(mmu.mirror_root, 0, ROOT_GFNS, (sp, i, gfn) => {
    const n = KVM_PAGES_PER_HPAGE(sp.level);
    const pfn = sp.pfn[i]!;
    for (let j = 0; j < n; j++) {
      mirror.set(gfn + j, pfn + j);
      const owner = cca_private_owner(kvm, BigInt(gfn + j) * 4096n, pfn + j, true);
      if (owner !== 'guest') {
        report('rtt_map', `${vm}: mirror SPTE ipa 0x${(BigInt(gfn + j) * 4096n).toString(16)} maps pfn ${hex(pfn + j)}, the RMM: ${owner}`, pfn + j);
        return;
      }
    }
  });
  for (const [key, e] of rd.entries) {
    if (e.hipas !== 'ASSIGNED') continue;
    const { level, ipa } = key_ipa(key);
    const gfn = Number(ipa / 4096n);
    const n = 2 ** (RMM_RTT_LEVEL_SHIFT(level) - 12);
    for (let j = 0; j < n; j++) {
      if (mirror.get(gfn + j) !== e.pa + j) {
        report('rtt_orphan', `${vm}: RTT entry ASSIGNED at ipa 0x${(ipa + BigInt(j) * 4096n).toString(16)} (granule ${hex(e.pa + j)}) has no mirror SPTE mapping it`, e.pa + j);
        break;
      }
    }
  }
}

/** The granule_free and granule_owner rules over the GPT and the RMM's granules. */
function check_granules(kernel: Kernel, report: Report): void {
  const rmm = rmm_if_any(kernel);
  if (rmm === undefined) return;
  const store = kernel.store;
  const t = rmm.debug_tables();
  const live = new Set(rmm.realms.values());
  const held = (pfn: number): boolean => pfn < store.base_pfn || pfn >= store.end_pfn || page_count(store, pfn) > 0;
  for (const [pfn, g] of t.granules) {
    if (g.state === GRANULE_STATE_NS) continue;
    if (!held(pfn)) report('granule_free', `granule ${hex(pfn)} is in RMM state ${g.state} and free in the page allocator`, pfn);
    if (g.realm !== null && !live.has(g.realm)) report('granule_owner', `granule ${hex(pfn)} (state ${g.state}) belongs to a realm the RMM no longer has`, pfn);
    if (g.state === GRANULE_STATE_DATA && g.realm === null) report('granule_owner', `DATA granule ${hex(pfn)} has no realm`, pfn);
  }
  for (const [pfn, pas] of t.gpt) {
    if (pas === 'REALM' && !held(pfn)) report('granule_free', `granule ${hex(pfn)} is in the Realm PAS and free in the page allocator`, pfn);
  }
}

/** The DEBUG_VM check of the host's RMM against its realm VMs (the rules of the file comment). */
export function cca_check(kernel: Kernel, module: KvmModule | undefined, report: Report): void {
  if (module !== undefined) {
    let n = 0;
    for (const kvm of module.vms) {
      const vm = `VM ${n++} (type ${kvm.arch.vm_type})`;
      if (kvm_is_realm(kvm)) check_realm(kvm, vm, report);
    }
  }
  check_granules(kernel, report);
}

/** Registers CCA's digest parts and DEBUG_VM rules on the host (from its registrar; once per host). */
export function cca_debug_register(root: Root, kernel: Kernel): void {
  const registry = stateDigestRegistry(kernel);
  if (registry.has('cca.rmm')) return;
  registry.register('cca.rmm', (h) => hash_rmm(h, kernel), 110, 'kvm.vms');
  registry.register('cca.vms', (h) => hash_vms(h, kvm_module(root)), 111);
  debug_vm_register(kernel, 'cca', (k, report) => cca_check(k, kvm_module(root), report));
}
