/**
 * struct iopt_pages (drivers/iommu/iommufd/pages.c, Linux 6.18): the source of an IOAS
 * mapping's pages, a range of a process's address space (IOMMU_IOAS_MAP) or of a file
 * (IOMMU_IOAS_MAP_FILE), shared by every area mapping a slice of it (IOMMU_IOAS_COPY), and the
 * pins taken on it.
 *
 * Pages are pinned lazily: only while some area holding them is filled into an IOMMU domain
 * (an IOAS without an attached device pins nothing, and a mapping of unmapped user memory
 * succeeds until a device is attached). A page is pinned once whatever the number of areas and
 * domains using it: `holders` counts the areas holding each index, and the pin goes when the
 * last one lets go. User memory is pinned with pin_user_pages_fast(FOLL_LONGTERM [|
 * FOLL_WRITE]) on the mm that mapped it, as the kernel does when that mm is the caller's (the
 * usual case; longterm pins migrate out of ZONE_MOVABLE), file
 * memory through the file type's pin_folios hook (memfd_pin_folios() for shmem and hugetlbfs;
 * any other file is -EINVAL), each page then holding one pin of its folio.
 *
 * Accounting (do_update_pinned()), per pages object: a process with CAP_IPC_LOCK is not
 * accounted (IOPT_PAGES_ACCOUNT_NONE); otherwise IOPT_PAGES_ACCOUNT_USER charges the user's
 * locked_vm (all simulated processes are uid 0: one user per host) against RLIMIT_MEMLOCK, and
 * IOPT_PAGES_ACCOUNT_MM (IOMMU_OPTION_RLIMIT_MODE 1, VFIO's way) charges the mm's locked_vm with
 * __account_locked_vm(). Either way mm->pinned_vm counts the pins. Beyond the limit the fill
 * fails with -ENOMEM and what it pinned is unpinned.
 *
 * Layout: pins are kept in chunks of 512 indexes (`chunks`, keyed by index >> 9): the pinned
 * frame per index (Float64Array, -1 when not pinned) and its holder count (Uint16Array), so that
 * a huge mapping nobody fills costs nothing.
 */
import { BUG, BUG_ON, Errno, type Pfn } from '@cocosim/core';
import {
  FOLL_LONGTERM,
  FOLL_PIN,
  FOLL_WRITE,
  __account_locked_vm,
  page_folio,
  pin_user_pages_fast,
  try_grab_folio,
  unpin_user_page_range_dirty_lock,
  type File,
  type Kernel,
  type MmStruct,
  type Task,
} from '@cocosim/mm';

/* enum iopt_address_type */
export const IOPT_ADDRESS_USER = 0;
export const IOPT_ADDRESS_FILE = 1;

/* enum iopt_accounting */
export const IOPT_PAGES_ACCOUNT_NONE = 0;
export const IOPT_PAGES_ACCOUNT_USER = 1;
export const IOPT_PAGES_ACCOUNT_MM = 2;

/** struct user_struct, what iommufd uses of it: locked_vm (pages). */
export interface UserStruct {
  locked_vm: number;
}

const users = new WeakMap<Kernel, UserStruct>();

/** current_user(): every simulated process runs as uid 0, so one user per host. */
export function current_user(kernel: Kernel): UserStruct {
  let u = users.get(kernel);
  if (u === undefined) users.set(kernel, (u = { locked_vm: 0 }));
  return u;
}

/** Indexes per chunk of the pin store. */
const CHUNK = 512;

interface PinChunk {
  readonly pfn: Float64Array;
  readonly holders: Uint16Array;
}

/** struct iopt_pages. */
export class IoptPages {
  /** kref: the areas (and copies in flight) using it. */
  kref = 1;
  /** Pages pinned now, and as of the last accounting update. */
  npinned = 0;
  last_npinned = 0;
  account_mode: number;
  readonly source_user: UserStruct;
  readonly chunks = new Map<number, PinChunk>();

