/**
 * CONFIG_DEBUG_VM for the simulator (mm/debug.c, mm/debug_vm_pgtable.c, the VM_BUG_ON_* checks
 * of include/linux/mmdebug.h): invariants of the whole host checked between calls, so that a
 * simulator bug shows up at the call that caused it rather than as a wrong answer much later.
 *
 * check_vm(kernel) walks the host and returns every violation, each naming its rule and, where
 * there is one, the pfn. mm's rules:
 *
 *   buddy              each free block is on its free list, aligned, in one zone and referenced by
 *                      nothing; the zones' free counts add up; compound tails point at their
 *                      head. (check_vm(kernel, {thorough: true}) adds page_alloc's
 *                      checkConsistency(), which reads every free page too.)
 *   refcount           a folio's _refcount covers its mappings, its page-cache or swap-cache
 *                      references and (large folios) its pins: refcount >= mapcount + cache + pins.
 *   pincount           _pincount <= _refcount.
 *   orphan-tail        a tail page whose head does not claim it.
 *   mapcount           rmap's counters (_mapcount, _large_mapcount, _entire_mapcount,
 *                      _nr_pages_mapped) equal the page-table entries that map the folio: every
 *                      mapping rmap counts is a PTE or PMD, and every PTE or PMD is counted.
 *   rmap               every PTE/PMD mapping a folio is found by the rmap walk: an anon folio's
 *                      anon_vma is its VMA's and its index the VMA's linear index; a file folio
 *                      belongs to the VMA's file at that index and the VMA is in its i_mmap.
 *   free-mapped        no page-table entry maps a free page.
 *   pte                PTE table counts, no entry outside a VMA, no migration entry left
 *                      between calls, every swap PTE on a slot in use.
 *   vma                the VMA tree (mt_validate), map_count, total_vm, i_mmap and anon_vma links.
 *   rss                rss_stat against the page tables.
 *   page-cache         each i_pages entry is a live folio head whose mapping and index say so,
 *                      nrpages counts them, swap entries are on slots in use; each folio with a
 *                      file mapping is in that mapping's cache at its index.
 *   lru                each list is well linked, holds only folios in use whose flags name it,
 *                      and its size is right; PG_lru is set exactly on the linked folios.
 *   swap               every swap area's counters against its swap_map and swap cache.
 *
 * Packages above mm add their own rules per host with debug_vm_register() (KVM: memslots,
 * SPTEs against attributes; VFIO: IOMMU mappings against pins; vendors: RMP/S-EPT ownership).
 *
 * debug_vm_process() wraps a Process so that every system call it makes is followed by the
 * checks, and every call that fails (-1 with errno) is shown to have changed nothing by the
 * state digest (debug.ts), less what failed_call_may_change() lets it change. Tests turn it on
 * with withInvariants() (test/lib/invariants.ts), the fuzzer always, the CLI with --debug-vm
 * (PlatformOptions.debugVm).
 *
 * Cost (scripts/debug-vm-cost.mjs, CPU time): on a 2 GiB host, check_vm() takes about 1.3 ms
 * with 100 pages in use and 6.5 ms with 10,000, the digest 1.8 ms and 8 ms; free memory costs
 * next to nothing (a free block is one step), so an 8 GiB host costs about the same.
 */
import { U64_MAX, stateDigestDiff, stateDigestRegistry, type StateDigest } from '@cocosim/core';
import { mm_state_digest } from './debug.js';
import { FOLIO_MAPPING_ANON } from './folio.js';
import { lookupMapping, registered_mappings } from './filemap.js';
import type { AddressSpace } from './fs.js';
import { is_huge_zero_pfn } from './huge_memory.js';
import type { Kernel } from './kernel.js';
import { mm_counter } from './memory.js';
import { int_arg, ulong_arg } from './mman.js';
import { LRU_NAMES, NR_LRU_LISTS, lru_list_of_flags, lru_lists_if_any } from './mm_inline.js';
import {
  MM_SWAPENTS, NR_MM_COUNTERS, linear_page_index, task_mm_if_any, type MmStruct, type VmAreaStruct,
} from './mm_types.js';
import {
  PAGE_FLAGS_CHECK_AT_PREP, PGTY_buddy, PG_head, PG_lru, folio_test_hugetlb, folio_test_swapcache, page_type_has_type,
} from './page-flags.js';
import { NR_PAGE_ORDERS } from './page_alloc.js';
import { _PAGE_SPECIAL, is_swap_pte, pte_present, pte_swp_type } from './pgtable.js';
import { for_each_process, type Process } from './process.js';
import { ENTIRELY_MAPPED, anon_vma_chain_of, i_mmap_of } from './rmap.js';
import { swap_check_consistency, swap_map_of } from './swapfile.js';
import { MAX_SWAPFILES, SWP_HWPOISON, SWP_PTE_MARKER, radix_to_swp_entry, swp_entry, xa_is_value } from './swapops.js';

/** One broken invariant. */
export interface VmViolation {
  /** The rule (see the file comment). */
  readonly rule: string;
  /** The page frame concerned, if one is. */
  readonly pfn?: number;
  readonly message: string;
}

/** A check a package adds: report each violation it finds. */
export type VmCheck = (kernel: Kernel, report: (rule: string, message: string, pfn?: number) => void) => void;

const registries = new WeakMap<Kernel, Map<string, VmCheck>>();

/**
 * Adds a check to a host's DEBUG_VM checks (KVM's memslot and SPTE rules, VFIO's IOMMU rules,
 * a vendor's ownership rules). Names are unique per host.
 */
