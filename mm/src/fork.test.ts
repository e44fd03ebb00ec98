/**
 * fork(): COW after fork with and without pins as tools/testing/selftests/mm/cow.c checks it
 * (test_cow_in_parent, test_cow_in_parent_mprotect, the R/W longterm pin cases: the child must
 * never see the parent's later writes, nor the parent the child's), plus what dup_mmap() and
 * dup_fd() promise: shared memory stays shared, rmap finds both processes, munmap in one leaves
 * the other alone, swap/hwpoison entries are copied, mlock/DONTFORK/WIPEONFORK, the fd table.
 * check_vm() (CONFIG_DEBUG_VM) must find nothing after every step.
 */
import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, type Pfn } from '@cocosim/core';
import { check_vm } from './debug_vm.js';
import { isSigInfo } from './fault.js';
import { FOLL_LONGTERM, FOLL_WRITE, folio_mapcount, folio_ref_count, unpin_user_pages, type Folio } from './folio.js';
import { pin_user_pages_fast } from './gup.js';
import { Kernel, mmRegistrar } from './kernel.js';
import {
  MADV_DONTFORK, MADV_HWPOISON, MADV_PAGEOUT, MADV_WIPEONFORK, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
  PROT_READ, PROT_WRITE,
} from './mman.js';
import { MM_ANONPAGES, MM_SHMEMPAGES, MM_SWAPENTS, VM_LOCKED, vm_sysctl } from './mm_types.js';
import { Process } from './process.js';
import { is_swap_pte, pte_index, pte_offset_map, pte_swp_type, pte_write } from './pgtable.js';
import { PageAnonExclusive, rmap_walk } from './rmap.js';
import { __swap_count, swapon } from './swapfile.js';
import { SWP_HWPOISON, swp_entry } from './swapops.js';
import { pagemap_pfn } from './task_mmu.js';
import { F_GETFD, FD_CLOEXEC } from './uapi/fcntl.js';
import { MFD_CLOEXEC } from './uapi/memfd.js';
import { vma_lookup } from './vma.js';
import type { MmStruct } from './mm_types.js';
import { hugetlb_pool, set_max_huge_pages } from './hugetlb.js';
import { for_each_process } from './process.js';
import { vm_memory_committed } from './util.js';
import { Errno } from '@cocosim/core';
import { MADV_HUGEPAGE, MAP_HUGETLB } from './mman.js';
import { pmd_index_of } from './pgtable.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const H = 0x3000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 })).resolve(Kernel));
}

/** fork() that must succeed. */
function fork(p: Process): Process {
  const c = p.fork();
  expect(c).toBeInstanceOf(Process);
  return c as Process;
}

function pfn_of(p: Process, a: bigint): Pfn | undefined {
  return pagemap_pfn(p.mm, a);
}

/** The flags of the PTE of `a` (0: none or no table). */
function pte_at(p: Process, a: bigint): number {
  const vpn = Number(a / PG);
  const t = pte_offset_map(p.mm.pgd, vpn);
  return t === undefined ? 0 : t.flags[pte_index(vpn)];
}

function byte(p: Process, a: bigint): number | string {
  const r = p.load(a, 1);
  return isSigInfo(r) ? `${r.signo} ${r.si_code}` : r[0];
}

function expect_vm_ok(k: Kernel): void {
  expect(check_vm(k)).toEqual([]);
}

/** The mms whose mappings rmap_walk() visits for `folio`. */
function rmap_mms(k: Kernel, folio: Folio): MmStruct[] {
  const seen: MmStruct[] = [];
  rmap_walk(k, folio, {
    arg: null,
    rmap_one: (_f, vma, vpn) => {
      if (pagemap_pfn(vma.vm_mm, BigInt(vpn) * PG) === folio) seen.push(vma.vm_mm);
      return true;
    },
  });
  return seen;
}

