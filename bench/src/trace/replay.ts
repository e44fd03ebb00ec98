/**
 * Replaying a trace on a simulated platform (docs/trace-format.md).
 *
 * Two steps. compileTrace() checks the whole trace against the op table and the name table
 * (unknown ops, arguments and names, malformed values, references to handles no earlier line
 * binds, expectations) and resolves the platform; any problem is a trace error and nothing
 * runs, so a bad trace never leaves a half-replayed result stream. replay() then runs the calls
 * in order on one simulated process, binding "as" handles to each call's ret (a failed call
 * binds -1, as a C variable would hold it), and checks each `expect`.
 *
 * A JS exception out of the simulator is a simulator bug, never the trace's fault: the replay
 * stops there and reports it as a crash.
 */
import type { Platform, PlatformOptions } from '../host.js';
import { member, type Problem } from './json.js';
import { closest, names as defaultNames, type NameTable } from './names.js';
import { allOps, getOp, runOp, type OpSpec } from './ops.js';
import {
  parseTrace, traceError, type Located, type ParsedTrace, type TraceCall, type TraceError,
} from './parse.js';
import {
  DEFAULT_DESIGN, DEFAULT_VENDOR, createTracePlatform, designNames, vendorNames, type PlatformChoice,
} from './platforms.js';
import {
  checkExpect, compileExpect, makeResult, type ExpectField, type Mismatch, type TraceResult,
} from './results.js';
import { convertArg, evaluate, isExprProblem, type Expr } from './values.js';

export interface CompiledCall {
  readonly call: TraceCall;
  readonly op: OpSpec;
  /** The arguments in the op's order, defaults filled in; undefined for an optional one left out. */
  readonly args: readonly (Expr | undefined)[];
  readonly expect?: readonly ExpectField[];
}

export interface CompiledTrace {
  readonly file: string;
  readonly platform: PlatformChoice;
  readonly calls: readonly CompiledCall[];
  /** Empty when the trace can run. */
  readonly errors: readonly TraceError[];
}

export interface CompileOptions {
  /** Overrides the header's vendor (the CLI's --vendor). */
  readonly vendor?: string;
  /** Overrides the header's design (the CLI's --design). */
  readonly design?: string;
  readonly names?: NameTable;
}

function resolvePlatform(
  trace: ParsedTrace, opts: CompileOptions, errors: TraceError[],
): PlatformChoice {
  const pick = (what: 'vendor' | 'design', given: string | undefined, header: Located<string> | undefined, def: string, known: readonly string[]): string => {
    const name = given ?? header?.value ?? def;
    if (!known.includes(name)) {
      const list = known.join(', ');
      const message = `unknown ${what} "${name}" (known ${what}s: ${list})`;
      if (given !== undefined) errors.push({ file: trace.file, line: 0, col: 0, message: `${message}, given with --${what}` });
      else errors.push(traceError(trace.file, { pos: header!.pos, message }));
    }
    return name;
  };
  return {
    vendor: pick('vendor', opts.vendor, trace.header?.vendor, DEFAULT_VENDOR, vendorNames()),
    design: pick('design', opts.design, trace.header?.design, DEFAULT_DESIGN, designNames()),
  };
}

function compileCall(call: TraceCall, handles: Set<string>, names: NameTable, problems: Problem[]): CompiledCall | undefined {
  const op = getOp(call.op.value);
  if (op === undefined) {
    const guess = closest(call.op.value, allOps().map((o) => o.name));
    problems.push({ pos: call.op.pos, message: `unknown op "${call.op.value}"${guess === undefined ? '' : ` (did you mean ${guess}?)`}; \`cocosim ops\` lists them` });
    // Later lines may still use its handle: one mistake, one error.
    if (call.as !== undefined) handles.add(call.as.value);
    return undefined;
  }
  const scope = { names, handles };
  const before = problems.length;
  for (const m of call.args) {
    if (!op.args.some((a) => a.name === m.name)) {
      const list = op.args.map((a) => a.name).join(', ');
      const guess = closest(m.name, op.args.map((a) => a.name));
      const hint = guess === undefined ? `its arguments: ${list}` : `did you mean ${guess}? its arguments: ${list}`;
      problems.push({ pos: m.namePos, message: `unknown argument "${m.name}" of ${op.name} (${hint})` });
    }
  }
  const args: (Expr | undefined)[] = [];
  for (const spec of op.args) {
    const m = member(call.node, spec.name);
    if (m === undefined && spec.default === undefined) {
      if (spec.optional === true) args.push(undefined);
      else problems.push({ pos: call.op.pos, message: `missing argument "${spec.name}" of ${op.name}` });
      continue;
    }
    const node = m?.value ?? (typeof spec.default === 'number'
      ? { kind: 'number' as const, pos: call.node.pos, raw: String(spec.default) }
      : { kind: 'string' as const, pos: call.node.pos, value: spec.default!, plain: false });
    const e = convertArg(node, spec.kind, scope);
    if (isExprProblem(e)) problems.push(e);
    else if (spec.max !== undefined && e.t === 'int' && e.v > BigInt(spec.max)) {
      problems.push({ pos: node.pos, message: `${spec.name} ${e.v} is larger than the replayer allocates (${spec.max} bytes)` });
    } else args.push(e);
  }
  let expect: ExpectField[] | undefined;
  if (call.expect !== undefined) {
    const r = compileExpect(call.expect, scope);
    problems.push(...r.problems);
    expect = r.fields;
  }
  if (call.as !== undefined) handles.add(call.as.value);
  return problems.length === before ? { call, op, args, expect } : undefined;
}

