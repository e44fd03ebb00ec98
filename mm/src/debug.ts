/**
 * mm's part of the state digest (core/src/state_digest.ts): what mm/debug.c's dump_page(),
 * dump_vma() and dump_mm() print, fed into a StateHash instead, for every object mm holds on a
 * host. mm_state_digest(kernel) registers these parts on first use and computes the host's digest
 * (with whatever KVM, VFIO or a vendor registered for the same Kernel).
 *
 * Parts, in order (the ids they give out are shared: a folio's mapping id, met first in the page
 * store, is the same number when its file is hashed):
 *
 *   mm.page_store  every page in use: flags, _refcount, _mapcount (and page_type), order,
 *                  compound_head, folio->mapping (canonical id), ->index, owner, and the large
 *                  folio counters of heads. A free buddy block is its head and order: the rest of
 *                  a free page is stale in the kernel too, and page_alloc's checkConsistency()
 *                  (DEBUG_VM) is what vouches for it. So the cost grows with the pages in use.
 *   mm.folio_flags PG_dirty and PG_uptodate of the pages in use (apart, because a failed
 *                  fallocate() leaves the folios it met dirty and the ones fallocated before it
 *                  uptodate, as shmem_fallocate() and shmem_get_folio_gfp() do).
 *   mm.phys        the contents of every page in use (PhysMem): descriptor, key, poisoned lines,
 *                  and the bytes where bytes were written. The zero page is zero by definition,
 *                  and so is a page-cache folio that is not uptodate (what every reader sees).
 *   mm.tasks       each process by pid: signals pending, its fd table and the open files (f_pos,
 *                  flags, inode, seals, the page cache and i_mmap of each file met), its mm (the
 *                  counters, every VMA, every page-table entry). A shmem inode's block count is
 *                  the one shmem_getattr() reports, settled for the pages reclaim took.
 *   mm.files       address_spaces no task reaches (a file only the kernel holds, a page-cache
 *                  folio whose file is gone), by inode number.
 *   mm.swap        swap areas (swap_map, swap cache, the contents of slots in use), folio->swap.
 *   mm.lru         each LRU list in list order (reclaim order is behaviour) and its size.
 *   mm.misc        the Kernel's counters, mlock counts, hugetlb pools, memory-failure state, the
 *                  huge zero folio, committed memory, page_alloc's taint and hwpoison pages, sysctls.
 *
 * Left out: the virtual clock and cost totals, the trace, warnings (the replayer reports them),
 * statistics that only count events (allocation failures, memory-failure stats), and the one-entry
 * lookup caches. Lazily created per-host objects hash the same before and after their creation
 * when they hold only defaults, so that creating one is not a change. Two pieces of the kernel's
 * own bookkeeping that Linux allocates in a fault and keeps when the fault then fails
 * (__handle_mm_fault()'s pte_alloc(), do_anonymous_page() and do_cow_fault()'s
 * anon_vma_prepare()) hash as absent until they hold something: an empty PTE table, and an
 * anon_vma no page belongs to. So a failed call may leave them, as the kernel's does.
 */
import { PAGE_SIZE, StateHash, stateDigestRegistry, type PhysPageInfo, type StateDigest, type Pfn } from '@cocosim/core';
import type { AddressSpace, File, Inode } from './fs.js';
import { icount } from './file_table.js';
import { registered_mappings } from './filemap.js';
import { huge_zero_folio_if_any } from './huge_memory.js';
import { hugetlb_pool_if_any } from './hugetlb.js';
import { HugetlbfsInodeInfo } from './hugetlbfs.js';
import type { Kernel } from './kernel.js';
import { memory_failure_state_if_any } from './memory-failure.js';
import { mlock_count_map } from './mlock.js';
import { NR_LRU_LISTS, lru_lists_if_any } from './mm_inline.js';
import { MMF_TOPDOWN, TASK_SIZE, mmap_base, task_mm_if_any, vm_sysctl, type MmStruct, type VmAreaStruct } from './mm_types.js';
import { PGTY_buddy, PG_dirty, PG_head, PG_mlocked, PG_uptodate } from './page-flags.js';
import { FOLIO_MAPPING_ANON } from './folio.js';
import { for_each_process, type Task } from './process.js';
import { i_mmap_of } from './rmap.js';
import { ShmemInodeInfo } from './shmem.js';
import { swap_cache_folios, folio_swap_entry } from './swap_state.js';
import { swap_globals } from './swapfile.js';
import { vm_memory_committed } from './util.js';

