/**
 * Argument values of a trace (docs/trace-format.md, "Values"), from JSON to what a Process
 * method takes.
 *
 * Conversion has two steps so that a bad trace is refused before any call runs: convertArg()
 * checks a JSON value against its argument kind when the trace is compiled and gives an Expr
 * (or a Problem with its position); evaluate() turns an Expr into a JS value at replay time,
 * when the handles it refers to have values.
 *
 *   integers   a JSON number when |n| <= 2^53-1, else a string in decimal or 0x hex;
 *              passed as a number when a double holds it exactly, else as a bigint
 *   flags      an integer, or kernel names joined by '|' ("PROT_READ|PROT_WRITE")
 *   data       a hex string, or {"fill": BYTE, "len": N}           -> Uint8Array
 *   refs       "$h", "$h+4096", "$h+0x1000", "$h-4": the value bound by "as": "h", plus or minus
 *              an offset
 *   strings    a JSON string, or null for a NULL pointer
 *   structs    an object with the kernel's field names; each field an integer, flags, a ref,
 *              or a nested struct or array; a bare integer is passed as is (ioctl's arg)
 */
import { describeNode, member, type JsonNode, type Pos, type Problem } from './json.js';
import type { NameTable } from './names.js';
import { HANDLE_RE } from './parse.js';

export type ArgKind = 'fd' | 'int' | 'u64' | 'flags' | 'data' | 'string' | 'struct';

/** A checked argument value, evaluated at replay time. */
export type Expr =
  | { readonly t: 'int'; readonly v: bigint }
  | { readonly t: 'ref'; readonly handle: string; readonly offset: bigint }
  | { readonly t: 'str'; readonly v: string | null }
  | { readonly t: 'bytes'; readonly v: Uint8Array }
  | { readonly t: 'fill'; readonly byte: number; readonly len: number }
  | { readonly t: 'struct'; readonly fields: readonly (readonly [string, Expr])[] }
  | { readonly t: 'array'; readonly items: readonly Expr[] };

/** What conversion needs: the name table and the handles bound by earlier lines. */
export interface ValueScope {
  readonly names: NameTable;
  readonly handles: ReadonlySet<string>;
}

const TWO_53 = 2n ** 53n;
const S32_MIN = -(2n ** 31n);
const S32_MAX = 2n ** 31n - 1n;
const S64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;
/** The longest data a trace may give: enough for any test, and a typo cannot exhaust memory. */
export const MAX_DATA_LEN = 1 << 30;

const INT_STRING_RE = /^-?(0[xX][0-9a-fA-F]+|[0-9]+)$/;
const REF_RE = /^\$([A-Za-z_][A-Za-z0-9_]*)(?:([+-])(0[xX][0-9a-fA-F]+|[0-9]+))?$/;

/** The range of each integer kind: what its C type can hold, signed and unsigned spellings both. */
const RANGES: Readonly<Record<'fd' | 'int' | 'u64' | 'flags', readonly [bigint, bigint, string]>> = {
  fd: [S32_MIN, S32_MAX, 'an fd (a C int)'],
  int: [S64_MIN, U64_MAX, 'a 64-bit integer'],
  u64: [0n, U64_MAX, 'an unsigned 64-bit integer'],
  flags: [S64_MIN, U64_MAX, 'a 64-bit integer'],
};

function problem(pos: Pos, message: string): Problem {
  return { pos, message };
}

export function isExprProblem(x: Expr | Problem): x is Problem {
  return 'message' in x;
}

/** Position of character `offset` inside a string node's value (exact when it had no escapes). */
function inString(node: Extract<JsonNode, { kind: 'string' }>, offset: number): Pos {
  return node.plain ? { line: node.pos.line, col: node.pos.col + 1 + offset } : node.pos;
}

/** A JSON number as an exact integer, or a problem (fractions, beyond 2^53-1). */
export function numberToBigInt(node: Extract<JsonNode, { kind: 'number' }>): bigint | Problem {
  const raw = node.raw;
  if (/^-?[0-9]+$/.test(raw)) {
    const v = BigInt(raw);
    if (v >= TWO_53 || v <= -TWO_53) {
      return problem(node.pos, `integer ${raw} is beyond 2^53-1, where JSON readers lose digits: write it as a string ("${raw}" or "0x${(v < 0n ? -v : v).toString(16)}")`);
    }
    return v;
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) return problem(node.pos, `expected an integer, found ${raw}`);
  return BigInt(n);
}