export function debug_vm_register(kernel: Kernel, name: string, check: VmCheck): void {
  let m = registries.get(kernel);
  if (m === undefined) registries.set(kernel, (m = new Map()));
  m.set(name, check);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/* Locals, not imported bindings, in the loops over every page: under the test runner an imported
 * binding is a property read. */
const BUDDY = PGTY_buddy;
const HEAD_BIT = 1 << PG_head;
const LRU_BIT = 1 << PG_lru;
const AT_PREP = PAGE_FLAGS_CHECK_AT_PREP;

/** The checks' shared view of the host, built once per check_vm(). */
class Walker {
  readonly store;
  readonly violations: VmViolation[] = [];
  /** PTE mappings per page (array index); absent is none. */
  readonly pte_maps = new Map<number, number>();
  /** Folios with PG_lru, counted by the walk of the page store. */
  with_lru = 0;
  /** PMD/PUD mappings per folio head pfn. */
  readonly entire_maps = new Map<number, number>();

  constructor(readonly kernel: Kernel, readonly limit: number) {
    this.store = kernel.store;
  }

  report(rule: string, message: string, pfn?: number): void {
    if (this.violations.length < this.limit) this.violations.push(pfn === undefined ? { rule, message } : { rule, pfn, message });
  }

  /** Whether array index i lies in a free buddy block. */
  is_free(i: number): boolean {
    return this.kernel.page_alloc.is_free_buddy_page(this.store.base_pfn + i);
  }
}

/** The host's processes with an mm, by pid. */
function mms_of(kernel: Kernel): [number, MmStruct][] {
  const out: [number, MmStruct][] = [];
  for (const t of for_each_process(kernel)) {
    const mm = task_mm_if_any(t);
    if (mm !== undefined) out.push([t.pid, mm]);
  }
  return out;
}

/** The rmap side of one mapping of `folio` page `page` at `vpn` of `vma` (rule rmap). */
function check_rmap(w: Walker, vma: VmAreaStruct, vpn: number, page: number, folio: number, what: string): void {
  const s = w.store;
  const fi = s.idx(folio);
  const m = s.mapping[fi];
  const where = (): string => `${what} at ${hex(vpn * 4096)} (VMA ${hex(vma.start_vpn * 4096)}-${hex(vma.end_vpn * 4096)})`;
  if (m === 0) {
    if (vma.vm_ops?.driver_pages === true) return;
    w.report('rmap', `${where()} maps folio ${hex(folio)} with no mapping: no rmap walk finds it`, page);
    return;
  }
  const want_index = linear_page_index(vma, vpn);
  const index = s.index[fi] + (page - folio);
  if (m & FOLIO_MAPPING_ANON) {
    /* after fork the folio may be an ancestor's: any anon_vma of the VMA's chain */
    const id = m - (m & 3);
    const av = vma.anon_vma !== null && vma.anon_vma.id === id ? vma.anon_vma : anon_vma_chain_of(vma).find((a) => a.id === id) ?? null;
    if (av === null) w.report('rmap', `${where()}: anon folio ${hex(folio)} of anon_vma ${m - (m & 3)}, the VMA's is ${vma.anon_vma?.id ?? 'none'}`, page);
    else if (!av.vmas.has(vma)) w.report('rmap', `${where()}: the VMA is not on its anon_vma's list`, page);
    if (index !== want_index) w.report('rmap', `${where()}: anon page index ${index}, linear index ${want_index}`, page);
    return;
  }
  const file = vma.vm_file;
  if (file === null || file.f_mapping.id !== m) {
    w.report('rmap', `${where()}: file folio ${hex(folio)} of address_space ${m}, the VMA maps ${file === null ? 'no file' : file.f_mapping.id}`, page);
    return;
  }
  if (index !== want_index) w.report('rmap', `${where()}: file page index ${index}, linear index ${want_index}`, page);
  if (!i_mmap_of(file.f_mapping).has(vma)) w.report('rmap', `${where()}: the VMA is not in its file's i_mmap`, page);
}

/** One mm: its VMAs, its page tables, rss, and the mappings they make (rules vma, pte, rss, rmap). */
function check_mm(w: Walker, pid: number, mm: MmStruct): void {
  const s = w.store;
  const kernel = w.kernel;
  try {
    mm.mm_mt.mt_validate();
  } catch (e) {
    w.report('vma', `pid ${pid}: the VMA tree is broken: ${(e as Error).message}`);
    return;
  }
  let count = 0;
  let total = 0;
  for (const r of mm.mm_mt) {
    const v = r.entry;
    if (r.first !== v.start_vpn || r.last !== v.end_vpn - 1) w.report('vma', `pid ${pid}: VMA ${hex(v.start_vpn * 4096)}-${hex(v.end_vpn * 4096)} stored over pages ${r.first}-${r.last}`);
    if (v.vm_mm !== mm) w.report('vma', `pid ${pid}: VMA ${hex(v.start_vpn * 4096)} belongs to another mm`);
    if (v.vm_file !== null && !i_mmap_of(v.vm_file.f_mapping).has(v)) w.report('vma', `pid ${pid}: file VMA ${hex(v.start_vpn * 4096)} missing from its i_mmap`);
    if (v.anon_vma !== null && !v.anon_vma.vmas.has(v)) w.report('vma', `pid ${pid}: VMA ${hex(v.start_vpn * 4096)} missing from its anon_vma`);
    count++;
    total += v.end_vpn - v.start_vpn;
  }
  if (mm.map_count !== count || mm.total_vm !== total) w.report('vma', `pid ${pid}: map_count ${mm.map_count} total_vm ${mm.total_vm}, the tree has ${count} VMAs of ${total} pages`);

  const rss = new Float64Array(NR_MM_COUNTERS);
  const map_folio = (vma: VmAreaStruct, vpn: number, pfn: number, entire: number, what: string): void => {
    if (pfn === s.zero_pfn || is_huge_zero_pfn(kernel, pfn)) return;
    if (!s.pfn_valid(pfn)) {
      w.report('pte', `pid ${pid}: ${what} at ${hex(vpn * 4096)} maps pfn ${hex(pfn)} outside the memory map`);
      return;
    }
    const i = s.idx(pfn);
    if (w.is_free(i)) {
      w.report('free-mapped', `pid ${pid}: ${what} at ${hex(vpn * 4096)} maps free page ${hex(pfn)}`, pfn);
      return;
    }
    const folio = pfn - s.head_offset[i];
    if (entire > 0) {
      if (!(s.flags[i] & HEAD_BIT)) {
        w.report('mapcount', `pid ${pid}: ${what} at ${hex(vpn * 4096)} maps ${hex(pfn)}, not the head of a large folio`, pfn);
        return;
      }
      w.entire_maps.set(pfn, (w.entire_maps.get(pfn) ?? 0) + 1);
    } else {
      w.pte_maps.set(i, (w.pte_maps.get(i) ?? 0) + 1);
    }
    check_rmap(w, vma, vpn, pfn, folio, what);
    if (!folio_test_hugetlb(s, folio)) rss[mm_counter(s, folio)] += entire > 0 ? entire : 1;
  };

  for (const [pmd, t] of mm.pgd.ptes) {
    let nr = 0;
    for (let k = 0; k < 512; k++) {
      const f = t.flags[k];
      if (f === 0) continue;
      nr++;
      const vpn = pmd * 512 + k;
      const vma = mm.mm_mt.mtree_load(vpn);
      if (vma === undefined) {
        w.report('pte', `pid ${pid}: a PTE at ${hex(vpn * 4096)} outside any VMA`);
        continue;
      }
      if (is_swap_pte(f)) {
        const type = pte_swp_type(f);
        if (type < MAX_SWAPFILES) {
          rss[MM_SWAPENTS]++;
          if (swap_map_of(kernel, swp_entry(type, t.val[k])) === 0) w.report('pte', `pid ${pid}: swap PTE at ${hex(vpn * 4096)} on free slot ${t.val[k]} of swap area ${type}`);
        } else if (type !== SWP_HWPOISON && type !== SWP_PTE_MARKER) {
          w.report('pte', `pid ${pid}: a ${type < SWP_PTE_MARKER ? 'migration or device' : 'special'} entry (type ${type}) left at ${hex(vpn * 4096)} between calls`);
        }
        continue;
      }
      if (!pte_present(f) || f & _PAGE_SPECIAL) continue;
      map_folio(vma, vpn, t.val[k], 0, 'PTE');
    }
    if (t.nr !== nr) w.report('pte', `pid ${pid}: the PTE table of PMD index ${pmd} counts ${t.nr} entries, holds ${nr}`);
  }
  const huge = (table: ReadonlyMap<number, { val: number; flags: number }>, pages: number, what: string): void => {
    for (const [idx, e] of table) {
      const vpn = idx * pages;
      const vma = mm.mm_mt.mtree_load(vpn);
      if (vma === undefined) {
        w.report('pte', `pid ${pid}: a ${what} at ${hex(vpn * 4096)} outside any VMA`);
        continue;
      }
      if (!pte_present(e.flags) || e.flags & _PAGE_SPECIAL) continue;
      map_folio(vma, vpn, e.val, pages, what);
    }
  };
  huge(mm.pgd.pmds, 512, 'PMD');
  huge(mm.pgd.puds, 512 * 512, 'PUD');
  const want = [...rss];
  const have = [...mm.rss_stat];
  if (want.some((x, k) => x !== have[k])) w.report('rss', `pid ${pid}: rss_stat ${JSON.stringify(have)}, the page tables map ${JSON.stringify(want)}`);
}

/**
 * The page store, in one pass that steps over free blocks (rules buddy, refcount, pincount,
 * mapcount, page-cache, orphan-tail): a free block is checked at its head (the free list and the
 * zone's counters agree, nothing references it); the pages inside it are the thorough check's
 * (page_alloc's checkConsistency(), O(memory)), since whatever could still reach a free page (a
 * PTE, a page-cache entry, an LRU link) is checked from its own side. So the cost grows with the
 * pages in use, not with memory size.
 */
function check_pages(w: Walker): void {
  const s = w.store;
  const n = s.nr_pages;
  const pa = w.kernel.page_alloc;
  const free_blocks = new Map<unknown, Float64Array>(pa.zones.map((z) => [z, new Float64Array(NR_PAGE_ORDERS)]));
  for (let i = 0; i < n; ) {
    if (s._mapcount[i] >>> 24 === BUDDY) {
      const order = s.order[i];
      const nr = 2 ** order;
      const pfn = s.base_pfn + i;
      const zone = pa.zone(s.node[i], s.zone[i]);
      if (pfn % nr !== 0 || i + nr > n || zone === undefined || !zone.free_area[order].has(pfn)) {
        w.report('buddy', `free block ${hex(pfn)} of order ${order}: misaligned, past the end, or not on its free list`, pfn);
      } else {
        free_blocks.get(zone)![order]++;
        if (s.node[i + nr - 1] !== s.node[i] || s.zone[i + nr - 1] !== s.zone[i]) w.report('buddy', `free block ${hex(pfn)} crosses a zone`, pfn);
      }
      if (s._refcount[i] !== 0 || s.head_offset[i] !== 0 || s.mapping[i] !== 0 || s.flags[i] & AT_PREP) {
        w.report('buddy', `free block ${hex(pfn)}: _refcount ${s._refcount[i]} compound_head ${s.head_offset[i]} mapping ${s.mapping[i]} flags ${hex(s.flags[i])}`, pfn);
      }
      i += nr;
      continue;
    }
    const pfn = s.base_pfn + i;
    if (s.head_offset[i] !== 0) {
      w.report('orphan-tail', `tail page ${hex(pfn)} (head ${hex(pfn - s.head_offset[i])}) outside its head's folio`, pfn);
      i++;
      continue;
    }
    if (s.flags[i] & LRU_BIT) w.with_lru++;
    const large = (s.flags[i] & HEAD_BIT) !== 0;
    const nr = large ? 2 ** s.order[i] : 1;
    check_folio(w, pfn, i, large, nr);
    for (let j = 1; j < nr && i + j < n; j++) {
      if (s.head_offset[i + j] !== j) w.report('buddy', `page ${hex(pfn + j)} of folio ${hex(pfn)}: compound_head offset ${s.head_offset[i + j]}`, pfn + j);
      if (s._refcount[i + j] !== 0) w.report('refcount', `tail page ${hex(pfn + j)} of folio ${hex(pfn)}: _refcount ${s._refcount[i + j]}`, pfn + j);
    }
    i += nr;
  }
  for (const zone of pa.zones) {
    const counted = free_blocks.get(zone)!;
    let free = 0;
    for (let order = 0; order < NR_PAGE_ORDERS; order++) {
      if (zone.free_area[order].nr_free !== counted[order]) {
        w.report('buddy', `zone ${zone.nid}/${zone.name} order ${order}: nr_free ${zone.free_area[order].nr_free}, ${counted[order]} free blocks`);
      }
      free += counted[order] * 2 ** order;
    }
    if (zone.free_pages !== free) w.report('buddy', `zone ${zone.nid}/${zone.name}: free_pages ${zone.free_pages}, ${free} in free blocks`);
  }
}

function check_folio(w: Walker, folio: number, i: number, large: boolean, nr: number): void {
  const s = w.store;
  const hugetlb = large && folio_test_hugetlb(s, folio);
  const ref = s._refcount[i];
  let mapcount = 0;
  if (!large) {
    const mc = s._mapcount[i];
    if (!page_type_has_type(mc)) {
      mapcount = mc + 1;
      const ptes = w.pte_maps.get(i) ?? 0;
      if (mapcount !== ptes) w.report('mapcount', `folio ${hex(folio)}: _mapcount ${mc}, mapped by ${ptes} PTEs`, folio);
    }
  } else {
    const entire = w.entire_maps.get(folio) ?? 0;
    let ptes = 0;
    let pages = 0;
    for (let j = 0; j < nr && i + j < s.nr_pages; j++) {
      const p = w.pte_maps.get(i + j) ?? 0;
      ptes += p;
      if (p > 0) pages++;
      /* a hugetlb head's _mapcount is its page_type; its pages are never PTE-mapped */
      if (hugetlb && j === 0) continue;
      if (s._mapcount[i + j] + 1 !== p) w.report('mapcount', `page ${hex(folio + j)} of folio ${hex(folio)}: _mapcount ${s._mapcount[i + j]}, mapped by ${p} PTEs`, folio + j);
    }
    mapcount = s._large_mapcount[i] + 1;
    const want_nr_mapped = pages + (entire > 0 && !hugetlb ? ENTIRELY_MAPPED : 0);
    if (mapcount !== ptes + entire || s._entire_mapcount[i] + 1 !== entire || (!hugetlb && s._nr_pages_mapped[i] !== want_nr_mapped)) {
      w.report('mapcount', `folio ${hex(folio)}: _large_mapcount ${s._large_mapcount[i]} _entire_mapcount ${s._entire_mapcount[i]} ` +
        `_nr_pages_mapped ${hex(s._nr_pages_mapped[i])}, mapped by ${ptes} PTEs and ${entire} PMDs/PUDs`, folio);
    }
    if (s._pincount[i] > ref) w.report('pincount', `folio ${hex(folio)}: _pincount ${s._pincount[i]} > _refcount ${ref}`, folio);
  }
  const m = s.mapping[i];
  let cache = 0;
  if (m !== 0 && !(m & FOLIO_MAPPING_ANON)) {
    cache = nr;
    const mapping = lookupMapping(s, m);
    const index = s.index[i];
    if (mapping === undefined) w.report('page-cache', `folio ${hex(folio)}: mapping ${m} is no registered address_space`, folio);
    else {
      for (let j = 0; j < nr; j++) {
        if (mapping.i_pages.xa_load(index + j) !== folio) {
          w.report('page-cache', `folio ${hex(folio)}: mapping ${m} index ${index + j}, where the page cache holds ${mapping.i_pages.xa_load(index + j) ?? 'nothing'}`, folio);
          break;
        }
      }
    }
  } else if (folio_test_swapcache(s, folio)) {
    cache = nr;
  }
  const pins = large ? s._pincount[i] : 0;
  if (ref < mapcount + cache + pins) {
    w.report('refcount', `folio ${hex(folio)}: _refcount ${ref} < ${mapcount} mappings + ${cache} cache references + ${pins} pins`, folio);
  }
}

/** Every page cache against the page store (rule page-cache). */
function check_page_cache(w: Walker, mapping: AddressSpace): void {
  const s = w.store;
  let pages = 0;
  let last = -1;
  mapping.i_pages.xa_for_each((index, entry) => {
    if (xa_is_value(entry)) {
      const e = radix_to_swp_entry(entry);
      if (swap_map_of(w.kernel, e) === 0) w.report('page-cache', `address_space ${mapping.id} (inode ${mapping.host.i_ino}) index ${index}: swap entry on a free slot`);
      return true;
    }
    if (!s.pfn_valid(entry)) {
      w.report('page-cache', `address_space ${mapping.id} index ${index}: pfn ${hex(entry)} outside the memory map`);
      return true;
    }
    const i = s.idx(entry);
    if (w.is_free(i)) {
      w.report('page-cache', `address_space ${mapping.id} (inode ${mapping.host.i_ino}) index ${index}: free page ${hex(entry)} in the page cache`, entry);
      return true;
    }
    if (s.head_offset[i] !== 0) {
      w.report('page-cache', `address_space ${mapping.id} index ${index}: tail page ${hex(entry)} in the page cache`, entry);
      return true;
    }
    const nr = s.flags[i] & HEAD_BIT ? 2 ** s.order[i] : 1;
    if (s.mapping[i] !== mapping.id || !(index >= s.index[i] && index < s.index[i] + nr)) {
      w.report('page-cache', `address_space ${mapping.id} index ${index}: folio ${hex(entry)} says mapping ${s.mapping[i]} index ${s.index[i]}`, entry);
    }
    if (entry !== last) pages += nr;
    last = entry;
    return true;
  });
  if (pages !== mapping.nrpages) w.report('page-cache', `address_space ${mapping.id} (inode ${mapping.host.i_ino}): nrpages ${mapping.nrpages}, the cache holds ${pages}`);
  for (const v of i_mmap_of(mapping)) {
    if (v.vm_mm.mm_mt.mtree_load(v.start_vpn) !== v) w.report('vma', `address_space ${mapping.id}: i_mmap holds a VMA ${hex(v.start_vpn * 4096)} its mm no longer has`);
  }
}

/** The LRU lists (rule lru): links, list membership by flags, sizes, and PG_lru exactly on linked folios. */
function check_lru(w: Walker): void {
  const s = w.store;
  const l = lru_lists_if_any(s);
  const lru_bit = LRU_BIT;
  let linked = 0;
  if (l !== undefined) {
    const pages = new Float64Array(l.nr_pages.length);
    for (let id = 0; id < l.head.length; id++) {
      let prev = -1;
      for (let i = l.head[id], steps = 0; i !== -1; i = l.next[i], steps++) {
        const f = s.flags[i];
        const pfn = s.base_pfn + i;
        if (steps > s.nr_pages) {
          w.report('lru', `LRU list ${id} has a cycle`);
          break;
        }
        if (l.prev[i] !== prev || l.on[i] !== id || !(f & lru_bit) || s.node[i] * NR_LRU_LISTS + lru_list_of_flags(f) !== id) {
          w.report('lru', `pfn ${hex(pfn)} on ${LRU_NAMES[id % NR_LRU_LISTS]} of node ${Math.floor(id / NR_LRU_LISTS)}: prev ${l.prev[i]} (want ${prev}), on ${l.on[i]}, flags ${hex(f)}`, pfn);
        }
        if (w.is_free(i) || s.head_offset[i] !== 0) w.report('lru', `pfn ${hex(pfn)} on an LRU list is free or a tail page`, pfn);
        pages[id] += f & HEAD_BIT ? 2 ** s.order[i] : 1;
        linked++;
        prev = i;
      }
      if (l.tail[id] !== prev) w.report('lru', `LRU list ${id}: tail ${l.tail[id]}, the walk ends at ${prev}`);
      if (l.nr_pages[id] !== pages[id]) w.report('lru', `LRU list ${id} (${LRU_NAMES[id % NR_LRU_LISTS]}): nr_pages ${l.nr_pages[id]}, holds ${pages[id]}`);
    }
  }
  /* free pages with PG_lru are the buddy rule's */
  if (w.with_lru !== linked) w.report('lru', `${w.with_lru} folios in use have PG_lru, ${linked} are on the lists`);
}

/**
 * The DEBUG_VM checks of a host: mm's rules, then every check registered with
 * debug_vm_register(). Returns the violations (at most `limit`, default 50), empty when all
 * hold. `thorough` adds page_alloc's checkConsistency(), which reads every page of memory.
 */
export function check_vm(kernel: Kernel, opts: { readonly limit?: number; readonly thorough?: boolean } = {}): VmViolation[] {
  const w = new Walker(kernel, opts.limit ?? 50);
  if (opts.thorough === true) {
    for (const p of kernel.page_alloc.checkConsistency()) {
      const m = /pfn (0x[0-9a-f]+)/.exec(p);
      w.report('buddy', p, m === null ? undefined : Number(m[1]));
    }
  }
  for (const [pid, mm] of mms_of(kernel)) check_mm(w, pid, mm);
  check_pages(w);
  for (const mapping of registered_mappings(kernel.store)) check_page_cache(w, mapping);
  check_lru(w);
  for (const p of swap_check_consistency(kernel)) w.report('swap', p);
  for (const [name, check] of registries.get(kernel) ?? []) {
    check(kernel, (rule, message, pfn) => w.report(`${name}:${rule}`, message, pfn));
  }
  return w.violations;
}

/* ---- checking every call of a process ---- */

/** A call a debug_vm_process() saw go wrong. */
export interface DebugVmFinding {
  /** invariant: a rule broke; failed-call-changed-state: a call failed and the digest moved. */
  readonly kind: 'invariant' | 'failed-call-changed-state';
  /** The call, as `method(args)`. */
  readonly call: string;
  readonly method: string;
  readonly violations: readonly VmViolation[];
  /** failed-call-changed-state: the errno and the digest parts that changed. */
  readonly errno?: number;
  readonly parts?: readonly string[];
}

/** What debug_vm_process() throws when no onFinding is given. */
export class DebugVmError extends Error {
  override readonly name = 'DebugVmError';
  constructor(readonly finding: DebugVmFinding) {
    super(format_finding(finding));
  }
}

export function format_finding(f: DebugVmFinding): string {
  if (f.kind === 'failed-call-changed-state') {
    return `${f.call} failed (errno ${f.errno}) and changed the state: ${f.parts!.join(', ')}`;
  }
  return `${f.call}: DEBUG_VM: ${f.violations.map((v) => `[${v.rule}]${v.pfn === undefined ? '' : ` pfn ${hex(v.pfn)}`} ${v.message}`).join('; ')}`;
}

function show_arg(a: unknown): string {
  if (typeof a === 'bigint') return `0x${a.toString(16)}`;
  if (typeof a === 'string') return JSON.stringify(a.length > 40 ? `${a.slice(0, 40)}...` : a);
  if (a instanceof Uint8Array) return `<${a.length} bytes>`;
  if (Array.isArray(a)) return `[${a.map(show_arg).join(', ')}]`;
  if (typeof a === 'object' && a !== null) {
    if ('task' in a) return 'self';
    try {
      return JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v instanceof Uint8Array ? `<${v.length} bytes>` : v));
    } catch {
      return '{...}';
    }
  }
  return String(a);
}