const TAG_FREE = 0xf4ee_0000;
const TAG_PAGE = 0x9a9e_0000;
const TAG_END = 0xe4d0_0000;

const PHYS_KIND: Readonly<Record<string, number>> = { never_written: 1, zero: 2, fill: 3, bytes: 4, ciphertext: 5 };

/* Locals, not imported bindings, in the loops over every page (the test runner makes those property reads). */
const BUDDY = PGTY_buddy;
const HEAD_BIT = 1 << PG_head;
/** The folio flags of the mm.folio_flags part. */
const FOLIO_STATE_BITS = (1 << PG_dirty) | (1 << PG_uptodate);
const UPTODATE_BIT = 1 << PG_uptodate;

/** A free buddy block starts at array index i: its order, else -1. */
function buddy_order_at(kernel: Kernel, i: number): number {
  const s = kernel.store;
  return s._mapcount[i] >>> 24 === BUDDY ? s.order[i] : -1;
}

/** folio->mapping as a canonical number: the id's canonical number, the FOLIO_MAPPING_* tag bits kept. */
function canon_mapping(h: StateHash, m: number): number {
  return m === 0 ? 0 : h.canon('mapping', m - (m & 3)) * 4 + (m & 3);
}

/** mm.page_store: every page in use; a free block as its head and order. */
function hash_page_store(h: StateHash, kernel: Kernel): void {
  const s = kernel.store;
  const n = s.nr_pages;
  const head_bit = HEAD_BIT;
  h.num(s.base_pfn);
  h.num(n);
  for (let i = 0; i < n; ) {
    const order = buddy_order_at(kernel, i);
    if (order >= 0) {
      h.u32(TAG_FREE | order);
      h.num(i);
      i += 2 ** order;
      continue;
    }
    const f = s.flags[i];
    const m = s.mapping[i];
    h.u32(TAG_PAGE);
    /* PG_dirty and PG_uptodate are the mm.folio_flags part's */
    h.u32(f & ~FOLIO_STATE_BITS);
    h.u32(s._refcount[i]);
    h.u32(s._mapcount[i]);
    h.u32(s.head_offset[i]);
    h.u32(s.order[i]);
    h.u32(canon_mapping(h, m));
    /* folio->index means something only while the folio has a mapping */
    if (m !== 0) h.num(s.index[i]);
    h.u32(h.canon('owner', s.owner[i]));
    if (f & head_bit) {
      h.u32(s._large_mapcount[i]);
      h.u32(s._entire_mapcount[i]);
      h.u32(s._nr_pages_mapped[i]);
      h.u32(s._pincount[i]);
    }
    i++;
  }
  h.u32(TAG_END);
}

/** mm.folio_flags: PG_dirty and PG_uptodate of the pages in use. */
function hash_folio_flags(h: StateHash, kernel: Kernel): void {
  const s = kernel.store;
  const n = s.nr_pages;
  for (let i = 0; i < n; ) {
    const order = buddy_order_at(kernel, i);
    if (order >= 0) {
      i += 2 ** order;
      continue;
    }
    const f = s.flags[i] & FOLIO_STATE_BITS;
    if (f !== 0) {
      h.num(i);
      h.u32(f);
    }
    i++;
  }
}

/** A plaintext page of zeros, as inspect() describes one. */
const ZERO_FRAME: PhysPageInfo = { kind: 'zero', key: 0, plain: 'zero', byte: 0, poisonedLines: [] };

