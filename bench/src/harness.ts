/**
 * The benchmark harness: the only module that knows benny (unmaintained),
 * so it can be swapped for tinybench without touching a suite.
 *
 * Two kinds of case:
 * - `fn`: a steady-state operation that can run back to back (a page-cache lookup); benny times
 *   it over many cycles.
 * - `prepare` + `run`: a destructive operation that needs fresh state each time (punch a hole
 *   in a GiB of mapped memory); `prepare` builds the state untimed, `run` is timed once per
 *   sample after an untimed warm-up run, and the harness reports the median.
 *
 * Results are JSON in `bench/results/<suite>.json` (git-ignored); nothing is drawn with benny's
 * chart.html, which loads a CDN.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import b from 'benny';
import type { RealKernelSide } from './real_kernel.js';

export interface SteadyCase {
  readonly name: string;
  /** Called once per benny cycle (may run several times): returns the timed operation. */
  readonly fn: () => () => void;
}

export interface OneShotCase {
  readonly name: string;
  /** Builds fresh state, untimed; returns the operation to time once. */
  readonly prepare: () => () => void;
  /** Samples to take (default 7). */
  readonly samples?: number;
  /** Operations the timed run performs (default 1): results are per operation (e.g. per fault). */
  readonly ops?: number;
  /**
   * Untimed runs first (default 1), so that the samples time the simulator's code once V8 has
   * compiled it, not its first interpretation: the kernel it is compared with has no warm-up.
   */
  readonly warmup?: number;
}

export type BenchCase = SteadyCase | OneShotCase;

export interface BenchSuite {
  readonly name: string;
  readonly description: string;
  readonly cases: readonly BenchCase[];
  /** The same cases on this machine's kernel, by a C program (real_kernel.ts). */
  readonly realKernel?: RealKernelSide;
  /** Lines printed after everything else (ratios between cases), from the suite's results. */
  readonly summary?: (result: SuiteResult) => readonly string[];
}

export interface CaseResult {
  readonly name: string;
  /** Median time of one operation, in ms. */
  readonly ms: number;
  readonly ops_per_sec: number;
  /** Relative margin of error (%), for steady cases; spread (max/min - 1, %) for one-shot ones. */
  readonly margin_pct: number;
  readonly samples: number;
}

export interface SuiteResult {
  readonly suite: string;
  readonly node: string;
  readonly results: readonly CaseResult[];
}

function isOneShot(c: BenchCase): c is OneShotCase {
  return 'prepare' in c;
}

function runOneShot(c: OneShotCase): CaseResult {
  const times: number[] = [];
  const samples = c.samples ?? 7;
  for (let i = 0; i < (c.warmup ?? 1); i++) c.prepare()();
  for (let i = 0; i < samples; i++) {
    const op = c.prepare();
    const t0 = performance.now();
    op();
    times.push((performance.now() - t0) / (c.ops ?? 1));
  }
  times.sort((x, y) => x - y);
  const ms = times[Math.floor(times.length / 2)]!;
  return { name: c.name, ms, ops_per_sec: 1000 / ms, margin_pct: (times[times.length - 1]! / times[0]! - 1) * 100, samples };
}

async function runSteady(suite: string, c: SteadyCase, quick: boolean): Promise<CaseResult> {
  const summary = await b.suite(
    `${suite}/${c.name}`,
    b.add(c.name, c.fn),
    b.configure({ cases: quick ? { minTime: 0.05, maxTime: 0.5, minSamples: 3 } : { minTime: 1, maxTime: 5 } }),
  );
  const r = summary.results[0]!;
  return { name: c.name, ms: 1000 / r.ops, ops_per_sec: r.ops, margin_pct: r.margin, samples: r.samples };
}

/** Run a suite, print one line per case, save JSON; `quick` shortens steady cases. */
export async function runSuite(suite: BenchSuite, opts: { outDir: string; quick?: boolean; log?: (s: string) => void }): Promise<SuiteResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  log(`# ${suite.name}: ${suite.description}`);
  const results: CaseResult[] = [];
  for (const c of suite.cases) {
    const r = isOneShot(c) ? runOneShot(c) : await runSteady(suite.name, c, opts.quick ?? false);
    results.push(r);
    log(`${suite.name}/${r.name}: ${formatMs(r.ms)} per op (${r.ops_per_sec.toFixed(0)} ops/s, ±${r.margin_pct.toFixed(1)}%, ${r.samples} samples)`);
  }
  const out: SuiteResult = { suite: suite.name, node: process.version, results };
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(join(opts.outDir, `${suite.name}.json`), `${JSON.stringify(out, null, 2)}\n`);
  return out;
}

export function formatMs(ms: number): string {
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  if (ms >= 1e-3) return `${(ms * 1e3).toFixed(2)} us`;
  return `${(ms * 1e6).toFixed(1)} ns`;
}
