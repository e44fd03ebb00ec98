/**
 * The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c, tdp_iter.c): the two-dimensional page tables that map
 * a VM's gfns to host pfns, as a radix tree of page-table pages like the hardware walks.
 *
 * Layout of one page-table page (struct kvm_mmu_page, KvmMmuPage below), 512 entries:
 *
 *   spte      Uint16Array(512)   the SPTE state word (spte.ts SPTE_S_*), 0 = not present.
 *   pfn       Float64Array(512)  the pfn a leaf maps (the first pfn of a 2M/1G leaf).
 *   children  KvmMmuPage[512]    the lower page table of a non-leaf entry (levels > 4K only).
 *   nr_present                   entries present, so that a walk skips an empty table at once.
 *
 * The root is at level 5 (PT64_ROOT_5LEVEL): entry i of a page at `level` covers gfns
 * [gfn + i * 512^(level-1), +512^(level-1)). Walks over a range visit only the entries of the
 * range in tables that exist and hold something: zapping an empty 64 GiB range reads a few dozen
 * entries, zapping 2^20 present 4K SPTEs is one tight loop per 512-entry table.
 *
 * Roots (kvm->arch.tdp_mmu_roots): one direct root per address space, and for VMs with mirrored
 * TDP (kvm_has_mirrored_tdp(): TDX) a mirror root holding the private mappings, whose leaf changes
 * are propagated to the vendor's external page tables (kvm_x86_ops.set_external_spte /
 * remove_external_spte, TDX's S-EPT). SW_PROTECTED and SNP VMs keep private and shared SPTEs in
 * the direct root, so an unmap of either kind zaps both (kvm_gfn_range_filter_to_root_types()).
 * The direct root is indexed by gfn with the shared bit (kvm_gfn_direct_bits()) stripped.
 *
 * Empty page-table pages stay linked after their leaves are zapped, as the kernel leaves them
 * (only root teardown and NX-huge-page recovery free them).
 *
 * Costs: spte_set per leaf installed, spte_zap per leaf zapped (counted per call, charged once).
 * Tracepoints: kvm_tdp_mmu_spte_changed (every SPTE change, handle_changed_spte()),
 * kvm_mmu_split_huge_page.
 */
import type { Gfn } from '@cocosim/core';
import type { Kvm } from '../kvm_host.js';
import {
  KVM_PAGES_PER_HPAGE, NONLEAF_SPTE, PG_LEVEL_1G, PG_LEVEL_4K, PT64_ROOT_5LEVEL, SPTE_ENT_PER_PAGE,
  SPTE_S_LEAF, SPTE_S_PRESENT, SPTE_S_WRITABLE, is_last_spte, make_small_spte, spte_value,
} from './spte.js';

/** enum kvm_tdp_mmu_root_types. */
export const KVM_INVALID_ROOTS = 1 << 0;
export const KVM_DIRECT_ROOTS = 1 << 1;
export const KVM_MIRROR_ROOTS = 1 << 2;
export const KVM_VALID_ROOTS = KVM_DIRECT_ROOTS | KVM_MIRROR_ROOTS;
export const KVM_ALL_ROOTS = KVM_VALID_ROOTS | KVM_INVALID_ROOTS;

/** struct kvm_mmu_page of the TDP MMU: one page table. */
export class KvmMmuPage {
  readonly spte = new Uint16Array(SPTE_ENT_PER_PAGE);
  readonly pfn = new Float64Array(SPTE_ENT_PER_PAGE);
  /** Lower page tables by entry; null for a 4K-level page. */
  readonly children: (KvmMmuPage | undefined)[] | null;
  /** Present entries (leaves and links). */
  nr_present = 0;

  constructor(
    /** sp->role.level */
    readonly level: number,
    /** sp->gfn: the first gfn the page maps. */
    readonly gfn: number,
    /** is_mirror_sp(): the page belongs to the mirror root (private mappings of a TDX VM). */
    readonly is_mirror: boolean,
  ) {
    this.children = level > PG_LEVEL_4K ? new Array<KvmMmuPage | undefined>(SPTE_ENT_PER_PAGE) : null;
  }

  /** The entry of the page that covers `gfn` (SPTE_INDEX()). */
  index(gfn: number): number {
    return Math.floor((gfn - this.gfn) / KVM_PAGES_PER_HPAGE(this.level));
  }
}

