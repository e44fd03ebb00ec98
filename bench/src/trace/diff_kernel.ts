/**
 * `cocosim diff-kernel TRACE`: replays a trace on the simulator and on the live kernel of this
 * machine (the kernel oracle, test/oracle/, built with the system `cc` when it is missing or
 * older than its sources) and prints the two result streams side by side, call by call, with the
 * differences spelt out and a summary of agreement.
 *
 * It never pretends to agree: where the oracle cannot run (no /dev/kvm, no `cc`, not Linux) it
 * says so and exits EXIT_NO_KERNEL. The recordings under test/traces/ are what this kernel said
 * when the machine had both; `cocosim replay TRACE --compare RECORDING` compares with one of them.
 *
 * Exit status: 0 when every call agrees, 1 when some differ (or the simulator cannot replay the
 * trace), 2 on a trace error (either replayer refused the trace), 3 when the simulator itself
 * failed (a bug), 4 when there is no live kernel to compare with.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PlatformOptions } from '../host.js';
import { recordingMachine, withHostMachine } from '../host_machine.js';
import { EXIT_MISMATCH, EXIT_OK, EXIT_SIMULATOR_BUG, EXIT_TRACE_ERROR } from './commands.js';
import { boundCalls, compareResults, formatDifferences, parseResults, type Difference } from './compare.js';
import { names } from './names.js';
import { formatTraceError, parseTrace, type ParsedTrace } from './parse.js';
import { formatCrash, formatWarning, replay } from './replay.js';
import type { JsonValue, TraceResult } from './results.js';

type Out = (s: string) => void;

/** There is no live kernel to compare with: no /dev/kvm, no `cc`, or the oracle could not run. */
export const EXIT_NO_KERNEL = 4;

/** test/oracle/ of this checkout; the same from bench/src/trace/ (vitest) and bench/dist/trace/ (the CLI). */
export const ORACLE_DIR = fileURLToPath(new URL('../../../test/oracle/', import.meta.url));
export const ORACLE_BINARY = `${ORACLE_DIR}build/cocosim-oracle`;

