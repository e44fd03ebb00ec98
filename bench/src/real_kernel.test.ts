import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runSuite, type SuiteResult } from './harness.js';
import { REAL_DIR, compareCases, parseRealOutput, smallestSpeedup, type RealKernelResult } from './real_kernel.js';
import { mmSuite } from './suites/mm.js';

const sim: SuiteResult = {
  suite: 'mm',
  node: 'v20',
  results: [
    { name: 'a', ms: 0.001, ops_per_sec: 1e6, margin_pct: 1, samples: 7 },
    { name: 'b', ms: 10, ops_per_sec: 100, margin_pct: 1, samples: 5 },
    { name: 'sim only', ms: 1, ops_per_sec: 1000, margin_pct: 1, samples: 5 },
  ],
};

const real: RealKernelResult = {
  kernel: '6.18.0',
  cases: [
    { name: 'b', ms: 60, min_ms: 59, max_ms: 61, samples: 7, ops: 1 },
    { name: 'a', ms: 0.002, min_ms: 0.002, max_ms: 0.002, samples: 7, ops: 16384 },
    { name: 'real only', ms: 5, min_ms: 5, max_ms: 5, samples: 7, ops: 1 },
  ],
};

describe('the real-kernel comparison', () => {
  test('pairs cases by name; the speedup is the smallest real/simulator ratio of the cases both ran', () => {
    const cases = compareCases(sim, real);
    expect(cases.map((c) => [c.name, c.speedup])).toEqual([
      ['a', 2],
      ['b', 6],
      ['sim only', undefined],
      ['real only', undefined],
    ]);
    expect(smallestSpeedup(cases)).toBe(2);
    expect(smallestSpeedup(compareCases(sim, { kernel: 'x', cases: [] }))).toBeUndefined();
  });

  test("parses the program's JSON, its error, and rejects anything else", () => {
    expect(parseRealOutput(JSON.stringify(real))).toEqual(real);
    expect(parseRealOutput('{"error": "memfd_create: Function not implemented"}')).toEqual({ error: 'memfd_create: Function not implemented' });
    expect(parseRealOutput('not json')).toHaveProperty('error');
    expect(parseRealOutput('{"kernel": "6.18"}')).toHaveProperty('error');
    expect(parseRealOutput('{"kernel": "6.18", "cases": [{"name": "x", "ms": 0}]}')).toHaveProperty('error');
    expect(parseRealOutput('{"kernel": "6.18", "cases": [{"ms": 1}]}')).toHaveProperty('error');
  });

  test('every case of the mm suite but the simulator-only ones is a case of bench/real/mm_bench.c, by the same name', () => {
    const source = readFileSync(join(REAL_DIR, 'mm_bench.c'), 'utf8');
    expect(mmSuite.realKernel?.source).toBe('mm_bench.c');
    const compared = mmSuite.cases.filter((c) => !c.name.endsWith('(simulator only)'));
    expect(compared.length).toBe(4);
    for (const c of compared) expect(source).toContain(`{ ${JSON.stringify(c.name)},`);
  });
});

describe('one-shot cases', () => {
  test('are prepared afresh for a warm-up run and each sample; results are per operation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-bench-'));
    try {
      let prepared = 0;
      let ran = 0;
      const result = await runSuite(
        {
          name: 'tiny',
          description: 'a test',
          cases: [{ name: 'spin', samples: 3, ops: 1000, prepare: () => (prepared++, () => void ran++) }],
        },
        { outDir: dir, log: () => undefined },
      );
      expect(prepared).toBe(4);
      expect(ran).toBe(4);
      expect(result.results[0].samples).toBe(3);
      expect(result.results[0].ms).toBeLessThan(1);
      expect(JSON.parse(readFileSync(join(dir, 'tiny.json'), 'utf8')).suite).toBe('tiny');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
