/**
 * The comparison matrix: scenario x size x page size x design x vendor, in a stable order, each
 * cell numbered. A cell that cannot exist is kept in the matrix with the reason it is skipped
 * (a platform rule says the design and vendor do not combine, or the scenario's `applies` says
 * why it does not run there), so that every run, shard and merge lists the same cells.
 *
 * Shard i/n owns the cells whose index is congruent to i-1 modulo n: interleaving spreads each
 * scenario's cells over the shards, so shards take about as long as each other.
 */
import { findScenario, SCENARIOS } from '../scenarios/index.js';
import { PAGE_SIZES, type Scenario, type ScenarioOptions } from '../scenarios/scenario.js';
import { designNames, vendorNames, type PlatformChoice } from '../trace/platforms.js';

/** Why a design cannot run with a vendor, or undefined when it can. */
export type PlatformRule = (choice: PlatformChoice) => string | undefined;

const platformRules: PlatformRule[] = [];

/**
 * Add a rule about which design x vendor pairs exist (a design that only makes sense on one
 * vendor's hardware registers it next to its registration). Rules are consulted in the thread
 * that builds the matrix, before any cell runs. Returns a function removing the rule.
 */
export function registerPlatformRule(rule: PlatformRule): () => void {
  platformRules.push(rule);
  return () => {
    const i = platformRules.indexOf(rule);
    if (i >= 0) platformRules.splice(i, 1);
  };
}

/** Size used for a scenario that does not say: 2 MiB. */
export const FALLBACK_SIZE = 2 * 1024 * 1024;

export interface MatrixSelection {
  /** Scenario names; default: every scenario in the built-in selection (`in_default`). */
  readonly scenarios?: readonly string[];
  readonly designs?: readonly string[];
  readonly vendors?: readonly string[];
  /** Bytes; default: each scenario's `default_size`. */
  readonly sizes?: readonly number[];
  /** Bytes; default [4096]. */
  readonly page_sizes?: readonly number[];
  readonly seed: string;
  /** A cost override file, applied to every cell (recorded in the matrix). */
  readonly costs?: string;
}

/** What the matrix is: part of every result file, equal in every shard of one sweep. */
export interface MatrixSpec {
  readonly scenarios: readonly { readonly name: string; readonly description: string; readonly ref: string | null }[];
  readonly designs: readonly string[];
  readonly vendors: readonly string[];
  /** Sizes asked for, or null: each scenario at its default size. */
  readonly sizes: readonly number[] | null;
  readonly page_sizes: readonly number[];
  readonly seed: string;
  readonly costs: string | null;
  /** Number of cells. */
  readonly cells: number;
}

export interface CellSpec extends ScenarioOptions {
  readonly index: number;
  /** `scenario/design/vendor/size/page_size`, unique in the matrix. */
  readonly id: string;
  readonly scenario: string;
  readonly seed: string;
  /** Why the cell cannot exist; undefined when it runs. */
  readonly skip?: string;
}

export interface Matrix {
  readonly spec: MatrixSpec;
  readonly cells: readonly CellSpec[];
}

/** "4K", "2M", "1G", or bytes. */
export function sizeLabel(n: number): string {
  for (const [unit, m] of [['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) if (n % m === 0) return `${n / m}${unit}`;
  return String(n);
}

export function cellId(c: { scenario: string; design: string; vendor: string; size: number; page_size: number }): string {
  return `${c.scenario}/${c.design}/${c.vendor}/${sizeLabel(c.size)}/${sizeLabel(c.page_size)}`;
}

function unknown(what: string, asked: readonly string[] | undefined, have: readonly string[]): string[] {
  return (asked ?? []).filter((n) => !have.includes(n)).map((n) => `unknown ${what} "${n}" (have: ${have.join(', ')})`);
}

function dedupe<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/** Why the cell cannot exist: platform rules first, then the scenario's own reason. */
function skipReason(s: Scenario, opts: ScenarioOptions): string | undefined {
  for (const rule of platformRules) {
    const why = rule({ design: opts.design, vendor: opts.vendor });
    if (why !== undefined) return why;
  }
  return s.applies?.(opts);
}

/** The matrix for a selection, or the problems with it (unknown names, bad page sizes). */
export function buildMatrix(sel: MatrixSelection): Matrix | { readonly errors: readonly string[] } {
  const allDesigns = designNames();
  const allVendors = vendorNames();
  const errors = [
    ...unknown('scenario', sel.scenarios, SCENARIOS.map((s) => s.name)),
    ...unknown('design', sel.designs, allDesigns),
    ...unknown('vendor', sel.vendors, allVendors),
    ...(sel.page_sizes ?? []).filter((p) => !PAGE_SIZES.includes(p))
      .map((p) => `unsupported page size ${p} (have: ${PAGE_SIZES.map(sizeLabel).join(', ')})`),
  ];
  for (const [what, v] of [['scenarios', sel.scenarios], ['designs', sel.designs], ['vendors', sel.vendors], ['sizes', sel.sizes], ['page sizes', sel.page_sizes]] as const) {
    if (v !== undefined && v.length === 0) errors.push(`no ${what} selected`);
  }
  if (errors.length > 0) return { errors };
  const scenarios = sel.scenarios === undefined
    ? SCENARIOS.filter((s) => s.in_default !== false)
    : dedupe(sel.scenarios).map((n) => findScenario(n)!);
  const designs = sel.designs === undefined ? [...allDesigns] : dedupe(sel.designs);
  const vendors = sel.vendors === undefined ? [...allVendors] : dedupe(sel.vendors);
  const page_sizes = sel.page_sizes === undefined ? [4096] : dedupe(sel.page_sizes);
  const sizes = sel.sizes === undefined ? null : dedupe(sel.sizes);
  const cells: CellSpec[] = [];
  for (const s of scenarios) {
    for (const size of sizes ?? [s.default_size ?? FALLBACK_SIZE]) {
      for (const page_size of page_sizes) {
        for (const design of designs) {
          for (const vendor of vendors) {
            const opts: ScenarioOptions = { size, page_size, design, vendor };
            const skip = skipReason(s, opts);
            const base = { index: cells.length, id: cellId({ scenario: s.name, ...opts }), scenario: s.name, seed: sel.seed, ...opts };
            cells.push(skip === undefined ? base : { ...base, skip });
          }
        }
      }
    }
  }
  return {
    spec: {
      scenarios: scenarios.map((s) => ({ name: s.name, description: s.description, ref: s.ref ?? null })),
      designs, vendors, sizes, page_sizes, seed: sel.seed, costs: sel.costs ?? null, cells: cells.length,
    },
    cells,
  };
}

export interface Shard {
  /** 1-based. */
  readonly i: number;
  readonly n: number;
}

/** "2/4" -> {i: 2, n: 4}; undefined unless 1 <= i <= n. */
export function parseShard(s: string): Shard | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (m === null) return undefined;
  const i = Number(m[1]);
  const n = Number(m[2]);
  return Number.isSafeInteger(n) && i >= 1 && i <= n ? { i, n } : undefined;
}

export function shardLabel(s: Shard): string {
  return `${s.i}/${s.n}`;
}

/** The cells shard `s` owns. */
export function shardCells(cells: readonly CellSpec[], s: Shard): CellSpec[] {
  return cells.filter((c) => c.index % s.n === s.i - 1);
}
