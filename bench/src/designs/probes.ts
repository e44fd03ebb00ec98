/**
 * The design facts of designs.md §1, generated: each design runs the catalog scenarios that
 * answer one column of the comparison table (S1/S2 how private pages are hidden, S3 and S22
 * kernel access, S4 GUP, S14 conversion and its cost drivers, S21 content, S6 huge pages, S9
 * and S11 swap and migration, S7 and S8 device assignment) on a reference vendor, and the
 * requirement checks of every one of those runs are summed up per requirement.
 */
import { DESIGNS, type Design } from '@cocosim/kvm';
import { runCell, type RanCell } from '../compare/cell.js';
import { cellId } from '../compare/matrix.js';
import { COST_CATEGORIES } from '../compare/categories.js';
import { findScenario } from '../scenarios/index.js';
import { cvmPlatform } from '../scenarios/cvm_scenario.js';
import type { RequirementStatus } from '../compare/requirements.js';
import { requirements } from '../compare/requirements.js';

/** A column of designs.md §1 and the scenarios whose verdicts fill it. */
export const COLUMNS = [
  { key: 'hidden', title: 'how P is hidden from host user space', scenarios: ['s01-vmm-store-private', 's02-vmm-load-private'] },
  { key: 'kernel', title: 'kernel access to P', scenarios: ['s03-vmm-uaccess-private', 's22-kernel-direct-map'] },
  { key: 'gup', title: 'GUP on P', scenarios: ['s04-gup-private'] },
  { key: 'conversion', title: 'conversion and its cost drivers', scenarios: ['s14-ping-pong'] },
  { key: 'content', title: 'content after private->shared', scenarios: ['s21-read-after-share'] },
  { key: 'huge', title: 'huge pages', scenarios: ['s06-split-huge'] },
  { key: 'mobility', title: 'swap / migration', scenarios: ['s09-reclaim-private', 's11-compaction-private'] },
  { key: 'vfio', title: 'VFIO / device assignment', scenarios: ['s07-dma-private', 's08-convert-pinned'] },
] as const;

export type ColumnKey = (typeof COLUMNS)[number]['key'];

/** The vendors a design is probed on, first that can run it: software protection first. */
const REFERENCE_VENDORS = ['sw_protected', 'tdx', 'sev', 'mktme', 'cca', 'pkvm'];

export interface ScenarioFact {
  readonly scenario: string;
  readonly verdict: string;
  /** The measured cost of the run and its largest categories (`zap 40%, firmware 30%`). */
  readonly cost_ns: number;
  readonly cost_drivers: string;
}

export interface RequirementFact {
  readonly requirement: string;
  readonly status: RequirementStatus;
  /** `s07-dma-private: after step 5 (...): ...` for a violation. */
  readonly where?: string;
}

export interface DesignFacts {
  readonly design: string;
  readonly title: string;
  readonly rows: readonly string[];
  readonly uapi: readonly string[];
  /** The vendor the probes ran on, or null when no vendor can run the design. */
  readonly vendor: string | null;
  readonly columns: Readonly<Record<ColumnKey, readonly ScenarioFact[]>>;
  readonly requirements: readonly RequirementFact[];
}

function referenceVendor(design: Design): string | null {
  for (const v of REFERENCE_VENDORS) if (typeof cvmPlatform({ design: design.name, vendor: v, size: 65536, page_size: 4096 }) !== 'string') return v;
  return null;
}

function drivers(c: RanCell): string {
  const total = c.cost.total_ns;
  if (total === 0) return '-';
  return COST_CATEGORIES.map((k) => [k.short, c.cost.by_category[k.id]] as const)
    .filter(([, ns]) => ns / total >= 0.1)
    .sort((a, b) => b[1] - a[1])
    .map(([label, ns]) => `${label} ${Math.round((100 * ns) / total)}%`)
    .join(', ');
}

function run(design: string, vendor: string, scenario: string, seed: string): RanCell | string {
  const s = findScenario(scenario);
  if (s === undefined) return `scenario ${scenario} is not registered`;
  const opts = { design, vendor, size: s.default_size ?? 65536, page_size: 4096 };
  const skip = s.applies?.(opts);
  if (skip !== undefined) return `skipped: ${skip}`;
  const r = runCell({ ...opts, index: 0, id: cellId({ scenario, ...opts }), scenario, seed }).result;
  if (r.status === 'crashed') return `crashed: ${r.error}`;
  if (r.status === 'skipped') return `skipped: ${r.skip_reason}`;
  return r;
}

/** Probe one design: every column's scenarios on its reference vendor, requirements summed up. */
export function probeDesign(design: Design, seed = '0'): DesignFacts {
  const vendor = referenceVendor(design);
  const columns = {} as Record<ColumnKey, ScenarioFact[]>;
  const worst = new Map<string, RequirementFact>();
  for (const r of requirements()) worst.set(r.id, { requirement: r.id, status: 'not applicable' });
  for (const col of COLUMNS) {
    columns[col.key] = [];
    for (const scenario of col.scenarios) {
      if (vendor === null) {
        columns[col.key].push({ scenario, verdict: 'no vendor can run this design', cost_ns: 0, cost_drivers: '-' });
        continue;
      }
      const r = run(design.name, vendor, scenario, seed);
      if (typeof r === 'string') {
        columns[col.key].push({ scenario, verdict: r, cost_ns: 0, cost_drivers: '-' });
        continue;
      }
      columns[col.key].push({ scenario, verdict: r.outcome, cost_ns: r.cost.total_ns, cost_drivers: drivers(r) });
      for (const q of r.requirements) {
        const prev = worst.get(q.requirement)!;
        if (prev.status === 'violated') continue;
        if (q.status === 'violated') worst.set(q.requirement, { requirement: q.requirement, status: 'violated', where: `${scenario}: ${q.message}` });
        else if (q.status === 'held') worst.set(q.requirement, { requirement: q.requirement, status: 'held' });
      }
    }
  }
  return {
    design: design.name, title: design.title, rows: design.rows, uapi: Object.keys(design.uapi), vendor,
    columns, requirements: [...worst.values()],
  };
}

/** Every design of DESIGNS (or those named), in designs.md order. */
export function probeDesigns(names?: readonly string[], seed = '0'): DesignFacts[] {
  return [...DESIGNS.values()].filter((d) => names === undefined || names.includes(d.name)).map((d) => probeDesign(d, seed));
}
