import { describe, expect, test } from 'vitest';
import { Errno, KernelBug, PAGE_SIZE, createRootContainer, RingSink, Tracer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED, MADV_HUGEPAGE, PROT_READ, PROT_WRITE } from './mman.js';
import { MFD_HUGETLB } from './uapi/memfd.js';
import { hugetlb_pool, set_max_huge_pages } from './hugetlb.js';
import {
  MF_ACTION_PAGE_TYPES,
  MF_MSG_UNKNOWN,
  memory_failure,
  memory_failure_sysctl,
  num_poisoned_pages,
  unpoison_memory,
} from './memory-failure.js';
import { hwpoison_inject } from './hwpoison-inject.js';
import { MF_SW_SIMULATED } from './madvise.js';
import { vm_sysctl } from './mm_types.js';
import { PageHWPoison, folio_test_has_hwpoisoned } from './page-flags.js';
import { is_swap_pte, pmd_index_of, pte_swp_type } from './pgtable.js';
import { SWP_HWPOISON } from './swapops.js';
import { isSigInfo } from './fault.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;

function host(): { k: Kernel; trace: RingSink } {
  const c = createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 }));
  const trace = new RingSink();
  c.resolve(Tracer).addSink(trace);
  const k = c.resolve(Kernel);
  vm_sysctl(k).memory_failure = true;
  return { k, trace };
}

function events(trace: RingSink): [string, string][] {
  return trace.events('memory_failure_event').map((r) => [r.args.type as string, r.args.result as string]);
}

describe('memory_failure()', () => {
  test('the page types are the kernel\'s action_page_types[]', () => {
    expect(MF_ACTION_PAGE_TYPES.length).toBe(MF_MSG_UNKNOWN + 1);
    expect(MF_ACTION_PAGE_TYPES[18]).toBe('already poisoned page');
  });

  test('a pfn outside the memory map: -ENXIO, "memory outside kernel control"', () => {
    const { k, trace } = host();
    expect(memory_failure(k, k.store.end_pfn + 5, MF_SW_SIMULATED)).toBe(-Errno.ENXIO);
    expect(trace.events('console').map((r) => r.args.msg)).toEqual([`Memory failure: 0x${(k.store.end_pfn + 5).toString(16)}: memory outside kernel control`]);
    expect(unpoison_memory(k, -1)).toBe(-Errno.ENXIO);
  });

  test('vm.memory_failure_recovery = 0: the kernel panics', () => {
    const { k } = host();
    memory_failure_sysctl(k).memory_failure_recovery = 0;
    expect(() => memory_failure(k, 100, 0)).toThrow(KernelBug);
  });

  test('a page of a THP: the simulator cannot split it, so the kernel\'s failed-split path (unsplit thp: Failed)', () => {
    const { k, trace } = host();
    vm_sysctl(k).transparent_hugepage = 'always';
    const p = new Process(k);
    const a = p.mmap(0, 1024n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const base = ((a + 512n * PG - 1n) / (512n * PG)) * 512n * PG;
    expect(p.madvise(base, 512n * PG, MADV_HUGEPAGE)).toBe(0);
    expect(p.store(base + 5n * PG, Uint8Array.of(1))).toBe(0);
    const e = p.mm.pgd.pmds.get(pmd_index_of(Number(base / PG)));
    expect(e).toBeDefined();
    const pfn = e!.val + 5;
    expect(hwpoison_inject(k, pfn)).toBe(-Errno.EHWPOISON);
    expect(events(trace)).toEqual([['unsplit thp', 'Failed']]);
    expect(folio_test_has_hwpoisoned(k.store, e!.val)).toBe(true);
    expect(PageHWPoison(k.store, pfn)).toBe(true);
    expect(num_poisoned_pages(k)).toBe(1);
  });
});

describe('hugetlb', () => {
  test('a free pool page: dissolved, the bad page taken off the buddy lists (free huge page: Recovered)', () => {
    const { k, trace } = host();
    const h = hugetlb_pool(k).default_hstate;
    expect(set_max_huge_pages(k, h, 2)).toBe(2);
    const folio = h.freelist[0];
    expect(hwpoison_inject(k, folio + 7)).toBe(0);
    expect(events(trace)).toEqual([['free huge page', 'Recovered']]);
    expect([h.nr_huge_pages, h.free_huge_pages, h.max_huge_pages]).toEqual([1, 1, 1]);
    expect(PageHWPoison(k.store, folio + 7)).toBe(true);
    expect(PageHWPoison(k.store, folio)).toBe(false);
    expect(k.page_alloc.is_free_buddy_page(folio + 7)).toBe(false);
    expect(k.page_alloc.is_free_buddy_page(folio + 6)).toBe(true);
  });

  test('an anonymous huge page mapped by a process: a hwpoison entry in the PMD, the page dissolved', () => {
    const { k, trace } = host();
    const h = hugetlb_pool(k).default_hstate;
    set_max_huge_pages(k, h, 2);
    const p = new Process(k);
    const a = p.mmap(0, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    expect(p.store(a + 3n * PG, Uint8Array.of(9))).toBe(0);
    const pmd = pmd_index_of(Number(a / PG));
    const folio = p.mm.pgd.pmds.get(pmd)!.val;
    expect(hwpoison_inject(k, folio + 3)).toBe(0);
    expect(events(trace)).toEqual([['huge page', 'Recovered']]);
    const e = p.mm.pgd.pmds.get(pmd)!;
    expect(is_swap_pte(e.flags) && pte_swp_type(e.flags) === SWP_HWPOISON).toBe(true);
    const s = p.load(a, 1);
    expect(isSigInfo(s) && s.si_code === 'BUS_MCEERR_AR').toBe(true);
    expect(PageHWPoison(k.store, folio + 3)).toBe(true);
    expect(k.page_alloc.is_free_buddy_page(folio + 4)).toBe(true);
  });

  test('a hugetlbfs (MFD_HUGETLB) page stays in its page cache; a second error on it is already poisoned', () => {
    const { k, trace } = host();
    const h = hugetlb_pool(k).default_hstate;
    set_max_huge_pages(k, h, 2);
    const p = new Process(k);
    const fd = p.memfd_create('h', MFD_HUGETLB);
    expect(p.ftruncate(fd, 512 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(0, 512n * PG, RW, MAP_SHARED, fd, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const folio = p.mm.pgd.pmds.get(pmd_index_of(Number(a / PG)))!.val;
    expect(hwpoison_inject(k, folio + 1)).toBe(0);
    expect(events(trace)[0]).toEqual(['huge page', 'Recovered']);
    expect(hwpoison_inject(k, folio + 1)).toBe(-Errno.EHWPOISON);
    expect(events(trace)[1]).toEqual(['already poisoned page', 'Failed']);
  });
});