describe('fork(): private anonymous memory is copy-on-write (cow.c)', () => {
  test('the page is shared write-protected, then the child\'s write copies and the parent reuses', () => {
    const p = proc();
    const k = p.kernel;
    const store = k.store;
    const a = p.mmap(H, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const folio = pfn_of(p, a)! as Folio;
    expect(PageAnonExclusive(store, folio)).toBe(true);
    const c = fork(p);
    expect(c.task.pid).not.toBe(p.task.pid);
    /* shared: one folio, two mappings, two references, read-only in both, no longer exclusive */
    expect(pfn_of(c, a)).toBe(folio);
    expect(folio_mapcount(store, folio)).toBe(2);
    expect(folio_ref_count(store, folio)).toBe(2);
    expect(pte_write(pte_at(p, a))).toBe(false);
    expect(pte_write(pte_at(c, a))).toBe(false);
    expect(PageAnonExclusive(store, folio)).toBe(false);
    expect(c.mm.get_mm_counter(MM_ANONPAGES)).toBe(1);
    expect(c.mm.total_vm).toBe(p.mm.total_vm);
    expect(byte(c, a)).toBe(1);
    /* the second page was never touched: nothing to copy */
    expect(pte_at(c, a + PG)).toBe(0);
    expect_vm_ok(k);

    /* the child writes: it gets its own copy, the parent keeps the old page */
    expect(c.store(a, Uint8Array.of(2))).toBe(0);
    expect(pfn_of(c, a)).not.toBe(folio);
    expect(byte(p, a)).toBe(1);
    expect(folio_mapcount(store, folio)).toBe(1);
    expect(folio_ref_count(store, folio)).toBe(1);
    expect_vm_ok(k);

    /* the parent writes: the page is its alone now, so it is reused in place */
    expect(p.store(a, Uint8Array.of(3))).toBe(0);
    expect(pfn_of(p, a)).toBe(folio);
    expect(byte(c, a)).toBe(2);
    expect_vm_ok(k);
  });

  test('the parent writes first: it copies, the child keeps the original', () => {
    const p = proc();
    const k = p.kernel;
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(7))).toBe(0);
    const folio = pfn_of(p, a)!;
    const c = fork(p);
    expect(p.store(a, Uint8Array.of(8))).toBe(0);
    expect(pfn_of(p, a)).not.toBe(folio);
    expect(pfn_of(c, a)).toBe(folio);
    expect(byte(c, a)).toBe(7);
    expect(byte(p, a)).toBe(8);
    /* the new page is the parent's own: in the parent's anon_vma, found by rmap */
    expect(rmap_mms(k, pfn_of(p, a)! as Folio)).toEqual([p.mm]);
    expect_vm_ok(k);
  });

  test('rmap finds the shared page in both processes, and each after the other unmaps', () => {
    const p = proc();
    const k = p.kernel;
    const store = k.store;
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(5))).toBe(0);
    const folio = pfn_of(p, a)! as Folio;
    const c = fork(p);
    expect(rmap_mms(k, folio).sort((x, y) => (x === p.mm ? -1 : y === p.mm ? 1 : 0))).toEqual([p.mm, c.mm]);
    /* munmap in the child leaves the parent's mapping */
    expect(c.munmap(a, PG)).toBe(0);
    expect(byte(c, a)).toBe('SIGSEGV SEGV_MAPERR');
    expect(byte(p, a)).toBe(5);
    expect(folio_mapcount(store, folio)).toBe(1);
    expect(rmap_mms(k, folio)).toEqual([p.mm]);
    expect_vm_ok(k);
  });

  test('the parent unmaps: the child\'s page survives and rmap still finds it', () => {
    const p = proc();
    const k = p.kernel;
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(6))).toBe(0);
    const folio = pfn_of(p, a)! as Folio;
    const c = fork(p);
    expect(p.munmap(a, PG)).toBe(0);
    expect(byte(c, a)).toBe(6);
    expect(rmap_mms(k, folio)).toEqual([c.mm]);
    expect(folio_ref_count(k.store, folio)).toBe(1);
    /* the only mapping left: the child's write reuses the page */
    expect(c.store(a, Uint8Array.of(9))).toBe(0);
    expect(pfn_of(c, a)).toBe(folio);
    expect_vm_ok(k);
  });

  test('a child\'s split of the VMA keeps rmap of the inherited pages (anon_vma_clone of the chain)', () => {
    const p = proc();
    const k = p.kernel;
    const a = p.mmap(H, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a + PG, Uint8Array.of(4))).toBe(0);
    const folio = pfn_of(p, a + PG)! as Folio;
    const c = fork(p);
    expect(c.mprotect(a + PG, PG, PROT_READ)).toBe(0);
    expect(rmap_mms(k, folio)).toHaveLength(2);
    expect_vm_ok(k);
  });
});

