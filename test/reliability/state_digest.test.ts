/**
 * The state digest (core/src/state_digest.ts, mm/src/debug.ts): equal for equal states whatever
 * ids and insertion orders the simulator happened to use, different when anything a user could
 * observe differs, unchanged by calls that fail, and naming the part that changed.
 */
import { describe, expect } from 'vitest';
import { PAGE_SIZE, StateHash, stateDigestDiff, stateDigestRegistry } from '@cocosim/core';
import {
  MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, hugetlb_pool,
  lru_lists, mm_state_digest, type Process,
} from '@cocosim/mm';
import { createSimHost, test } from '../lib/fixtures.js';

const PG = BigInt(PAGE_SIZE);
const BASE = 0x2000_0000_0000n;

describe('StateHash', () => {
  const digestOf = (feed: (h: StateHash) => void): string => {
    const h = new StateHash();
    h.section('x');
    feed(h);
    return h.parts()[0][1];
  };

  test('words() hashes exactly as u32() one at a time, from any lane', () => {
    const a = Uint32Array.from({ length: 37 }, (_, i) => (i * 2654435761) >>> 0);
    for (const lead of [0, 1, 2, 3]) {
      const one = digestOf((h) => {
        for (let i = 0; i < lead; i++) h.u32(i);
        for (const x of a) h.u32(x);
      });
      const bulk = digestOf((h) => {
        for (let i = 0; i < lead; i++) h.u32(i);
        h.words(a);
      });
      expect(bulk).toBe(one);
    }
  });

  test('a change of any single word, number, string or byte changes the hash', () => {
    const base = Uint32Array.from({ length: 64 }, (_, i) => i);
    const d0 = digestOf((h) => h.words(base));
    for (let i = 0; i < 64; i++) {
      const b = base.slice();
      b[i] ^= 1 << (i % 32);
      expect(digestOf((h) => h.words(b))).not.toBe(d0);
    }
    expect(digestOf((h) => h.num(0))).not.toBe(digestOf((h) => h.num(-0)));
    expect(digestOf((h) => h.num(2 ** 53))).not.toBe(digestOf((h) => h.num(2 ** 53 + 2)));
    expect(digestOf((h) => h.big(2n ** 64n))).not.toBe(digestOf((h) => h.big(0n)));
    expect(digestOf((h) => h.str('ab'))).not.toBe(digestOf((h) => h.str('ba')));
    expect(digestOf((h) => h.str(null))).not.toBe(digestOf((h) => h.str('')));
    expect(digestOf((h) => h.bytes(Uint8Array.of(1, 2, 3)))).not.toBe(digestOf((h) => h.bytes(Uint8Array.of(1, 2, 4))));
  });

  test('ids are numbered in the order the walk meets them, not by identity', () => {
    const x = {};
    const y = {};
    const walk = (first: object, second: object): string => digestOf((h) => {
      h.u32(h.id(first).id);
      h.u32(h.id(second).id);
      h.u32(h.id(first).id);
      h.u32(h.canon('mapping', 400));
      h.u32(h.canon('mapping', 8));
    });
    expect(walk(x, y)).toBe(walk(y, x));
    expect(walk(x, y)).not.toBe(walk(x, x));
  });

  test('the registry runs parts in (order, name) order, whenever they were registered', () => {
    const a = {};
    const b = {};
    stateDigestRegistry(a).register('late', (h) => h.u32(2), 100);
    stateDigestRegistry(a).register('early', (h) => h.u32(1), 0);
    stateDigestRegistry(b).register('early', (h) => h.u32(1), 0);
    stateDigestRegistry(b).register('late', (h) => h.u32(2), 100);
    expect(stateDigestRegistry(a).names()).toEqual(['early', 'late']);
    expect(stateDigestRegistry(a).compute()).toEqual(stateDigestRegistry(b).compute());
    expect(() => stateDigestRegistry(a).register('late', () => {})).toThrow(/registered twice/);
  });

  test('mirroring() names the parts that follow one, through chains, and nothing else', () => {
    const r = stateDigestRegistry({});
    r.register('kvm.vms', () => {}, 50);
    r.register('v.hyp', () => {}, 110, 'kvm.vms');
    r.register('v.copy', () => {}, 111, 'v.hyp');
    r.register('v.other', () => {}, 112);
    expect(r.mirroring('kvm.vms')).toEqual(['v.hyp', 'v.copy']);
    expect(r.mirroring('v.other')).toEqual([]);
  });
});

