/**
 * Comparing two result streams of one trace: the simulator's against the kernel oracle's
 * recorded results, or two platforms against each other. The rule is the spec's: values bound
 * with "as" (fds, addresses) are compared by success only, since their numbers differ between
 * a simulator and a kernel; everything else compares exactly (integers by value however spelt,
 * data longer than 4096 bytes by sha256 and length). Results are paired by `i`.
 */
import { describeNode, parseJsonLines } from './json.js';
import type { NameTable } from './names.js';
import { traceError, type ParsedTrace, type TraceError } from './parse.js';
import {
  BadValue, RESULT_FIELDS, jsonValue, resultFields, sameField, showValue, type JsonValue, type TraceResult,
} from './results.js';

/** One way two results of the same call differ, or a call only one stream has. */
export interface Difference {
  readonly i: number;
  readonly op: string;
  /** The field that differs; undefined when the whole result is missing on one side. */
  readonly field?: string;
  readonly left?: JsonValue;
  readonly right?: JsonValue;
  /** The call binds its ret with "as": only success was compared. */
  readonly bound: boolean;
  /** Set when only one stream has a result for the call. */
  readonly only?: 'left' | 'right';
}

export interface CompareOptions {
  /** Indexes (`i`) of the calls whose line has "as": their ret is compared by success only. */
  readonly bound?: ReadonlySet<number>;
  /** To compare a kernel name with the number it names. */
  readonly names?: NameTable;
}

/** The `i` of every call that binds its result with "as". */
export function boundCalls(trace: ParsedTrace): Set<number> {
  return new Set(trace.calls.filter((c) => c.as !== undefined).map((c) => c.i));
}

function byIndex(results: readonly TraceResult[]): Map<number, TraceResult> {
  return new Map(results.map((r) => [r.i, r]));
}

export function compareResults(left: readonly TraceResult[], right: readonly TraceResult[], opts: CompareOptions = {}): Difference[] {
  const l = byIndex(left);
  const r = byIndex(right);
  const indexes = [...new Set([...l.keys(), ...r.keys()])].sort((a, b) => a - b);
  const out: Difference[] = [];
  for (const i of indexes) {
    const a = l.get(i);
    const b = r.get(i);
    const bound = opts.bound?.has(i) ?? false;
    if (a === undefined || b === undefined) {
      out.push({ i, op: (a ?? b)!.op, bound, only: a === undefined ? 'right' : 'left' });
      continue;
    }
    const fa = resultFields(a);
    const fb = resultFields(b);
    const fields = [...new Set([...fa.keys(), ...fb.keys()])].filter((f) => f !== 'i');
    const order = (f: string): number => {
      const k = (RESULT_FIELDS as readonly string[]).indexOf(f);
      return k < 0 ? RESULT_FIELDS.length : k;
    };
    fields.sort((x, y) => order(x) - order(y));
    for (const f of fields) {
      if (!sameField(f, fa.get(f), fb.get(f), { subset: false, bound, names: opts.names })) {
        out.push({ i, op: a.op, field: f, left: fa.get(f), right: fb.get(f), bound: bound && f === 'ret' });
      }
    }
  }
  return out;
}

export interface DiffLabels {
  readonly left: string;
  readonly right: string;
}

/**
 * The differences as text, one block per call:
 *
 *   call 3 (close), line 5:
 *     errno: simulator "EBADF", kernel nothing
 *   call 7 (mmap): only in the kernel results
 */
export function formatDifferences(diffs: readonly Difference[], labels: DiffLabels = { left: 'simulator', right: 'kernel' }, trace?: ParsedTrace): string[] {
  const lines: string[] = [];
  const lineOf = new Map(trace?.calls.map((c) => [c.i, c.line]));
  let last: number | undefined;
  for (const d of diffs) {
    const where = lineOf.has(d.i) ? `, line ${lineOf.get(d.i)}` : '';
    if (d.only !== undefined) {
      lines.push(`call ${d.i} (${d.op})${where}: only in the ${labels[d.only]} results`);
      last = undefined;
      continue;
    }
    if (last !== d.i) lines.push(`call ${d.i} (${d.op})${where}:`);
    last = d.i;
    const note = d.bound ? ' (bound with "as": compared by success only)' : '';
    lines.push(`  ${d.field}: ${labels.left} ${showValue(d.left)}, ${labels.right} ${showValue(d.right)}${note}`);
  }
  return lines;
}

/**
 * A result file: the results, what its header lines say (the oracle's `{"kernel": "6.18.0"}`,
 * objects without "i" before the first result), and problems with lines that are not results.
 */
export function parseResults(text: string, file = '<results>'): { results: TraceResult[]; meta: { [k: string]: JsonValue }; errors: TraceError[] } {
  const { lines, problems } = parseJsonLines(text);
  const results: TraceResult[] = [];
  const meta: { [k: string]: JsonValue } = {};
  for (const { node } of lines) {
    if (node.kind !== 'object') {
      problems.push({ pos: node.pos, message: `expected a result object on each line, found ${describeNode(node)}` });
      continue;
    }
    const v = jsonValue(node);
    if (v instanceof BadValue) {
      problems.push(v.problem);
      continue;
    }
    const o = v as { [k: string]: JsonValue };
    if (results.length === 0 && o.i === undefined && o.op === undefined) {
      Object.assign(meta, o);
      continue;
    }
    if (typeof o.i !== 'number' || typeof o.op !== 'string' || o.ret === undefined) {
      problems.push({ pos: node.pos, message: 'expected a result {"i": N, "op": NAME, "ret": N, ...}' });
      continue;
    }
    results.push(o as unknown as TraceResult);
  }
  return { results, meta, errors: problems.map((p) => traceError(file, p)) };
}