describe('fork(): pinned pages are copied for the child (cow.c R/W longterm pin)', () => {
  test('the pinned page stays the parent\'s, exclusive and writable; the child gets a copy', () => {
    const p = proc();
    const k = p.kernel;
    const store = k.store;
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(0x11))).toBe(0);
    const pins: number[] = [];
    expect(pin_user_pages_fast(p.mm, Number(a / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    const c = fork(p);
    expect(pfn_of(p, a)).toBe(pins[0]);
    expect(pfn_of(c, a)).not.toBe(pins[0]);
    expect(pte_write(pte_at(p, a))).toBe(true);
    expect(pte_write(pte_at(c, a))).toBe(true);
    expect(PageAnonExclusive(store, pins[0])).toBe(true);
    expect(PageAnonExclusive(store, pfn_of(c, a)!)).toBe(true);
    expect(folio_mapcount(store, pins[0])).toBe(1);
    expect(byte(c, a)).toBe(0x11);
    expect(c.mm.get_mm_counter(MM_ANONPAGES)).toBe(1);
    expect_vm_ok(k);
    /* writes through the parent's mapping reach the pinned page; the child never sees them */
    expect(p.store(a, Uint8Array.of(0x22))).toBe(0);
    expect((k.phys.read(pins[0] as Pfn, 0, 1) as Uint8Array)[0]).toBe(0x22);
    expect(byte(c, a)).toBe(0x11);
    unpin_user_pages(store, pins, 1);
    expect_vm_ok(k);
  });
});

describe('fork(): shared memory', () => {
  test('MAP_SHARED memfd pages are the same pages: writes either way are seen', () => {
    const p = proc();
    const k = p.kernel;
    const fd = p.memfd_create('shared', 0);
    expect(p.ftruncate(fd, 2 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(H, 2n * PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const c = fork(p);
    /* no anon_vma: the page tables are not copied, the child's fault finds the page cache */
    expect(pte_at(c, a)).toBe(0);
    expect(byte(c, a)).toBe(1);
    expect(pfn_of(c, a)).toBe(pfn_of(p, a));
    expect(c.store(a + PG, Uint8Array.of(2))).toBe(0);
    expect(byte(p, a + PG)).toBe(2);
    expect(p.store(a, Uint8Array.of(3))).toBe(0);
    expect(byte(c, a)).toBe(3);
    expect(c.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(2);
    expect_vm_ok(k);
  });

  test('MAP_SHARED|MAP_ANONYMOUS is shared too', () => {
    const p = proc();
    const a = p.mmap(H, PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const c = fork(p);
    expect(c.store(a, Uint8Array.of(9))).toBe(0);
    expect(byte(p, a)).toBe(9);
    expect_vm_ok(p.kernel);
  });

  test('a private file mapping with COW pages: the anon page is shared COW, page-cache pages refault', () => {
    const p = proc();
    const k = p.kernel;
    const fd = p.memfd_create('priv', 0);
    expect(p.ftruncate(fd, 2 * PAGE_SIZE)).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(0x41), 0)).toBe(1);
    const a = p.mmap(H, 2n * PG, RW, MAP_PRIVATE | MAP_FIXED, fd, 0);
    expect(byte(p, a + PG)).toBe(0);
    expect(p.store(a, Uint8Array.of(0x42))).toBe(0);
    const c = fork(p);
    expect(byte(c, a)).toBe(0x42);
    expect(pfn_of(c, a)).toBe(pfn_of(p, a));
    /* the page-cache page was copied too (the VMA has an anon_vma): one more file mapping */
    expect(pfn_of(c, a + PG)).toBe(pfn_of(p, a + PG));
    expect(c.store(a, Uint8Array.of(0x43))).toBe(0);
    expect(byte(p, a)).toBe(0x42);
    expect_vm_ok(k);
  });
});

describe('fork(): non-present entries', () => {
  test('a swap entry is duplicated: two references on the slot, both read it back', () => {
    const p = proc();
    const k = p.kernel;
    swapon(k, 64);
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(0x5a))).toBe(0);
    expect(p.madvise(a, PG, MADV_PAGEOUT)).toBe(0);
    const f = pte_at(p, a);
    expect(is_swap_pte(f)).toBe(true);
    const vpn = Number(a / PG);
    const entry = swp_entry(pte_swp_type(f), pte_offset_map(p.mm.pgd, vpn)!.val[pte_index(vpn)]);
    expect(__swap_count(k, entry)).toBe(1);
    const c = fork(p);
    expect(is_swap_pte(pte_at(c, a))).toBe(true);
    expect(__swap_count(k, entry)).toBe(2);
    expect(c.mm.get_mm_counter(MM_SWAPENTS)).toBe(1);
    expect_vm_ok(k);
    expect(byte(c, a)).toBe(0x5a);
    expect(byte(p, a)).toBe(0x5a);
    expect(c.store(a, Uint8Array.of(1))).toBe(0);
    expect(byte(p, a)).toBe(0x5a);
    expect_vm_ok(k);
  });

  test('a hwpoison entry is copied: the child\'s access gets SIGBUS BUS_MCEERR_AR too', () => {
    const p = proc();
    const k = p.kernel;
    vm_sysctl(k).memory_failure = true;
    const a = p.mmap(H, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    expect(p.store(a + PG, Uint8Array.of(2))).toBe(0);
    expect(p.madvise(a, PG, MADV_HWPOISON)).toBe(0);
    while (p.dequeue_signal() !== undefined);
    expect(pte_swp_type(pte_at(p, a))).toBe(SWP_HWPOISON);
    const c = fork(p);
    expect(is_swap_pte(pte_at(c, a))).toBe(true);
    expect(pte_swp_type(pte_at(c, a))).toBe(SWP_HWPOISON);
    expect(byte(c, a)).toBe('SIGBUS BUS_MCEERR_AR');
    expect(byte(p, a)).toBe('SIGBUS BUS_MCEERR_AR');
    expect(byte(c, a + PG)).toBe(2);
    expect_vm_ok(k);
  });
});

describe('fork(): what the child does not inherit', () => {
  test('mlock: the child\'s VMA is not VM_LOCKED and its locked_vm is 0', () => {
    const p = proc();
    const a = p.mmap(H, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.mlock(a, 2n * PG)).toBe(0);
    expect(p.mm.locked_vm).toBe(2);
    const c = fork(p);
    expect(c.mm.locked_vm).toBe(0);
    expect(vma_lookup(c.mm, Number(a / PG))!.vm_flags & VM_LOCKED).toBe(0);
    expect(vma_lookup(p.mm, Number(a / PG))!.vm_flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(byte(c, a)).toBe(0);
    expect_vm_ok(p.kernel);
  });

  test('MADV_DONTFORK: no mapping in the child; MADV_WIPEONFORK: zeros in the child', () => {
    const p = proc();
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    const b = p.mmap(H + 4n * PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    expect(p.store(b, Uint8Array.of(2))).toBe(0);
    expect(p.madvise(a, PG, MADV_DONTFORK)).toBe(0);
    expect(p.madvise(b, PG, MADV_WIPEONFORK)).toBe(0);
    const c = fork(p);
    expect(byte(c, a)).toBe('SIGSEGV SEGV_MAPERR');
    expect(c.mm.total_vm).toBe(p.mm.total_vm - 1);
    expect(byte(c, b)).toBe(0);
    expect(byte(p, b)).toBe(2);
    expect(c.mm.map_count).toBe(p.mm.map_count - 1);
    expect_vm_ok(p.kernel);
  });
});

describe('fork(): the file table (dup_fd)', () => {
  test('every fd refers to the same open file, close-on-exec kept; closing in one leaves the other', () => {
    const p = proc();
    const fd = p.memfd_create('f', MFD_CLOEXEC);
    const fd2 = p.memfd_create('g', 0);
    const file = p.task.files.lookup(fd)!;
    const count = file.f_count;
    const c = fork(p);
    expect(c.task.files.lookup(fd)).toBe(file);
    expect(c.task.files.lookup(fd2)).toBe(p.task.files.lookup(fd2));
    expect(c.task.files.open_fds()).toEqual(p.task.files.open_fds());
    expect(file.f_count).toBe(count + 1);
    expect(c.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
    expect(c.fcntl(fd2, F_GETFD)).toBe(0);
    /* one struct file: one file position */
    expect(p.write(fd, Uint8Array.of(1, 2, 3))).toBe(3);
    expect(c.lseek(fd, 0, 1)).toBe(3n);
    expect(c.close(fd)).toBe(0);
    expect(file.f_count).toBe(count);
    expect(p.pwrite(fd, Uint8Array.of(4), 0)).toBe(1);
    /* the child's next fd is the lowest free one, as in its parent's table */
    expect(c.memfd_create('h', 0)).toBe(fd);
  });
});

describe('fork(): huge pages', () => {
  test('an anonymous THP is shared by its PMD, write-protected in both; the child\'s write splits and copies', () => {
    const p = proc();
    const k = p.kernel;
    const store = k.store;
    vm_sysctl(k).transparent_hugepage = 'madvise';
    const a = p.mmap(H, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.madvise(a, 512n * PG, MADV_HUGEPAGE)).toBe(0);
    expect(p.store(a + 5n * PG, Uint8Array.of(0x33))).toBe(0);
    const pmd = pmd_index_of(Number(a / PG));
    const folio = p.mm.pgd.pmds.get(pmd)!.val;
    const c = fork(p);
    const ce = c.mm.pgd.pmds.get(pmd)!;
    expect(ce.val).toBe(folio);
    expect(pte_write(ce.flags)).toBe(false);
    expect(pte_write(p.mm.pgd.pmds.get(pmd)!.flags)).toBe(false);
    expect(folio_mapcount(store, folio)).toBe(2);
    expect(c.mm.get_mm_counter(MM_ANONPAGES)).toBe(512);
    expect_vm_ok(k);
    expect(c.store(a + 5n * PG, Uint8Array.of(0x44))).toBe(0);
    expect(byte(p, a + 5n * PG)).toBe(0x33);
    expect(byte(c, a + 5n * PG)).toBe(0x44);
    expect_vm_ok(k);
  });

  test('a pinned THP: the parent\'s PMD is split and every page copied for the child', () => {
    const p = proc();
    const k = p.kernel;
    vm_sysctl(k).transparent_hugepage = 'madvise';
    const a = p.mmap(H, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.madvise(a, 512n * PG, MADV_HUGEPAGE)).toBe(0);
    expect(p.store(a, Uint8Array.of(0x55))).toBe(0);
    const pins: number[] = [];
    expect(pin_user_pages_fast(p.mm, Number(a / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    const c = fork(p);
    expect(p.mm.pgd.pmds.has(pmd_index_of(Number(a / PG)))).toBe(false);
    expect(pfn_of(p, a)).toBe(pins[0]);
    for (const off of [0n, 1n, 511n]) expect(pfn_of(c, a + off * PG)).not.toBe(pfn_of(p, a + off * PG));
    expect(byte(c, a)).toBe(0x55);
    expect(p.store(a, Uint8Array.of(0x66))).toBe(0);
    expect(byte(c, a)).toBe(0x55);
    unpin_user_pages(k.store, pins, 1);
    expect_vm_ok(k);
  });

  test('a private hugetlb page is shared write-protected; writes in the child copy it from the pool', () => {
    const p = proc();
    const k = p.kernel;
    const h = hugetlb_pool(k).default_hstate;
    expect(set_max_huge_pages(k, h, 3)).toBe(3);
    const a = p.mmap(0, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    expect(p.store(a + 3n * PG, Uint8Array.of(9))).toBe(0);
    const pmd = pmd_index_of(Number(a / PG));
    const folio = p.mm.pgd.pmds.get(pmd)!.val;
    const c = fork(p);
    expect(c.mm.pgd.pmds.get(pmd)!.val).toBe(folio);
    expect(pte_write(p.mm.pgd.pmds.get(pmd)!.flags)).toBe(false);
    expect(folio_mapcount(k.store, folio)).toBe(2);
    expect_vm_ok(k);
    expect(c.store(a + 3n * PG, Uint8Array.of(10))).toBe(0);
    expect(c.mm.pgd.pmds.get(pmd)!.val).not.toBe(folio);
    expect(byte(p, a + 3n * PG)).toBe(9);
    expect(byte(c, a + 3n * PG)).toBe(10);
    expect(h.free_huge_pages).toBe(1);
    expect_vm_ok(k);
  });
});

describe('fork(): failure', () => {
  test('ENOMEM from the child\'s commit charge: no child, no pid taken, the parent\'s pages as before', () => {
    const p = proc();
    const k = p.kernel;
    vm_sysctl(k).overcommit_memory = 2;
    const a = p.mmap(H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const folio = pfn_of(p, a)!;
    const big = p.mmap(H + 16n * PG, 20000n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(big).toBe(H + 16n * PG);
    const committed = vm_memory_committed(k);
    const tasks = for_each_process(k).length;
    expect(p.fork()).toBe(-1);
    expect(p.errno).toBe(Errno.ENOMEM);
    expect(for_each_process(k).length).toBe(tasks);
    expect(vm_memory_committed(k)).toBe(committed);
    expect(folio_mapcount(k.store, folio)).toBe(1);
    expect(folio_ref_count(k.store, folio)).toBe(1);
    expect_vm_ok(k);
    /* the copy made before the failure left the parent's PTE write-protected: the write reuses the page */
    expect(p.store(a, Uint8Array.of(2))).toBe(0);
    expect(pfn_of(p, a)).toBe(folio);
    vm_sysctl(k).overcommit_memory = 0;
    const c = fork(p);
    expect(c.task.pid).toBe(p.task.pid + 1);
  });
});
