/**
 * TDX's part of the state digest and of DEBUG_VM (core/src/state_digest.ts, mm/src/debug_vm.ts),
 * after kvm/src/kvm_debug.ts.
 *
 * Digest part "tdx.module", the TDX module of the host (tdx_module.ts): the guest KeyIDs the host
 * allocated, the KOT (HKID -> TD), every TD by TDR pfn (lifecycle, op state, fatal, TDCS pages,
 * packages with the key configured and caches written back, TD_PARAMS, the epoch, chldcnt, vCPUs
 * with their TDVPR/TDCX pages, the measurement: the SHA-384 state so far and MRTD, and the S-EPT
 * level by level in gfn order), the PAMT by pfn (type, owner, blocking epoch) and the memory
 * controller's per-page line state (owner TD, lines written by non-TD software).
 * Digest part "tdx.vms", KVM's half (struct kvm_tdx, struct vcpu_tdx) of each live TD in VM
 * creation order: state, HKID, the TD, TDR/TDCS/S-EPT pages, nr_premapped, attributes, XFAM; per
 * vCPU its state, TDVPR/TDCX pages, the MapGPA range in flight and the TDCALL being completed.
 * "tdx.module" mirrors "kvm.vms": the S-EPT follows KVM's mirror root (tdx_sept_set_private_spte(),
 * tdx_sept_remove_private_spte()).
 * The epoch is in: TDH.MEM.TRACK advances it and blocked pages are judged against it. Nothing in
 * the module only orders events.
 *
 * DEBUG_VM rules ("tdx:<rule>"), over the live TDs whose HKID is assigned and whose VM is not
 * bugged (KVM_BUG_ON() leaves a dead VM's S-EPT as it was):
 *   sept_map    every leaf of the mirror root maps a page the module holds as the TD's at that
 *               GPA: S-EPT MAPPED or PENDING (AUGed, not yet accepted) translating to the pfn,
 *               PAMT PT_REG owned by the TD (tdx_private_owner()). Before KVM_TDX_FINALIZE_VM a
 *               leaf may be premapped (tdx_mem_page_record_premap_cnt(): in the mirror root, the
 *               S-EPT still FREE until TDH.MEM.PAGE.ADD): their number is kvm_tdx->nr_premapped.
 *   sept_orphan every S-EPT leaf has the mirror leaf that put it there: KVM removes an S-EPT leaf
 *               when it zaps the mirror SPTE (tdx_sept_remove_private_spte()).
 *   pamt_free   every page the PAMT holds (not PT_NDA) has a page refcount > 0: the kernel
 *               reclaims a page from the module before it frees it (tdx_reclaim_page()), and
 *               leaks it when the reclaim fails. Whether a host user PTE maps such a page is not
 *               asserted: the kernel does not guarantee it (a design may back private memory with
 *               user-mapped pages), and the hardware answers a host access with zeros or poison.
 */
import { type HostRegistrar, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, page_count, type Kernel } from '@cocosim/mm';
import { KvmModule, tdp_mmu_for_each_leaf, type Kvm, type KvmTdpMmu } from '@cocosim/kvm';
import { tdx_private_owner } from './cvm.js';
import { TD_STATE_RUNNABLE, is_td, to_kvm_tdx, to_tdx } from './tdx.js';
import {
  SEPT_BLOCKED, SEPT_BLOCKEDW, SEPT_MAPPED, SEPT_PENDING, SEPT_PENDING_BLOCKED, SEPT_PENDING_BLOCKEDW, sept_state_name, tdx_module_of,
  type Td,
} from './tdx_module.js';

/** The 4 KiB-page span of the whole mirror root (512^5 gfns). */
const ROOT_GFNS = 512 ** 5;

/** The S-EPT states of a leaf (the non-leaf, FREE and REMOVED states are not). */
const LEAF_STATES: ReadonlySet<number> = new Set([SEPT_MAPPED, SEPT_BLOCKEDW, SEPT_BLOCKED, SEPT_PENDING, SEPT_PENDING_BLOCKEDW, SEPT_PENDING_BLOCKED]);

const hex = (n: number): string => `0x${n.toString(16)}`;
const by_num = (a: number, b: number): number => a - b;

/** The host's composition root, as a registrar gets it. */
type Root = Parameters<HostRegistrar>[0];

/** The KVM module of the host, once kvmRegistrar() registered it (vendor registrars run first). */
function kvm_module(root: Root): KvmModule | undefined {
  return root.isRegistered(KvmModule, true) ? root.resolve(KvmModule) : undefined;
}

