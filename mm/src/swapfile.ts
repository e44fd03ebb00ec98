/**
 * Swap areas (mm/swapfile.c, include/linux/swap.h; Linux 6.18): swapon of a simulated swap
 * device, slot allocation, the per-slot reference counts (swap_map) and /proc/swaps.
 *
 * The oracle machine has CONFIG_SWAP=y and no swap area (/proc/swaps is empty, checked), so a new
 * simulated host has none either: reclaim then never swaps (anonymous memory and shmem stay
 * resident, as `free` shows on that machine), and tests that want swapping call swapon() first.
 * A swap area is a simulated block device of `nr_pages` page-sized slots; it has no file behind
 * it, so swapon() takes a size instead of a path.
 *
 * swap_map[offset] is the kernel's: the references to the slot (swap PTEs of anonymous pages,
 * value entries of shmem page caches), plus SWAP_HAS_CACHE while a folio for the slot sits in the
 * swap cache (swap_state.ts). A slot is free when it is 0. Slot 0 holds the swap header and is
 * never handed out. Counts beyond SWAP_MAP_MAX (continuation pages in the kernel) cannot arise:
 * without fork a slot has at most one PTE or one page-cache reference.
 *
 * Contents. Slot `offset` of an area keeps its page in the host's PhysMem at frame
 * si.phys_base + offset, a window above the memory map reserved at swapon(), so that writing a
 * page out and reading it back are copy_page()s of PhysMem's compact descriptors (page_io.ts): a
 * zero page stays "zero", written data stays bytes, and an encrypted page stays ciphertext bound
 * to the physical address it was encrypted at, which is why the kernel cannot swap private
 * memory without firmware help.
 *
 * Allocation. Slots are handed out next-fit in increasing offsets from 1, wrapping, from the
 * area of highest priority that has room. The kernel's cluster allocator also fills a cluster in
 * increasing offsets; which cluster a CPU starts from is not modelled. Large folios are not given
 * slot clusters (folio_alloc_swap() answers -EAGAIN, as without CONFIG_THP_SWAP): reclaim keeps
 * them, since the simulator does not split folios.
 */
import { BUG, BUG_ON, Errno, MAX_FRAME, PAGE_SIZE, type Pfn } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { MAX_SWAPFILES, swp_entry, swp_offset, swp_type, type SwpEntry } from './swapops.js';
import { swap_cache_migrate_hooks } from './migrate.js';
import { __swap_cache_replace_folio } from './swap_state.js';

/* swap_map values (include/linux/swap.h) */
/** Flag: a folio for the slot is in the swap cache. */
export const SWAP_HAS_CACHE = 0x40;
/** Max count, beyond which continuation pages take over. */
export const SWAP_MAP_MAX = 0x3e;
/** Note page is bad. */
export const SWAP_MAP_BAD = 0x3f;

/* swap_info_struct->flags (enum, include/linux/swap.h) */
/** is slot in swap_info[] used? */
export const SWP_USED = 1 << 0;
/** ok to write to this swap? */
export const SWP_WRITEOK = 1 << 1;

/* swapon(2) flags (include/linux/swap.h) */
/** set if swap priority specified */
export const SWAP_FLAG_PREFER = 0x8000;
export const SWAP_FLAG_PRIO_MASK = 0x7fff;
/** enable discard for swap */
export const SWAP_FLAG_DISCARD = 0x10000;
/** discard swap area at swapon-time */
export const SWAP_FLAG_DISCARD_ONCE = 0x20000;
/** discard page-clusters after use */
export const SWAP_FLAG_DISCARD_PAGES = 0x40000;
export const SWAP_FLAGS_VALID = SWAP_FLAG_PRIO_MASK | SWAP_FLAG_PREFER | SWAP_FLAG_DISCARD | SWAP_FLAG_DISCARD_ONCE | SWAP_FLAG_DISCARD_PAGES;

/** struct swap_info_struct: one swap area. */
export class SwapInfoStruct {
  /** SWP_USED | SWP_WRITEOK. */
  flags = SWP_USED | SWP_WRITEOK;
  /** Swap priority of this type. */
  prio: number;
  /** Extent of the swap_map (slots, the header included). */
  readonly max: number;
  /** Total of usable slots. */
  readonly pages: number;
  /** Number of those currently in use. */
  inuse_pages = 0;
  /** Per-slot reference count, SWAP_HAS_CACHE in addition. */
  readonly swap_map: Uint8Array;
  /** The swap cache of this area: the folio of each slot + 1, 0 for none (swap_state.ts). */
  readonly cache: Float64Array;
  /** Next slot the allocator tries (next-fit cursor). */
  cluster_next = 1;
  /** First PhysMem frame of the slots' contents (see the file comment). */
  readonly phys_base: number;