/** Leaf SPTE counts by level (kvm->stat.pages_4k / pages_2m / pages_1g), index = level. */
export type SpteCounts = [number, number, number, number];

/** The TDP MMU's part of struct kvm_arch: its roots and statistics. */
export class KvmTdpMmu {
  /** The direct root (shared mappings, and private ones unless mirrored). */
  direct_root: KvmMmuPage;
  /** The mirror root (kvm_has_mirrored_tdp()), else null. */
  mirror_root: KvmMmuPage | null;
  /** Leaf SPTEs by level, per root kind. */
  readonly direct_pages: SpteCounts = [0, 0, 0, 0];
  readonly mirror_pages: SpteCounts = [0, 0, 0, 0];
  /** Page-table pages allocated (kvm->arch.tdp_mmu_pages). */
  tdp_mmu_pages = 0;

  /** kvm_x86_ops.external_direct_root(): direct-root leaves go to the vendor too (pKVM). */
  readonly external_direct: boolean;

  constructor(readonly kvm: Kvm) {
    this.external_direct = kvm.x86_ops.external_direct_root(kvm);
    this.direct_root = new KvmMmuPage(PT64_ROOT_5LEVEL, 0, false);
    this.mirror_root = kvm_has_mirrored_tdp(kvm) ? new KvmMmuPage(PT64_ROOT_5LEVEL, 0, true) : null;
    this.tdp_mmu_pages = this.mirror_root ? 2 : 1;
  }
}

/** kvm_has_mirrored_tdp(): the private mappings live in a mirror root (TDX; the vendor says: kvm_x86_ops.has_mirrored_tdp). */
export function kvm_has_mirrored_tdp(kvm: Kvm): boolean {
  return kvm.x86_ops.has_mirrored_tdp(kvm);
}

/**
 * Whether the leaves of `sp` are propagated to the vendor's page tables: the mirror root's, and
 * the direct root's when the guest's stage-2 belongs to a hypervisor below KVM
 * (kvm_x86_ops.external_direct_root: pKVM).
 */
function sp_is_external(kvm: Kvm, sp: KvmMmuPage): boolean {
  return sp.is_mirror || to_tdp_mmu(kvm).external_direct;
}

/** The TDP MMU state of a VM (created by kvm_mmu_init_vm()). */
export function to_tdp_mmu(kvm: Kvm): KvmTdpMmu {
  return kvm.arch.mmu as KvmTdpMmu;
}

/** kvm_mmu_init_tdp_mmu(). */
export function kvm_mmu_init_tdp_mmu(kvm: Kvm): void {
  kvm.arch.mmu = new KvmTdpMmu(kvm);
}

/** kvm_gfn_range_filter_to_root_types(): without mirrored TDP, every range is in the direct root. */
export function kvm_gfn_range_filter_to_root_types(kvm: Kvm, process: number): number {
  if (!kvm_has_mirrored_tdp(kvm)) return KVM_DIRECT_ROOTS;
  let ret = 0;
  if (process & 2 /* KVM_FILTER_PRIVATE */) ret |= KVM_MIRROR_ROOTS;
  if (process & 1 /* KVM_FILTER_SHARED */) ret |= KVM_DIRECT_ROOTS;
  return ret;
}

/** tdp_mmu_get_root_for_fault() / tdp_mmu_get_root(): the mirror root for private accesses of a TDX VM. */
export function tdp_mmu_get_root(kvm: Kvm, is_private: boolean): KvmMmuPage {
  const mmu = to_tdp_mmu(kvm);
  return is_private && mmu.mirror_root !== null ? mmu.mirror_root : mmu.direct_root;
}

function root_counts(mmu: KvmTdpMmu, sp: KvmMmuPage): SpteCounts {
  return sp.is_mirror ? mmu.mirror_pages : mmu.direct_pages;
}

/* ---- SPTE changes (handle_changed_spte) ---- */

/**
 * The part of handle_changed_spte() that reports a change: the tracepoint, and for a mirror leaf
 * going away, the vendor's external page table (remove_external_spte()).
 */