/* ---- the digest ---- */

function hash_sorted_set(h: StateHash, s: ReadonlySet<number>): void {
  const a = [...s].sort(by_num);
  h.num(a.length);
  for (const x of a) h.num(x);
}

/** One TD into the digest (no kernel counterpart: the simulator's crash-dump comparison). */
function hash_td(h: StateHash, td: Td): void {
  h.num(td.tdr_pfn);
  h.num(td.hkid);
  h.str(td.lifecycle);
  h.str(td.op_state);
  h.bool(td.fatal);
  h.num(td.tdcs.length);
  for (const p of td.tdcs) h.num(p);
  hash_sorted_set(h, td.keys_configured);
  hash_sorted_set(h, td.cache_wb);
  h.bool(td.vpflushdone);
  if (td.params === null) h.num(-1);
  else {
    h.big(td.params.attributes);
    h.big(td.params.xfam);
    h.num(td.params.gpaw);
    h.num(td.params.max_vcpus);
  }
  h.num(td.td_epoch);
  h.num(td.chldcnt);
  h.num(td.vps.length);
  for (const vp of td.vps) {
    h.num(vp.tdvpr_pfn);
    h.num(vp.tdcx.length);
    for (const p of vp.tdcx) h.num(p);
    h.bool(vp.initialized);
    h.bool(vp.associated);
  }
  /* the running SHA-384 of the measurement: a copy, so that hashing does not finish it */
  if (td.sha === null) h.num(-1);
  else h.bytes(td.sha.copy().digest());
  if (td.mrtd === null) h.num(-1);
  else h.bytes(td.mrtd);
  td.sept.forEach((level, l) => {
    const keys = [...level.keys()].sort(by_num);
    h.num(l);
    h.num(keys.length);
    for (const k of keys) {
      const e = level.get(k)!;
      h.num(k);
      h.u32(e.state);
      h.num(e.pfn);
    }
  });
}

/** The module of `kernel` into the digest: KeyIDs, KOT, TDs, PAMT, line state (the file comment). */
function hash_module(h: StateHash, kernel: Kernel): void {
  const module = tdx_module_of(kernel);
  const t = module.debug_tables();
  hash_sorted_set(h, t.keyids);
  /* every TD the module knows: in the KOT, or (after TDH.MNG.KEY.FREEID) still owning pages */
  const tds = new Map<number, Td>();
  for (const td of t.kot.values()) tds.set(td.tdr_pfn, td);
  for (const e of t.pamt.values()) if (e.owner !== null) tds.set(e.owner.tdr_pfn, e.owner);
  const tdrs = [...tds.keys()].sort(by_num);
  h.num(tdrs.length);
  for (const tdr of tdrs) {
    const td = tds.get(tdr)!;
    h.num(h.id(td).id);
    hash_td(h, td);
  }
  const hkids = [...t.kot.keys()].sort(by_num);
  h.num(hkids.length);
  for (const k of hkids) {
    h.num(k);
    h.num(h.id(t.kot.get(k)!).id);
  }
  const pfns = [...t.pamt.keys()].sort(by_num);
  h.num(pfns.length);
  for (const pfn of pfns) {
    const e = t.pamt.get(pfn)!;
    h.num(pfn);
    h.str(e.pt);
    h.num(e.owner === null ? 0 : h.id(e.owner).id);
    h.num(e.bepoch);
  }
  const lines = [...t.lines.keys()].sort(by_num);
  h.num(lines.length);
  for (const pfn of lines) {
    const l = t.lines.get(pfn)!;
    h.num(pfn);
    h.num(h.id(l.td).id);
    h.big(l.host_written);
  }
}

/** KVM's half of each live TD (struct kvm_tdx, struct vcpu_tdx) into the digest. */
function hash_vms(h: StateHash, module: KvmModule | undefined): void {
  const vms = module === undefined ? [] : [...module.vms].filter(is_td);
  h.num(vms.length);
  for (const kvm of vms) {
    const t = to_kvm_tdx(kvm);
    h.num(h.id(kvm).id);
    h.num(t.state);
    h.num(t.hkid);
    h.num(t.td === null ? 0 : h.id(t.td).id);
    h.num(t.tdr_pfn);
    h.num(t.tdcs_pfns.length);
    for (const p of t.tdcs_pfns) h.num(p);
    h.num(t.nr_premapped);
    h.big(t.attributes);
    h.big(t.xfam);
    h.num(t.sept_pages.length);
    for (const p of t.sept_pages) h.num(p);
    const ids = [...kvm.vcpus.keys()].sort(by_num);
    h.num(ids.length);
    for (const id of ids) {
      const v = to_tdx(kvm.vcpus.get(id)!);
      h.num(id);
      h.num(v.state);
      h.num(v.vp === null ? 0 : h.id(v.vp).id);
      h.num(v.tdvpr_pfn);
      h.num(v.tdcx_pfns.length);
      for (const p of v.tdcx_pfns) h.num(p);
      h.big(v.map_gpa_next);
      h.big(v.map_gpa_end);
      if (v.tdcall_ret === null) h.num(-1);
      else for (const r of v.tdcall_ret) h.big(r);
    }
  }
}