/** Checks a parsed trace against the op and name tables, and picks its platform. */
export function compileTrace(trace: ParsedTrace, opts: CompileOptions = {}): CompiledTrace {
  const errors: TraceError[] = [...trace.errors];
  const platform = resolvePlatform(trace, opts, errors);
  const names = opts.names ?? defaultNames;
  const handles = new Set<string>();
  const problems: Problem[] = [];
  const calls: CompiledCall[] = [];
  for (const call of trace.calls) {
    const c = compileCall(call, handles, names, problems);
    if (c !== undefined) calls.push(c);
  }
  errors.push(...problems.map((p) => traceError(trace.file, p)));
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { file: trace.file, platform, calls, errors };
}

export interface ReplayOptions extends CompileOptions {
  /** Replay on this platform rather than a new one (tests that inspect the simulator afterwards). */
  readonly platform?: Platform;
  /** Options of the platform replay creates (seed, costs, memory size). */
  readonly platformOptions?: PlatformOptions;
  /** Called after each call, with its result, the ways it missed its expectations and its warnings. */
  readonly onResult?: (result: TraceResult, mismatches: readonly Mismatch[], warnings: readonly ReplayWarning[]) => void;
}

/** A JS exception out of the simulator during a call: a simulator bug. */
export interface ReplayCrash {
  readonly file: string;
  readonly line: number;
  readonly i: number;
  readonly op: string;
  readonly error: unknown;
}

/** A kernel warning (WARN_ON and kin) raised by a call. */
export interface ReplayWarning {
  readonly file: string;
  readonly line: number;
  readonly i: number;
  readonly op: string;
  readonly kind: string;
  readonly message: string;
}

export function formatWarning(w: ReplayWarning): string {
  return `${w.file}:${w.line}: call ${w.i} (${w.op}): kernel warning: ${w.kind}: ${w.message}`;
}

export interface ReplayReport {
  readonly file: string;
  readonly platform: PlatformChoice;
  readonly results: readonly TraceResult[];
  readonly mismatches: readonly Mismatch[];
  /** Kernel warnings the calls raised: a broken rule in the simulator, or a WARN the kernel too would print. */
  readonly warnings: readonly ReplayWarning[];
  /** Trace errors: when there are any, nothing ran. */
  readonly errors: readonly TraceError[];
  readonly crash?: ReplayCrash;
}

export function formatCrash(c: ReplayCrash): string {
  const e = c.error;
  const what = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  return `${c.file}:${c.line}: call ${c.i} (${c.op}): the simulator threw (a simulator bug, not a trace error):\n${what}`;
}

/** Runs compiled calls on a platform's new process. */
export function runCompiled(compiled: CompiledTrace, platform: Platform, opts: ReplayOptions = {}): ReplayReport {
  const process = platform.process();
  const ctx = { platform, process };
  const bindings = new Map<string, bigint>();
  const results: TraceResult[] = [];
  const mismatches: Mismatch[] = [];
  const warnings: ReplayWarning[] = [];
  const names = opts.names ?? defaultNames;
  const warn = platform.kernel.warn;
  for (const c of compiled.calls) {
    const values = c.args.map((e, k) => (e === undefined ? undefined : evaluate(e, c.op.args[k].kind, bindings)));
    const seen = warn.warnings.length;
    let r;
    try {
      r = runOp(c.op, ctx, values);
    } catch (error) {
      const crash = { file: compiled.file, line: c.call.line, i: c.call.i, op: c.op.name, error };
      return { file: compiled.file, platform: compiled.platform, results, mismatches, warnings, errors: [], crash };
    }
    const raised = warn.warnings.slice(seen).map((w) => ({
      file: compiled.file, line: c.call.line, i: c.call.i, op: c.op.name, kind: w.kind, message: w.message,
    }));
    warnings.push(...raised);
    const result = makeResult(c.call.i, c.op.name, r);
    if (c.call.as !== undefined) bindings.set(c.call.as.value, BigInt(r.ret));
    const missed = c.expect === undefined
      ? []
      : checkExpect(c.expect, result, { file: compiled.file, bound: c.call.as !== undefined, names });
    results.push(result);
    mismatches.push(...missed);
    opts.onResult?.(result, missed, raised);
  }
  return { file: compiled.file, platform: compiled.platform, results, mismatches, warnings, errors: [] };
}

/** Replays a parsed trace (or trace text) on the platform its header names, or opts.platform. */
export function replay(trace: ParsedTrace | string, opts: ReplayOptions & { file?: string } = {}): ReplayReport {
  const parsed = typeof trace === 'string' ? parseTrace(trace, opts.file) : trace;
  const compiled = compileTrace(parsed, opts);
  if (compiled.errors.length > 0) {
    return { file: compiled.file, platform: compiled.platform, results: [], mismatches: [], warnings: [], errors: compiled.errors };
  }
  const platform = opts.platform ?? createTracePlatform(compiled.platform, opts.platformOptions);
  return runCompiled(compiled, platform, opts);
}