/** A ref "$h+N", checked against the handles bound so far. */
function refExpr(node: Extract<JsonNode, { kind: 'string' }>, scope: ValueScope): Expr | Problem {
  const m = REF_RE.exec(node.value);
  if (m === null) {
    const name = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(node.value)?.[1];
    return problem(node.pos, `bad reference ${JSON.stringify(node.value)}: expected "$name", "$name+N" or "$name-N"${name === undefined ? '' : ` (the offset of $${name} is +N or -N, N in decimal or 0x hex)`}`);
  }
  const handle = m[1];
  if (!scope.handles.has(handle)) {
    const bound = [...scope.handles];
    const hint = bound.length === 0 ? 'no earlier line binds a handle' : `bound so far: ${bound.map((h) => `$${h}`).join(', ')}`;
    return problem(node.pos, `unknown handle "$${handle}": no earlier line has "as": "${handle}" (${hint})`);
  }
  const offset = m[3] === undefined ? 0n : BigInt(m[3]);
  return { t: 'ref', handle, offset: m[2] === '-' ? -offset : offset };
}

interface IntOptions {
  readonly kind: 'fd' | 'int' | 'u64' | 'flags';
  /** Whether kernel names may spell the value. */
  readonly names: boolean;
}

function intExpr(node: JsonNode, scope: ValueScope, opts: IntOptions): Expr | Problem {
  const [lo, hi, what] = RANGES[opts.kind];
  const inRange = (v: bigint, pos: Pos, text: string): Expr | Problem =>
    v >= lo && v <= hi ? { t: 'int', v } : problem(pos, `${text} is out of range for ${what}`);
  const expected = opts.names
    ? 'expected an integer or kernel names joined by \'|\''
    : 'expected an integer (a JSON number, or a string in decimal or 0x hex)';
  if (node.kind === 'number') {
    const v = numberToBigInt(node);
    return typeof v === 'bigint' ? inRange(v, node.pos, node.raw) : v;
  }
  if (node.kind !== 'string') return problem(node.pos, `${expected}, found ${describeNode(node)}`);
  const s = node.value;
  if (s.startsWith('$')) return refExpr(node, scope);
  if (INT_STRING_RE.test(s)) {
    const neg = s.startsWith('-');
    const mag = BigInt(neg ? s.slice(1) : s);
    return inRange(neg ? -mag : mag, node.pos, JSON.stringify(s));
  }
  if (!opts.names) return problem(node.pos, `${expected}, found ${JSON.stringify(s)}`);
  if (s.trim() === '') return problem(node.pos, `${expected}, found an empty string`);
  const r = scope.names.resolve(s);
  if (typeof r !== 'bigint') {
    const guess = scope.names.suggest(r.unknown);
    return problem(inString(node, r.offset), `unknown name "${r.unknown}"${guess === undefined ? '' : ` (did you mean ${guess}?)`}`);
  }
  return inRange(r, node.pos, JSON.stringify(s));
}

