/**
 * The cost model: every simulated operation charges named costs to the virtual clock, and a
 * result can say what it cost, item by item, and which figures that number rests on.
 *
 * A cost entry is a value in ns **per event** (one 4 KiB page zeroed, one remote CPU shot down,
 * one SPTE zapped: the entry's description says what one event is) with a provenance tag:
 * - `published`: a measured figure from a paper, commit or mailing-list post (`source` cites it);
 * - `derived`: computed from published figures (`source` shows the arithmetic);
 * - `estimate`: nobody measured it; `source` gives the reasoning. Results report how much of
 *   their time is estimated (`estimated_ns`), so that nobody mistakes a guess for a measurement.
 *
 * The defaults are in cost_table.ts; vendor packages add their own entries with define().
 *
 * Hot paths charge by number: costId(name) gives an entry name a number once per process (the
 * same in every CostModel), and chargeId(id, count) is charge(name, count) without the name
 * lookup. A module keeps the ids of the entries it charges in constants.
 *
 * Override file (loadCostOverrides / applyCostOverrides), JSON:
 *
 *     {
 *       "description": "optional free text",
 *       "entries": {
 *         "tlb_shootdown_ipi": 1200,
 *         "page_zero_4k": { "value": 250, "source": "perf bench mem on our Genoa box", "provenance": "published" }
 *       }
 *     }
 *
 * - Each value is ns per event, a finite number >= 0. The short form (a bare number) and an
 *   object without "provenance" make the entry an `estimate`: a number somebody typed in is not
 *   a published figure unless they say so. "source" defaults to `override from <file>`.
 * - Only entries that are already defined can be overridden (load the file after the vendor
 *   packages have defined theirs). A misspelt name is an error, with the nearest known name
 *   suggested, never a silently ignored line.
 * - The whole file is checked before anything changes: an invalid file changes nothing, and the
 *   CostOverrideError lists every problem, each naming the file and the entry.
 */
import { readFileSync } from 'node:fs';
import { KernelBug } from './bug.js';
import { VirtualClock } from './clock.js';
import { DEFAULT_COST_ENTRIES } from './cost_table.js';

export type CostProvenance = 'published' | 'derived' | 'estimate';

export const COST_PROVENANCES: readonly CostProvenance[] = ['published', 'derived', 'estimate'];

export interface CostEntry {
  /** snake_case, unique in a model (`tlb_shootdown_ipi`). */
  readonly name: string;
  /** Always ns per event; the field exists so that a report or a file says it. */
  readonly unit: 'ns';
  /** ns per event, finite and >= 0. */
  readonly value: number;
  readonly provenance: CostProvenance;
  /** Citation for published/derived figures, the reasoning for estimates. */
  readonly source: string;
  /** What one event is. */
  readonly description: string;
}

/** One line of a breakdown: `count` events of entry `name` cost `ns`. */
export interface CostItem {
  readonly name: string;
  readonly count: number;
  readonly ns: number;
  readonly provenance: CostProvenance;
}

/** What one operation cost. A plain object: results carry it, JSON.stringify writes it. */
export interface CostBreakdown {
  readonly op: string;
  /** Sum of the items' ns (time advanced by the charges made while the breakdown was open). */
  readonly total_ns: number;
  /** Sorted by name. */
  readonly items: readonly CostItem[];
  /** Sum of the items whose provenance is `estimate`. */
  readonly estimated_ns: number;
  /** Names of the entries this result depends on (the items' names, sorted). */
  readonly depends_on: readonly string[];
}

/** A bad cost override file or object: a user configuration error, not a simulator bug. */
export class CostOverrideError extends Error {
  override readonly name = 'CostOverrideError';

  constructor(
    /** The file path (or label) given to loadCostOverrides / applyCostOverrides. */
    readonly sourceName: string,
    /** One message per problem, each starting with `cost override file <sourceName>: `. */
    readonly problems: readonly string[],
  ) {
    super(problems.join('\n'));
  }
}

interface OpenItem {
  count: number;
  ns: number;
  provenance: CostProvenance;
}

interface Frame {
  readonly op: string;
  readonly items: Map<string, OpenItem>;
}

const NAME_RE = /^[a-z][a-z0-9_]*$/;

/** Entry names by number and numbers by name, for every CostModel of the process. */
const ID_OF = new Map<string, number>();
const NAME_OF: string[] = [];

/**
 * The number of cost entry `name` for chargeId(): the same in every CostModel, whether or not a
 * model defines the entry (charging an undefined one is the same simulator bug as with charge()).
 */