/** The contents of one frame, as its owner sees them (PhysMem.inspect() and read()). */
function hash_frame(h: StateHash, kernel: Kernel, pfn: number, seen?: PhysPageInfo): void {
  const phys = kernel.phys;
  const info = seen ?? phys.inspect(pfn as Pfn);
  h.u32(PHYS_KIND[info.kind]);
  h.u32(info.key);
  h.u32(PHYS_KIND[info.plain]);
  if (info.byte !== undefined) h.u32(info.byte);
  if (info.tweakPfn !== undefined) h.num(info.tweakPfn);
  if (info.keyCurrent !== undefined) h.bool(info.keyCurrent);
  h.u32(info.poisonedLines.length);
  for (const l of info.poisonedLines) h.u32(l);
  /* bytes, and never-written content (its pattern tells which frame it was copied from) */
  if ((info.plain === 'bytes' || info.plain === 'never_written') && info.poisonedLines.length === 0) {
    const data = phys.read(pfn as Pfn, 0, 4096, info.key);
    if (data instanceof Uint8Array) h.bytes(data);
  }
}

/** mm.phys: the contents of every page in use. */
function hash_phys(h: StateHash, kernel: Kernel): void {
  const s = kernel.store;
  const n = s.nr_pages;
  for (let i = 0; i < n; ) {
    const order = buddy_order_at(kernel, i);
    if (order >= 0) {
      i += 2 ** order;
      continue;
    }
    const pfn = s.base_pfn + i;
    if (pfn === s.zero_pfn) {
      i++;
      continue;
    }
    h.num(i);
    /* a page-cache folio not uptodate reads as zeros whatever DRAM holds (every reader clears it first) */
    const head = i - s.head_offset[i];
    const m = s.mapping[head];
    const not_uptodate = m !== 0 && !(m & FOLIO_MAPPING_ANON) && !(s.flags[head] & UPTODATE_BIT);
    hash_frame(h, kernel, pfn, not_uptodate && !kernel.phys.isPoisoned(pfn as Pfn) ? ZERO_FRAME : undefined);
    i++;
  }
  h.u32(TAG_END);
}

/** What the tasks part shares with the files part: which mm belongs to which pid. */
interface Walk {
  readonly kernel: Kernel;
  readonly pid_of: Map<MmStruct, number>;
}

function hash_inode(h: StateHash, w: Walk, inode: Inode): void {
  const { id, first } = h.id(inode);
  h.u32(id);
  if (!first) return;
  const p = inode.i_private;
  /* shmem's block count as shmem_getattr() settles it before anyone reads it: the pages reclaim
   * took out of the page cache are given back by the next shmem_recalc_inode(), which a call
   * that fails (fallocate(): shmem_undo_range()) may be */
  const unsettled = p instanceof ShmemInodeInfo ? Math.max(0, p.alloced - p.swapped - inode.i_mapping.nrpages) : 0;
  h.num(inode.i_ino);
  h.u32(inode.i_mode);
  h.big(inode.i_size);
  h.big(inode.i_blocks - BigInt(unsettled * (PAGE_SIZE / 512)));
  h.u32(inode.i_flags);
  h.u32(inode.i_nlink);
  h.u32(inode.i_write_hint);
  const locks = inode.i_flctx ?? [];
  h.u32(locks.length);
  for (const fl of locks) {
    h.u32(fl.ofd ? 1 : 0);
    h.num(fl.pid);
    h.u32(fl.type);
    h.big(fl.start);
    h.big(fl.end);
  }
  h.u32(icount(inode));
  if (p instanceof ShmemInodeInfo) {
    h.u32(1);
    h.u32(p.seals);
    h.num(p.flags);
    h.num(p.alloced - unsettled);
    h.num(p.swapped);
    h.num(p.fallocend);
    h.str(p.name);
    h.u32(p.fsflags);
  } else if (p instanceof HugetlbfsInodeInfo) {
    h.u32(2);
    h.u32(p.seals);
    h.u32(p.hstate.order);
    h.str(p.name);
    const resv = Float64Array.from(p.resv_map).sort();
    h.u32(resv.length);
    for (const x of resv) h.num(x);
  } else {
    h.u32(0);
  }
  hash_mapping(h, w, inode.i_mapping);
}