/** `method(arg, ...)` as a finding names the call. */
export function describe_call(method: string, args: readonly unknown[]): string {
  return `${method}(${args.map(show_arg).join(', ')})`;
}

/** What a range call's range covered before it ran: VMAs met, and whether it had a hole. */
export interface RangeBefore {
  readonly vmas: number;
  readonly hole: boolean;
}

/** The VMAs [start, start + len) meets in `mm`, for the calls that work VMA by VMA. */
function range_before(mm: MmStruct, start: unknown, len: unknown): RangeBefore | undefined {
  /* the arguments as the calls read them (an integral number past 2^53, such as 2^53, included) */
  const s = ulong_arg(start);
  const l = ulong_arg(len);
  /* a range past 2^64 is refused before any VMA is touched */
  if (s === undefined || l === undefined || l === 0n || s + l > 1n << 64n) return undefined;
  const first = Number(s / 4096n);
  /* nothing is mapped above TASK_SIZE (2^47): a range reaching there ends in a hole */
  const end = s + l - 1n;
  const last = Number((end < 1n << 47n ? end : 1n << 47n) / 4096n);
  let vmas = 0;
  let at = first;
  let hole = false;
  for (let r = mm.mm_mt.mt_find(first, last); r !== undefined; r = mm.mm_mt.mt_next(r.last, last)) {
    if (r.first > at) hole = true;
    vmas++;
    at = r.last + 1;
    if (r.last >= last) break;
  }
  return { vmas, hole: hole || at <= last };
}