function handle_changed_spte(kvm: Kvm, sp: KvmMmuPage, i: number, old_s: number, old_pfn: number, new_s: number, new_pfn: number): void {
  const tracer = kvm.kernel.tracer;
  const gfn = sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level);
  if (tracer.enabled('kvm_tdp_mmu_spte_changed')) {
    tracer.emit('kvm_tdp_mmu_spte_changed', {
      as_id: 0, gfn: gfn as Gfn, level: sp.level,
      old_spte: spte_value(old_s, old_pfn, sp.level), new_spte: spte_value(new_s, new_pfn, sp.level),
    });
  }
  if (sp_is_external(kvm, sp) && old_s & SPTE_S_PRESENT && is_last_spte(old_s, sp.level) && !(new_s & SPTE_S_PRESENT)) {
    kvm.x86_ops.remove_external_spte(kvm, gfn, sp.level, old_pfn, sp.is_mirror);
  }
}

/** Whether zaps must go entry by entry (a tracepoint listens, or the vendor mirrors the root). */
function zap_is_observed(kvm: Kvm, sp: KvmMmuPage): boolean {
  return sp_is_external(kvm, sp) || kvm.kernel.tracer.enabled('kvm_tdp_mmu_spte_changed');
}

/**
 * Zap the present leaves of entries [i0, i1] of `sp` and below, counting them into `zapped` by
 * level. Returns how many leaves went.
 */
function zap_entries(kvm: Kvm, sp: KvmMmuPage, i0: number, i1: number, start: number, end: number, zapped: SpteCounts): number {
  const spte = sp.spte;
  let n = 0;
  if (sp.level === PG_LEVEL_4K) {
    if (zap_is_observed(kvm, sp)) {
      for (let i = i0; i <= i1; i++) {
        const s = spte[i];
        if (s === 0) continue;
        spte[i] = 0;
        n++;
        handle_changed_spte(kvm, sp, i, s, sp.pfn[i], 0, 0);
      }
    } else {
      for (let i = i0; i <= i1; i++) {
        if (spte[i] !== 0) {
          spte[i] = 0;
          n++;
        }
      }
    }
    sp.nr_present -= n;
    zapped[PG_LEVEL_4K] += n;
    return n;
  }
  const per = KVM_PAGES_PER_HPAGE(sp.level);
  const children = sp.children!;
  let total = 0;
  for (let i = i0; i <= i1; i++) {
    const s = spte[i];
    if (!(s & SPTE_S_PRESENT)) continue;
    if (s & SPTE_S_LEAF) {
      spte[i] = 0;
      sp.nr_present--;
      zapped[sp.level]++;
      total++;
      if (zap_is_observed(kvm, sp)) handle_changed_spte(kvm, sp, i, s, sp.pfn[i], 0, 0);
      continue;
    }
    const child = children[i]!;
    if (child.nr_present === 0) continue;
    const base = sp.gfn + i * per;
    total += zap_range(kvm, child, Math.max(start, base), Math.min(end, base + per), zapped);
  }
  return total;
}

/** Zap the leaves of `sp` that map any gfn of [start, end). */
function zap_range(kvm: Kvm, sp: KvmMmuPage, start: number, end: number, zapped: SpteCounts): number {
  if (sp.nr_present === 0 || end <= start) return 0;
  const i0 = Math.max(0, sp.index(start));
  const i1 = Math.min(SPTE_ENT_PER_PAGE - 1, sp.index(end - 1));
  return zap_entries(kvm, sp, i0, i1, start, end, zapped);
}

/**
 * tdp_mmu_zap_leafs(): zap every leaf SPTE of `root` mapping a gfn of [start, end), huge ones
 * whole. Returns the number zapped (the kernel's "flush" is that number being non-zero); charges
 * spte_zap for each.
 */
export function tdp_mmu_zap_leafs(kvm: Kvm, root: KvmMmuPage, start: number, end: number): number {
  const zapped: SpteCounts = [0, 0, 0, 0];
  const n = zap_range(kvm, root, start, end, zapped);
  if (n === 0) return 0;
  const counts = root_counts(to_tdp_mmu(kvm), root);
  for (let l = PG_LEVEL_4K; l <= PG_LEVEL_1G; l++) counts[l] -= zapped[l];
  kvm.kernel.cost.charge('spte_zap', n);
  return n;
}

/**
 * kvm_tdp_mmu_unmap_gfn_range(): zap [start, end) in the roots `types` selects (from the range's
 * attr_filter). Returns whether a TLB flush is needed.
 */