/** An address_space: its counters, its page cache in index order and who maps it. */
function hash_mapping(h: StateHash, w: Walk, mapping: AddressSpace): void {
  const { id, first } = h.id(mapping);
  h.u32(id);
  if (!first) return;
  h.u32(h.canon('mapping', mapping.id));
  h.num(mapping.nrpages);
  h.num(mapping.i_mmap_writable);
  h.u32(mapping.flags);
  h.u32(mapping.gfp_mask);
  mapping.i_pages.xa_for_each((index, entry) => {
    h.num(index);
    h.num(entry);
    return true;
  });
  h.u32(TAG_END);
  /* i_mmap in a canonical order: owner pid, then address */
  const vmas = [...i_mmap_of(mapping)].map((v) => [w.pid_of.get(v.vm_mm) ?? -1, v.start_vpn, v.end_vpn] as const);
  vmas.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  h.u32(vmas.length);
  for (const [pid, start, end] of vmas) {
    h.num(pid);
    h.num(start);
    h.num(end);
  }
}

function hash_file(h: StateHash, w: Walk, file: File): void {
  const { id, first } = h.id(file);
  h.u32(id);
  if (!first) return;
  h.num(file.f_count);
  h.big(file.f_pos);
  h.u32(file.f_flags);
  h.u32(file.f_mode);
  /* what fcntl() sets: F_SETOWN, F_SETSIG, F_SETLEASE */
  h.num(file.f_owner_pid);
  h.u32(file.f_owner_type);
  h.u32(file.f_owner_signum);
  h.u32(file.f_lease);
  hash_inode(h, w, file.f_inode);
}

function hash_vma(h: StateHash, w: Walk, first: number, last: number, v: VmAreaStruct): void {
  h.num(first);
  h.num(last);
  h.num(v.start_vpn);
  h.num(v.end_vpn);
  h.num(v.vm_flags);
  h.u32(v.vm_page_prot);
  h.num(v.vm_pgoff);
  if (v.vm_file === null) h.u32(0);
  else hash_file(h, w, v.vm_file);
  h.u32(v.vm_ops === null ? 0 : h.id(v.vm_ops).id);
  /* an anon_vma no page belongs to is the kernel's bookkeeping (see the file comment) */
  const av = v.anon_vma;
  h.u32(av === null || !h.known('mapping', av.id) ? 0 : h.canon('mapping', av.id));
  h.str(v.anon_name);
}

function sorted_keys(m: ReadonlyMap<number, unknown>): Float64Array {
  return Float64Array.from(m.keys()).sort();
}

/**
 * An mm as exec() leaves it: no VMAs, no page tables, counters at zero. A task's mm is made on
 * its first address-space call, so a task without one hashes as this too.
 */
function mm_pristine(mm: MmStruct): boolean {
  const pgd = mm.pgd;
  return mm.map_count === 0 && mm.mm_mt.mt_find(0, Number.MAX_SAFE_INTEGER) === undefined && pgd.ptes.size === 0 && pgd.pmds.size === 0 &&
    pgd.puds.size === 0 && mm.total_vm === 0 && mm.locked_vm === 0 && mm.pinned_vm === 0 && mm.data_vm === 0 && mm.exec_vm === 0 &&
    mm.stack_vm === 0 && mm.def_flags === 0 && mm.flags === MMF_TOPDOWN && mm.rss_stat.every((x) => x === 0) &&
    mm.notifier_subscriptions.length === 0 && mm.task_size === TASK_SIZE && mm.mmap_base === mmap_base(TASK_SIZE);
}

/** dump_mm() and the page tables under it. */
function hash_mm(h: StateHash, w: Walk, mm: MmStruct): void {
  if (mm_pristine(mm)) {
    h.u32(0);
    return;
  }
  h.u32(1);
  h.u32(mm.flags);
  h.num(mm.map_count);
  h.num(mm.total_vm);
  h.num(mm.locked_vm);
  h.num(mm.pinned_vm);
  h.num(mm.data_vm);
  h.num(mm.exec_vm);
  h.num(mm.stack_vm);
  h.num(mm.def_flags);
  for (const x of mm.rss_stat) h.num(x);
  h.big(mm.mmap_base);
  h.big(mm.task_size);
  h.u32(mm.notifier_subscriptions.length);
  for (const r of mm.mm_mt) hash_vma(h, w, r.first, r.last, r.entry);
  h.u32(TAG_END);
  const pgd = mm.pgd;
  for (const pmd of sorted_keys(pgd.ptes)) {
    const t = pgd.ptes.get(pmd)!;
    if (t.nr === 0) continue;
    h.num(pmd);
    h.u32(t.nr);
    const flags = t.flags;
    for (let i = 0; i < flags.length; i++) {
      const f = flags[i];
      if (f === 0) continue;
      h.u32(i + f * 65536);
      h.num(t.val[i]);
    }
    h.u32(TAG_END);
  }
  h.u32(TAG_END);
  for (const table of [pgd.pmds, pgd.puds]) {
    for (const k of sorted_keys(table)) {
      const e = table.get(k)!;
      h.num(k);
      h.num(e.val);
      h.num(e.flags);
    }
    h.u32(TAG_END);
  }
}

