/**
 * mm: the memory-management operations a confidential VM's life is made of, at the sizes a GiB of
 * guest RAM gives, each also run on the real kernel by bench/real/mm_bench.c (same case names) so
 * that `npm run bench -- mm` prints both and the smallest speedup.
 *
 * Every case starts from fresh state (a new simulated host sized for the work, tracepoints off as
 * on a production kernel) built untimed by `prepare`:
 *
 * - fault: a user load from each of NR_FAULT pages that nothing maps yet, per fault. A memfd
 *   mapped MAP_SHARED (shmem_fault() allocates, zeroes and caches a page) and anonymous memory
 *   (do_anonymous_page() maps the shared zero page). MADV_NOHUGEPAGE keeps both at 4 KiB pages
 *   whatever the THP settings. Each load reads one byte into the same buffer (Process.load_into()),
 *   as the C program's byte load reads into a register: load(), which returns a new array per
 *   call, would time a JavaScript allocation along with the fault. The host's LRU lists exist
 *   before the first fault, as the kernel's lruvecs do from boot (the simulator makes them on
 *   first use).
 * - punch hole: fallocate(PUNCH_HOLE | KEEP_SIZE) over a 1 GiB memfd whose 262144 pages are all
 *   in the page cache (fallocated, so dirty) and mapped by a MAP_SHARED mapping (read once page by
 *   page): unmap_mapping_range() zaps every PTE, then shmem_undo_range() removes and frees every
 *   folio.
 * - try_to_unmap: the same state, every folio unmapped by the rmap walk and left in the page
 *   cache. The kernel reaches try_to_unmap() from user space through reclaim: MADV_PAGEOUT isolates
 *   each folio and shrink_folio_list() calls try_to_unmap() on it, then tries to write it out,
 *   which fails for shmem without swap (the machines this runs on have none), so the folio stays
 *   cached and unmapped: the end state of the simulator's case. The real kernel's time also holds
 *   the LRU isolation and the failed writeout. The simulator has no reclaim, so its side calls
 *   try_to_unmap() on each folio of the page cache directly. A last case, with no counterpart
 *   (MADV_PAGEOUT leaves folios that more than one mapping maps alone), has each folio mapped by
 *   four VMAs, so that each try_to_unmap() walks four mappings.
 */
import {
  FolioBatch,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_PRIVATE,
  MAP_SHARED,
  MFD_CLOEXEC,
  MM_SHMEMPAGES,
  PROT_READ,
  PROT_WRITE,
  TTU_BATCH_FLUSH,
  filemap_get_folios,
  folio_batch_release,
  folio_lock,
  folio_unlock,
  lru_lists,
  try_to_unmap,
  try_to_unmap_flush,
  type AddressSpace,
  type Kernel,
  type Process,
} from '@cocosim/mm';
import { PAGE_SIZE, Tracer } from '@cocosim/core';
import type { BenchCase, BenchSuite } from '../harness.js';
import { createPlatform } from '../host.js';

/** Pages faulted per run of a fault case (64 MiB); the result is per fault. */
const NR_FAULT = 16384;
/** 1 GiB of 4 KiB pages. */
const NR_GIB = 262144;

/**
 * A process on a fresh host of `nr_pages` pages of RAM (with `vendor`'s KVM, the built-in one by
 * default), with tracing off and its LRU lists made. The conversion suite's hosts too.
 */
export function freshProcess(nr_pages: number, vendor?: string): Process {
  const platform = createPlatform({ mm: { nr_pages }, vendor });
  platform.container.resolve(Tracer).removeSink(platform.trace);
  lru_lists(platform.kernel.store);
  return platform.process();
}

function check(ok: boolean, what: string, p: Process): void {
  if (!ok) throw new Error(`mm bench: ${what} failed (errno ${p.errno})`);
}

/** mmap(2) of `nr` pages, 4 KiB pages only (MADV_NOHUGEPAGE): the address as a number. */
function map(p: Process, nr: number, flags: number, fd: number): number {
  const addr = p.mmap(0, nr * PAGE_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);
  check(addr !== MAP_FAILED, 'mmap', p);
  check(p.madvise(addr, nr * PAGE_SIZE, MADV_NOHUGEPAGE) === 0, 'madvise(MADV_NOHUGEPAGE)', p);
  return Number(addr);
}

/** An empty memfd of `nr` pages. */
function memfd_of(p: Process, nr: number): number {
  const fd = p.memfd_create('mm_bench', MFD_CLOEXEC);
  check(fd >= 0, 'memfd_create', p);
  check(p.ftruncate(fd, nr * PAGE_SIZE) === 0, 'ftruncate', p);
  return fd;
}

/** Where load_pages() reads each byte. */
const byte = new Uint8Array(1);