export function kvm_tdp_mmu_unmap_gfn_range(kvm: Kvm, start: number, end: number, attr_filter: number, flush: boolean): boolean {
  const mmu = to_tdp_mmu(kvm);
  const types = kvm_gfn_range_filter_to_root_types(kvm, attr_filter);
  if (types & KVM_MIRROR_ROOTS && mmu.mirror_root !== null && tdp_mmu_zap_leafs(kvm, mmu.mirror_root, start, end)) flush = true;
  if (types & KVM_DIRECT_ROOTS && tdp_mmu_zap_leafs(kvm, mmu.direct_root, start, end)) flush = true;
  return flush;
}

/**
 * kvm_tdp_mmu_zap_all() / the roots' teardown: every leaf of every root goes, and the page
 * tables with them. Returns the number of leaves zapped.
 */
export function kvm_tdp_mmu_zap_all(kvm: Kvm): number {
  const mmu = to_tdp_mmu(kvm);
  let n = tdp_mmu_zap_leafs(kvm, mmu.direct_root, 0, 2 ** 45);
  mmu.direct_root = new KvmMmuPage(PT64_ROOT_5LEVEL, 0, false);
  if (mmu.mirror_root !== null) {
    n += tdp_mmu_zap_leafs(kvm, mmu.mirror_root, 0, 2 ** 45);
    mmu.mirror_root = new KvmMmuPage(PT64_ROOT_5LEVEL, 0, true);
  }
  mmu.tdp_mmu_pages = mmu.mirror_root ? 2 : 1;
  return n;
}

/* ---- walks ---- */

/** The leaf SPTE mapping `gfn` in `root`: its page, index and level, or undefined. */
export interface TdpLeaf {
  readonly sp: KvmMmuPage;
  readonly i: number;
}

/** Walk `root` to the leaf mapping `gfn` (kvm_tdp_mmu_get_walk() / the fast-path lookup). */
export function tdp_mmu_lookup_leaf(root: KvmMmuPage, gfn: number): TdpLeaf | undefined {
  let sp = root;
  for (;;) {
    const i = sp.index(gfn);
    const s = sp.spte[i];
    if (!(s & SPTE_S_PRESENT)) return undefined;
    if (is_last_spte(s, sp.level)) return { sp, i };
    sp = sp.children![i]!;
  }
}

/** The pfn of the 4K page of `gfn` inside a leaf. */
export function tdp_leaf_pfn(leaf: TdpLeaf, gfn: number): number {
  const { sp, i } = leaf;
  return sp.pfn[i] + (gfn - (sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level)));
}

/** tdp_mmu_translate(): no leaf SPTE maps the gfn. */
export const TDP_NO_LEAF = -1;
/** tdp_mmu_translate(): a leaf maps the gfn but does not allow the write. */
export const TDP_LEAF_RO = -2;

/**
 * The guest's data path through `root`: the pfn `gfn` is mapped to for a read (or a write, when
 * the leaf is writable), else TDP_NO_LEAF or TDP_LEAF_RO. tdp_mmu_lookup_leaf() + tdp_leaf_pfn()
 * without allocating: the vCPU translates every page it touches.
 */
export function tdp_mmu_translate(root: KvmMmuPage, gfn: number, write: boolean): number {
  let sp = root;
  for (;;) {
    const per = KVM_PAGES_PER_HPAGE(sp.level);
    const i = Math.floor((gfn - sp.gfn) / per);
    const s = sp.spte[i];
    if (!(s & SPTE_S_PRESENT)) return TDP_NO_LEAF;
    if (is_last_spte(s, sp.level)) {
      if (write && !(s & SPTE_S_WRITABLE)) return TDP_LEAF_RO;
      return sp.pfn[i] + (gfn - sp.gfn - i * per);
    }
    sp = sp.children![i]!;
  }
}

/* ---- installing SPTEs (kvm_tdp_mmu_map) ---- */

/** tdp_mmu_alloc_sp() + tdp_mmu_init_child_sp(): the page table under entry `i` of `parent`. */
function tdp_mmu_alloc_child(kvm: Kvm, parent: KvmMmuPage, i: number): KvmMmuPage {
  to_tdp_mmu(kvm).tdp_mmu_pages++;
  return new KvmMmuPage(parent.level - 1, parent.gfn + i * KVM_PAGES_PER_HPAGE(parent.level), parent.is_mirror);
}

