/**
 * The line structure of a trace (docs/trace-format.md, "Lines"): an optional header
 * `{"trace": 1, "platform": {"vendor": ..., "design": ...}}`, then one call per line
 * `{"op": NAME, ...arguments, "as": HANDLE?, "expect": {...}?}`; blank lines and `//` lines are
 * ignored. This layer checks only the shape of lines; what the op and its arguments mean is
 * checked against the op and name tables by compileTrace() (replay.ts), before anything runs.
 *
 * Every problem is a TraceError naming file, line and column: "t.jsonl:3:17: expected ',' or '}'
 * after a property value, found '\"'". Nothing here throws on bad input.
 */
import {
  describeNode, member, parseJsonLines, type JsonMember, type JsonNode, type JsonObject, type Pos, type Problem,
} from './json.js';

/** The trace format version this code reads and writes. */
export const TRACE_VERSION = 1;

/** A problem with a trace (or a result file), where it is and what was expected. */
export interface TraceError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** `file:line:col: message`, the compiler convention editors jump to. */
export function formatTraceError(e: TraceError): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.col}: ${e.message}` : `${e.file}: ${e.message}`;
}

export function traceError(file: string, p: Problem): TraceError {
  return { file, line: p.pos.line, col: p.pos.col, message: p.message };
}

/** A string value and where it was written. */
export interface Located<T> {
  readonly value: T;
  readonly pos: Pos;
}

export interface TraceHeader {
  readonly line: number;
  readonly vendor?: Located<string>;
  readonly design?: Located<string>;
}

/** One call line, its shape checked. `args` are the members other than op, as, expect and notes. */
export interface TraceCall {
  /** Index of the call among the trace's calls, from 0: the `i` of its result. */
  readonly i: number;
  readonly line: number;
  readonly op: Located<string>;
  readonly args: readonly JsonMember[];
  readonly as?: Located<string>;
  readonly expect?: JsonObject;
  readonly node: JsonObject;
}

export interface ParsedTrace {
  readonly file: string;
  readonly header?: TraceHeader;
  readonly calls: readonly TraceCall[];
  /** Empty when every line had the right shape. */
  readonly errors: readonly TraceError[];
}

/**
 * Keys a line may carry for its readers, which the replayer ignores: "comment", and any key
 * starting with '_' (the kernel oracle's convention too).
 */
export function isNoteKey(name: string): boolean {
  return name === 'comment' || name.startsWith('_');
}

/** A handle name, as bound by `"as"` and used by `"$name"` references. */
export const HANDLE_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseHeader(obj: JsonObject, line: number, problems: Problem[]): TraceHeader {
  let vendor: Located<string> | undefined;
  let design: Located<string> | undefined;
  for (const m of obj.members) {
    if (isNoteKey(m.name)) continue;
    if (m.name === 'trace') {
      if (m.value.kind !== 'number' || m.value.raw !== String(TRACE_VERSION)) {
        problems.push({ pos: m.value.pos, message: `unsupported trace version ${describeNode(m.value)}: this replayer reads version ${TRACE_VERSION}` });
      }
    } else if (m.name === 'platform') {
      if (m.value.kind !== 'object') {
        problems.push({ pos: m.value.pos, message: `expected "platform" to be an object {"vendor": ..., "design": ...}, found ${describeNode(m.value)}` });
        continue;
      }
      for (const p of m.value.members) {
        if (p.name !== 'vendor' && p.name !== 'design') {
          problems.push({ pos: p.namePos, message: `unknown platform field "${p.name}" (expected "vendor" or "design")` });
        } else if (p.value.kind !== 'string') {
          problems.push({ pos: p.value.pos, message: `expected the ${p.name} name as a string, found ${describeNode(p.value)}` });
        } else if (p.name === 'vendor') {
          vendor = { value: p.value.value, pos: p.value.pos };
        } else {
          design = { value: p.value.value, pos: p.value.pos };
        }
      }
    } else {
      problems.push({ pos: m.namePos, message: `unknown header field "${m.name}" (expected "trace" and "platform")` });
    }
  }
  return { line, vendor, design };
}

function parseCall(obj: JsonObject, line: number, i: number, problems: Problem[]): TraceCall | undefined {
  const op = member(obj, 'op');
  if (op === undefined) {
    problems.push({ pos: obj.pos, message: 'expected an "op" property naming the call' });
    return undefined;
  }
  if (op.value.kind !== 'string') {
    problems.push({ pos: op.value.pos, message: `expected the op name as a string, found ${describeNode(op.value)}` });
    return undefined;
  }
  let as: Located<string> | undefined;
  const asMember = member(obj, 'as');
  if (asMember !== undefined) {
    const v = asMember.value;
    if (v.kind !== 'string' || !HANDLE_RE.test(v.value)) {
      problems.push({ pos: v.pos, message: `expected "as" to be a handle name (letters, digits, _), found ${describeNode(v)}` });
    } else {
      as = { value: v.value, pos: v.pos };
    }
  }
  let expect: JsonObject | undefined;
  const expectMember = member(obj, 'expect');
  if (expectMember !== undefined) {
    if (expectMember.value.kind !== 'object') {
      problems.push({ pos: expectMember.value.pos, message: `expected "expect" to be an object of result fields, found ${describeNode(expectMember.value)}` });
    } else {
      expect = expectMember.value;
    }
  }
  const args = obj.members.filter((m) => m.name !== 'op' && m.name !== 'as' && m.name !== 'expect' && !isNoteKey(m.name));
  return { i, line, op: { value: op.value.value, pos: op.value.pos }, args, as, expect, node: obj };
}

/** Parses a trace's lines; `file` names it in errors. */
export function parseTrace(text: string, file = '<trace>'): ParsedTrace {
  const { lines, problems } = parseJsonLines(text);
  let header: TraceHeader | undefined;
  const calls: TraceCall[] = [];
  lines.forEach(({ line, node }: { line: number; node: JsonNode }, k) => {
    if (node.kind !== 'object') {
      problems.push({ pos: node.pos, message: `expected a JSON object on each line, found ${describeNode(node)}` });
      return;
    }
    if (member(node, 'trace') !== undefined) {
      if (k !== 0) {
        problems.push({ pos: node.pos, message: 'a header {"trace": 1, ...} may only be the first line of a trace' });
      } else if (member(node, 'op') !== undefined) {
        problems.push({ pos: member(node, 'op')!.namePos, message: 'a header line cannot also be a call: put the op on its own line' });
      } else {
        header = parseHeader(node, line, problems);
      }
      return;
    }
    const call = parseCall(node, line, calls.length, problems);
    if (call !== undefined) calls.push(call);
  });
  problems.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  return { file, header, calls, errors: problems.map((p) => traceError(file, p)) };
}
