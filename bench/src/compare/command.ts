/**
 * `cocosim compare` and `cocosim merge` (bench/src/cli.ts dispatches to them).
 *
 *   cocosim compare [--scenarios A,B] [--designs D,..] [--vendors V,..] [--size 4M,64M]
 *                   [--page-size 4K,2M] [--out DIR] [--jobs N|auto] [--shard I/N] [--trace DIR]
 *                   [--seed S] [--costs FILE]
 *   cocosim merge DIR... [--out DIR]
 *
 * Exit codes: 0 every cell that ran gave what its sources state (or states nothing), 1 some
 * cell differs, 2 bad arguments or shard outputs that do not merge, 3 a cell crashed (a
 * simulator bug). Skipped cells and requirement violations are results, not failures.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CostOverrideError } from '@cocosim/core';
import { createPlatform } from '../host.js';
import { parseSize } from '../scenarios/command.js';
import { PAGE_SIZES } from '../scenarios/scenario.js';
import { buildMatrix, parseShard, shardCells, shardLabel, sizeLabel, type Shard } from './matrix.js';
import { runCells } from './pool.js';
import { Progress, type ProgressStream } from './progress.js';
import { assemble, isComplete, mergeResults, readResults, writeResults, type CompareResults } from './results.js';
import { formatResults } from './table.js';

type Out = (s: string) => void;

export const DEFAULT_OUT = 'out/compare';

export interface CompareCommandOptions {
  /** Comma-separated lists, as given on the command line. */
  readonly scenarios?: string;
  readonly designs?: string;
  readonly vendors?: string;
  readonly size?: string;
  readonly pageSize?: string;
  readonly out?: string;
  readonly jobs?: string;
  readonly shard?: string;
  readonly trace?: string;
  readonly seed: string;
  readonly costs?: string;
  /** Modules the workers import (see PoolOptions.modules). */
  readonly modules?: readonly string[];
}

function list(s: string | undefined): string[] | undefined {
  return s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function parsePageSize(s: string): number | undefined {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (m === null) return undefined;
  const n = Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return PAGE_SIZES.includes(n) ? n : undefined;
}

function exitCode(r: CompareResults): number {
  if (r.summary.crashed > 0) return 3;
  return r.summary.differs > 0 ? 1 : 0;
}

function report(r: CompareResults, dir: string, out: Out): void {
  out(formatResults(r));
  for (const f of writeResults(dir, r)) out(`wrote ${f}`);
}

export async function compareCommand(o: CompareCommandOptions, out: Out, err: Out, progress: ProgressStream = process.stderr): Promise<number> {
  const t0 = performance.now();
  const problems: string[] = [];
  const sizes = list(o.size)?.map((s) => parseSize(s) ?? (problems.push(`--size ${s}: need a positive multiple of 8192 bytes (K, M, G suffixes allowed)`), 0));
  const pageSizes = list(o.pageSize)?.map((s) => parsePageSize(s) ?? (problems.push(`--page-size ${s}: need one of ${PAGE_SIZES.map(sizeLabel).join(', ')}`), 0));
  let jobs = 1;
  if (o.jobs !== undefined) {
    jobs = o.jobs === 'auto' ? availableParallelism() : Number(o.jobs);
    if (!Number.isSafeInteger(jobs) || jobs < 1) problems.push(`--jobs ${o.jobs}: need a positive integer or "auto"`);
  }
  let shard: Shard | undefined;
  if (o.shard !== undefined) {
    shard = parseShard(o.shard);
    if (shard === undefined) problems.push(`--shard ${o.shard}: need I/N with 1 <= I <= N`);
  }
  if (problems.length === 0 && o.costs !== undefined) {
    try {
      createPlatform({ costOverrides: o.costs });
    } catch (e) {
      if (!(e instanceof CostOverrideError)) throw e;
      problems.push(e.message);
    }
  }
  const matrix = problems.length === 0
    ? buildMatrix({ scenarios: list(o.scenarios), designs: list(o.designs), vendors: list(o.vendors), sizes, page_sizes: pageSizes, seed: o.seed, costs: o.costs })
    : undefined;
  if (matrix !== undefined && 'errors' in matrix) problems.push(...matrix.errors);
  if (problems.length > 0 || matrix === undefined || 'errors' in matrix) {
    for (const p of problems) err(`cocosim compare: ${p}`);
    return 2;
  }
  const cells = shard === undefined ? matrix.cells : shardCells(matrix.cells, shard);
  const bar = new Progress(progress, cells.length);
  let outputs;
  try {
    outputs = await runCells(cells, {
      jobs, modules: o.modules, cell: { trace: o.trace, costs: o.costs },
      onCell: (c, done) => bar.update(done, c.result.id),
    });
  } finally {
    bar.done();
  }
  const label = shard === undefined ? '1/1' : shardLabel(shard);
  const results = assemble(matrix.spec, outputs, { shards: [label], jobs: [jobs], wall_ms: performance.now() - t0 });
  const dir = o.out ?? (shard === undefined ? DEFAULT_OUT : `${DEFAULT_OUT}-shard-${shard.i}-of-${shard.n}`);
  report(results, dir, out);
  if (o.trace !== undefined) out(`wrote each cell's trace (NAME.perfetto.json for ui.perfetto.dev, NAME.ftrace.txt) into ${o.trace}`);
  if (!isComplete(results)) {
    out(`shard ${label}: ${results.cells.length} of ${matrix.spec.cells} cells; \`cocosim merge\` the output directories of all ${shard!.n} shards for the whole sweep`);
  }
  return exitCode(results);
}

export function mergeCommand(dirs: readonly string[], outDir: string | undefined, out: Out, err: Out): number {
  if (dirs.length === 0) {
    err('cocosim merge: give the output directories (or results.json files) of the shards');
    return 2;
  }
  const parts: { source: string; results: CompareResults }[] = [];
  for (const d of dirs) {
    const r = readResults(d);
    if ('error' in r) {
      err(`cocosim merge: ${r.error}`);
      return 2;
    }
    parts.push({ source: d, results: r });
  }
  const merged = mergeResults(parts);
  if ('errors' in merged) {
    for (const e of merged.errors) err(`cocosim merge: ${e}`);
    return 2;
  }
  report(merged, outDir ?? DEFAULT_OUT, out);
  return exitCode(merged);
}