  constructor(
    readonly type: number,
    /** IOPT_ADDRESS_USER: the page-aligned start of the user range. */
    readonly uptr: bigint,
    /** IOPT_ADDRESS_FILE: the file and the page-aligned byte offset of the range in it. */
    readonly file: File | null,
    readonly start: bigint,
    /** Pages in the range. */
    readonly npages: number,
    readonly writable: boolean,
    /** The task and mm that mapped it (current->group_leader, current->mm). */
    readonly source_task: Task,
    readonly source_mm: MmStruct,
  ) {
    this.account_mode = source_task.cap_ipc_lock ? IOPT_PAGES_ACCOUNT_NONE : IOPT_PAGES_ACCOUNT_USER;
    this.source_user = current_user(source_mm.kernel);
  }

  /** The frame pinned at `index`, or -1. */
  pfn_at(index: number): number {
    const c = this.chunks.get(Math.floor(index / CHUNK));
    return c === undefined ? -1 : c.pfn[index % CHUNK];
  }

  /** The chunk holding `index`, created on first use. */
  chunk(index: number): PinChunk {
    const key = Math.floor(index / CHUNK);
    let c = this.chunks.get(key);
    if (c === undefined) {
      c = { pfn: new Float64Array(CHUNK).fill(-1), holders: new Uint16Array(CHUNK) };
      this.chunks.set(key, c);
    }
    return c;
  }

  /** Call fn(chunk, first slot, end slot, index of slot 0) for each chunk piece of [start, last]. */
  each(start: number, last: number, fn: (c: PinChunk, from: number, to: number, base: number) => void): void {
    for (let index = start; index <= last; ) {
      const base = index - (index % CHUNK);
      const to = Math.min(CHUNK, last - base + 1);
      fn(this.chunk(index), index - base, to, base);
      index = base + to;
    }
  }

  /** Add one holder to every index of [start, last]. */
  hold(start: number, last: number): void {
    this.each(start, last, (c, from, to) => {
      for (let i = from; i < to; i++) c.holders[i]++;
    });
  }

  /** Drop one holder of every index of [start, last]; the runs of indexes nobody holds any more. */
  release(start: number, last: number): [number, number][] {
    const runs: [number, number][] = [];
    this.each(start, last, (c, from, to, base) => {
      for (let i = from; i < to; i++) {
        if (c.holders[i] === 0) BUG(`iopt_pages: index ${base + i} released more often than held`);
        if (--c.holders[i] !== 0) continue;
        const top = runs[runs.length - 1];
        if (top !== undefined && top[1] === base + i - 1) top[1]++;
        else runs.push([base + i, base + i]);
      }
    });
    return runs;
  }

  /** The runs of indexes of [start, last] that are not pinned. */
  unpinned_runs(start: number, last: number): [number, number][] {
    const runs: [number, number][] = [];
    this.each(start, last, (c, from, to, base) => {
      for (let i = from; i < to; i++) {
        if (c.pfn[i] >= 0) continue;
        const top = runs[runs.length - 1];
        if (top !== undefined && top[1] === base + i - 1) top[1]++;
        else runs.push([base + i, base + i]);
      }
    });
    return runs;
  }
}

/**
 * iopt_alloc_pages(): the common part of a new pages object; -EINVAL for length 0 or so long
 * that length plus the first page's offset overflows size_t.
 */
function iopt_alloc_pages_check(start_byte: bigint, length: bigint): number {
  /* The iommu API uses size_t as the length, and protect the DIV_ROUND_UP below from overflow */
  if (length > (1n << 64n) - 1n - 4096n || length === 0n) return -Errno.EINVAL;
  return Number((length + start_byte + 4095n) >> 12n);
}

/**
 * iopt_alloc_user_pages(): the pages of [uptr, uptr + length) of the caller's address space;
 * -EOVERFLOW when the range passes 2^64, -EINVAL for length 0.
 */
export function iopt_alloc_user_pages(current: Task, mm: MmStruct, uptr: bigint, length: bigint, writable: boolean): IoptPages | number {
  if (uptr + length > (1n << 64n) - 1n) return -Errno.EOVERFLOW;
  const uptr_down = uptr - (uptr & 0xfffn);
  const npages = iopt_alloc_pages_check(uptr - uptr_down, length);
  if (npages < 0) return npages;
  return new IoptPages(IOPT_ADDRESS_USER, uptr_down, null, 0n, npages, writable, current, mm);
}

/**
 * iopt_alloc_file_pages(): the pages of bytes [start, start + length) of `file` (a reference
 * on the file is held); -EOVERFLOW when start + length - 1 passes 2^64, -EINVAL for length 0.
 */