/** The system calls that apply themselves VMA by VMA, [start, len) their first arguments. */
const RANGE_CALLS: ReadonlySet<string> = new Set(['madvise', 'mprotect', 'mlock', 'mlock2', 'munlock']);

/**
 * The ioctls that pin user memory for DMA through GUP or the file's pin_folios hook:
 * VFIO_IOMMU_MAP_DMA (_IO(';', 113): drivers/vfio/vfio_iommu_type1.c vfio_pin_map_dma()),
 * IOMMU_IOAS_MAP and IOMMU_IOAS_MAP_FILE (_IO(';', 0x85) and 0x8f: drivers/iommu/iommufd/pages.c
 * pfn_reader_user_pin(), memfd_pin_folios()).
 */
const PIN_REQUESTS: ReadonlySet<number> = new Set([0x3b71, 0x3b85, 0x3b8f]);

/**
 * The fcntl commands that copy a struct from or to user memory before they can fail
 * (fs/fcntl.c do_fcntl()): the record locks (F_GETLK 5, F_SETLK 6, F_SETLKW 7, F_OFD_GETLK 36,
 * F_OFD_SETLK 37, F_OFD_SETLKW 38), F_SETOWN_EX 15, F_GETOWN_EX 16, F_GETOWNER_UIDS 17 and the
 * write-life hints F_GET_RW_HINT/F_SET_RW_HINT (1035, 1036).
 */