function dataExpr(node: JsonNode, scope: ValueScope): Expr | Problem {
  const expected = 'expected data: a hex string ("deadbeef") or {"fill": BYTE, "len": N}';
  if (node.kind === 'string') {
    const s = node.value;
    if (/^0[xX]/.test(s)) return problem(node.pos, `${expected}: data hex has no 0x prefix`);
    const bad = /[^0-9a-fA-F]/.exec(s);
    if (bad !== null) return problem(inString(node, bad.index), `${expected}: '${bad[0]}' is not a hex digit`);
    if (s.length % 2 !== 0) return problem(node.pos, `${expected}: odd number of hex digits (${s.length})`);
    if (s.length / 2 > MAX_DATA_LEN) return problem(node.pos, `data longer than ${MAX_DATA_LEN} bytes`);
    return { t: 'bytes', v: Uint8Array.from(Buffer.from(s, 'hex')) };
  }
  if (node.kind !== 'object') return problem(node.pos, `${expected}, found ${describeNode(node)}`);
  for (const m of node.members) {
    if (m.name !== 'fill' && m.name !== 'len') return problem(m.namePos, `unknown data field "${m.name}" (expected "fill" and "len")`);
  }
  const fill = member(node, 'fill');
  const len = member(node, 'len');
  if (fill === undefined || len === undefined) return problem(node.pos, `${expected}: missing "${fill === undefined ? 'fill' : 'len'}"`);
  const b = intExpr(fill.value, scope, { kind: 'int', names: false });
  if (isExprProblem(b)) return b;
  if (b.t !== 'int' || b.v < 0n || b.v > 255n) return problem(fill.value.pos, '"fill" must be a byte value, 0 to 255');
  const n = intExpr(len.value, scope, { kind: 'int', names: false });
  if (isExprProblem(n)) return n;
  if (n.t !== 'int' || n.v < 0n || n.v > BigInt(MAX_DATA_LEN)) return problem(len.value.pos, `"len" must be 0 to ${MAX_DATA_LEN}`);
  return { t: 'fill', byte: Number(b.v), len: Number(n.v) };
}

function structExpr(node: JsonNode, scope: ValueScope, top: boolean): Expr | Problem {
  if (node.kind === 'null' && top) return { t: 'int', v: 0n };
  if (node.kind === 'object') {
    const fields: (readonly [string, Expr])[] = [];
    for (const m of node.members) {
      const e = structExpr(m.value, scope, false);
      if (isExprProblem(e)) return e;
      fields.push([m.name, e]);
    }
    return { t: 'struct', fields };
  }
  if (node.kind === 'array') {
    const items: Expr[] = [];
    for (const item of node.items) {
      const e = structExpr(item, scope, false);
      if (isExprProblem(e)) return e;
      items.push(e);
    }
    return { t: 'array', items };
  }
  return intExpr(node, scope, { kind: 'flags', names: true });
}

/** Checks a JSON argument value against its kind: the Expr to evaluate at replay, or a problem. */
export function convertArg(node: JsonNode, kind: ArgKind, scope: ValueScope): Expr | Problem {
  switch (kind) {
    case 'fd':
    case 'int':
    case 'u64':
      return intExpr(node, scope, { kind, names: false });
    case 'flags':
      return intExpr(node, scope, { kind, names: true });
    case 'data':
      return dataExpr(node, scope);
    case 'string':
      if (node.kind === 'string') return { t: 'str', v: node.value };
      if (node.kind === 'null') return { t: 'str', v: null };
      return problem(node.pos, `expected a string (or null for a NULL pointer), found ${describeNode(node)}`);
    case 'struct':
      return structExpr(node, scope, true);
  }
}

/** An integer as the simulator takes it: a number when exact in a double, else a bigint. */
export function jsInt(v: bigint): number | bigint {
  return v > -TWO_53 && v < TWO_53 ? Number(v) : v;
}

/**
 * The JS value of an Expr for an argument of `kind`. References add their offset as C does
 * with the argument's type: an fd is a C int, an address wraps modulo 2^64.
 */
export function evaluate(expr: Expr, kind: ArgKind, bindings: ReadonlyMap<string, bigint>): unknown {
  switch (expr.t) {
    case 'int':
      return jsInt(expr.v);
    case 'ref': {
      const bound = bindings.get(expr.handle);
      const v = (bound ?? 0n) + expr.offset;
      if (kind === 'fd') return Number(BigInt.asIntN(32, v));
      if (kind === 'u64') return jsInt(BigInt.asUintN(64, v));
      return jsInt(v);
    }
    case 'str':
      return expr.v;
    case 'bytes':
      return expr.v.slice();
    case 'fill':
      return new Uint8Array(expr.len).fill(expr.byte);
    case 'struct':
      return Object.fromEntries(expr.fields.map(([k, e]) => [k, evaluate(e, 'struct', bindings)]));
    case 'array':
      return expr.items.map((e) => evaluate(e, 'struct', bindings));
  }
}

/** Whether `name` can be bound by "as" (for the trace writer). */
export function isHandleName(name: string): boolean {
  return HANDLE_RE.test(name);
}