/** tdp_mmu_link_sp(): point entry `i` of `sp` (not present) at `child`. */
export function tdp_mmu_link_sp(kvm: Kvm, sp: KvmMmuPage, i: number, child: KvmMmuPage): void {
  sp.children![i] = child;
  sp.spte[i] = NONLEAF_SPTE;
  sp.pfn[i] = 0;
  sp.nr_present++;
  if (kvm.kernel.tracer.enabled('kvm_tdp_mmu_spte_changed')) handle_changed_spte(kvm, sp, i, 0, 0, NONLEAF_SPTE, 0);
}

/**
 * tdp_mmu_split_huge_page(): replace the huge leaf at entry `i` of `sp` with a page table of
 * 512 SPTEs of the next level mapping the same pfns with the same permissions. No TLB flush: the
 * translations are the same either way.
 */
export function tdp_mmu_split_huge_page(kvm: Kvm, sp: KvmMmuPage, i: number): KvmMmuPage {
  const child = tdp_mmu_alloc_child(kvm, sp, i);
  const huge = sp.spte[i];
  const pfn = sp.pfn[i];
  const s = make_small_spte(huge, child.level);
  const per = KVM_PAGES_PER_HPAGE(child.level);
  child.spte.fill(s);
  for (let j = 0; j < SPTE_ENT_PER_PAGE; j++) child.pfn[j] = pfn + j * per;
  child.nr_present = SPTE_ENT_PER_PAGE;
  const counts = root_counts(to_tdp_mmu(kvm), sp);
  counts[sp.level]--;
  counts[child.level] += SPTE_ENT_PER_PAGE;
  sp.children![i] = child;
  sp.spte[i] = NONLEAF_SPTE;
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_tdp_mmu_spte_changed')) handle_changed_spte(kvm, sp, i, huge, pfn, NONLEAF_SPTE, 0);
  if (tracer.enabled('kvm_mmu_split_huge_page')) {
    tracer.emit('kvm_mmu_split_huge_page', { gfn: child.gfn as Gfn, spte: spte_value(huge, pfn, sp.level), level: sp.level, errno: 0 });
  }
  return child;
}

/**
 * handle_removed_pt(): a page table unlinked by a huge leaf installed over it: every leaf below
 * it is gone (zapped, traced, removed from the external page table of a mirror root).
 */
function handle_removed_pt(kvm: Kvm, child: KvmMmuPage): number {
  const zapped: SpteCounts = [0, 0, 0, 0];
  const n = zap_range(kvm, child, child.gfn, child.gfn + KVM_PAGES_PER_HPAGE(child.level + 1), zapped);
  const counts = root_counts(to_tdp_mmu(kvm), child);
  for (let l = PG_LEVEL_4K; l <= PG_LEVEL_1G; l++) counts[l] -= zapped[l];
  if (n) kvm.kernel.cost.charge('spte_zap', n);
  to_tdp_mmu(kvm).tdp_mmu_pages -= count_pt_pages(child);
  return n;
}

function count_pt_pages(sp: KvmMmuPage): number {
  let n = 1;
  if (sp.children === null) return n;
  for (const c of sp.children) if (c !== undefined) n += count_pt_pages(c);
  return n;
}

/** Where kvm_tdp_mmu_map()'s walk ended: the page and entry at the goal level. */
export interface TdpTarget {
  readonly sp: KvmMmuPage;
  readonly i: number;
}

/**
 * The walk of kvm_tdp_mmu_map(): down `root` to the entry of `gfn` at `goal_level`, linking new
 * page tables where entries are not present and splitting huge leaves above the goal.
 */
export function tdp_mmu_walk_to_level(kvm: Kvm, root: KvmMmuPage, gfn: number, goal_level: number): TdpTarget {
  let sp = root;
  for (;;) {
    const i = sp.index(gfn);
    if (sp.level === goal_level) return { sp, i };
    const s = sp.spte[i];
    if (s & SPTE_S_PRESENT && !(s & SPTE_S_LEAF)) {
      sp = sp.children![i]!;
      continue;
    }
    if (s & SPTE_S_PRESENT) {
      sp = tdp_mmu_split_huge_page(kvm, sp, i);
      continue;
    }
    const child = tdp_mmu_alloc_child(kvm, sp, i);
    tdp_mmu_link_sp(kvm, sp, i, child);
    sp = child;
  }
}