function hash_task(h: StateHash, w: Walk, task: Task): void {
  h.num(task.pid);
  h.str(task.comm);
  h.num(task.flags);
  h.u32(task.pending.length);
  for (const s of task.pending) {
    h.str(String(s.signo));
    h.str(String(s.si_code));
    h.big(s.si_addr);
    h.num(s.si_addr_lsb ?? -1);
  }
  h.num(task.files.rlimit_nofile);
  for (const fd of task.files.open_fds()) {
    h.num(fd);
    h.bool(task.files.get_close_on_exec(fd));
    hash_file(h, w, task.files.lookup_raw(fd)!);
  }
  h.u32(TAG_END);
  const mm = task_mm_if_any(task);
  if (mm === undefined) h.u32(0);
  else hash_mm(h, w, mm);
}

function make_walk(kernel: Kernel): Walk {
  const pid_of = new Map<MmStruct, number>();
  for (const t of for_each_process(kernel)) {
    const mm = task_mm_if_any(t);
    if (mm !== undefined) pid_of.set(mm, t.pid);
  }
  return { kernel, pid_of };
}

/** mm.files: the address_spaces no task reached, by inode number. */
function hash_unreached_mappings(h: StateHash, w: Walk): void {
  const unreached = registered_mappings(w.kernel.store).filter((m) => !h.has(m));
  unreached.sort((a, b) => a.host.i_ino - b.host.i_ino);
  for (const m of unreached) hash_inode(h, w, m.host);
  h.u32(TAG_END);
}

/** mm.swap: the swap areas and the swap cache. */
function hash_swap(h: StateHash, kernel: Kernel): void {
  const g = swap_globals(kernel);
  h.num(g.nr_swapfiles);
  h.num(g.total_swap_pages);
  h.num(g.nr_swap_pages);
  h.num(g.least_priority);
  for (const si of g.swap_info) {
    if (si === undefined) {
      h.u32(0);
      continue;
    }
    h.u32(si.type + 1);
    h.u32(si.flags);
    h.num(si.prio);
    h.num(si.max);
    h.num(si.inuse_pages);
    h.num(si.cluster_next);
    h.bytes(si.swap_map);
    for (let slot = 0; slot < si.max; slot++) {
      if (si.cache[slot] !== 0) {
        h.num(slot);
        h.num(si.cache[slot]);
      }
      const c = si.swap_map[slot];
      /* the header slot is SWAP_MAP_BAD and holds no page */
      if (c !== 0 && slot !== 0) hash_frame(h, kernel, si.phys_base + slot);
    }
    h.u32(TAG_END);
  }
  h.u32(TAG_END);
  const store = kernel.store;
  for (const folio of Float64Array.from(swap_cache_folios(store)).sort()) {
    h.num(folio);
    h.big(folio_swap_entry(store, folio));
  }
  h.u32(TAG_END);
}

/** mm.lru: each list in order. A host whose lists were never used hashes as empty lists. */
function hash_lru(h: StateHash, kernel: Kernel): void {
  const store = kernel.store;
  const l = lru_lists_if_any(store);
  const nr_lists = store.nr_node_ids * NR_LRU_LISTS;
  for (let id = 0; id < nr_lists; id++) {
    if (l !== undefined) for (let i = l.head[id]; i !== -1; i = l.next[i]) h.num(i);
    h.u32(TAG_END);
    h.num(l === undefined ? 0 : l.nr_pages[id]);
  }
}

