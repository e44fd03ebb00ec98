/**
 * One cell of the comparison: a scenario on a fresh simulated host for one design x vendor and
 * parameters, summed up as plain data (the same in-process and from a worker thread, and the
 * same whatever ran before it: every cell has its own host, seeded with the sweep's seed).
 * The wall time is returned beside the result, never in it, so that results compare equal
 * across runs, jobs and shards.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toChromeTrace, toFtraceText, type CostProvenance } from '@cocosim/core';
import { findScenario } from '../scenarios/index.js';
import { NOT_STATED, ScenarioContext, type ScenarioOptions, type Step } from '../scenarios/scenario.js';
import { createTracePlatform, type PlatformChoice } from '../trace/platforms.js';
import { COST_CATEGORIES, costCategory, type CostCategory } from './categories.js';
import type { CellSpec } from './matrix.js';
import { evaluateRequirements, type RequirementResult, type Violation } from './requirements.js';
import { takeSnapshot, type StateSnapshot } from '../requirements/snapshot.js';

export interface CellCostItem {
  readonly name: string;
  readonly category: CostCategory;
  readonly count: number;
  readonly ns: number;
  readonly provenance: CostProvenance;
}

/** The measured cost of a cell: its steps other than set-up. */
export interface CellCost {
  readonly total_ns: number;
  /** The part of total_ns from entries whose provenance is `estimate`. */
  readonly estimated_ns: number;
  readonly by_category: Readonly<Record<CostCategory, number>>;
  /** Events charged per category (pages zeroed, SPTEs zapped, exits...). */
  readonly counts: Readonly<Record<CostCategory, number>>;
  /** Sorted by name. */
  readonly items: readonly CellCostItem[];
  /** Names of the estimate entries the cost rests on, sorted. */
  readonly estimates: readonly string[];
}

export interface CellStep {
  readonly call: string;
  readonly outcome: string;
  readonly expected: string;
  readonly ok: boolean;
  readonly why: string;
  readonly setup: boolean;
  readonly ns: number;
  readonly estimated_ns: number;
}

/**
 * `ok`: every stated expectation holds (the steps' and the verdict's); `differs`: one does not;
 * `unstated`: nothing states what this platform should do.
 */
export type CellCheck = 'ok' | 'differs' | 'unstated';

interface CellBase {
  readonly index: number;
  readonly id: string;
  readonly scenario: string;
  readonly design: string;
  readonly vendor: string;
  readonly size: number;
  readonly page_size: number;
  readonly seed: string;
}

export interface SkippedCell extends CellBase {
  readonly status: 'skipped';
  readonly skip_reason: string;
}

export interface CrashedCell extends CellBase {
  readonly status: 'crashed';
  /** The simulator's exception (a BUG_ON or a bug of the simulator): `KernelBug: message`. */
  readonly error: string;
  /** Steps completed before the crash. */
  readonly steps: readonly CellStep[];
}

export interface RanCell extends CellBase {
  readonly status: 'ran';
  readonly outcome: string;
  readonly expected: string | null;
  readonly expected_source: string | null;
  readonly check: CellCheck;
  readonly steps_ok: number;
  readonly steps_total: number;
  readonly steps: readonly CellStep[];
  readonly violations: readonly Violation[];
  /** Every registered requirement's verdict: held, violated (with the step), not applicable. */
  readonly requirements: readonly RequirementResult[];
  readonly warnings: readonly { readonly kind: string; readonly message: string }[];
  readonly cost: CellCost;
  /** Virtual time of the whole run with set-up, ns. */
  readonly virtual_ns: number;
  /** Tracepoint counts by name, sorted by name. */
  readonly events: Readonly<Record<string, number>>;
}

export type CellResult = SkippedCell | CrashedCell | RanCell;

export interface CellRunOptions {
  /** Directory for each cell's Perfetto JSON and ftrace text. */
  readonly trace?: string;
  /** Cost override file for every cell's host. */
  readonly costs?: string;
}

export interface CellOutput {
  readonly result: CellResult;
  /** The simulator's own wall time for the cell, ms (not part of the result). */
  readonly wall_ms: number;
}

function base(spec: CellSpec): CellBase {
  const { index, id, scenario, design, vendor, size, page_size, seed } = spec;
  return { index, id, scenario, design, vendor, size, page_size, seed };
}

function zeroByCategory(): Record<CostCategory, number> {
  return Object.fromEntries(COST_CATEGORIES.map((c) => [c.id, 0])) as Record<CostCategory, number>;
}