const USER_COPY_FCNTLS: ReadonlySet<number> = new Set([5, 6, 7, 15, 16, 17, 36, 37, 38, 1035, 1036]);

/**
 * The generic ioctls (ioctl.ts do_vfs_ioctl()) that read or write user memory before they can
 * fail: FIONBIO, FIOASYNC, FIOQSIZE, FIONREAD, FIBMAP (which puts 0 back, then fails), FIGETBSZ,
 * FICLONERANGE, FIDEDUPERANGE, FS_IOC_{GET,SET}FLAGS, FS_IOC_FS{GET,SET}XATTR, FS_IOC_GETFSUUID
 * and the preallocation ones, whose fallocate() may fail part way (ENOMEM); and KVM's dirty-log
 * ioctls, whose bitmap is in user memory: KVM_GET_DIRTY_LOG takes the bits out of the slot's
 * bitmap and write-protects their pages before copy_to_user() can fail (kvm_get_dirty_log_protect()),
 * KVM_CLEAR_DIRTY_LOG's copy_from_user() faults the bitmap's pages in.
 */
const USER_COPY_IOCTLS: ReadonlySet<number> = new Set([
  0x5421, 0x5452, 0x5460, 0x541b, 0x1, 0x2, 0x4020940d, 0xc0189436, 0x80086601, 0x40086602, 0x801c581f, 0x401c5820,
  0x80111500, 0x40305828, 0x40305829, 0x4030582a, 0x4030582b, 0x40305839, 0x4010ae42, 0xc018aec0,
]);