/** mm.misc: the host-wide odds and ends. */
function hash_misc(h: StateHash, kernel: Kernel): void {
  const store = kernel.store;
  /* pids, which user space sees (getpid). Not the inode-number counter: Linux's failed calls
   * advance it too (an inode allocated and dropped on an error path: mmap(MAP_HUGETLB),
   * memfd_create after EMFILE), and only the numbers of inodes that exist are hashed. */
  h.num(kernel['last_pid']);
  const mlock = mlock_count_map(store);
  if (mlock !== undefined) {
    const mlocked = 1 << PG_mlocked;
    for (const folio of sorted_keys(mlock)) {
      if (store.pfn_valid(folio) && store.flags[store.idx(folio)] & mlocked && buddy_order_at(kernel, store.idx(folio)) < 0) {
        h.num(folio);
        h.num(mlock.get(folio)!);
      }
    }
  }
  h.u32(TAG_END);
  /* hstates that hold anything (an unused pool hashes as no pool) */
  for (const hs of hugetlb_pool_if_any(kernel)?.hstates ?? []) {
    const counters = [hs.nr_huge_pages, hs.free_huge_pages, hs.surplus_huge_pages, hs.resv_huge_pages, hs.nr_overcommit_huge_pages, hs.max_huge_pages];
    if (hs.freelist.length === 0 && counters.every((c) => c === 0)) continue;
    h.u32(hs.order);
    for (const c of counters) h.num(c);
    h.u32(hs.freelist.length);
    for (const f of hs.freelist) h.num(f);
  }
  h.u32(TAG_END);
  const mf = memory_failure_state_if_any(kernel);
  h.num(mf?.num_poisoned_pages ?? 0);
  h.bool(mf?.hw_memory_failure ?? false);
  for (const folio of mf === undefined ? [] : sorted_keys(mf.raw_hwp)) {
    const raw = Float64Array.from(mf!.raw_hwp.get(folio)!).sort();
    h.num(folio);
    h.u32(raw.length);
    for (const p of raw) h.num(p);
  }
  h.u32(TAG_END);
  h.num(huge_zero_folio_if_any(kernel) ?? -1);
  h.num(vm_memory_committed(kernel));
  const pa = kernel.page_alloc;
  h.bool(pa.tainted_bad_page);
  h.bool(pa.pf_memalloc_pin);
  for (const pfn of Float64Array.from(pa['hwpoison_taken_off']).sort()) h.num(pfn);
  h.u32(TAG_END);
  const sc = vm_sysctl(kernel);
  h.big(sc.mmap_min_addr);
  h.big(sc.lsm_mmap_min_addr);
  h.num(sc.max_map_count);
  h.num(sc.overcommit_memory);
  h.bool(sc.memory_failure);
  h.str(sc.transparent_hugepage);
  h.str(sc.shmem_enabled);
  h.num(sc.fault_around_bytes);
}

/**
 * Registers mm's parts of the state digest for `kernel` (once; later calls do nothing). The
 * tasks part and the files part share one walk per digest: the files part hashes what the tasks
 * part did not reach.
 */
export function register_mm_state_digest(kernel: Kernel): void {
  const r = stateDigestRegistry(kernel);
  if (r.has('mm.page_store')) return;
  let walk: Walk | undefined;
  r.register('mm.page_store', (h) => hash_page_store(h, kernel), 0);
  r.register('mm.phys', (h) => hash_phys(h, kernel), 1);
  r.register('mm.folio_flags', (h) => hash_folio_flags(h, kernel), 1);
  r.register('mm.tasks', (h) => {
    walk = make_walk(kernel);
    for (const t of for_each_process(kernel)) hash_task(h, walk, t);
  }, 2);
  r.register('mm.files', (h) => hash_unreached_mappings(h, walk ?? make_walk(kernel)), 3);
  r.register('mm.swap', (h) => hash_swap(h, kernel), 4);
  r.register('mm.lru', (h) => hash_lru(h, kernel), 5);
  r.register('mm.misc', (h) => hash_misc(h, kernel), 6);
}

/**
 * The digest of a host's whole state: mm's parts and every other package's (KVM, VFIO, vendors
 * register theirs on the same Kernel). Equal digests mean equal states up to the choice of ids.
 */
export function mm_state_digest(kernel: Kernel): StateDigest {
  register_mm_state_digest(kernel);
  return stateDigestRegistry(kernel).compute();
}
