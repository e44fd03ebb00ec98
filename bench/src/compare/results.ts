/**
 * A comparison's results as files: results.json (everything), results.csv (one row per cell)
 * and report.html (html.ts), and the merge of shard outputs into the same three files.
 *
 * results.json:
 *
 *     { "format": "cocosim-compare/1",
 *       "matrix":  { scenarios, designs, vendors, sizes, page_sizes, seed, costs, cells },
 *       "summary": { cells, ran, skipped, crashed, ok, differs, unstated, with_violations },
 *       "digest":  sha256 of {format, matrix, cells},
 *       "cells":   [ one CellResult per cell, by index (a shard's file has its cells only) ],
 *       "run":     { shards, jobs, wall_ms, cell_wall_ms } }
 *
 * Everything but "run" is the identity of the results: the same for the same matrix and seed
 * whatever the number of jobs or shards, and the merge of every shard of a sweep equals the
 * unsharded run. "run" holds how it ran, wall times included.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COST_CATEGORIES } from './categories.js';
import type { CellOutput, CellResult } from './cell.js';
import { htmlReport } from './html.js';
import type { MatrixSpec } from './matrix.js';

export const RESULTS_FORMAT = 'cocosim-compare/1';

export interface CompareSummary {
  readonly cells: number;
  readonly ran: number;
  readonly skipped: number;
  readonly crashed: number;
  readonly ok: number;
  readonly differs: number;
  readonly unstated: number;
  /** Cells where a registered requirement was violated. */
  readonly with_violations: number;
}

export interface RunInfo {
  /** The shards these results come from ("1/1" for an unsharded run). */
  readonly shards: readonly string[];
  /** Worker threads of each shard's run. */
  readonly jobs: readonly number[];
  /** Wall time of the run(s), ms (summed over shards). */
  readonly wall_ms: number;
  /** Each cell's wall time, ms, by cell id. */
  readonly cell_wall_ms: Readonly<Record<string, number>>;
}

export interface CompareResults {
  readonly format: typeof RESULTS_FORMAT;
  readonly matrix: MatrixSpec;
  readonly summary: CompareSummary;
  readonly digest: string;
  readonly cells: readonly CellResult[];
  readonly run: RunInfo;
}

export function summarize(cells: readonly CellResult[]): CompareSummary {
  const ran = cells.filter((c) => c.status === 'ran');
  return {
    cells: cells.length,
    ran: ran.length,
    skipped: cells.filter((c) => c.status === 'skipped').length,
    crashed: cells.filter((c) => c.status === 'crashed').length,
    ok: ran.filter((c) => c.check === 'ok').length,
    differs: ran.filter((c) => c.check === 'differs').length,
    unstated: ran.filter((c) => c.check === 'unstated').length,
    with_violations: ran.filter((c) => c.violations.length > 0).length,
  };
}

function digestOf(matrix: MatrixSpec, cells: readonly CellResult[]): string {
  return createHash('sha256').update(JSON.stringify({ format: RESULTS_FORMAT, matrix, cells })).digest('hex');
}

/** Results from cell outputs in any order (a pool returns them as workers finish). */
export function assemble(matrix: MatrixSpec, outputs: readonly CellOutput[], run: Omit<RunInfo, 'cell_wall_ms'>): CompareResults {
  const sorted = [...outputs].sort((a, b) => a.result.index - b.result.index);
  const cells = sorted.map((o) => o.result);
  const cell_wall_ms = Object.fromEntries(sorted.map((o) => [o.result.id, o.wall_ms]));
  return { format: RESULTS_FORMAT, matrix, summary: summarize(cells), digest: digestOf(matrix, cells), cells, run: { ...run, cell_wall_ms } };
}

/** The results without "run": what must be equal across jobs and shards. */
export function identity(r: CompareResults): string {
  const { run: _run, ...rest } = r;
  return JSON.stringify(rest);
}

/** Whether every cell of the matrix is in the results. */
export function isComplete(r: CompareResults): boolean {
  return r.cells.length === r.matrix.cells;
}