export function iopt_alloc_file_pages(current: Task, mm: MmStruct, file: File, start: bigint, length: bigint, writable: boolean): IoptPages | number {
  if (length && start + length - 1n > (1n << 64n) - 1n) return -Errno.EOVERFLOW;
  const start_down = start - (start & 0xfffn);
  const npages = iopt_alloc_pages_check(start - start_down, length);
  if (npages < 0) return npages;
  return new IoptPages(IOPT_ADDRESS_FILE, 0n, file.get_file(), start_down, npages, writable, current, mm);
}

/** iopt_put_pages(): drop a reference; the last one releases the file. */
export function iopt_put_pages(pages: IoptPages): void {
  BUG_ON(pages.kref <= 0, 'iopt_put_pages() of a released pages object');
  if (--pages.kref) return;
  BUG_ON(pages.npinned !== 0, 'iopt_release_pages() with pages still pinned');
  pages.file?.fput();
}

/** incr_user_locked_vm(): charge the user against the source task's RLIMIT_MEMLOCK. */
function incr_user_locked_vm(pages: IoptPages, npages: number): number {
  const lock_limit = pages.source_task.rlimit_memlock >> 12n;
  const new_pages = pages.source_user.locked_vm + npages;
  if (BigInt(new_pages) > lock_limit) return -Errno.ENOMEM;
  pages.source_user.locked_vm = new_pages;
  return 0;
}

/** decr_user_locked_vm(). */
function decr_user_locked_vm(pages: IoptPages, npages: number): void {
  if (pages.source_mm.kernel.warn.WARN_ON(pages.source_user.locked_vm < npages, 'decr_user_locked_vm underflow')) return;
  pages.source_user.locked_vm -= npages;
}

/** do_update_pinned(): account `npages` more (inc) or fewer pins in the pages' account mode. */
function do_update_pinned(pages: IoptPages, npages: number, inc: boolean): number {
  let rc = 0;
  switch (pages.account_mode) {
    case IOPT_PAGES_ACCOUNT_NONE:
      break;
    case IOPT_PAGES_ACCOUNT_USER:
      if (inc) rc = incr_user_locked_vm(pages, npages);
      else decr_user_locked_vm(pages, npages);
      break;
    case IOPT_PAGES_ACCOUNT_MM:
      rc = __account_locked_vm(pages.source_mm, npages, inc, pages.source_task, false);
      break;
  }
  if (rc) return rc;
  pages.last_npinned = pages.npinned;
  pages.source_mm.pinned_vm += inc ? npages : -npages;
  return 0;
}

/** Unpin the frames pinned at the index runs, a run of contiguous frames at a time. */
function unpin_runs(pages: IoptPages, runs: readonly [number, number][]): void {
  const kernel = pages.source_mm.kernel;
  for (const [start, last] of runs) {
    let first = -1;
    let n = 0;
    const flush = (): void => {
      if (n) unpin_user_page_range_dirty_lock(kernel, first, n, pages.writable);
      pages.npinned -= n;
      n = 0;
    };
    pages.each(start, last, (c, from, to) => {
      for (let i = from; i < to; i++) {
        const pfn = c.pfn[i];
        if (n && pfn === first + n) n++;
        else {
          flush();
          first = pfn;
          n = 1;
        }
        c.pfn[i] = -1;
      }
    });
    flush();
  }
}

/** Pages pinned per pin_user_pages_fast() call (the kernel's temporary page array). */
const PIN_BATCH = 8192;

/**
 * pfn_reader_user_pin() for IOPT_ADDRESS_USER: pin indexes [start, last] of a user range
 * (GUP-fast first, the slow path for what is not mapped yet).
 * @returns 0, or -errno with the indexes pinned so far in `done` (the caller unpins them)
 */
function pin_user_range(pages: IoptPages, start: number, last: number, done: [number, number][]): number {
  const gup_flags = FOLL_LONGTERM | (pages.writable ? FOLL_WRITE : 0);
  const upages: number[] = [];
  const base = Number(pages.uptr >> 12n);
  for (let index = start; index <= last; ) {
    const n = Math.min(last - index + 1, PIN_BATCH);
    const rc = pin_user_pages_fast(pages.source_mm, base + index, n, gup_flags, upages);
    if (rc <= 0) {
      if (pages.source_mm.kernel.warn.WARN_ON(rc === 0, 'pfn_reader_user_pin: pinned nothing')) return -Errno.EFAULT;
      return rc;
    }
    let k = 0;
    pages.each(index, index + rc - 1, (c, from, to) => {
      for (let i = from; i < to; i++) c.pfn[i] = upages[k++];
    });
    done.push([index, index + rc - 1]);
    pages.npinned += rc;
    index += rc;
  }
  return 0;
}