/**
 * What a failed call may have changed, as Linux's would: 'all' (partial work done before the
 * error), the names of the digest parts it may touch, or nothing ([]).
 *
 * - mprotect, madvise, mlock, mlock2, munlock walk the range VMA by VMA (do_mprotect_pkey(),
 *   madvise_walk_vmas(), apply_vma_lock_flags()) and stop at the first VMA that refuses or at a
 *   hole (ENOMEM): the VMAs before it are changed. So a failure over a range that met more than
 *   one VMA, or a hole, may have changed anything; over one VMA it must not have.
 * - MADV_POPULATE_READ/WRITE fault pages in one by one (madvise_populate()) and report the
 *   first that fails: the pages before it stay populated, even within one VMA. MADV_COLLAPSE
 *   (madvise_collapse()) goes 2 MiB by 2 MiB: the THPs made before the one that fails stay.
 * - process_vm_readv/writev fault the pages in through GUP (process_vm_rw_core()): the fault
 *   that fails may first map, by fault-around (do_read_fault() -> do_fault_around()), the
 *   page-cache pages around it, with their mapcounts and LRU state (mm.page_store, mm.tasks,
 *   mm.lru, mm.folio_flags), and in a VM_LOCKED VMA mlocked with their mlock_count (mm/rmap.c
 *   __folio_add_file_rmap() -> mlock_vma_folio(): mm.misc); no page may be allocated or freed
 *   for good (a failure is a first page that failed: after one that did not, the call returns
 *   what it copied). The DMA-mapping ioctls (PIN_REQUESTS) pin through the same faults and, on a
 *   page that fails or beyond RLIMIT_MEMLOCK, unpin what they pinned (vfio_unmap_unpin(),
 *   iopt_area_unfill_domains()) but leave what the faults mapped or allocated (a file's page
 *   cache folios from memfd_pin_folios() are its file's, in mm.tasks), and a FOLL_LONGTERM pin
 *   may first have migrated pages out of ZONE_MOVABLE (check_and_migrate_movable_folios()). A
 *   pin that broke COW (FOLL_WRITE on a private mapping) ran the MMU notifiers over that page
 *   (wp_page_copy()): a VM whose memslot maps it has moved its invalidation count and zapped its
 *   SPTEs (kvm.vms), and those stay, with the vendor's copy of them (pKVM's hypervisor unshares
 *   the page from the guest's stage-2: the parts registered as mirrors of kvm.vms).
 * - fcntl commands with a struct in user memory (USER_COPY_FCNTLS): copy_from_user() or
 *   copy_to_user() faults the struct's pages in (a read maps the zero page or a file's page,
 *   allocating page tables, page-cache pages and an anon_vma) before the command fails on what it
 *   read (a bad l_type or owner type: EINVAL, an unknown pid: ESRCH) or on its second page
 *   (EFAULT, with the bytes before the fault copied). A copy_to_user() into a MAP_PRIVATE page
 *   breaks COW first, and the MMU notifiers zap the SPTEs of a VM whose memslot maps it
 *   (kvm.vms), as for the DMA-mapping ioctls.
 * - the generic ioctls with an argument in user memory (USER_COPY_IOCTLS), likewise; FIBMAP puts
 *   0 back before failing, and the preallocation ones fail as fallocate() does.
 * - mmap with MAP_FIXED over existing mappings whose file's ->mmap (or a later step) fails:
 *   the old mappings are gone (vms_abort_munmap_vmas() leaves a gap), as Linux does.
 * - KVM_RUN, and guest_load/guest_store which run the vCPU: what the guest did before the exit
 *   that makes the call fail (KVM_EXIT_MEMORY_FAULT with -EFAULT) is done, as on hardware.
 * - KVM_PRE_FAULT_MEMORY failing on its first page leaves the MMU root loaded and the vCPU's
 *   kvm_run holding the KVM_EXIT_MEMORY_FAULT the fault prepared (kvm.vms, and the bytes of its
 *   run page: mm.phys).
 * - mlock and mlock2 lock the VMAs, then populate them (do_mlock()): a fault that fails there
 *   comes back as ENOMEM or EAGAIN (__mlock_posix_error_return()) with the VMAs locked.
 * - fallocate() marks each folio of the range dirty as it goes (shmem_fallocate(): "mark it
 *   dirty so that memory pressure will swap rather than free the folios we are allocating"),
 *   clears and marks uptodate a folio an earlier fallocate() left !uptodate ("SGP_FALLOC on a
 *   folio fallocated earlier must initialize it now, lest undo on failure cancel our earlier
 *   guarantee", shmem_get_folio_gfp()), and its rollback on ENOMEM, ENOSPC or EINTR
 *   (shmem_undo_range(..., unfalloc = true)) takes back only the folios it allocated: PG_dirty
 *   and PG_uptodate (mm.folio_flags) may change, nothing else.
 */