export function costId(name: string): number {
  let id = ID_OF.get(name);
  if (id === undefined) {
    id = NAME_OF.length;
    ID_OF.set(name, id);
    NAME_OF.push(name);
  }
  return id;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isNsValue(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function isProvenance(v: unknown): v is CostProvenance {
  return typeof v === 'string' && (COST_PROVENANCES as readonly string[]).includes(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("dwon"/"down"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name closest to `name`, if any is close enough to be a likely typo. */
function nearestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of [...known].sort(byName)) {
    const d = editDistance(name, k);
    if (d < bestD && d <= Math.max(2, Math.floor(Math.max(name.length, k.length) / 3))) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

/**
 * The cost table and the virtual clock it charges. One per simulated host.
 */
export class CostModel {
  readonly clock: VirtualClock;
  private readonly table = new Map<string, CostEntry>();
  /** The table by costId(); a hole for the ids this model does not define. */
  private readonly byId: (CostEntry | undefined)[] = [];
  private readonly open: Frame[] = [];

  /**
   * @param opts.clock the clock to charge (default: a new one at 0)
   * @param opts.entries the initial table (default: DEFAULT_COST_ENTRIES)
   */
  constructor(opts: { clock?: VirtualClock; entries?: Iterable<CostEntry> } = {}) {
    this.clock = opts.clock ?? new VirtualClock();
    for (const e of opts.entries ?? DEFAULT_COST_ENTRIES) this.define(e);
  }

  /**
   * Add an entry. Vendor packages call this for their own costs (SEAMCALLs, RMPUPDATE...).
   * Defining a name twice, or an entry that breaks the CostEntry rules, is a simulator bug.
   */
  define(entry: CostEntry): void {
    const { name } = entry;
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new KernelBug(`cost entry name ${JSON.stringify(name)} is not snake_case`);
    }
    if (this.table.has(name)) throw new KernelBug(`cost entry "${name}" is already defined`);
    if (entry.unit !== 'ns') throw new KernelBug(`cost entry "${name}": unit must be 'ns'`);
    if (!isNsValue(entry.value)) {
      throw new KernelBug(`cost entry "${name}": value must be a finite number >= 0, got ${String(entry.value)}`);
    }
    if (!isProvenance(entry.provenance)) {
      throw new KernelBug(`cost entry "${name}": unknown provenance ${JSON.stringify(entry.provenance)}`);
    }
    if (typeof entry.source !== 'string' || entry.source === '') {
      throw new KernelBug(`cost entry "${name}": needs a source (a citation, or the reasoning for an estimate)`);
    }
    if (typeof entry.description !== 'string') throw new KernelBug(`cost entry "${name}": needs a description`);
    this.set(Object.freeze({ ...entry }));
  }

  /** Put a checked, frozen entry in the table. */
  private set(entry: CostEntry): void {
    this.table.set(entry.name, entry);
    const id = costId(entry.name);
    while (this.byId.length <= id) this.byId.push(undefined);
    this.byId[id] = entry;
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  get(name: string): CostEntry | undefined {
    return this.table.get(name);
  }

  /** Every entry, sorted by name (for reports). */
  entries(): CostEntry[] {
    return [...this.table.values()].sort((a, b) => byName(a.name, b.name));
  }

  /**
   * Charge `count` events of entry `name`: advance the clock by value * count and account the
   * charge in every open breakdown. Returns the ns charged. A count of 0 charges nothing and is
   * not listed. An unknown name is a simulator bug (KernelBug); a negative or non-finite count is
   * a RangeError.
   */
  charge(name: string, count = 1): number {
    const id = ID_OF.get(name);
    return this.chargeId(id === undefined ? costId(name) : id, count);
  }

  /** charge() of the entry numbered `id` by costId(). */
  chargeId(id: number, count = 1): number {
    const e = this.byId[id];
    if (e === undefined) return this.unknown(NAME_OF[id] ?? String(id));
    if (typeof count !== 'number' || !(count >= 0 && count < Infinity)) {
      throw new RangeError(`charge("${e.name}", ${String(count)}): count must be a finite number >= 0`);
    }
    if (count === 0) return 0;
    const ns = e.value * count;
    this.clock.advance(ns);
    if (this.open.length !== 0) this.account(e, count, ns);
    return ns;
  }

  private unknown(name: string): never {
    const near = nearestName(name, this.table.keys());
    throw new KernelBug(`charge of unknown cost entry "${name}"${near ? ` (did you mean "${near}"?)` : ''}`);
  }

  /** Count a charge in every open breakdown. */
  private account(e: CostEntry, count: number, ns: number): void {
    const name = e.name;
    for (const f of this.open) {
      const it = f.items.get(name);
      if (it === undefined) {
        f.items.set(name, { count, ns, provenance: e.provenance });
      } else {
        it.count += count;
        it.ns += ns;
        it.provenance = e.provenance;
      }
    }
  }

  /** Open a breakdown for `op`. Breakdowns nest: a charge counts in every open one. */
  begin(op: string): void {
    this.open.push({ op, items: new Map() });
  }

  /**
   * Close the innermost breakdown and return it. `op`, when given, must name it (a check that
   * begin/end pair up); end() with nothing open is a simulator bug.
   */
  end(op?: string): CostBreakdown {
    const f = this.open.at(-1);
    if (f === undefined) throw new KernelBug(`CostModel.end(${op ?? ''}) with no open breakdown`);
    if (op !== undefined && op !== f.op) {
      throw new KernelBug(`CostModel.end("${op}") but the innermost open breakdown is "${f.op}"`);
    }
    this.open.pop();
    const names = [...f.items.keys()].sort(byName);
    const items: CostItem[] = [];
    let total_ns = 0;
    let estimated_ns = 0;
    for (const name of names) {
      const it = f.items.get(name)!;
      items.push({ name, count: it.count, ns: it.ns, provenance: it.provenance });
      total_ns += it.ns;
      if (it.provenance === 'estimate') estimated_ns += it.ns;
    }
    return { op: f.op, total_ns, items, estimated_ns, depends_on: names };
  }

  /**
   * Run fn inside a breakdown for `op`. If fn throws, the breakdown (and any that fn opened and
   * left open) is dropped and the exception propagates; the charges made stay on the clock.
   */
  measure<T>(op: string, fn: () => T): { result: T; cost: CostBreakdown } {
    const depth = this.open.length;
    this.begin(op);
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.open.length = depth;
      throw err;
    }
    return { result, cost: this.end(op) };
  }

  /** Number of open breakdowns. */
  get depth(): number {
    return this.open.length;
  }

  /**
   * Apply an override object (the parsed form of an override file; see the top of this file).
   * `sourceName` is the file path or a label; every error message names it. All or nothing:
   * on any problem, throws CostOverrideError and changes nothing.
   */
  applyCostOverrides(obj: unknown, sourceName: string): void {
    const where = `cost override file ${sourceName}`;
    const problems: string[] = [];
    const updates: CostEntry[] = [];
    if (!isPlainObject(obj)) {
      throw new CostOverrideError(sourceName, [`${where}: expected a JSON object { "entries": { ... } }, got ${describe(obj)}`]);
    }
    for (const key of Object.keys(obj)) {
      if (key !== 'entries' && key !== 'description') {
        problems.push(`${where}: unknown top-level key ${JSON.stringify(key)} (expected "entries", optional "description")`);
      }
    }
    if (obj.description !== undefined && typeof obj.description !== 'string') {
      problems.push(`${where}: "description" must be a string, got ${describe(obj.description)}`);
    }
    const entries = obj.entries;
    if (!isPlainObject(entries)) {
      problems.push(`${where}: "entries" must be an object mapping cost entry names to values, got ${describe(entries)}`);
    } else {
      for (const [name, spec] of Object.entries(entries)) {
        const err = (msg: string) => problems.push(`${where}: cost entry "${name}": ${msg}`);
        const cur = this.table.get(name);
        if (cur === undefined) {
          const near = nearestName(name, this.table.keys());
          problems.push(`${where}: unknown cost entry "${name}"${near ? ` (did you mean "${near}"?)` : ''}`);
          continue;
        }
        let value: unknown;
        let source: unknown;
        let provenance: unknown = 'estimate';
        if (isPlainObject(spec)) {
          const bad = Object.keys(spec).filter((k) => k !== 'value' && k !== 'source' && k !== 'provenance');
          if (bad.length > 0) {
            err(`unknown key${bad.length > 1 ? 's' : ''} ${bad.map((k) => JSON.stringify(k)).join(', ')} (expected "value", "source", "provenance")`);
            continue;
          }
          if (!('value' in spec)) {
            err('missing "value"');
            continue;
          }
          value = spec.value;
          source = spec.source;
          if ('provenance' in spec) provenance = spec.provenance;
        } else if (typeof spec === 'number') {
          value = spec;
        } else {
          err(`expected a number of ns or { "value": <ns>, "source"?: <string>, "provenance"?: ... }, got ${describe(spec)}`);
          continue;
        }
        let ok = true;
        if (!isNsValue(value)) {
          err(`value must be a finite number of ns >= 0, got ${describe(value)}`);
          ok = false;
        }
        if (source !== undefined && typeof source !== 'string') {
          err(`"source" must be a string, got ${describe(source)}`);
          ok = false;
        }
        if (!isProvenance(provenance)) {
          err(`unknown provenance ${describe(provenance)} (expected ${COST_PROVENANCES.map((p) => `"${p}"`).join(', ')})`);
          ok = false;
        }
        if (!ok) continue;
        updates.push(
          Object.freeze({
            ...cur,
            value: value as number,
            provenance: provenance as CostProvenance,
            source: (source as string | undefined) || `override from ${sourceName}`,
          }),
        );
      }
    }
    if (problems.length > 0) throw new CostOverrideError(sourceName, problems);
    for (const u of updates) this.set(u);
  }

  /** Read a JSON override file and apply it (see applyCostOverrides). */
  loadCostOverrides(path: string): void {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new CostOverrideError(path, [`cost override file ${path}: cannot read: ${(e as Error).message}`]);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new CostOverrideError(path, [`cost override file ${path}: malformed JSON: ${(e as Error).message}`]);
    }
    this.applyCostOverrides(obj, path);
  }
}