/** results.json of DIR (or the file itself), checked to be a comparison's output. */
export function readResults(path: string): CompareResults | { readonly error: string } {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'results.json') : path;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { error: `${file}: ${(e as Error).message}` };
  }
  const o = v as Partial<CompareResults> | null;
  if (o === null || typeof o !== 'object' || o.format !== RESULTS_FORMAT || !Array.isArray(o.cells) || typeof o.matrix !== 'object' || typeof o.run !== 'object') {
    return { error: `${file}: not the results of cocosim compare (format "${RESULTS_FORMAT}")` };
  }
  return o as CompareResults;
}

/**
 * Merge shard outputs into the results of the whole sweep. Every part must come from the same
 * matrix (same selection, sizes, seed, costs), no cell may appear twice, and together they must
 * cover the matrix; otherwise the problems, one per line.
 */
export function mergeResults(parts: readonly { readonly source: string; readonly results: CompareResults }[]): CompareResults | { readonly errors: readonly string[] } {
  if (parts.length === 0) return { errors: ['nothing to merge'] };
  const errors: string[] = [];
  const first = parts[0]!;
  const matrixText = JSON.stringify(first.results.matrix);
  for (const p of parts.slice(1)) {
    if (JSON.stringify(p.results.matrix) === matrixText) continue;
    const a = first.results.matrix as unknown as Record<string, unknown>;
    const b = p.results.matrix as unknown as Record<string, unknown>;
    const keys = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    errors.push(`${p.source} ran a different matrix than ${first.source} (${keys.join(', ')} differ)`);
  }
  const owner = new Map<number, string>();
  const outputs: CellOutput[] = [];
  for (const p of parts) {
    for (const c of p.results.cells) {
      const prev = owner.get(c.index);
      if (prev !== undefined) {
        errors.push(`cell ${c.id} is in both ${prev} and ${p.source}`);
        continue;
      }
      owner.set(c.index, p.source);
      outputs.push({ result: c, wall_ms: p.results.run.cell_wall_ms[c.id] ?? 0 });
    }
  }
  const total = first.results.matrix.cells;
  if (errors.length === 0 && owner.size !== total) {
    const missing = [...Array(total).keys()].filter((i) => !owner.has(i));
    errors.push(`${missing.length} of ${total} cells are missing (cell index ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}): merge the output of every shard`);
  }
  if (errors.length > 0) return { errors };
  return assemble(first.results.matrix, outputs, {
    shards: parts.flatMap((p) => p.results.run.shards),
    jobs: parts.flatMap((p) => p.results.run.jobs),
    wall_ms: parts.reduce((a, p) => a + p.results.run.wall_ms, 0),
  });
}

function csvField(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per cell (RFC 4180); costs in ns, one column per cost category; wall time last. */
export function toCsv(r: CompareResults): string {
  const header = [
    'index', 'id', 'scenario', 'design', 'vendor', 'size', 'page_size', 'seed', 'status', 'outcome', 'expected', 'check',
    'steps_ok', 'steps_total', 'violations', 'virtual_ns', 'measured_ns', 'estimated_ns',
    ...COST_CATEGORIES.map((c) => `${c.id}_ns`), 'estimates', 'skip_reason', 'error', 'wall_ms',
  ];
  const rows = r.cells.map((c) => {
    const ran = c.status === 'ran' ? c : undefined;
    return [
      c.index, c.id, c.scenario, c.design, c.vendor, c.size, c.page_size, c.seed, c.status,
      ran?.outcome ?? null, ran?.expected ?? null, ran?.check ?? null,
      ran?.steps_ok ?? null, ran?.steps_total ?? null, ran?.violations.length ?? null,
      ran?.virtual_ns ?? null, ran?.cost.total_ns ?? null, ran?.cost.estimated_ns ?? null,
      ...COST_CATEGORIES.map((k) => ran?.cost.by_category[k.id] ?? null),
      ran?.cost.estimates.join(' ') ?? null,
      c.status === 'skipped' ? c.skip_reason : null,
      c.status === 'crashed' ? c.error : null,
      Number((r.run.cell_wall_ms[c.id] ?? 0).toFixed(3)),
    ].map(csvField).join(',');
  });
  return `${[header.join(','), ...rows].join('\r\n')}\r\n`;
}

/** Write results.json, results.csv and report.html into `dir`; returns their paths. */
export function writeResults(dir: string, r: CompareResults): string[] {
  mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    ['results.json', `${JSON.stringify(r, null, 1)}\n`],
    ['results.csv', toCsv(r)],
    ['report.html', htmlReport(r)],
  ];
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