/**
 * failed_call_may_change() on a host: with the parts that mirror an allowed one (a vendor's copy
 * of the VM's stage-2 follows "kvm.vms": StateDigestRegistry.register()).
 */
export function failed_call_allows(kernel: Kernel, method: string, errno: number, args: readonly unknown[], range?: RangeBefore): 'all' | readonly string[] {
  const allowed = failed_call_may_change(method, errno, args, range);
  if (allowed === 'all') return allowed;
  const registry = stateDigestRegistry(kernel);
  return [...allowed, ...allowed.flatMap((x) => registry.mirroring(x))];
}

export function failed_call_may_change(method: string, errno: number, args: readonly unknown[], range?: RangeBefore): 'all' | readonly string[] {
  const ENOMEM = 12;
  const ENOSPC = 28;
  const EINTR = 4;
  const EAGAIN = 11;
  const EFAULT = 14;
  const EHWPOISON = 133;
  /* the fault on the page that fails may first map what fault-around finds in the page cache
   * (do_read_fault() -> do_fault_around()) and allocate page tables and an anon_vma */
  if ((method === 'process_vm_readv' || method === 'process_vm_writev') && (errno === EFAULT || errno === ENOMEM || errno === EHWPOISON)) {
    return ['mm.page_store', 'mm.tasks', 'mm.lru', 'mm.folio_flags', 'mm.misc'];
  }
  /* the pins before the page that failed were faults too: what they allocated stays, zeroed */
  if (method === 'ioctl' && PIN_REQUESTS.has(Number(args[1])) && (errno === EFAULT || errno === ENOMEM || errno === EHWPOISON)) {
    return ['mm.page_store', 'mm.phys', 'mm.tasks', 'mm.lru', 'mm.folio_flags', 'mm.misc', 'kvm.vms'];
  }
  /* KVM_RUN (_IO(KVMIO, 0x80)) and the guest accesses made through it: the guest's stores and
   * the faults they took before the exit that fails stay done */
  if (method === 'guest_load' || method === 'guest_store' || (method === 'ioctl' && Number(args[1]) === 0xae80)) return 'all';
  /* KVM_PRE_FAULT_MEMORY (_IOWR(KVMIO, 0xd5, ...)) that failed on its first page: past the
   * argument checks (EINVAL, EOPNOTSUPP, EINTR), arch/x86/kvm/mmu/mmu.c
   * kvm_arch_vcpu_pre_fault_memory() has loaded the MMU root (kvm_mmu_reload()), and the fault
   * that fails fills the vCPU's kvm_run with a KVM_EXIT_MEMORY_FAULT
   * (kvm_mmu_prepare_memory_fault_exit()) that stays there, in the run page user space maps:
   * the VM's part and the page's bytes may change */
  if (method === 'ioctl' && Number(args[1]) === 0xc040aed5) {
    const EINVAL = 22;
    const EOPNOTSUPP = 95;
    return errno === EINVAL || errno === EOPNOTSUPP || errno === EINTR ? [] : ['kvm.vms', 'mm.phys'];
  }
  if (method === 'ioctl' && USER_COPY_IOCTLS.has((int_arg(args[1]) ?? -1) >>> 0)) {
    return ['mm.page_store', 'mm.phys', 'mm.tasks', 'mm.lru', 'mm.folio_flags', 'mm.misc', 'kvm.vms'];
  }
  if (method === 'fcntl' && USER_COPY_FCNTLS.has((int_arg(args[1]) ?? -1) >>> 0)) {
    return ['mm.page_store', 'mm.phys', 'mm.tasks', 'mm.lru', 'mm.folio_flags', 'mm.misc', 'kvm.vms'];
  }
  if (method === 'fallocate') return errno === ENOMEM || errno === ENOSPC || errno === EINTR ? ['mm.folio_flags'] : [];
  /* MAP_FIXED over mappings: __mmap_prepare() zaps the old range (vms_clean_up_area()) before
   * the file's ->mmap, and when that fails vms_abort_munmap_vmas() leaves a gap where the old
   * mappings were (checked on Linux 6.18: a perf fd's failing mmap over a memfd mapping) */
  const MAP_FIXED = 0x10;
  if (method === 'mmap') return (Number(args[3]) & MAP_FIXED) !== 0 && range !== undefined && range.vmas > 0 ? 'all' : [];
  if (!RANGE_CALLS.has(method)) return [];
  if ((method === 'mlock' || method === 'mlock2') && (errno === ENOMEM || errno === EAGAIN)) return 'all';
  const MADV_POPULATE_READ = 22;
  const MADV_POPULATE_WRITE = 23;
  const MADV_COLLAPSE = 25;
  if (method === 'madvise' && (args[2] === MADV_POPULATE_READ || args[2] === MADV_POPULATE_WRITE || args[2] === MADV_COLLAPSE)) return 'all';
  return range !== undefined && (range.vmas > 1 || range.hole) ? 'all' : [];
}