/**
 * The install of tdp_mmu_map_handle_target_level() (tdp_mmu_set_spte_atomic()): set the leaf at
 * the target entry, replacing whatever was there (a page table under a new huge leaf is removed
 * with its leaves). For the mirror root, the vendor installs the external SPTE first and may
 * refuse (the kernel then restores the old SPTE and the fault is retried): its error is returned
 * and nothing changes. Returns 0, or the vendor's error; `old_present` tells the caller whether a
 * TLB flush is due.
 */
export function tdp_mmu_set_leaf(kvm: Kvm, t: TdpTarget, new_s: number, pfn: number): number {
  const { sp, i } = t;
  const old_s = sp.spte[i];
  const old_pfn = sp.pfn[i];
  if (sp_is_external(kvm, sp)) {
    const r = kvm.x86_ops.set_external_spte(kvm, sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level), sp.level, pfn, sp.is_mirror);
    if (r) return r;
  }
  const counts = root_counts(to_tdp_mmu(kvm), sp);
  if (old_s & SPTE_S_PRESENT) {
    if (is_last_spte(old_s, sp.level)) {
      counts[sp.level]--;
    } else {
      const child = sp.children![i]!;
      sp.children![i] = undefined;
      handle_removed_pt(kvm, child);
    }
  } else {
    sp.nr_present++;
  }
  sp.spte[i] = new_s;
  sp.pfn[i] = pfn;
  counts[sp.level]++;
  if (kvm.kernel.tracer.enabled('kvm_tdp_mmu_spte_changed')) handle_changed_spte(kvm, sp, i, old_s, old_pfn, new_s, pfn);
  kvm.kernel.cost.charge('spte_set');
  return 0;
}

/** Clear the Writable bit of leaf `i` of `sp` (tdp_mmu_clear_spte_bits(PT_WRITABLE_MASK)), the MMU-writable bit kept. 1 if it was writable. */
function wrprot_leaf(kvm: Kvm, sp: KvmMmuPage, i: number): number {
  const s = sp.spte[i];
  if (!(s & SPTE_S_WRITABLE)) return 0;
  const ns = s & ~SPTE_S_WRITABLE;
  sp.spte[i] = ns;
  if (kvm.kernel.tracer.enabled('kvm_tdp_mmu_spte_changed')) handle_changed_spte(kvm, sp, i, s, sp.pfn[i], ns, sp.pfn[i]);
  return 1;
}

/**
 * Clear the Writable bit of the present leaves of `root` mapping [start, end) (kvm_tdp_mmu_wrprot_slot()
 * at PG_LEVEL_4K). Returns the number write-protected (the kernel's "flush").
 */
export function tdp_mmu_wrprot_range(kvm: Kvm, root: KvmMmuPage, start: number, end: number): number {
  let n = 0;
  const walk = (sp: KvmMmuPage, s0: number, e0: number): void => {
    if (sp.nr_present === 0 || e0 <= s0) return;
    const per = KVM_PAGES_PER_HPAGE(sp.level);
    const i1 = Math.min(SPTE_ENT_PER_PAGE - 1, sp.index(e0 - 1));
    for (let i = Math.max(0, sp.index(s0)); i <= i1; i++) {
      const s = sp.spte[i];
      if (!(s & SPTE_S_PRESENT)) continue;
      if (is_last_spte(s, sp.level)) {
        n += wrprot_leaf(kvm, sp, i);
        continue;
      }
      const base = sp.gfn + i * per;
      walk(sp.children![i]!, Math.max(s0, base), Math.min(e0, base + per));
    }
  };
  walk(root, start, end);
  return n;
}

/**
 * kvm_tdp_mmu_clear_dirty_pt_masked() on a host without PML (wrprot): write-protect the 4K leaves
 * of `root` that map gfn + k for each set bit k of the 64-bit `mask`, so that the guest's next
 * write to those pages faults and is logged again; huge leaves are left to
 * kvm_tdp_mmu_write_protect_gfn(). Returns the number write-protected.
 */
