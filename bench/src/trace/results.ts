/**
 * Results of replaying a trace (docs/trace-format.md, "Results"), one JSON line per call:
 *
 *   {"i": INDEX, "op": NAME, "ret": N, "errno": "EINVAL"?, "signal": "SIGBUS"?, "si_code": "BUS_ADRERR"?,
 *    "data": HEX?, "exit": {...}?, "arg": {...}?, "stat": {...}?}
 *
 * and the two ways of judging them: `expect` on a call line (any subset of these fields) and
 * comparing two result streams (compare.ts). Both use one rule for values: integers are equal
 * when their values are, however spelt (4096, "4096", "0x1000"); a kernel name equals the
 * number it names; data longer than 4096 bytes is its sha256 and length; a value bound with
 * "as" (an fd, an address) is compared by success only, since its number differs between a
 * simulator and a kernel.
 */
import { createHash } from 'node:crypto';
import { describeNode, type JsonNode, type JsonObject, type Pos, type Problem } from './json.js';
import { errnoByName, errnoName, isSiCodeName, signalByName, signalName, siCodeName, type NameTable } from './names.js';
import { convertArg, evaluate, isExprProblem, numberToBigInt, type ValueScope } from './values.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** What a delivered signal looks like to the op that caused it (mm's load/store): numbers or kernel names. */
export interface SignalInfo {
  readonly signo: number | string;
  readonly si_code: number | string;
  readonly si_addr?: number | bigint;
}

/** What an op's run() gives: C's view of the call, before it is spelt as a result line. */
export interface OpResult {
  /** What C sees: -1 on failure (with errno), the call's result otherwise. */
  readonly ret: number | bigint;
  readonly errno?: number;
  readonly signal?: SignalInfo;
  readonly data?: Uint8Array;
  readonly exit?: Readonly<Record<string, unknown>>;
  readonly arg?: Readonly<Record<string, unknown>>;
  readonly stat?: Readonly<Record<string, unknown>>;
}

// A type alias, not an interface, so that it is assignable to JsonValue's index signature.
export type DataDigest = {
  readonly sha256: string;
  readonly len: number;
};

/** One result line. Field order is the spec's. */
export interface TraceResult {
  readonly i: number;
  readonly op: string;
  readonly ret: number | string;
  /** The errno's name; its number when Linux has no name for it. */
  readonly errno?: string | number;
  readonly signal?: string;
  readonly si_code?: string;
  readonly data?: string | DataDigest;
  readonly exit?: { readonly [k: string]: JsonValue };
  readonly arg?: { readonly [k: string]: JsonValue };
  readonly stat?: { readonly [k: string]: JsonValue };
}

/** The fields a result (and so an expectation) may have. */
export const RESULT_FIELDS = ['i', 'op', 'ret', 'errno', 'signal', 'si_code', 'data', 'exit', 'arg', 'stat'] as const;
export type ResultField = (typeof RESULT_FIELDS)[number];

/** Data up to this many bytes is written as hex; longer data as its sha256 and length. */
export const MAX_INLINE_DATA = 4096;

const TWO_53 = 2n ** 53n;
const INT_STRING_RE = /^-?(0[xX][0-9a-fA-F]+|[0-9]+)$/;

/** An integer as a result spells it: a JSON number when exact, else a 0x hex string. */
export function intJson(v: number | bigint): number | string {
  const b = BigInt(v);
  if (b > -TWO_53 && b < TWO_53) return Number(b);
  return b < 0n ? b.toString() : `0x${b.toString(16)}`;
}

export function dataJson(bytes: Uint8Array): string | DataDigest {
  if (bytes.length <= MAX_INLINE_DATA) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
  return { sha256: createHash('sha256').update(bytes).digest('hex'), len: bytes.length };
}

/** Any simulator value as result JSON: integers per intJson, bytes per dataJson, objects field by field. */
export function toJsonValue(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return intJson(v);
  if (typeof v === 'number') return Number.isInteger(v) ? intJson(v) : v;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return dataJson(v);
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (typeof v === 'object') {
    const out: { [k: string]: JsonValue } = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined && typeof x !== 'function') out[k] = toJsonValue(x);
    return out;
  }
  return String(v);
}

function objectJson(v: Readonly<Record<string, unknown>>): { [k: string]: JsonValue } {
  return toJsonValue(v) as { [k: string]: JsonValue };
}

function signalFields(s: SignalInfo): { signal: string; si_code: string } {
  const signal = typeof s.signo === 'string' ? s.signo : signalName(s.signo);
  const signo = typeof s.signo === 'number' ? s.signo : signalByName(s.signo) ?? 0;
  return { signal, si_code: typeof s.si_code === 'string' ? s.si_code : siCodeName(signo, s.si_code) };
}