/**
 * pfn_reader_user_pin() for IOPT_ADDRESS_FILE: pin indexes [start, last] of a file range through
 * the file type's pin_folios hook (memfd_pin_folios()), then take one more pin of each folio per
 * further page of it in the range, so that every page holds one pin as for user memory.
 */
function pin_file_range(pages: IoptPages, start: number, last: number, done: [number, number][]): number {
  const file = pages.file!;
  const store = pages.source_mm.kernel.store;
  const pin_folios = file.f_op.pin_folios;
  if (pin_folios === undefined) return -Errno.EINVAL;
  const folios: number[] = [];
  const offset = { value: 0 };
  const s = pages.start + (BigInt(start) << 12n);
  const e = pages.start + (BigInt(last + 1) << 12n) - 1n;
  const rc = pin_folios(file, s, e, folios, last - start + 1, offset);
  if (rc <= 0) return rc === 0 ? -Errno.EFAULT : rc;
  let index = start;
  let page = folios[0] + Math.floor(offset.value / 4096);
  for (let f = 0; f < rc && index <= last; f++) {
    const folio = folios[f];
    if (f > 0) page = folio;
    const folio_end = folio + 2 ** store.order[store.idx(folio)];
    const first_index = index;
    while (page < folio_end && index <= last) {
      pages.chunk(index).pfn[index % CHUNK] = page;
      index++;
      page++;
    }
    done.push([first_index, index - 1]);
    const extra = index - first_index - 1;
    if (extra > 0) try_grab_folio(store, page_folio(store, folio), extra, FOLL_PIN);
    pages.npinned += index - first_index;
  }
  BUG_ON(index !== last + 1, 'memfd_pin_folios() pinned less than the range');
  return 0;
}

/**
 * Hold indexes [start, last] for an area being filled into a domain: pin those not pinned yet
 * and account the new pins. On failure nothing is held or pinned by this call.
 * @returns 0 or -errno
 */
export function iopt_pages_fill(pages: IoptPages, start: number, last: number): number {
  const done: [number, number][] = [];
  let rc = 0;
  for (const [s, e] of pages.unpinned_runs(start, last)) {
    rc = pages.type === IOPT_ADDRESS_USER ? pin_user_range(pages, s, e, done) : pin_file_range(pages, s, e, done);
    if (rc) break;
  }
  const newly = done.reduce((n, [s, e]) => n + e - s + 1, 0);
  if (!rc && newly) rc = do_update_pinned(pages, newly, true);
  if (rc) {
    unpin_runs(pages, done);
    pages.last_npinned = pages.npinned;
    return rc;
  }
  pages.hold(start, last);
  return 0;
}

/** Let go of indexes [start, last] for an area leaving its domains; unpin and unaccount what nobody holds. */
export function iopt_pages_unfill(pages: IoptPages, start: number, last: number): void {
  const free = pages.release(start, last);
  if (!free.length) return;
  unpin_runs(pages, free);
  /* update_unpinned() */
  do_update_pinned(pages, pages.last_npinned - pages.npinned, false);
}

/** The frames pinned for indexes [start, last], as runs of contiguous frames: [first index, first pfn, length]. */
export function iopt_pages_runs(pages: IoptPages, start: number, last: number): [number, Pfn, number][] {
  const runs: [number, Pfn, number][] = [];
  pages.each(start, last, (c, from, to, base) => {
    for (let i = from; i < to; i++) {
      const pfn = c.pfn[i];
      if (pfn < 0) BUG(`iopt_pages: index ${base + i} of a filled area is not pinned`);
      const top = runs[runs.length - 1];
      if (top !== undefined && top[0] + top[2] === base + i && top[1] + top[2] === pfn) top[2]++;
      else runs.push([base + i, pfn as Pfn, 1]);
    }
  });
  return runs;
}
