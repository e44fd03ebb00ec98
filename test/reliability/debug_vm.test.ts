/**
 * The DEBUG_VM checks (mm/src/debug_vm.ts): a consistent host passes; each kind of corruption is
 * reported under its rule with the pfn; withInvariants() stops a test at the call that broke a
 * rule, and at a failed call that changed the state.
 */
import { describe, expect } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import {
  DebugVmError, MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PG_lru, PROT_READ, PROT_WRITE,
  check_vm, debug_vm_register, page_folio, pagemap_pfn, type DebugVmFinding, type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { withInvariants } from '../lib/invariants.js';

const PG = BigInt(PAGE_SIZE);
const BASE = 0x2000_0000_0000n;

/** A shared memfd mapping of 8 pages and an anonymous one of 8 pages, all faulted in. */
function setup(p: Process): { fd: number; file: bigint; anon: bigint } {
  const fd = p.memfd_create('dvm', 0);
  expect(p.ftruncate(fd, 8 * PAGE_SIZE)).toBe(0);
  const file = p.mmap(BASE, 8n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
  const anon = p.mmap(BASE + 64n * PG, 8n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  expect(p.madvise(file, 8n * PG, MADV_POPULATE_WRITE)).toBe(0);
  expect(p.madvise(anon, 8n * PG, MADV_POPULATE_WRITE)).toBe(0);
  return { fd, file, anon };
}

const pfn_at = (p: Process, addr: bigint): number => {
  const pfn = pagemap_pfn(p.mm, addr);
  expect(pfn).toBeGreaterThan(0);
  return pfn as number;
};

describe('check_vm', () => {
  test('a host after ordinary calls passes every rule', ({ host }) => {
    setup(host.process());
    expect(check_vm(host.kernel, { thorough: true })).toEqual([]);
  });

  test('a refcount below the mappings is "refcount" at that pfn', ({ host }) => {
    const p = host.process();
    const { file } = setup(p);
    const pfn = pfn_at(p, file);
    const s = host.kernel.store;
    s._refcount[s.idx(pfn)] = 1;
    expect(check_vm(host.kernel)).toEqual([expect.objectContaining({ rule: 'refcount', pfn })]);
  });

  test('a PTE that rmap does not count is "mapcount"; one onto a free page is "free-mapped"', ({ host }) => {
    const p = host.process();
    const { anon } = setup(p);
    const pfn = pfn_at(p, anon);
    const s = host.kernel.store;
    s._mapcount[s.idx(pfn)] = -1;
    expect(check_vm(host.kernel).map((v) => [v.rule, v.pfn])).toContainEqual(['mapcount', pfn]);
    s._mapcount[s.idx(pfn)] = 0;
    /* point the PTE at a free page */
    const t = p.mm.pgd.ptes.get(Number(anon / PG / 512n))!;
    const slot = Number((anon / PG) % 512n);
    const free = host.kernel.page_alloc.zones.map((z) => z.free_area[0].first()).find((x) => x > 0)!;
    t.val[slot] = free;
    const v = check_vm(host.kernel);
    expect(v.map((x) => x.rule)).toContain('free-mapped');
    expect(v.find((x) => x.rule === 'free-mapped')!.pfn).toBe(free);
  });

  test('an anon folio whose anon_vma is not its VMA\'s is "rmap"', ({ host }) => {
    const p = host.process();
    const { anon } = setup(p);
    const pfn = pfn_at(p, anon + PG);
    const s = host.kernel.store;
    s.mapping[s.idx(pfn)] += 4;
    expect(check_vm(host.kernel)).toContainEqual(expect.objectContaining({ rule: 'rmap', pfn }));
  });

  test('a page-cache folio missing from its file is "page-cache"; a stray PG_lru is "lru"', ({ host }) => {
    const p = host.process();
    const { fd, file } = setup(p);
    const pfn = pfn_at(p, file + 2n * PG);
    const mapping = p.task.files.lookup(fd)!.f_mapping;
    mapping.i_pages.xa_erase(2);
    expect(check_vm(host.kernel).map((v) => [v.rule, v.pfn])).toContainEqual(['page-cache', pfn]);
    mapping.i_pages.xa_store(2, page_folio(host.kernel.store, pfn));
    expect(check_vm(host.kernel)).toEqual([]);
    const s = host.kernel.store;
    const lone = host.kernel.page_alloc.alloc_page(0);
    s.flags[s.idx(lone)] |= 1 << PG_lru;
    expect(check_vm(host.kernel).map((v) => v.rule)).toEqual(['lru']);
  });

  test('packages add rules per host, reported under their name', ({ host }) => {
    debug_vm_register(host.kernel, 'kvm', (_k, report) => report('memslots', 'slot 3 overlaps slot 4'));
    expect(check_vm(host.kernel)).toEqual([{ rule: 'kvm:memslots', message: 'slot 3 overlaps slot 4' }]);
  });
});

describe('withInvariants', () => {
  test('a broken rule fails the next call, naming it', ({ host }) => {
    const p = withInvariants(host);
    const { anon } = setup(p);
    const pfn = pfn_at(p, anon);
    const s = host.kernel.store;
    s._refcount[s.idx(pfn)] = 0;
    let err: unknown;
    try {
      p.close(99);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DebugVmError);
    const f = (err as DebugVmError).finding;
    expect(f.kind).toBe('invariant');
    expect(f.call).toBe('close(99)');
    expect(f.violations[0]).toMatchObject({ rule: 'refcount', pfn });
  });

  test('a failed call that changed the state is reported with the parts it changed', ({ host }) => {
    const raw = host.process();
    const findings: DebugVmFinding[] = [];
    const p = withInvariants(host, raw, { onFinding: (f) => findings.push(f) });
    setup(p);
    /* a system call with a bug: it truncates the file and then says EINVAL */
    Object.defineProperty(raw, 'leaky_ftruncate', {
      configurable: true,
      value(this: Process, fd: number) {
        this.ftruncate(fd, 0);
        this.errno = 22;
        return -1;
      },
    });
    (p as unknown as { leaky_ftruncate(fd: number): number }).leaky_ftruncate(3);
    expect(findings).toEqual([
      expect.objectContaining({ kind: 'failed-call-changed-state', call: 'leaky_ftruncate(3)', errno: 22, parts: expect.arrayContaining(['mm.tasks']) }),
    ]);
  });

  test('failures Linux lets do partial work are not reported: mprotect and madvise over a hole', ({ host }) => {
    const findings: DebugVmFinding[] = [];
    const p = withInvariants(host, host.process(), { onFinding: (f) => findings.push(f) });
    const { file } = setup(p);
    /* [file, file + 16 pages) has a hole after the 8 mapped pages: the first 8 change, then ENOMEM */
    expect(p.mprotect(file, 16n * PG, PROT_READ)).toBe(-1);
    expect(p.errno).toBe(12);
    expect(p.madvise(file, 16n * PG, 4 /* MADV_DONTNEED */)).toBe(-1);
    expect(p.errno).toBe(12);
    expect(findings).toEqual([]);
  });
});
