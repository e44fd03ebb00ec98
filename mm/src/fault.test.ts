import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { Process } from './process.js';
import { MM_ANONPAGES } from './mm_types.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x2000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
}

describe('userLoadInto() (Process.load_into): a load into the caller\'s buffer', () => {
  test('reads what load() reads: written bytes, the zero page, across a page boundary', () => {
    const p = proc();
    const fd = p.memfd_create('l', 0);
    expect(p.ftruncate(fd, 2 * PAGE_SIZE)).toBe(0);
    const f = p.mmap(H, 2n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.store(f + PG - 2n, Uint8Array.of(1, 2, 3, 4))).toBe(0);
    const a = p.mmap(H + 16n * PG, 2n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    for (const [addr, len] of [
      [f + PG - 3n, 6],
      [f, 1],
      [a + PG - 1n, 2],
      [a, 0],
    ] as const) {
      /* a stale buffer: every byte must be overwritten, zero-page bytes included */
      const dst = new Uint8Array(len).fill(0xee);
      expect(p.load_into(addr, dst)).toBe(0);
      expect(dst).toEqual(p.load(addr, len));
    }
    expect(p.load_into(f + PG - 3n, new Uint8Array(6))).toBe(0);
    /* the anonymous reads mapped the zero page: no memory was allocated for them */
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(0);
  });

  test('a fault stops it with the signal load() gives; the pages before the faulting one are copied', () => {
    const p = proc();
    const a = p.mmap(H, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a + PG - 1n, Uint8Array.of(9))).toBe(0);
    const dst = new Uint8Array(3).fill(0xee);
    const sig = p.load_into(a + PG - 1n, dst);
    expect(sig).toEqual(p.load(a + PG - 1n, 3));
    expect(sig).toEqual({ signo: 'SIGSEGV', si_code: 'SEGV_MAPERR', si_addr: H + PG });
    expect(dst).toEqual(Uint8Array.of(9, 0xee, 0xee));
  });

  test('what is no byte buffer, or an address no user access reaches, is SIGSEGV SI_KERNEL, as for load()', () => {
    const p = proc();
    const kernel_si = { signo: 'SIGSEGV', si_code: 'SI_KERNEL', si_addr: 0n };
    expect(p.load_into(H, [0] as unknown as Uint8Array)).toEqual(kernel_si);
    expect(p.load_into(-1, new Uint8Array(1))).toEqual(p.load(-1, 1));
    expect(p.load_into(0x8000_0000_0000n, new Uint8Array(1))).toEqual(kernel_si);
  });
});