/** Spells an op's result as a result line. */
export function makeResult(i: number, op: string, r: OpResult): TraceResult {
  return {
    i,
    op,
    ret: intJson(r.ret),
    ...(r.errno !== undefined && { errno: errnoName(r.errno) ?? r.errno }),
    ...(r.signal !== undefined && signalFields(r.signal)),
    ...(r.data !== undefined && { data: dataJson(r.data) }),
    ...(r.exit !== undefined && { exit: objectJson(r.exit) }),
    ...(r.arg !== undefined && { arg: objectJson(r.arg) }),
    ...(r.stat !== undefined && { stat: objectJson(r.stat) }),
  };
}

/** The result as its JSON line. */
export function resultLine(r: TraceResult): string {
  return JSON.stringify(r);
}

/* ---- comparing values ---- */

/** The value of an integer however spelt (4096, "4096", "0x1000"), else undefined. */
export function intValue(v: JsonValue | undefined): bigint | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : undefined;
  if (typeof v === 'string' && INT_STRING_RE.test(v)) {
    const neg = v.startsWith('-');
    const mag = BigInt(neg ? v.slice(1) : v);
    return neg ? -mag : mag;
  }
  return undefined;
}

/** True when a result's ret means success: anything but -1 (MAP_FAILED is spelt -1 too). */
export function succeeded(ret: JsonValue | undefined): boolean {
  const v = intValue(ret);
  return v !== undefined && v !== -1n;
}

/** Data in one canonical form: short data as lowercase hex, long data as a digest. */
function canonicalData(v: JsonValue | undefined): string | undefined {
  if (typeof v === 'string') {
    const hex = v.toLowerCase();
    if (hex.length / 2 <= MAX_INLINE_DATA) return hex;
    const d = dataJson(Uint8Array.from(Buffer.from(hex, 'hex'))) as DataDigest;
    return `sha256:${d.sha256}:${d.len}`;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.sha256 === 'string' && typeof v.len === 'number') {
    return `sha256:${v.sha256.toLowerCase()}:${v.len}`;
  }
  return undefined;
}

/**
 * Whether `got` matches `want`. `subset`: an object in `want` need only list some of the
 * fields of `got` (expectations); otherwise the field sets must be equal (comparing streams).
 */
export function sameValue(want: JsonValue | undefined, got: JsonValue | undefined, subset: boolean, names?: NameTable): boolean {
  if (want === undefined || got === undefined) return want === got;
  const wi = intValue(want);
  const gi = intValue(got);
  if (wi !== undefined || gi !== undefined) {
    const byName = (s: JsonValue): bigint | undefined => {
      if (typeof s !== 'string' || names === undefined) return undefined;
      const r = names.resolve(s);
      return typeof r === 'bigint' ? r : undefined;
    };
    const a = wi ?? byName(want);
    const b = gi ?? byName(got);
    return a !== undefined && a === b;
  }
  if (Array.isArray(want) || Array.isArray(got)) {
    return Array.isArray(want) && Array.isArray(got) && want.length === got.length
      && want.every((w, k) => sameValue(w, got[k], subset, names));
  }
  if (want !== null && got !== null && typeof want === 'object' && typeof got === 'object') {
    const keys = Object.keys(want);
    if (!subset && Object.keys(got).length !== keys.length) return false;
    return keys.every((k) => Object.hasOwn(got, k) && sameValue(want[k], got[k], subset, names));
  }
  return want === got;
}

/** Whether one field of two results matches, by the rules above; `bound` for a line with "as". */
export function sameField(field: string, want: JsonValue | undefined, got: JsonValue | undefined, opts: { subset: boolean; bound: boolean; names?: NameTable }): boolean {
  if (field === 'ret' && opts.bound && want !== undefined && got !== undefined) return succeeded(want) === succeeded(got);
  if (field === 'data' && want !== undefined && got !== undefined) {
    const a = canonicalData(want);
    return a !== undefined && a === canonicalData(got);
  }
  return sameValue(want, got, opts.subset, opts.names);
}

/** A result as a map of its fields, for field-by-field comparison. */
export function resultFields(r: TraceResult): ReadonlyMap<string, JsonValue> {
  return new Map(Object.entries(r).filter(([, v]) => v !== undefined) as [string, JsonValue][]);
}

/** A value in a message: JSON, or "nothing" for an absent field. */
export function showValue(v: JsonValue | undefined): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

/* ---- expectations ---- */

/** One checked field of an `expect`: the value wanted (undefined: the field must be absent). */
export interface ExpectField {
  readonly field: ResultField;
  readonly want: JsonValue | undefined;
  readonly pos: Pos;
}

/** A value that could not be taken, and why. */
export class BadValue {
  constructor(readonly problem: Problem) {}
}

/** A JSON node as a JsonValue, refusing numbers a JSON reader would round. */
export function jsonValue(node: JsonNode): JsonValue | BadValue {
  switch (node.kind) {
    case 'null': return null;
    case 'bool': return node.value;
    case 'string': return node.value;
    case 'number': {
      const v = numberToBigInt(node);
      return typeof v === 'bigint' ? intJson(v) : new BadValue(v);
    }
    case 'array': {
      const out: JsonValue[] = [];
      for (const item of node.items) {
        const v = jsonValue(item);
        if (v instanceof BadValue) return v;
        out.push(v);
      }
      return out;
    }
    case 'object': {
      const out: { [k: string]: JsonValue } = {};
      for (const m of node.members) {
        const v = jsonValue(m.value);
        if (v instanceof BadValue) return v;
        out[m.name] = v;
      }
      return out;
    }
  }
}