/** Whether this process may open /dev/kvm (or `device`) read-write, as the oracle does for KVM calls. */
export function kvmUsable(device = '/dev/kvm'): boolean {
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether the system C compiler the oracle is built with answers. */
export function ccAvailable(): boolean {
  return spawnSync(process.env.CC ?? 'cc', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * What stops the live kernel from being compared here, in plain words; empty when nothing does.
 * /dev/kvm is required even for traces without KVM calls, so that the answer never depends on
 * the trace: a machine either can check traces against its kernel or it cannot.
 */
export function kernelOracleProblems(kvmDevice = '/dev/kvm'): string[] {
  const problems: string[] = [];
  if (process.platform !== 'linux') problems.push(`this is ${process.platform}, not Linux: there is no Linux kernel here to replay the trace on`);
  else if (!kvmUsable(kvmDevice)) problems.push(`${kvmDevice} is missing or not readable and writable by this user: the kernel oracle needs it`);
  if (!existsSync(ORACLE_BINARY) || oracleStale()) {
    if (!ccAvailable()) problems.push(`no C compiler \`${process.env.CC ?? 'cc'}\` on this machine: the kernel oracle (test/oracle/) cannot be built`);
  }
  return problems;
}

/** The oracle binary is older than one of its sources. */
function oracleStale(): boolean {
  const built = statSync(ORACLE_BINARY).mtimeMs;
  return readdirSync(ORACLE_DIR)
    .filter((f) => /\.(c|h|sh)$/.test(f))
    .some((f) => statSync(`${ORACLE_DIR}${f}`).mtimeMs > built);
}

/** Builds the oracle when it is missing or stale; the build's complaint if that fails. */
export function ensureOracle(): string | undefined {
  if (existsSync(ORACLE_BINARY) && !oracleStale()) return undefined;
  const r = spawnSync('bash', [`${ORACLE_DIR}build.sh`], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(ORACLE_BINARY)) return undefined;
  return `test/oracle/build.sh failed${r.error !== undefined ? ` (${r.error.message})` : ''}:\n${r.stderr ?? ''}`;
}

/* ---- the side-by-side table ---- */

const CELL = 40;
const SHOWN_DATA_BYTES = 8;

function compact(v: JsonValue): string {
  return JSON.stringify(v).replace(/"/g, '');
}

function brief(data: JsonValue | undefined): string {
  if (typeof data === 'string') {
    const n = data.length / 2;
    return n <= SHOWN_DATA_BYTES ? `data ${data === '' ? '""' : data}` : `data ${data.slice(0, 2 * SHOWN_DATA_BYTES)}... (${n} bytes)`;
  }
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    return `data sha256:${String(data.sha256).slice(0, 8)} (${String(data.len)} bytes)`;
  }
  return '';
}

/** A ret as it reads best: addresses in hex, everything else in decimal. */
function retText(ret: number | string): string {
  return typeof ret === 'number' && ret > 0xffffffff ? `0x${ret.toString(16)}` : String(ret);
}

/** A result as a short cell: "-1 EINVAL", "0 data 68656c6c6f", "-1 SIGBUS BUS_ADRERR". */
export function resultCell(r: TraceResult | undefined): string {
  if (r === undefined) return '(no result)';
  const parts = [retText(r.ret)];
  if (r.errno !== undefined) parts.push(String(r.errno));
  if (r.signal !== undefined) parts.push(r.signal, r.si_code ?? '');
  if (r.data !== undefined) parts.push(brief(r.data));
  if (r.stat !== undefined) parts.push(`size ${String(r.stat.size)} blocks ${String(r.stat.blocks)}`);
  if (r.exit !== undefined) parts.push(`exit ${compact(r.exit)}`);
  if (r.arg !== undefined) parts.push(`arg ${compact(r.arg)}`);
  const s = parts.filter((p) => p !== '').join(' ');
  return s.length <= CELL ? s : `${s.slice(0, CELL - 3)}...`;
}

export interface SideBySide {
  readonly lines: string[];
  readonly agreeing: number;
  readonly calls: number;
}

/**
 * The table: one row per call (trace line, index, op, kernel result, simulator result), a `!`
 * in front of each call that differs, then each difference in full. `sim` may be undefined when
 * the simulator could not replay the trace.
 */
export function sideBySide(trace: ParsedTrace, kernel: readonly TraceResult[], sim: readonly TraceResult[] | undefined, diffs: readonly Difference[]): SideBySide {
  const k = new Map(kernel.map((r) => [r.i, r]));
  const s = new Map((sim ?? []).map((r) => [r.i, r]));
  const differing = new Set(diffs.map((d) => d.i));
  const opW = Math.max(2, ...trace.calls.map((c) => c.op.value.length));
  const lines = [`  ${'line'.padStart(5)} ${'call'.padStart(4)}  ${'op'.padEnd(opW)}  ${'kernel'.padEnd(CELL)}  simulator`];
  let agreeing = 0;
  for (const c of trace.calls) {
    const bad = sim === undefined || differing.has(c.i);
    if (!bad) agreeing++;
    const simCell = sim === undefined ? '(not replayed)' : resultCell(s.get(c.i));
    lines.push(`${bad ? '!' : ' '} ${String(c.line).padStart(5)} ${String(c.i).padStart(4)}  ${c.op.value.padEnd(opW)}  ${resultCell(k.get(c.i)).padEnd(CELL)}  ${simCell}`);
  }
  if (diffs.length > 0) {
    lines.push('', 'differences (kernel first):');
    lines.push(...formatDifferences(diffs, { left: 'kernel', right: 'simulator' }, trace).map((l) => `  ${l}`));
  }
  return { lines, agreeing, calls: trace.calls.length };
}

function summary(t: SideBySide, diffs: readonly Difference[], lineOf: ReadonlyMap<number, number>): string {
  const calls = [...new Set(diffs.map((d) => d.i))];
  const pct = t.calls === 0 ? 100 : Math.floor((100 * t.agreeing) / t.calls);
  if (calls.length === 0 && t.agreeing === t.calls) return `agreement: all ${t.calls} calls agree`;
  const list = calls.slice(0, 12).map((i) => `${i} (line ${lineOf.get(i) ?? '?'})`).join(', ');
  const more = calls.length > 12 ? `, and ${calls.length - 12} more` : '';
  return `agreement: ${t.agreeing} of ${t.calls} calls agree (${pct}%); ${t.calls - t.agreeing} differ${calls.length > 0 ? `: calls ${list}${more}` : ''}`;
}

/* ---- the command ---- */

export interface DiffKernelOptions {
  readonly trace: string | undefined;
  readonly vendor?: string;
  readonly design?: string;
  readonly platformOptions?: PlatformOptions;
  /** The KVM device to require (tests point it at a path that does not exist). */
  readonly kvmDevice?: string;
}

export function diffKernelCommand(opts: DiffKernelOptions, out: Out, err: Out): number {
  if (opts.trace === undefined) {
    err('cocosim diff-kernel: which trace? usage: cocosim diff-kernel TRACE [--vendor V] [--design D]');
    return EXIT_TRACE_ERROR;
  }
  const file = opts.trace === '-' ? '<stdin>' : opts.trace;
  let text: string;
  try {
    text = readFileSync(opts.trace === '-' ? 0 : opts.trace, 'utf8');
  } catch (e) {
    err(`cocosim diff-kernel: cannot read ${opts.trace}: ${(e as Error).message}`);
    return EXIT_TRACE_ERROR;
  }
  const trace = parseTrace(text, file);
  if (trace.errors.length > 0) {
    for (const e of trace.errors) err(formatTraceError(e));
    return EXIT_TRACE_ERROR;
  }
  const problems = kernelOracleProblems(opts.kvmDevice);
  if (problems.length > 0) {
    for (const p of problems) err(`cocosim diff-kernel: ${p}.`);
    err('cocosim diff-kernel: nothing was compared. The recorded results of the corpus (test/traces/*.kernel.jsonl) are');
    err('compared by `npx vitest run test/oracle/corpus.test.ts`, or one by one with `cocosim replay TRACE --compare RECORDING`.');
    return EXIT_NO_KERNEL;
  }
  const buildProblem = ensureOracle();
  if (buildProblem !== undefined) {
    err(`cocosim diff-kernel: ${buildProblem}`);
    return EXIT_NO_KERNEL;
  }

  const o = spawnSync(ORACLE_BINARY, ['--header', '--no-check', '-'], { input: text, encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 28 });
  if (o.status === 2) {
    err(`cocosim diff-kernel: the kernel oracle refused the trace:\n${o.stderr.trimEnd().replace(/<stdin>/g, file)}`);
    return EXIT_TRACE_ERROR;
  }
  if (o.status !== 0 && o.status !== 1) {
    const how = o.error !== undefined ? o.error.message : o.signal !== null ? `killed by ${o.signal}` : `exit status ${o.status}`;
    err(`cocosim diff-kernel: the kernel oracle failed (${how}); nothing was compared.\n${o.stderr ?? ''}`);
    return EXIT_NO_KERNEL;
  }
  const rec = parseResults(o.stdout, `${file} (kernel)`);
  if (rec.errors.length > 0 || rec.results.length !== trace.calls.length) {
    for (const e of rec.errors) err(formatTraceError(e));
    err(`cocosim diff-kernel: the kernel oracle printed ${rec.results.length} results for ${trace.calls.length} calls; nothing was compared.`);
    return EXIT_NO_KERNEL;
  }
  const release = typeof rec.meta.kernel === 'string' ? rec.meta.kernel : 'unknown';

  /* the simulated CPUs are this machine's, as the oracle reported them (protection keys, how many) */
  const report = replay(trace, { vendor: opts.vendor, design: opts.design, platformOptions: withHostMachine(opts.platformOptions, recordingMachine(rec.meta)) });
  const platform = `${report.platform.vendor}/${report.platform.design}`;
  out(`${file}: kernel ${release} (live, test/oracle) against the simulator (${platform})`);
  out('');
  if (report.errors.length > 0) {
    // Nothing ran: a table of kernel results against nothing would only bury the reason.
    err('cocosim diff-kernel: the simulator cannot replay this trace (the kernel could):');
    for (const e of report.errors.slice(0, 20)) err(formatTraceError(e));
    if (report.errors.length > 20) err(`... and ${report.errors.length - 20} more`);
    out(`agreement: none; the simulator replayed none of the ${trace.calls.length} calls`);
    return EXIT_MISMATCH;
  }
  const diffs = compareResults(rec.results, report.results, { bound: boundCalls(trace), names });
  const table = sideBySide(trace, rec.results, report.results, diffs);
  for (const l of table.lines) out(l);
  for (const w of report.warnings) err(formatWarning(w));
  out('');
  if (report.crash !== undefined) {
    err(formatCrash(report.crash));
    out(`agreement: unknown; the simulator failed at call ${report.crash.i} (line ${report.crash.line})`);
    return EXIT_SIMULATOR_BUG;
  }
  out(summary(table, diffs, new Map(trace.calls.map((c) => [c.i, c.line]))));
  return diffs.length === 0 ? EXIT_OK : EXIT_MISMATCH;
}