  constructor(
    /** Type of this area: the swp_type() of its entries. */
    readonly type: number,
    nr_pages: number,
    prio: number,
    phys_base: number,
    /** What /proc/swaps calls it. */
    readonly name: string,
  ) {
    this.max = nr_pages;
    this.pages = nr_pages - 1;
    this.prio = prio;
    this.phys_base = phys_base;
    this.swap_map = new Uint8Array(nr_pages);
    /* the header page */
    this.swap_map[0] = SWAP_MAP_BAD;
    this.cache = new Float64Array(nr_pages);
  }
}

/** The swap globals of one host (swap_info[], nr_swapfiles, total_swap_pages, nr_swap_pages). */
class SwapGlobals {
  readonly swap_info: (SwapInfoStruct | undefined)[] = [];
  nr_swapfiles = 0;
  /** Usable slots of every area that is on. */
  total_swap_pages = 0;
  /** Free slots (nr_swap_pages). */
  nr_swap_pages = 0;
  /** Areas without an explicit priority get -2, -3... (least_priority). */
  least_priority = -1;
  /** Where the next area's contents window starts in PhysMem. */
  next_phys_base: number;

  constructor(kernel: Kernel) {
    this.next_phys_base = kernel.store.end_pfn;
  }
}

const globals = new WeakMap<Kernel, SwapGlobals>();

/** The swap globals of a host. */
export function swap_globals(kernel: Kernel): SwapGlobals {
  let g = globals.get(kernel);
  if (g === undefined) {
    g = new SwapGlobals(kernel);
    globals.set(kernel, g);
  }
  return g;
}

/** total_swap_pages. */
export function total_swap_pages(kernel: Kernel): number {
  return globals.get(kernel)?.total_swap_pages ?? 0;
}

/** get_nr_swap_pages(): free swap slots. */
export function get_nr_swap_pages(kernel: Kernel): number {
  return globals.get(kernel)?.nr_swap_pages ?? 0;
}

/** vm_swap_full(): more than half of the swap space is in use. */
export function vm_swap_full(kernel: Kernel): boolean {
  return get_nr_swap_pages(kernel) * 2 < total_swap_pages(kernel);
}

/**
 * swapon(2) of a simulated device of `nr_pages` pages (the header page included), as
 * sys_swapon() after read_swap_header(): -EINVAL for unknown flags or a device without a usable
 * slot ("Empty swap-file"), -EPERM when all MAX_SWAPFILES types are taken. The priority is
 * SWAP_FLAG_PREFER's, else the next of -2, -3... as the kernel gives them.
 * @returns the new area's type, or -errno.
 */
export function swapon(kernel: Kernel, nr_pages: number, swap_flags = 0): number {
  if (!Number.isInteger(swap_flags) || swap_flags < 0 || swap_flags & ~SWAP_FLAGS_VALID) return -Errno.EINVAL;
  if (!Number.isSafeInteger(nr_pages) || nr_pages < 2) return -Errno.EINVAL;
  const g = swap_globals(kernel);
  /* alloc_swap_info() */
  let type = 0;
  while (type < g.nr_swapfiles && g.swap_info[type] !== undefined) type++;
  if (type >= MAX_SWAPFILES) return -Errno.EPERM;
  /* the contents window must fit in PhysMem's frame numbers (a simulator limit) */
  if (g.next_phys_base + nr_pages - 1 > MAX_FRAME) return -Errno.EINVAL;
  const prio = swap_flags & SWAP_FLAG_PREFER ? swap_flags & SWAP_FLAG_PRIO_MASK : --g.least_priority;
  const si = new SwapInfoStruct(type, nr_pages, prio, g.next_phys_base, `/dev/cocosim-swap${type}`);
  g.next_phys_base += nr_pages;
  g.swap_info[type] = si;
  if (type === g.nr_swapfiles) g.nr_swapfiles++;
  g.total_swap_pages += si.pages;
  g.nr_swap_pages += si.pages;
  /* from now on the swap cache may hold folios, which migration must be able to move */
  swap_cache_migrate_hooks.__swap_cache_replace_folio = __swap_cache_replace_folio;
  return type;
}

/** swp_info(): the swap area of `type`, if on. */
export function swp_info(kernel: Kernel, type: number): SwapInfoStruct | undefined {
  return globals.get(kernel)?.swap_info[type];
}

/**
 * get_swap_device(): the area of a swap entry whose slot is within it, or undefined for a bad
 * entry (the kernel prints "Bad swap file entry" and fails the operation).
 */
export function get_swap_device(kernel: Kernel, entry: SwpEntry): SwapInfoStruct | undefined {
  const si = swp_info(kernel, swp_type(entry));
  if (si === undefined) return undefined;
  const offset = swp_offset(entry);
  return offset > 0 && offset < si.max ? si : undefined;
}

