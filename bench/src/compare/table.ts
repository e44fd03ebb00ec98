/**
 * The terminal report of a comparison: per scenario (and size and page size), one row per
 * design x vendor with the outcome, whether it is what the sources say, requirement violations,
 * the measured cost split by category, how much of it rests on estimates, and the simulator's
 * wall time; then notes: differences step by step, violations, crashes, skip reasons are in the
 * rows, the sources of the expectations and the estimated cost entries.
 */
import { formatNs } from '../scenarios/run.js';
import { COST_CATEGORIES } from './categories.js';
import type { CellResult } from './cell.js';
import { sizeLabel } from './matrix.js';
import type { CompareResults } from './results.js';

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}~`;
}

function ns(n: number): string {
  return n === 0 ? '-' : formatNs(n);
}

export function formatWall(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

/** Cells grouped by scenario, size and page size, in matrix order. */
export function groupCells(cells: readonly CellResult[]): CellResult[][] {
  const groups = new Map<string, CellResult[]>();
  for (const c of cells) {
    const key = `${c.scenario}\0${c.size}\0${c.page_size}`;
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = []));
    g.push(c);
  }
  return [...groups.values()];
}

const CHECK_LABEL = { ok: 'ok', differs: 'DIFFERS', unstated: '-' } as const;

function row(c: CellResult, wall: number | undefined): string[] {
  const platform = `${c.design}/${c.vendor}`;
  const w = wall === undefined ? '' : formatWall(wall);
  if (c.status === 'skipped') return [platform, `skipped: ${c.skip_reason}`];
  if (c.status === 'crashed') return [platform, 'CRASHED (see below)', 'BUG', '', '', ...COST_CATEGORIES.map(() => ''), '', w];
  const est = c.cost.total_ns > 0 ? `${Math.round((100 * c.cost.estimated_ns) / c.cost.total_ns)}%` : '-';
  return [
    platform, clip(c.outcome, 34), CHECK_LABEL[c.check], c.violations.length === 0 ? '-' : String(c.violations.length),
    ns(c.cost.total_ns), ...COST_CATEGORIES.map((k) => ns(c.cost.by_category[k.id])), est, w,
  ];
}

const HEADER = ['platform', 'outcome', 'check', 'viol', 'measured', ...COST_CATEGORIES.map((c) => c.short), 'est', 'wall'];
/** Right-aligned columns: the numbers. */
const RIGHT = new Set(HEADER.map((_, i) => i).filter((i) => i >= 3));

function layout(rows: string[][]): string[] {
  const full = rows.filter((r) => r.length === HEADER.length);
  const widths = HEADER.map((_, i) => Math.max(...(i === 0 ? rows : full).map((r) => r[i]!.length)));
  return rows.map((r) => {
    if (r.length !== HEADER.length) return `  ${r[0]!.padEnd(widths[0]!)}  ${r.slice(1).join('  ')}`.trimEnd();
    return `  ${r.map((s, i) => (RIGHT.has(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  });
}

/** One scenario's table and its notes. */
export function formatGroup(r: CompareResults, group: readonly CellResult[]): string {
  const first = group[0]!;
  const info = r.matrix.scenarios.find((s) => s.name === first.scenario);
  const lines: string[] = [];
  lines.push(`${info?.ref ? `${info.ref} ` : ''}${first.scenario}: ${info?.description ?? ''}`.trimEnd());
  lines.push(`  size ${sizeLabel(first.size)}, page size ${sizeLabel(first.page_size)}, seed ${first.seed}; cost = modeled time of the measured steps`);
  lines.push('');
  lines.push(...layout([HEADER, ...group.map((c) => row(c, r.run.cell_wall_ms[c.id]))]));
  const notes: string[] = [];
  const sources = new Map<string, string[]>();
  const estimates = new Set<string>();
  for (const c of group) {
    const platform = `${c.design}/${c.vendor}`;
    if (c.status === 'crashed') {
      notes.push(`${platform} crashed: ${c.error}`);
      continue;
    }
    if (c.status !== 'ran') continue;
    if (c.expected_source !== null) {
      const key = `"${c.expected}": ${c.expected_source}`;
      sources.set(key, [...(sources.get(key) ?? []), platform]);
    }
    if (c.check === 'differs') {
      if (c.expected !== null && c.expected !== c.outcome) notes.push(`${platform}: outcome "${c.outcome}", expected "${c.expected}"`);
      c.steps.forEach((s, i) => {
        if (!s.ok) notes.push(`${platform}: step ${i + 1} ${s.call} gave ${s.outcome}, expected ${s.expected} (${s.why})`);
      });
    }
    for (const v of c.violations) notes.push(`${platform} violates ${v.requirement}: ${v.message}`);
    for (const w of c.warnings) notes.push(`${platform}: ${w.kind}: ${w.message}`);
    for (const e of c.cost.estimates) estimates.add(e);
  }
  for (const [src, platforms] of sources) notes.push(`expected on ${platforms.join(', ')}: ${src}`);
  if (estimates.size > 0) notes.push(`estimated cost entries used: ${[...estimates].sort().join(', ')}`);
  if (notes.length > 0) {
    lines.push('');
    for (const n of notes) lines.push(`  ${n}`);
  }
  return lines.join('\n');
}

export function formatSummary(r: CompareResults): string {
  const s = r.summary;
  const parts = [`${s.ok} as expected`, `${s.differs} differ`, `${s.unstated} without expectation`, `${s.skipped} skipped`];
  if (s.crashed > 0) parts.push(`${s.crashed} crashed`);
  if (s.with_violations > 0) parts.push(`${s.with_violations} violate requirements`);
  return `${s.cells} cells: ${parts.join(', ')}; simulator wall time ${formatWall(r.run.wall_ms)}`;
}

/** The whole terminal report. */
export function formatResults(r: CompareResults): string {
  return [...groupCells(r.cells).map((g) => formatGroup(r, g)), formatSummary(r)].join('\n\n');
}
