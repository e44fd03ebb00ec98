/**
 * Running a scenario on a fresh platform and reporting it: a terminal table for people, and on
 * request JSON plus the run's trace as ftrace text and Chrome Trace Event JSON (ui.perfetto.dev).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toChromeTrace, toFtraceText, type CostBreakdown } from '@cocosim/core';
import type { PlatformOptions } from '../host.js';
import { DEFAULT_DESIGN, DEFAULT_VENDOR, createTracePlatform } from '../trace/platforms.js';
import { ScenarioContext, type Scenario, type ScenarioOptions, type ScenarioResult } from './scenario.js';

export interface RunOptions extends Partial<ScenarioOptions> {
  /** Bytes of memory the scenario works on. */
  readonly size: number;
  /** Seed and cost overrides; the vendor and design come from `vendor` and `design` (defaults "none", "upstream"). */
  readonly platform?: PlatformOptions;
  /** Directory for result.json, trace.ftrace.txt and trace.perfetto.json. */
  readonly out?: string;
}

export interface ScenarioRun {
  readonly result: ScenarioResult;
  /** The simulator's own wall time, ms. */
  readonly wall_ms: number;
  readonly files: readonly string[];
}

/** The full parameters of a run: the defaults for what `opts` leaves out. */
export function scenarioOptions(opts: RunOptions): ScenarioOptions {
  return {
    size: opts.size,
    page_size: opts.page_size ?? 4096,
    vendor: opts.vendor ?? DEFAULT_VENDOR,
    design: opts.design ?? DEFAULT_DESIGN,
  };
}

export function runScenario(scenario: Scenario, runOpts: RunOptions): ScenarioRun {
  const t0 = performance.now();
  const opts = scenarioOptions(runOpts);
  const platform = createTracePlatform({ vendor: opts.vendor, design: opts.design },
    { ...runOpts.platform, mm: { nr_pages: scenario.nr_pages(opts), ...runOpts.platform?.mm } });
  const ctx = new ScenarioContext(platform, platform.process());
  scenario.run(ctx, opts);
  const records = platform.trace.events();
  const events: Record<string, number> = {};
  for (const r of records) if (r.ph === 'i') events[r.name] = (events[r.name] ?? 0) + 1;
  const result: ScenarioResult = {
    scenario: scenario.name,
    description: scenario.description,
    params: { size: opts.size, page_size: opts.page_size, seed: String(runOpts.platform?.seed ?? 0), vendor: opts.vendor, design: opts.design },
    steps: ctx.steps,
    outcome: ctx.outcome,
    expected: scenario.expect?.(opts) ?? null,
    total_ns: platform.kernel.clock.now(),
    events,
  };
  const wall_ms = performance.now() - t0;
  const files: string[] = [];
  const out = runOpts.out;
  if (out !== undefined) {
    mkdirSync(out, { recursive: true });
    const write = (name: string, text: string) => {
      const path = join(out, name);
      writeFileSync(path, text);
      files.push(path);
    };
    write(`${scenario.name}.result.json`, `${JSON.stringify(result, null, 2)}\n`);
    write(`${scenario.name}.ftrace.txt`, toFtraceText(records));
    write(`${scenario.name}.perfetto.json`, JSON.stringify(toChromeTrace(records)));
  }
  return { result, wall_ms, files };
}

export function formatNs(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)} us`;
  return `${ns.toFixed(0)} ns`;
}

function clip(s: string, n: number): string {
  return s.length <= n ? s.padEnd(n) : `${s.slice(0, n - 1)}~`;
}

function topItems(cost: CostBreakdown, n: number): string {
  return [...cost.items].sort((a, b) => b.ns - a.ns).slice(0, n)
    .map((i) => `${i.name}${i.provenance === 'estimate' ? '*' : ''} ${i.count}x = ${formatNs(i.ns)}`).join(', ');
}

/** The terminal report. `*` marks cost entries that are estimates. */
export function formatRun(run: ScenarioRun): string {
  const { result } = run;
  const lines: string[] = [];
  lines.push(`cocosim ${result.scenario}: ${result.description}`);
  lines.push(`platform: linux 6.18 base, design ${result.params.design}, vendor ${result.params.vendor}; size ${result.params.size} bytes; seed ${result.params.seed}`);
  lines.push('');
  lines.push(` #  ${clip('call', 58)} ${clip('result', 20)} ${clip('Linux', 20)}    time`);
  result.steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(2)}  ${clip(s.call, 58)} ${clip(s.outcome, 20)} ${clip(s.expected, 20)} ${s.ok ? 'ok' : 'XX'} ${formatNs(s.cost.total_ns).padStart(10)}`);
    if (!s.ok || s.cost.total_ns >= result.total_ns / 100) lines.push(`      ${s.why}${s.cost.items.length > 0 ? `; ${topItems(s.cost, 3)}` : ''}`);
  });
  if (result.expected !== null || !/^\d+\/\d+ steps as expected$/.test(result.outcome)) {
    const exp = result.expected;
    lines.push('');
    lines.push(`outcome: ${result.outcome}${exp === null ? '' : `; ${exp.outcome === result.outcome ? 'as' : 'DIFFERS from'} expected "${exp.outcome}" (${exp.source})`}`);
  }
  const ok = result.steps.filter((s) => s.ok).length;
  const estimated = result.steps.reduce((a, s) => a + s.cost.estimated_ns, 0);
  lines.push('');
  lines.push(`${ok}/${result.steps.length} steps as Linux; virtual time ${formatNs(result.total_ns)} (${result.total_ns > 0 ? ((100 * estimated) / result.total_ns).toFixed(0) : 0}% from estimated costs, marked *); simulator wall time ${(run.wall_ms / 1000).toFixed(2)} s`);
  const ev = Object.entries(result.events).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  if (ev !== '') lines.push(`tracepoints: ${ev}`);
  for (const f of run.files) lines.push(`wrote ${f}`);
  return lines.join('\n');
}