function swap_device_or_bug(kernel: Kernel, entry: SwpEntry, what: string): SwapInfoStruct {
  const si = get_swap_device(kernel, entry);
  if (si === undefined) BUG(`${what}: bad swap entry type ${swp_type(entry)} offset ${swp_offset(entry)}`);
  return si;
}

/** The PhysMem frame holding the contents of a swap slot. */
export function swap_slot_pfn(si: SwapInfoStruct, offset: number): Pfn {
  return (si.phys_base + offset) as Pfn;
}

/** __swap_count(): the references to the slot, without SWAP_HAS_CACHE. */
export function __swap_count(kernel: Kernel, entry: SwpEntry): number {
  const si = swap_device_or_bug(kernel, entry, '__swap_count');
  return si.swap_map[swp_offset(entry)] & ~SWAP_HAS_CACHE;
}

/** The raw swap_map byte of an entry (count | SWAP_HAS_CACHE), for checks and tests. */
export function swap_map_of(kernel: Kernel, entry: SwpEntry): number {
  return swap_device_or_bug(kernel, entry, 'swap_map_of').swap_map[swp_offset(entry)];
}

/** A slot left with no reference and no cache goes back to the free pool (swap_entries_free()). */
function slot_free(kernel: Kernel, si: SwapInfoStruct, offset: number): void {
  si.swap_map[offset] = 0;
  si.inuse_pages--;
  swap_globals(kernel).nr_swap_pages++;
  /* Forget the contents: the slot reads as never written again (discard) */
  kernel.phys.free(swap_slot_pfn(si, offset));
}

/**
 * The allocator of folio_alloc_swap() for one slot: next-fit from the cursor in the area of
 * highest priority with a free slot. The slot gets SWAP_HAS_CACHE.
 * @returns the entry, or undefined when no slot is free.
 */
function get_swap_slot(kernel: Kernel): SwpEntry | undefined {
  const g = swap_globals(kernel);
  let best: SwapInfoStruct | undefined;
  for (const si of g.swap_info) {
    if (si === undefined || !(si.flags & SWP_WRITEOK) || si.inuse_pages >= si.pages) continue;
    if (best === undefined || si.prio > best.prio) best = si;
  }
  if (best === undefined) return undefined;
  const map = best.swap_map;
  let offset = best.cluster_next;
  for (let n = 0; n < best.max; n++, offset++) {
    if (offset >= best.max) offset = 1;
    if (map[offset] !== 0) continue;
    map[offset] = SWAP_HAS_CACHE;
    best.inuse_pages++;
    g.nr_swap_pages--;
    best.cluster_next = offset + 1;
    return swp_entry(best.type, offset);
  }
  BUG(`swap area ${best.type}: inuse_pages ${best.inuse_pages} < ${best.pages} but no free slot`);
}

/**
 * The slot allocation of folio_alloc_swap() (swap_state.ts adds the folio to the swap cache):
 * a slot with SWAP_HAS_CACHE for an order-0 folio. -EAGAIN for a large folio (the caller would
 * split it), -ENOMEM when swap is full or absent.
 */
export function swap_alloc_slot(kernel: Kernel, order: number): SwpEntry | number {
  if (order !== 0) return -Errno.EAGAIN;
  return get_swap_slot(kernel) ?? -Errno.ENOMEM;
}

/**
 * swap_duplicate(): one more reference to a slot (a PTE or a shmem value entry takes it over).
 * @returns 0, -ENOENT for a free slot, -ENOMEM at SWAP_MAP_MAX.
 */
export function swap_duplicate(kernel: Kernel, entry: SwpEntry): number {
  const si = swap_device_or_bug(kernel, entry, 'swap_duplicate');
  const offset = swp_offset(entry);
  const v = si.swap_map[offset];
  const count = v & ~SWAP_HAS_CACHE;
  if (v === 0 || v === SWAP_MAP_BAD) return -Errno.ENOENT;
  if (count >= SWAP_MAP_MAX) return -Errno.ENOMEM;
  si.swap_map[offset] = v + 1;
  return 0;
}

/** swap_duplicate_nr(): swap_duplicate() of `nr` consecutive slots. */
export function swap_duplicate_nr(kernel: Kernel, entry: SwpEntry, nr: number): number {
  for (let k = 0; k < nr; k++) {
    const err = swap_duplicate(kernel, swp_entry(swp_type(entry), swp_offset(entry) + k));
    if (err) return err;
  }
  return 0;
}

/**
 * swapcache_prepare(): claim SWAP_HAS_CACHE of a slot before adding a folio for it to the swap
 * cache. -EEXIST if another folio holds it, -ENOENT if the slot is free.
 */