export interface DebugVmOptions {
  /** Run check_vm() after every call (default true). */
  readonly invariants?: boolean;
  /** Compare the state digest before and after every failed call (default true). */
  readonly digest?: boolean;
  /** Called with each finding; without it, the first finding is thrown as a DebugVmError. */
  readonly onFinding?: (f: DebugVmFinding) => void;
}

/** What a call returned, read as C reads it: failed (-1, or MAP_FAILED) with errno. */
function failed(ret: unknown): boolean {
  return ret === -1 || ret === -1n || ret === U64_MAX;
}

type OutsideHandler = <T>(what: string, fn: () => T) => T;

/** Where a debug_vm_process() keeps its handler of events outside the process. */
const DEBUG_VM_OUTSIDE = Symbol('debug_vm_outside');

/**
 * Runs `fn`, a change to the host that is no system call of `p` (hardware: a device plugged in,
 * a device's DMA through the IOMMU), under the DEBUG_VM checks when p is a debug_vm_process():
 * the digest it kept from before its last failed call is dropped, as the state moved under it
 * (else the next failed call would be blamed for what fn did), and the invariants are checked
 * after fn, naming `what`. There is no errno to judge, so no digest comparison. On any other
 * process, fn just runs.
 */
export function debug_vm_outside<T>(p: object, what: string, fn: () => T): T {
  const h = (p as { [DEBUG_VM_OUTSIDE]?: OutsideHandler })[DEBUG_VM_OUTSIDE];
  return h === undefined ? fn() : h(what, fn);
}

/**
 * A Process whose every system call is followed by the DEBUG_VM checks and, when it fails,
 * by a comparison of the state digest taken before it with the one after (the rule "a call
 * that fails changes nothing", less failed_call_may_change()). Calls the process makes to
 * itself are checked once, as the outer call. The digest before a call is the one after the
 * previous failed call when there was one, else a new one: about one digest per call.
 */
export function debug_vm_process<P extends Process>(p: P, opts: DebugVmOptions = {}): P {
  const kernel = p.kernel;
  const invariants = opts.invariants ?? true;
  const digest = opts.digest ?? true;
  const emit = opts.onFinding ?? ((f: DebugVmFinding): void => {
    throw new DebugVmError(f);
  });
  let depth = 0;
  let before: StateDigest | undefined;
  const wrap = (method: string, fn: (...a: unknown[]) => unknown) => function (this: unknown, ...args: unknown[]): unknown {
    if (depth > 0) return fn.apply(this, args);
    if (digest && before === undefined) before = mm_state_digest(kernel);
    const range = digest && (RANGE_CALLS.has(method) || method === 'mmap') ? range_before(p.mm, args[0], args[1]) : undefined;
    depth++;
    let ret: unknown;
    try {
      ret = fn.apply(this, args);
    } finally {
      depth--;
    }
    const call = describe_call(method, args);
    if (digest && failed(ret)) {
      const after = mm_state_digest(kernel);
      const errno = p.errno;
      if (after.digest !== before!.digest) {
        const parts = stateDigestDiff(before!, after);
        const allowed = failed_call_allows(kernel, method, errno, args, range);
        if (allowed !== 'all' && parts.some((x) => !allowed.includes(x))) {
          emit({ kind: 'failed-call-changed-state', call, method, violations: [], errno, parts });
        }
      }
      before = after;
    } else {
      before = undefined;
    }
    if (invariants) {
      const v = check_vm(kernel);
      if (v.length > 0) emit({ kind: 'invariant', call, method, violations: v });
    }
    return ret;
  };
  /* an event outside the process moves the state under the digest kept from before: drop it */
  const outside: OutsideHandler = (what, fn) => {
    if (depth > 0) return fn();
    depth++;
    let r;
    try {
      r = fn();
    } finally {
      depth--;
      before = undefined;
    }
    if (invariants) {
      const v = check_vm(kernel);
      if (v.length > 0) emit({ kind: 'invariant', call: what, method: what, violations: v });
    }
    return r;
  };
  const wrapped = new Map<string, (...a: unknown[]) => unknown>();
  return new Proxy(p, {
    get(target, prop, receiver) {
      if (prop === DEBUG_VM_OUTSIDE) return outside;
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof v !== 'function' || prop === 'constructor' || prop === 'sys') return v;
      let w = wrapped.get(prop);
      if (w === undefined) wrapped.set(prop, (w = wrap(prop, v as (...a: unknown[]) => unknown)));
      return w;
    },
  });
}
