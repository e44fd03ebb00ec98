import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { FOLL_ANON, FOLL_FORCE, FOLL_LONGTERM, FOLL_PIN, FOLL_SPLIT_PMD, FOLL_WRITE } from './folio.js';
import { check_vma_flags, folio_is_longterm_pinnable, gup_must_unshare } from './gup.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from './mman.js';
import { pte_present } from './pgtable.js';
import { Process } from './process.js';
import { vma_lookup } from './vma.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 })).resolve(Kernel));
}

describe('check_vma_flags()', () => {
  test('FOLL_FORCE writes only COW mappings, reads PROT_NONE ones; FOLL_ANON wants anonymous memory', () => {
    const p = proc();
    const fd = p.memfd_create('c', 0);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(0);
    const ro_priv = vma_lookup(p.mm, Number(p.mmap(H, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) / PG))!;
    const ro_shared = vma_lookup(p.mm, Number(p.mmap(H + 2n * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) / PG))!;
    const none = vma_lookup(p.mm, Number(p.mmap(H + 4n * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) / PG))!;
    expect(check_vma_flags(ro_priv, FOLL_WRITE)).toBe(-Errno.EFAULT);
    expect(check_vma_flags(ro_priv, FOLL_WRITE | FOLL_FORCE)).toBe(0);
    expect(check_vma_flags(ro_shared, FOLL_WRITE | FOLL_FORCE)).toBe(-Errno.EFAULT);
    expect(check_vma_flags(none, 0)).toBe(-Errno.EFAULT);
    expect(check_vma_flags(none, FOLL_FORCE)).toBe(0);
    expect(check_vma_flags(ro_priv, FOLL_ANON)).toBe(-Errno.EFAULT);
    expect(check_vma_flags(none, FOLL_ANON | FOLL_FORCE)).toBe(0);
    expect(check_vma_flags(ro_priv, FOLL_SPLIT_PMD)).toBe(0);
  });
});

describe('gup_must_unshare() and folio_is_longterm_pinnable()', () => {
  test('R/O pins: an exclusive anon page is fine, a file page in a COW mapping only for short-term pins', () => {
    const p = proc();
    const store = p.kernel.store;
    const fd = p.memfd_create('u', 0);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(0);
    const f = p.mmap(H, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    const a = p.mmap(H + 2n * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    p.load(f, 1);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const pfn = (addr: bigint): number => {
      const vpn = Number(addr / PG);
      const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512))!;
      expect(pte_present(t.flags[vpn % 512])).toBe(true);
      return t.val[vpn % 512];
    };
    const fv = vma_lookup(p.mm, Number(f / PG))!;
    const av = vma_lookup(p.mm, Number(a / PG))!;
    expect(gup_must_unshare(fv, FOLL_PIN, store, pfn(f))).toBe(false);
    expect(gup_must_unshare(fv, FOLL_PIN | FOLL_LONGTERM, store, pfn(f))).toBe(true);
    expect(gup_must_unshare(fv, FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE, store, pfn(f))).toBe(false);
    expect(gup_must_unshare(undefined, FOLL_PIN | FOLL_LONGTERM, store, pfn(f))).toBe(true);
    expect(gup_must_unshare(av, FOLL_PIN | FOLL_LONGTERM, store, pfn(a))).toBe(false);
    /* no ZONE_MOVABLE on this host: everything may stay pinned, the zero page too */
    expect(folio_is_longterm_pinnable(store, pfn(a))).toBe(true);
    expect(folio_is_longterm_pinnable(store, store.zero_pfn)).toBe(true);
  });
});