export function swapcache_prepare(kernel: Kernel, entry: SwpEntry): number {
  const si = swap_device_or_bug(kernel, entry, 'swapcache_prepare');
  const offset = swp_offset(entry);
  const v = si.swap_map[offset];
  if (v & SWAP_HAS_CACHE) return -Errno.EEXIST;
  if (v === 0) return -Errno.ENOENT;
  si.swap_map[offset] = v | SWAP_HAS_CACHE;
  return 0;
}

/** swap_free_nr(): drop one reference on each of `nr` slots; a slot left unused is freed. */
export function swap_free_nr(kernel: Kernel, entry: SwpEntry, nr: number): void {
  const si = swap_device_or_bug(kernel, entry, 'swap_free_nr');
  const first = swp_offset(entry);
  for (let offset = first; offset < first + nr; offset++) {
    const v = si.swap_map[offset];
    if ((v & ~SWAP_HAS_CACHE) === 0) BUG(`swap_free: slot ${si.type}:${offset} has no reference (0x${v.toString(16)})`);
    if (v === 1) slot_free(kernel, si, offset);
    else si.swap_map[offset] = v - 1;
  }
}

/** swap_free(). */
export function swap_free(kernel: Kernel, entry: SwpEntry): void {
  swap_free_nr(kernel, entry, 1);
}

/**
 * put_swap_folio() for the slot of a folio leaving the swap cache (or failing to enter it): drop
 * SWAP_HAS_CACHE; a slot without references is freed.
 */
export function put_swap_slot(kernel: Kernel, entry: SwpEntry): void {
  const si = swap_device_or_bug(kernel, entry, 'put_swap_folio');
  const offset = swp_offset(entry);
  const v = si.swap_map[offset];
  if (!(v & SWAP_HAS_CACHE)) BUG(`put_swap_folio: slot ${si.type}:${offset} has no cache (0x${v.toString(16)})`);
  if (v === SWAP_HAS_CACHE) slot_free(kernel, si, offset);
  else si.swap_map[offset] = v & ~SWAP_HAS_CACHE;
}

/** The size in KiB that /proc/swaps prints for a number of pages. */
function kib(pages: number): number {
  return (pages * PAGE_SIZE) / 1024;
}

/**
 * /proc/swaps (swap_show()): the header, then one line per area: name, type, size and used in
 * KiB, priority. Simulated devices are of type "partition".
 */
export function proc_swaps(kernel: Kernel): string {
  const lines = ['Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority'];
  for (const si of globals.get(kernel)?.swap_info ?? []) {
    if (si === undefined) continue;
    const pad = si.name.length < 40 ? ' '.repeat(40 - si.name.length) : '\t';
    const size = String(kib(si.pages));
    const used = String(kib(si.inuse_pages));
    lines.push(`${si.name}${pad}partition\t${size}${size.length < 8 ? '\t' : ''}\t${used}${used.length < 8 ? '\t' : ''}\t${si.prio}`);
  }
  return lines.join('\n') + '\n';
}

/** si_swapinfo(): total and free swap in pages, as sysinfo(2) and /proc/meminfo report them. */
export function si_swapinfo(kernel: Kernel): { totalswap: number; freeswap: number } {
  return { totalswap: total_swap_pages(kernel), freeswap: get_nr_swap_pages(kernel) };
}

/** Simulator check: every area's counters agree with its swap_map. */
export function swap_check_consistency(kernel: Kernel): string[] {
  const errors: string[] = [];
  const g = globals.get(kernel);
  if (g === undefined) return errors;
  let free = 0;
  let total = 0;
  for (const si of g.swap_info) {
    if (si === undefined) continue;
    let used = 0;
    for (let o = 1; o < si.max; o++) {
      const v = si.swap_map[o];
      if (v !== 0) used++;
      if ((si.cache[o] !== 0) !== ((v & SWAP_HAS_CACHE) !== 0)) errors.push(`swap ${si.type}:${o}: SWAP_HAS_CACHE ${v & SWAP_HAS_CACHE} but cache ${si.cache[o]}`);
    }
    BUG_ON(si.swap_map[0] !== SWAP_MAP_BAD, 'swap header slot changed');
    if (used !== si.inuse_pages) errors.push(`swap ${si.type}: inuse_pages ${si.inuse_pages} but ${used} slots used`);
    free += si.pages - used;
    total += si.pages;
  }
  if (free !== g.nr_swap_pages) errors.push(`nr_swap_pages ${g.nr_swap_pages} but ${free} slots free`);
  if (total !== g.total_swap_pages) errors.push(`total_swap_pages ${g.total_swap_pages} but ${total}`);
  return errors;
}
