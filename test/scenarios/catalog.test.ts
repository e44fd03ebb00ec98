/**
 * The catalog against designs.md §2: every scenario S1-S27 is registered, runs on every design x
 * vendor that can host it (at 4 KiB, and at 2 MiB where it takes that page size), never crashes,
 * and gives the outcome designs.md states for the platform. There is no list of accepted
 * differences: the main job (`npm start`) exits 1 on any, so where a vendor's mechanism makes a
 * design behave otherwise than designs.md's general statement, the scenario states that vendor's
 * expectation with its source (as S7/S8 do for CCA's RIPAS changes).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { expectWarning } from '../lib/warnings.js';

/** The parts of bench's compare and catalog this test uses (loaded by path: no project reference to bench). */
type CellResult =
  | { readonly id: string; readonly scenario: string; readonly status: 'ran'; readonly outcome: string; readonly expected: string | null; readonly check: string }
  | { readonly id: string; readonly scenario: string; readonly status: 'skipped'; readonly skip_reason: string }
  | { readonly id: string; readonly scenario: string; readonly status: 'crashed'; readonly error: string };
interface CellSpec { readonly id: string }
const bench = (path: string): string => fileURLToPath(new URL(`../../bench/src/${path}`, import.meta.url));
const { buildMatrix } = (await import(bench('compare/matrix.ts'))) as {
  buildMatrix(sel: { seed: string; scenarios: readonly string[]; page_sizes: readonly number[] }): { readonly cells: readonly CellSpec[] };
};
const { runCell } = (await import(bench('compare/cell.ts'))) as { runCell(spec: CellSpec): { readonly result: CellResult } };
const { CATALOG } = (await import(bench('scenarios/catalog/index.ts'))) as { CATALOG: readonly { readonly name: string; readonly ref?: string }[] };
const { main } = (await import(bench('cli.ts'))) as {
  main(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number>;
};

let results: Map<string, CellResult> | undefined;
function all(): Map<string, CellResult> {
  if (results !== undefined) return results;
  // D2 WARNs when its 32 shared ranges are full (S15), as the RFC does.
  expectWarning(/shared_ranges full/);
  const m = buildMatrix({ seed: '0', scenarios: CATALOG.map((s) => s.name), page_sizes: [4096, 2 * 1024 * 1024] });
  results = new Map(m.cells.map((c) => [c.id, runCell(c).result]));
  return results;
}

describe('the scenario catalog (designs.md §2)', () => {
  test('S1..S27 are all registered, in order, each with its reference', () => {
    expect(CATALOG.map((s) => s.ref)).toEqual(Array.from({ length: 27 }, (_, i) => `S${i + 1}`));
  });

  test('no cell crashes; every scenario runs somewhere (S23 too: mm has fork())', () => {
    const cells = [...all().values()];
    expect(cells.filter((c) => c.status === 'crashed').map((c) => `${c.id}: ${c.status === 'crashed' ? c.error : ''}`)).toEqual([]);
    for (const s of CATALOG) {
      const ran = cells.filter((c) => c.scenario === s.name && c.status === 'ran').length;
      expect(ran, `${s.ref} runs on some platform`).toBeGreaterThan(0);
      if (s.ref === 'S23') {
        expect(cells.filter((c) => c.scenario === s.name && c.status === 'skipped' && /fork/.test(c.skip_reason))).toEqual([]);
      }
    }
  }, 300_000);

  test('every outcome matches what its scenario expects (designs.md, or the vendor\'s own source)', () => {
    const differs = [...all().values()].filter((c) => c.status === 'ran' && c.check === 'differs')
      .map((c) => `${c.id}: ${c.status === 'ran' ? `${c.outcome} (expected ${c.expected})` : ''}`);
    expect(differs).toEqual([]);
  });

  test('the platforms agree with designs.md where it is definite: S1 on the base kernel, in-place and legacy SEV', () => {
    const outcome = (id: string) => {
      const c = all().get(id);
      return c?.status === 'ran' ? c.outcome : c?.status;
    };
    for (const v of ['sw_protected', 'tdx', 'sev', 'cca']) {
      expect(outcome(`s01-vmm-store-private/upstream/${v}/64K/4K`)).toBe('store lands outside the private page; guest data intact');
      expect(outcome(`s01-vmm-store-private/gmem_inplace/${v}/64K/4K`)).toBe('SIGBUS BUS_ADRERR');
    }
    expect(outcome('s01-vmm-store-private/sev_pinned/sev/64K/4K')).toBe('store corrupts the private page: guest reads garbage');
    expect(outcome('s08-convert-pinned/gmem_inplace/sw_protected/64K/4K')).toBe('to-private fails: EAGAIN');
  });
});

describe('the VMM-side coordination of S7/S8 (RamDiscardManager)', () => {
  test('with the listener, the in-place design converts a DMA-mapped page both ways; the device faults while it is private', () => {
    for (const design of ['upstream', 'gmem_inplace']) {
      for (const vendor of ['sw_protected', 'tdx']) {
        const id = `vfio-ram-discard/${design}/${vendor}/64K/4K`;
        const r = runCell({ id, index: 0, scenario: 'vfio-ram-discard', design, vendor, size: 65536, page_size: 4096, seed: '0' } as CellSpec).result;
        expect(r.status === 'ran' && [r.outcome, r.check], id).toEqual(['converts both ways; DMA faults while private, reaches the shared page after', 'ok']);
      }
    }
    // Without it (S8), the same pin makes the in-place conversion fail.
    expect(all().get('s08-convert-pinned/gmem_inplace/sw_protected/64K/4K')).toMatchObject({ outcome: 'to-private fails: EAGAIN' });
  });
});

describe('the main job (`npm start`, the README\'s first command)', () => {
  test('every built-in scenario on every platform: exit 0, no cell differs from designs.md or crashes', async () => {
    expectWarning(/shared_ranges full/);
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['--out', mkdtempSync(join(tmpdir(), 'cocosim-main-'))], (s) => out.push(s), (s) => err.push(s));
    expect(out.join('\n')).toMatch(/\n\d+ cells: \d+ as expected, 0 differ, /);
    expect(err).toEqual([]);
    expect(code).toBe(0);
  }, 120_000);
});