export function kvm_tdp_mmu_clear_dirty_pt_masked(kvm: Kvm, root: KvmMmuPage, gfn: number, mask: bigint): number {
  let n = 0;
  /* the mask as two 32-bit halves: bitwise operators are 32-bit */
  const halves = [Number(mask & 0xffffffffn), Number((mask >> 32n) & 0xffffffffn)];
  for (let h = 0; h < 2; h++) {
    for (let k = 0; k < 32; k++) {
      if (!((halves[h] >>> k) & 1)) continue;
      const leaf = tdp_mmu_lookup_leaf(root, gfn + h * 32 + k);
      if (leaf === undefined || leaf.sp.level > PG_LEVEL_4K) continue;
      n += wrprot_leaf(kvm, leaf.sp, leaf.i);
    }
  }
  if (n) kvm.kernel.cost.charge('spte_set', n);
  return n;
}

/**
 * kvm_tdp_mmu_write_protect_gfn() (write_protect_gfn()): write-protect the leaf of `root` that
 * maps `gfn` if its level is at least `min_level`. true if it was writable.
 */
export function kvm_tdp_mmu_write_protect_gfn(kvm: Kvm, root: KvmMmuPage, gfn: number, min_level: number): boolean {
  const leaf = tdp_mmu_lookup_leaf(root, gfn);
  if (leaf === undefined || leaf.sp.level < min_level) return false;
  const n = wrprot_leaf(kvm, leaf.sp, leaf.i);
  if (n) kvm.kernel.cost.charge('spte_set', n);
  return n !== 0;
}

/**
 * Visit the present leaves of `root` mapping gfns of [start, end), in gfn order: fn(sp, i, gfn
 * of the leaf's first page). For tests, the bench and the recovery of huge pages.
 */
export function tdp_mmu_for_each_leaf(root: KvmMmuPage, start: number, end: number, fn: (sp: KvmMmuPage, i: number, gfn: number) => void): void {
  const walk = (sp: KvmMmuPage, s0: number, e0: number): void => {
    if (sp.nr_present === 0 || e0 <= s0) return;
    const per = KVM_PAGES_PER_HPAGE(sp.level);
    const i1 = Math.min(SPTE_ENT_PER_PAGE - 1, sp.index(e0 - 1));
    for (let i = Math.max(0, sp.index(s0)); i <= i1; i++) {
      const s = sp.spte[i];
      if (!(s & SPTE_S_PRESENT)) continue;
      const base = sp.gfn + i * per;
      if (is_last_spte(s, sp.level)) fn(sp, i, base);
      else walk(sp.children![i]!, Math.max(s0, base), Math.min(e0, base + per));
    }
  };
  walk(root, start, end);
}

/* ---- inspection (tests, bench) ---- */

/** Leaf SPTEs of the VM by level ([_, 4K, 2M, 1G]), over both roots. */
export function kvm_tdp_mmu_count_sptes(kvm: Kvm): SpteCounts {
  const mmu = to_tdp_mmu(kvm);
  const d = mmu.direct_pages;
  const m = mmu.mirror_pages;
  return [0, d[1] + m[1], d[2] + m[2], d[3] + m[3]];
}

/**
 * The level of the leaf SPTE mapping `gfn` (PG_LEVEL_4K/2M/1G), or 0 when none; `is_private`
 * selects the mirror root of a TDX VM.
 */
export function kvm_tdp_mmu_spte_level(kvm: Kvm, gfn: number, is_private = false): number {
  const leaf = tdp_mmu_lookup_leaf(tdp_mmu_get_root(kvm, is_private), gfn);
  return leaf === undefined ? 0 : leaf.sp.level;
}

/** The SPTE mapping `gfn`, as the u64 the kernel holds, or undefined when none (tests). */
export function kvm_tdp_mmu_spte(kvm: Kvm, gfn: number, is_private = false): { spte: bigint; level: number; pfn: number } | undefined {
  const leaf = tdp_mmu_lookup_leaf(tdp_mmu_get_root(kvm, is_private), gfn);
  if (leaf === undefined) return undefined;
  const { sp, i } = leaf;
  return { spte: spte_value(sp.spte[i], sp.pfn[i], sp.level), level: sp.level, pfn: tdp_leaf_pfn(leaf, gfn) };
}
