/**
 * The offline HTML report: one file with its CSS inline and its charts as inline SVG generated
 * here, no script, no font, no image, no link to anything outside the file, so that it reads the
 * same from file://, a CI artifact or an air-gapped machine.
 *
 * Layout: the run's matrix and summary; an overview table (scenario rows, design/vendor columns,
 * each cell's outcome coloured by its check); then per scenario the table of the terminal report,
 * a stacked bar chart of the measured cost of each platform by category, the notes, and each
 * cell's steps in a <details>.
 */
import { formatNs } from '../scenarios/run.js';
import { COST_CATEGORIES, type CostCategory } from './categories.js';
import type { CellResult, RanCell } from './cell.js';
import { sizeLabel } from './matrix.js';
import type { CompareResults } from './results.js';
import { formatSummary, formatWall, groupCells } from './table.js';

const COLORS: Readonly<Record<CostCategory, string>> = {
  firmware: '#7b3fa0',
  zap: '#d9822b',
  tlb: '#c0392b',
  zero: '#2e78b7',
  exit: '#2b9a5a',
  other: '#8a939b',
};

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #1d232a; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d4d8dd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
table.cells { font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { background: #e3f4e8; } .differs { background: #fbe0dd; } .unstated { background: #f3f3f3; }
.skipped { background: #fafafa; color: #777; font-style: italic; } .crashed { background: #f2b8b0; font-weight: 600; }
.legend span { display: inline-block; margin-right: 1.2em; } .legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px; vertical-align: -1px; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
.notes li { margin: .15em 0; } details { margin: .3em 0; } summary { cursor: pointer; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #1d232a; }
.meta { color: #555; }
`;

function platform(c: CellResult): string {
  return `${c.design}/${c.vendor}`;
}

function cls(c: CellResult): string {
  return c.status === 'ran' ? c.check : c.status;
}

function cellText(c: CellResult): string {
  if (c.status === 'skipped') return `skipped: ${c.skip_reason}`;
  if (c.status === 'crashed') return `crashed: ${c.error}`;
  return c.outcome;
}

function groupTitle(r: CompareResults, g: readonly CellResult[]): string {
  const c = g[0]!;
  const info = r.matrix.scenarios.find((s) => s.name === c.scenario);
  return `${info?.ref ? `${info.ref} ` : ''}${c.scenario} (${sizeLabel(c.size)}, ${sizeLabel(c.page_size)} pages)`;
}

function overview(r: CompareResults, groups: readonly (readonly CellResult[])[]): string {
  const platforms = [...new Set(r.cells.map(platform))];
  const head = `<tr><th>scenario</th>${platforms.map((p) => `<th>${esc(p)}</th>`).join('')}</tr>`;
  const rows = groups.map((g, gi) => {
    const by = new Map(g.map((c) => [platform(c), c]));
    const tds = platforms.map((p) => {
      const c = by.get(p);
      if (c === undefined) return '<td></td>';
      const text = cellText(c);
      const shown = text.length > 40 ? `${text.slice(0, 39)}…` : text;
      return `<td class="${cls(c)}" title="${esc(text)}">${esc(shown)}</td>`;
    }).join('');
    return `<tr><th><a href="#g${gi}">${esc(groupTitle(r, g))}</a></th>${tds}</tr>`;
  });
  return `<table id="overview" class="overview">${head}${rows.join('')}</table>`;
}

function cellsTable(r: CompareResults, g: readonly CellResult[]): string {
  const head = `<tr><th>platform</th><th>outcome</th><th>expected</th><th>check</th><th>violations</th><th>measured cost</th>${COST_CATEGORIES.map((k) => `<th>${esc(k.label)}</th>`).join('')}<th>estimated</th><th>wall</th></tr>`;
  const span = 8 + COST_CATEGORIES.length;
  const rows = g.map((c) => {
    const wall = r.run.cell_wall_ms[c.id];
    if (c.status !== 'ran') return `<tr class="${cls(c)}"><td>${esc(platform(c))}</td><td colspan="${span}">${esc(cellText(c))}</td></tr>`;
    const est = c.cost.total_ns > 0 ? `${Math.round((100 * c.cost.estimated_ns) / c.cost.total_ns)}%` : '-';
    return `<tr class="${cls(c)}"><td>${esc(platform(c))}</td><td>${esc(c.outcome)}</td><td>${esc(c.expected ?? '-')}</td><td>${esc(c.check)}</td>`
      + `<td class="num">${c.violations.length}</td><td class="num">${esc(formatNs(c.cost.total_ns))}</td>`
      + COST_CATEGORIES.map((k) => `<td class="num" title="${c.cost.counts[k.id]} events">${c.cost.by_category[k.id] === 0 ? '-' : esc(formatNs(c.cost.by_category[k.id]))}</td>`).join('')
      + `<td class="num">${est}</td><td class="num">${wall === undefined ? '' : esc(formatWall(wall))}</td></tr>`;
  });
  return `<table class="cells">${head}${rows.join('')}</table>`;
}

/** Horizontal stacked bars: each ran cell's measured cost by category, on one scale per scenario. */
export function costChart(title: string, cells: readonly RanCell[]): string {
  const labelW = 210;
  const plotW = 560;
  const barH = 18;
  const gap = 8;
  const top = 24;
  const height = top + cells.length * (barH + gap) + 22;
  const width = labelW + plotW + 90;
  const max = Math.max(0, ...cells.map((c) => c.cost.total_ns));
  const parts: string[] = [];
  parts.push(`<svg class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(`measured cost by category: ${title}`)}">`);
  parts.push(`<title>${esc(`measured cost by category: ${title}`)}</title>`);
  const axisY = top + cells.length * (barH + gap);
  for (const f of max === 0 ? [] : [0, 0.25, 0.5, 0.75, 1]) {
    const x = labelW + f * plotW;
    parts.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${axisY}" stroke="#d4d8dd"/>`);
    parts.push(`<text x="${x}" y="${axisY + 15}" text-anchor="middle">${esc(formatNs(f * max))}</text>`);
  }
  cells.forEach((c, i) => {
    const y = top + i * (barH + gap);
    parts.push(`<text x="${labelW - 8}" y="${y + barH - 5}" text-anchor="end">${esc(platform(c))}</text>`);
    let x = labelW;
    for (const k of COST_CATEGORIES) {
      const v = c.cost.by_category[k.id];
      if (v === 0 || max === 0) continue;
      const w = (v / max) * plotW;
      parts.push(`<rect class="bar" data-category="${k.id}" x="${x.toFixed(2)}" y="${y}" width="${Math.max(w, 0.5).toFixed(2)}" height="${barH}" fill="${COLORS[k.id]}"><title>${esc(`${platform(c)}: ${k.label} ${formatNs(v)} (${c.cost.counts[k.id]} events)`)}</title></rect>`);
      x += w;
    }
    parts.push(`<text x="${(x + 6).toFixed(2)}" y="${y + barH - 5}">${esc(c.cost.total_ns === 0 ? 'no cost' : formatNs(c.cost.total_ns))}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

function legend(): string {
  return `<div class="legend">${COST_CATEGORIES.map((k) => `<span><i style="background:${COLORS[k.id]}"></i>${esc(k.label)}</span>`).join('')}</div>`;
}

function notes(g: readonly CellResult[]): string {
  const items: string[] = [];
  const estimates = new Set<string>();
  for (const c of g) {
    if (c.status === 'crashed') items.push(`<b>${esc(platform(c))}</b> crashed: <code>${esc(c.error)}</code>`);
    if (c.status !== 'ran') continue;
    if (c.expected_source !== null) items.push(`<b>${esc(platform(c))}</b> expected “${esc(c.expected!)}”: ${esc(c.expected_source)}`);
    c.steps.forEach((s, i) => {
      if (!s.ok) items.push(`<b>${esc(platform(c))}</b> step ${i + 1} <code>${esc(s.call)}</code> gave <code>${esc(s.outcome)}</code>, expected <code>${esc(s.expected)}</code> (${esc(s.why)})`);
    });
    for (const v of c.violations) items.push(`<b>${esc(platform(c))}</b> violates ${esc(v.requirement)}: ${esc(v.message)}`);
    for (const w of c.warnings) items.push(`<b>${esc(platform(c))}</b> ${esc(w.kind)}: ${esc(w.message)}`);
    for (const e of c.cost.estimates) estimates.add(e);
  }
  if (estimates.size > 0) items.push(`estimated cost entries used: <code>${[...estimates].sort().map(esc).join(', ')}</code>`);
  return items.length === 0 ? '' : `<ul class="notes">${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;
}

function steps(c: CellResult): string {
  if (c.status === 'skipped' || c.steps.length === 0) return '';
  const rows = c.steps.map((s, i) => `<tr class="${s.ok ? '' : 'differs'}"><td class="num">${i + 1}</td><td class="mono">${esc(s.call)}</td><td class="mono">${esc(s.outcome)}</td><td class="mono">${esc(s.expected)}</td><td>${s.ok ? 'ok' : 'DIFFERS'}${s.setup ? ' (set-up)' : ''}</td><td class="num">${esc(formatNs(s.ns))}</td><td>${esc(s.why)}</td></tr>`);
  return `<details><summary>${esc(platform(c))}: ${c.steps.length} steps</summary><table class="steps"><tr><th>#</th><th>call</th><th>result</th><th>expected</th><th></th><th>cost</th><th>why</th></tr>${rows.join('')}</table></details>`;
}

/** Up to this many cells, the report lists every cell's steps; beyond, only those of cells that differ or crashed. */
export const STEPS_FOR_ALL_UP_TO = 200;

/** The report for `r`, a complete HTML document. */
export function htmlReport(r: CompareResults): string {
  const groups = groupCells(r.cells);
  const allSteps = r.cells.length <= STEPS_FOR_ALL_UP_TO;
  const shownSteps = (c: CellResult) => (allSteps || c.status === 'crashed' || (c.status === 'ran' && c.check === 'differs') ? steps(c) : '');
  const m = r.matrix;
  const sections = groups.map((g, gi) => {
    const title = groupTitle(r, g);
    const info = m.scenarios.find((s) => s.name === g[0]!.scenario);
    const ran = g.filter((c): c is RanCell => c.status === 'ran');
    const chart = ran.length === 0 ? '<p class="meta">no cell of this scenario ran: nothing to chart</p>' : `${costChart(title, ran)}${legend()}`;
    return `<section class="scenario" id="g${gi}"><h2>${esc(title)}</h2><p>${esc(info?.description ?? '')}</p>${cellsTable(r, g)}${chart}${notes(g)}${g.map(shownSteps).join('')}</section>`;
  });
  const sizes = m.sizes === null ? 'each scenario at its default size' : m.sizes.map(sizeLabel).join(', ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>cocosim compare</title><style>${CSS}</style></head>
<body>
<h1>cocosim compare</h1>
<p class="meta">Linux 6.18 base; designs ${esc(m.designs.join(', '))}; vendors ${esc(m.vendors.join(', '))}; ${esc(sizes)}; page sizes ${esc(m.page_sizes.map(sizeLabel).join(', '))}; seed ${esc(m.seed)}${m.costs === null ? '' : `; cost overrides ${esc(m.costs)}`}.</p>
<p id="summary">${esc(formatSummary(r))}.</p>
<p class="meta">Cost is the modeled (virtual) time of each scenario's measured steps, split by cost entry category; “estimated” is the share resting on cost entries whose provenance is an estimate. Wall is the simulator's own time.</p>
${allSteps ? '' : `<p class="meta">Steps are listed for the cells that differ or crashed; results.json has every cell's steps.</p>`}
<h2>Overview</h2>
${overview(r, groups)}
${sections.join('\n')}
<p class="meta">results digest <code>${esc(r.digest)}</code>; shards ${esc(r.run.shards.join(', '))}; jobs ${esc(r.run.jobs.join(', '))}.</p>
</body></html>
`;
}