/** The measured cost: the items of every step that is not set-up, merged by entry. */
export function cellCost(steps: readonly Step[]): CellCost {
  const items = new Map<string, { count: number; ns: number; provenance: CostProvenance }>();
  for (const s of steps) {
    if (s.setup) continue;
    for (const it of s.cost.items) {
      const cur = items.get(it.name);
      if (cur === undefined) items.set(it.name, { count: it.count, ns: it.ns, provenance: it.provenance });
      else {
        cur.count += it.count;
        cur.ns += it.ns;
      }
    }
  }
  const by_category = zeroByCategory();
  const counts = zeroByCategory();
  const list: CellCostItem[] = [];
  let total_ns = 0;
  let estimated_ns = 0;
  for (const name of [...items.keys()].sort()) {
    const it = items.get(name)!;
    const category = costCategory(name);
    list.push({ name, category, ...it });
    by_category[category] += it.ns;
    counts[category] += it.count;
    total_ns += it.ns;
    if (it.provenance === 'estimate') estimated_ns += it.ns;
  }
  const estimates = list.filter((i) => i.provenance === 'estimate').map((i) => i.name);
  return { total_ns, estimated_ns, by_category, counts, items: list, estimates };
}

function cellSteps(steps: readonly Step[]): CellStep[] {
  return steps.map((s) => ({
    call: s.call, outcome: s.outcome, expected: s.expected, ok: s.ok, why: s.why, setup: s.setup,
    ns: s.cost.total_ns, estimated_ns: s.cost.estimated_ns,
  }));
}

/** A file name for the cell: its id with the separators replaced. */
export function cellFileName(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Run one cell (a skipped one returns its skip record at once). */
export function runCell(spec: CellSpec, opts: CellRunOptions = {}): CellOutput {
  const t0 = performance.now();
  const b = base(spec);
  const wall = () => performance.now() - t0;
  if (spec.skip !== undefined) return { result: { ...b, status: 'skipped', skip_reason: spec.skip }, wall_ms: wall() };
  const scenario = findScenario(spec.scenario);
  if (scenario === undefined) {
    return { result: { ...b, status: 'crashed', error: `scenario "${spec.scenario}" is not registered in this process`, steps: [] }, wall_ms: wall() };
  }
  const sopts: ScenarioOptions = { size: spec.size, page_size: spec.page_size, vendor: spec.vendor, design: spec.design };
  const choice: PlatformChoice = { vendor: spec.vendor, design: spec.design };
  let ctx: ScenarioContext | undefined;
  try {
    const platform = createTracePlatform(choice, { seed: spec.seed, costOverrides: opts.costs, mm: { nr_pages: scenario.nr_pages(sopts) } });
    ctx = new ScenarioContext(platform, platform.process());
    const snapshots: StateSnapshot[] = [];
    // The requirement checks look at the state after every call of a confidential-VM scenario.
    ctx.afterStep = (c) => {
      if (c.cvms.length > 0) snapshots.push(takeSnapshot(c));
    };
    scenario.run(ctx, sopts);
    const records = platform.trace.events();
    const counted: Record<string, number> = {};
    for (const r of records) if (r.ph === 'i') counted[r.name] = (counted[r.name] ?? 0) + 1;
    const events = Object.fromEntries(Object.keys(counted).sort().map((k) => [k, counted[k]!]));
    if (opts.trace !== undefined) {
      mkdirSync(opts.trace, { recursive: true });
      const f = cellFileName(spec.id);
      writeFileSync(join(opts.trace, `${f}.perfetto.json`), JSON.stringify(toChromeTrace(records)));
      writeFileSync(join(opts.trace, `${f}.ftrace.txt`), toFtraceText(records));
    }
    const steps = ctx.steps;
    const requirementResults = evaluateRequirements({ scenario: spec.scenario, opts: sopts, platform, steps, snapshots });
    const expectation = scenario.expect?.(sopts);
    const outcome = ctx.outcome;
    const stated = expectation !== undefined || steps.some((s) => !s.setup && s.expected !== NOT_STATED);
    const differs = steps.some((s) => !s.ok) || (expectation !== undefined && expectation.outcome !== outcome);
    const result: RanCell = {
      ...b,
      status: 'ran',
      outcome,
      expected: expectation?.outcome ?? null,
      expected_source: expectation?.source ?? null,
      check: differs ? 'differs' : stated ? 'ok' : 'unstated',
      steps_ok: steps.filter((s) => s.ok).length,
      steps_total: steps.length,
      steps: cellSteps(steps),
      violations: requirementResults.filter((r) => r.status === 'violated').map((r) => ({ requirement: r.requirement, message: r.message! })),
      requirements: requirementResults,
      warnings: platform.kernel.warn.warnings.map((w) => ({ kind: w.kind, message: w.message })),
      cost: cellCost(steps),
      virtual_ns: platform.kernel.clock.now(),
      events,
    };
    return { result, wall_ms: wall() };
  } catch (e) {
    return { result: { ...b, status: 'crashed', error: errorText(e), steps: cellSteps(ctx?.steps ?? []) }, wall_ms: wall() };
  }
}