function oneOf(list: readonly string[]): string {
  return list.map((f) => `"${f}"`).join(', ');
}

/** Checks one `expect` field's value and gives it in result form. */
function expectValue(field: ResultField, node: JsonNode, scope: ValueScope): JsonValue | undefined | BadValue {
  const bad = (what: string): BadValue => new BadValue({ pos: node.pos, message: `expected ${what} for "${field}", found ${describeNode(node)}` });
  if (node.kind === 'null' && field !== 'i' && field !== 'op' && field !== 'ret') return undefined;
  switch (field) {
    case 'i':
    case 'ret': {
      const e = convertArg(node, 'int', { ...scope, handles: new Set() });
      if (isExprProblem(e)) return new BadValue(e);
      return e.t === 'int' ? intJson(e.v) : bad('an integer');
    }
    case 'op':
      return node.kind === 'string' ? node.value : bad('an op name');
    case 'errno':
      if (node.kind === 'string' && errnoByName(node.value) !== undefined) return node.value;
      if (node.kind === 'number' && /^[0-9]+$/.test(node.raw)) return errnoName(Number(node.raw)) ?? Number(node.raw);
      return bad('an errno name such as "EINVAL"');
    case 'signal':
      if (node.kind === 'string' && signalByName(node.value) !== undefined) return node.value;
      return bad('a signal name such as "SIGBUS"');
    case 'si_code':
      if (node.kind === 'string' && isSiCodeName(node.value)) return node.value;
      return bad('an si_code name such as "BUS_ADRERR"');
    case 'data': {
      if (node.kind === 'object' && node.members.some((m) => m.name === 'sha256')) {
        const v = jsonValue(node);
        if (v instanceof BadValue) return v;
        return canonicalData(v) === undefined ? bad('{"sha256": HEX, "len": N}') : v;
      }
      const e = convertArg(node, 'data', scope);
      if (isExprProblem(e)) return new BadValue(e);
      return dataJson(evaluate(e, 'data', new Map()) as Uint8Array);
    }
    case 'exit':
    case 'arg':
    case 'stat': {
      if (node.kind !== 'object') return bad('an object');
      return jsonValue(node);
    }
  }
}

/** Checks an `expect` object: its fields in result form, and the problems with it. */
export function compileExpect(obj: JsonObject, scope: ValueScope): { fields: ExpectField[]; problems: Problem[] } {
  const fields: ExpectField[] = [];
  const problems: Problem[] = [];
  for (const m of obj.members) {
    if (!(RESULT_FIELDS as readonly string[]).includes(m.name)) {
      problems.push({ pos: m.namePos, message: `unknown result field "${m.name}" in expect (result fields: ${oneOf(RESULT_FIELDS)})` });
      continue;
    }
    const field = m.name as ResultField;
    const v = expectValue(field, m.value, scope);
    if (v instanceof BadValue) problems.push(v.problem);
    else fields.push({ field, want: v, pos: m.value.pos });
  }
  return { fields, problems };
}

/** One way a result differs from its line's `expect`. */
export interface Mismatch {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly i: number;
  readonly op: string;
  readonly field: ResultField;
  readonly expected: JsonValue | undefined;
  readonly got: JsonValue | undefined;
  /** The expectation was "success" only, because the line binds its result with "as". */
  readonly bound: boolean;
  /** Why a ret differs, when the result says ("errno EBADF"). */
  readonly why?: string;
}

/** Checks a result against the fields of its `expect`. */
export function checkExpect(
  expect: readonly ExpectField[], result: TraceResult, where: { file: string; bound: boolean; names?: NameTable },
): Mismatch[] {
  const got = resultFields(result);
  const out: Mismatch[] = [];
  for (const e of expect) {
    const g = got.get(e.field);
    if (!sameField(e.field, e.want, g, { subset: true, bound: where.bound, names: where.names })) {
      out.push({
        file: where.file, line: e.pos.line, col: e.pos.col, i: result.i, op: result.op, field: e.field,
        expected: e.want, got: g, bound: where.bound && e.field === 'ret',
        ...(e.field === 'ret' && { why: result.errno !== undefined ? `errno ${result.errno}` : result.signal !== undefined ? `signal ${result.signal}` : undefined }),
      });
    }
  }
  return out;
}

export function formatMismatch(m: Mismatch): string {
  const want = m.bound ? (succeeded(m.expected ?? null) ? 'success' : 'failure') + ` (${showValue(m.expected)}; a bound value is compared by success only)` : showValue(m.expected);
  const why = m.why === undefined ? '' : ` (${m.why})`;
  return `${m.file}:${m.line}:${m.col}: call ${m.i} (${m.op}): ${m.field}: expected ${want}, got ${showValue(m.got)}${why}`;
}