/** A load of one byte from each of `nr` pages at `addr`: a fault per page not mapped yet. */
export function load_pages(p: Process, addr: number, nr: number): void {
  for (let i = 0; i < nr; i++) {
    const r = p.load_into(addr + i * PAGE_SIZE, byte);
    if (r !== 0) throw new Error(`mm bench: load at page ${i} raised ${r.signo}`);
  }
}

/**
 * The state of the 1 GiB cases: a memfd of 1 GiB, fallocated, mapped MAP_SHARED and read once
 * page by page, on a host with 2 GiB of RAM.
 */
function gib_prepare(): { p: Process; fd: number; addr: number } {
  const p = freshProcess(2 * NR_GIB);
  const fd = memfd_of(p, NR_GIB);
  check(p.fallocate(fd, 0, 0, NR_GIB * PAGE_SIZE) === 0, 'fallocate', p);
  const addr = map(p, NR_GIB, MAP_SHARED, fd);
  load_pages(p, addr, NR_GIB);
  return { p, fd, addr };
}

/**
 * The unmapping half of reclaim over a whole file: shrink_folio_list() locks each folio of a batch,
 * try_to_unmap(TTU_BATCH_FLUSH) takes it out of every page table, and try_to_unmap_flush() flushes
 * the TLB once for the batch.
 */
function unmap_file(kernel: Kernel, mapping: AddressSpace, nr: number): void {
  const store = kernel.store;
  const fbatch = new FolioBatch();
  const index = { index: 0 };
  while (filemap_get_folios(kernel, mapping, index, nr - 1, fbatch)) {
    for (let k = 0; k < fbatch.nr; k++) {
      const folio = fbatch.folios[k];
      folio_lock(store, folio);
      try_to_unmap(kernel, folio, TTU_BATCH_FLUSH);
      folio_unlock(store, folio);
    }
    try_to_unmap_flush(kernel);
    folio_batch_release(store, fbatch);
  }
}

const cases: BenchCase[] = [
  {
    name: 'fault: load of an unmapped page of a memfd MAP_SHARED mapping',
    ops: NR_FAULT,
    samples: 15,
    prepare: () => {
      const p = freshProcess(4 * NR_FAULT);
      const addr = map(p, NR_FAULT, MAP_SHARED, memfd_of(p, NR_FAULT));
      return () => load_pages(p, addr, NR_FAULT);
    },
  },
  {
    name: 'fault: load of an unmapped page of anonymous memory',
    ops: NR_FAULT,
    samples: 15,
    prepare: () => {
      const p = freshProcess(4 * NR_FAULT);
      const addr = map(p, NR_FAULT, MAP_PRIVATE | MAP_ANONYMOUS, -1);
      return () => load_pages(p, addr, NR_FAULT);
    },
  },
  {
    name: 'punch hole: 1 GiB of memfd, all 262144 pages mapped',
    samples: 5,
    prepare: () => {
      const { p, fd } = gib_prepare();
      return () => check(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, NR_GIB * PAGE_SIZE) === 0, 'fallocate(PUNCH_HOLE)', p);
    },
  },
  {
    name: 'try_to_unmap: 1 GiB of memfd, all 262144 pages mapped (real kernel: MADV_PAGEOUT)',
    samples: 5,
    prepare: () => {
      const { p, fd } = gib_prepare();
      const mapping = p.task.files.lookup(fd)!.f_mapping;
      return () => {
        unmap_file(p.kernel, mapping, NR_GIB);
        check(p.mm.get_mm_counter(MM_SHMEMPAGES) === 0, 'try_to_unmap of every folio', p);
      };
    },
  },
  {
    name: 'try_to_unmap: 256 MiB of memfd mapped by 4 VMAs (simulator only)',
    samples: 5,
    prepare: () => {
      const nr = NR_GIB / 4;
      const p = freshProcess(2 * nr);
      const fd = memfd_of(p, nr);
      check(p.fallocate(fd, 0, 0, nr * PAGE_SIZE) === 0, 'fallocate', p);
      for (let k = 0; k < 4; k++) load_pages(p, map(p, nr, MAP_SHARED, fd), nr);
      const mapping = p.task.files.lookup(fd)!.f_mapping;
      return () => {
        unmap_file(p.kernel, mapping, nr);
        check(p.mm.get_mm_counter(MM_SHMEMPAGES) === 0, 'try_to_unmap of every folio', p);
      };
    },
  },
];

export const mmSuite: BenchSuite = {
  name: 'mm',
  description: 'user page faults, punch hole and try_to_unmap over 1 GiB of mapped memfd; compared with the real kernel',
  cases,
  realKernel: { source: 'mm_bench.c', needs_kvm: false },
};