/** A process with a populated shared memfd mapping and some written bytes. */
function populate(p: Process, pages: number): { fd: number; addr: bigint } {
  const fd = p.memfd_create('digest', 0);
  expect(p.ftruncate(fd, pages * PAGE_SIZE)).toBe(0);
  const addr = p.mmap(0, BigInt(pages) * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  expect(p.madvise(addr, BigInt(pages) * PG, MADV_POPULATE_WRITE)).toBe(0);
  expect(p.store(addr + 5n, Uint8Array.of(1, 2, 3))).toBe(0);
  return { fd, addr };
}

describe('the digest of a host', () => {
  test('failed calls of every kind leave it unchanged', ({ host }) => {
    const p = host.process();
    const { fd, addr } = populate(p, 16);
    const d = mm_state_digest(host.kernel);
    expect(p.close(77)).toBe(-1);
    expect(p.ftruncate(fd, -1)).toBe(-1);
    expect(p.mmap(addr + 1n, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)).toBe(2n ** 64n - 1n);
    expect(p.fallocate(fd, 0x100, 0, PG)).toBe(-1);
    expect(p.munmap(addr + 3n, PG)).toBe(-1);
    expect(p.memfd_create('x'.repeat(300), 0)).toBe(-1);
    expect(p.write(fd, 'not bytes')).toBe(-1);
    expect(mm_state_digest(host.kernel)).toEqual(d);
  });

  test('each change shows in the part that holds it', ({ host }) => {
    const p = host.process();
    const { fd, addr } = populate(p, 16);
    const d0 = mm_state_digest(host.kernel);
    expect(p.store(addr + 100n, Uint8Array.of(9))).toBe(0);
    const d1 = mm_state_digest(host.kernel);
    expect(stateDigestDiff(d0, d1)).toEqual(['mm.phys']);
    expect(p.mprotect(addr, PG, PROT_READ)).toBe(0);
    const d2 = mm_state_digest(host.kernel);
    expect(stateDigestDiff(d1, d2)).toEqual(['mm.tasks']);
    expect(p.fallocate(fd, 3 /* PUNCH_HOLE|KEEP_SIZE */, 8 * PAGE_SIZE, PG)).toBe(0);
    const d3 = mm_state_digest(host.kernel);
    expect(stateDigestDiff(d2, d3)).toEqual(expect.arrayContaining(['mm.page_store', 'mm.tasks', 'mm.lru']));
    expect(d3.digest).not.toBe(d2.digest);
  });

  test('two hosts of one seed that made the same calls are equal', () => {
    const run = (seed: number): ReturnType<typeof mm_state_digest> => {
      const h = createSimHost({ seed });
      const p = h.process();
      const fd = p.memfd_create('seed', 0);
      p.ftruncate(fd, 4 * PAGE_SIZE);
      const a = p.mmap(0, 4n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      p.load(a, 1);
      const d = mm_state_digest(h.kernel);
      void h.container.dispose();
      return d;
    };
    expect(run(1)).toEqual(run(1));
  });

  test('ids the simulator handed out and Set insertion orders do not count', ({ host }) => {
    const other = createSimHost({ seed: 0 });
    const build = (p: Process, detour: boolean, swap_order: boolean): void => {
      if (detour) {
        /* an anon_vma (a mapping id) allocated and freed: ids move on, the state does not */
        const t = p.mmap(BASE + 0x1000_0000n, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        expect(p.store(t, Uint8Array.of(1))).toBe(0);
        expect(p.munmap(t, PG)).toBe(0);
      }
      const fd = p.memfd_create('order', 0);
      expect(p.ftruncate(fd, 8 * PAGE_SIZE)).toBe(0);
      const at = swap_order ? [BASE + 16n * PG, BASE] : [BASE, BASE + 16n * PG];
      for (const a of at) expect(p.mmap(a, 8n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)).toBe(a);
      expect(p.store(BASE, Uint8Array.of(7))).toBe(0);
    };
    build(host.process(), true, false);
    build(other.process(), false, true);
    expect(mm_state_digest(host.kernel)).toEqual(mm_state_digest(other.kernel));
    void other.container.dispose();
  });

  test('objects created lazily with only defaults are no change', ({ host }) => {
    const p = host.process();
    const d = mm_state_digest(host.kernel);
    void p.mm;
    lru_lists(host.kernel.store);
    hugetlb_pool(host.kernel);
    expect(mm_state_digest(host.kernel)).toEqual(d);
  });
});