/* ---- the checks ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

/** The sept_map and sept_orphan rules for one TD (the file comment). */
function check_td(kvm: Kvm, vm: string, report: Report): void {
  const kvm_tdx = to_kvm_tdx(kvm);
  const td = kvm_tdx.td;
  const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
  if (td === null || kvm_tdx.hkid <= 0 || td.lifecycle === 'TD_TEARDOWN' || kvm.vm_dead || mmu?.mirror_root == null) return;
  const module = tdx_module_of(kvm.kernel);
  const mirror = new Map<number, number>();
  let premapped = 0;
  tdp_mmu_for_each_leaf(mmu.mirror_root, 0, ROOT_GFNS, (sp, i, gfn) => {
    const pfn = sp.pfn[i]!;
    mirror.set(gfn, pfn);
    if (kvm_tdx.state !== TD_STATE_RUNNABLE && module.sept_leaf(td, gfn) === undefined) {
      premapped++;
      return;
    }
    const owner = tdx_private_owner(kvm, BigInt(gfn) * 4096n, pfn, true);
    if (owner !== 'guest') report('sept_map', `${vm}: mirror SPTE gfn ${hex(gfn)} maps pfn ${hex(pfn)}, the TDX module: ${owner}`, pfn);
  });
  if (premapped !== kvm_tdx.nr_premapped) {
    report('sept_map', `${vm}: ${premapped} mirror SPTEs have no S-EPT leaf before finalize, nr_premapped is ${kvm_tdx.nr_premapped}`);
  }
  td.sept.forEach((level, l) => {
    for (const [key, e] of level) {
      if (!LEAF_STATES.has(e.state)) continue;
      const gfn = key * 512 ** l;
      if (mirror.get(gfn) !== e.pfn) {
        report('sept_orphan', `${vm}: S-EPT ${sept_state_name(e.state)} leaf at gfn ${hex(gfn)} (pfn ${hex(e.pfn)}) has no mirror SPTE mapping that pfn`, e.pfn);
      }
    }
  });
}

/** The pamt_free rule: no page the module holds is free. */
function check_pamt(kernel: Kernel, report: Report): void {
  const store = kernel.store;
  for (const [pfn, e] of tdx_module_of(kernel).debug_tables().pamt) {
    if (e.pt === 'PT_NDA') continue;
    if (pfn >= store.base_pfn && pfn < store.end_pfn && page_count(store, pfn) <= 0) {
      report('pamt_free', `pfn ${hex(pfn)} is ${e.pt}${e.owner === null ? '' : ` of the TD with HKID ${e.owner.hkid}`} in the PAMT and free in the page allocator`, pfn);
    }
  }
}

/** The DEBUG_VM check of the host's TDX module against its TDs (the rules of the file comment). */
export function tdx_check(kernel: Kernel, module: KvmModule | undefined, report: Report): void {
  if (module !== undefined) {
    let n = 0;
    for (const kvm of module.vms) {
      const vm = `VM ${n++} (type ${kvm.arch.vm_type})`;
      if (is_td(kvm)) check_td(kvm, vm, report);
    }
  }
  check_pamt(kernel, report);
}

/**
 * Registers TDX's digest parts and DEBUG_VM rules on the host of `root` (from the vendor's
 * registrar; once per host).
 */
export function tdx_debug_register(root: Root, kernel: Kernel): void {
  const registry = stateDigestRegistry(kernel);
  if (registry.has('tdx.module')) return;
  registry.register('tdx.module', (h) => hash_module(h, kernel), 110, 'kvm.vms');
  registry.register('tdx.vms', (h) => hash_vms(h, kvm_module(root)), 111);
  debug_vm_register(kernel, 'tdx', (k, report) => tdx_check(k, kvm_module(root), report));
}
