/**
 * The trace corpus and its kernel recordings (test/traces/): every `NAME.trace.jsonl` has beside
 * it `NAME.kernel.jsonl`, what the kernel oracle (test/oracle/) printed when it replayed the trace
 * on a real Linux kernel, whose first line is `{"kernel": "<uname -r>"}`. Checking a trace
 * replays it on the simulator and compares the result stream with the recording by the spec's
 * rules (compare.ts), so that every test run compares the simulator with real Linux, also on a
 * machine without /dev/kvm.
 *
 * A check also says what the simulator lacks to replay the trace at all ("KVM" while the
 * simulator has no /dev/kvm; a system call whose Process method does not exist yet), so that a
 * trace can be parked as pending for that reason, and the park ends the moment the reason does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Process } from '@cocosim/mm';
import type { PlatformOptions } from '../host.js';
import { recordingMachine, withHostMachine } from '../host_machine.js';
import { boundCalls, compareResults, parseResults, type Difference } from './compare.js';
import type { JsonValue, TraceResult } from './results.js';
import { names } from './names.js';
import { getOp, methodOf } from './ops.js';
import { parseTrace, type ParsedTrace, type TraceError } from './parse.js';
import { replay, type ReplayReport } from './replay.js';

export const TRACE_SUFFIX = '.trace.jsonl';
export const RECORDING_SUFFIX = '.kernel.jsonl';

/** The recording that belongs to a trace: `x.trace.jsonl` -> `x.kernel.jsonl`. */
export function recordingOf(tracePath: string): string {
  const base = tracePath.endsWith(TRACE_SUFFIX) ? tracePath.slice(0, -TRACE_SUFFIX.length) : tracePath;
  return `${base}${RECORDING_SUFFIX}`;
}

/** The traces of a corpus directory, by file name, sorted. */
export function corpusTraces(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(TRACE_SUFFIX)).sort();
}

/** The feature the simulator lacks for the whole of KVM: /dev/kvm, its ioctls and guest accesses. */
export const LACKS_KVM = 'KVM';

// An unknown KVM name means the name table has no KVM package registered: no KVM at all.
const KVM_NAME_RE = /^unknown name "(KVM_|GUEST_MEMFD_)/;
const KVM_OPS = new Set(['guest_load', 'guest_store']);

/**
 * What the simulator lacks to replay a trace: "KVM", the Process methods (system calls) the
 * trace's calls need and the simulated process does not have ("mlock2", "process_vm_readv"), and
 * the ioctl requests it answers ENOTTY where the kernel did not ("KVM_CREATE_GUEST_MEMFD").
 * A platform without a method answers ENOSYS (ops.ts), so such a call cannot agree with the
 * kernel. Reading the trace and, where it ran, the simulator's results is enough to tell.
 */
export function simulatorLacks(trace: ParsedTrace, report: ReplayReport, kernel: readonly TraceResult[]): string[] {
  const lacks = new Set<string>();
  // Only while no KVM name is known at all: once KVM registers its names, an unknown one is a typo.
  if (names.names('KVM_').length === 0 && report.errors.some((e) => KVM_NAME_RE.test(e.message))) lacks.add(LACKS_KVM);
  const sim = new Map(report.results.map((r) => [r.i, r]));
  const ker = new Map(kernel.map((r) => [r.i, r]));
  for (const call of trace.calls) {
    const op = getOp(call.op.value);
    if (op === undefined) continue;
    // The variant's test needs only which arguments are present (mlock with flags is mlock2).
    const present = op.args.map((a) => (call.node.members.some((m) => m.name === a.name) ? true : undefined));
    const method = op.variant?.when(present) === true ? op.variant.method : op.method;
    if (methodOf(Process.prototype, method) === undefined) lacks.add(KVM_OPS.has(op.name) ? LACKS_KVM : method);
    // An ioctl the simulator does not know (ENOTTY) where the kernel knew it: the simulator lacks
    // that request, named as the trace names it ("KVM_CREATE_GUEST_MEMFD").
    const req = call.node.members.find((m) => m.name === 'req')?.value;
    if (op.name === 'ioctl' && req?.kind === 'string') {
      const s = sim.get(call.i);
      const k = ker.get(call.i);
      if (s?.errno === 'ENOTTY' && k !== undefined && k.errno !== 'ENOTTY') lacks.add(req.value);
    }
    const path = call.node.members.find((m) => m.name === 'path')?.value;
    if (op.name === 'open' && path?.kind === 'string' && path.value === '/dev/kvm') {
      const s = sim.get(call.i);
      const k = ker.get(call.i);
      if (s !== undefined && s.errno !== undefined && (k === undefined || k.errno === undefined)) lacks.add(LACKS_KVM);
    }
  }
  return [...lacks].sort();
}

/** A trace replayed on the simulator and compared with its kernel recording. */
export interface RecordingCheck {
  readonly file: string;
  readonly recordingFile: string;
  readonly trace: ParsedTrace;
  /** The kernel release the recording names (its `{"kernel": ...}` line), if it names one. */
  readonly kernel?: string;
  readonly kernelResults: readonly TraceResult[];
  /** Problems with the recording itself: unreadable lines, no header, a result count that does not match the trace. */
  readonly recordingErrors: readonly string[];
  readonly simulator: ReplayReport;
  /** Kernel (left) against simulator (right); empty when they agree. */
  readonly differences: readonly Difference[];
  /** See simulatorLacks(). */
  readonly lacks: readonly string[];
  /** The trace line of each call, by its index. */
  readonly lineOf: ReadonlyMap<number, number>;
}

export interface CheckOptions {
  readonly file?: string;
  readonly recordingFile?: string;
  readonly platformOptions?: PlatformOptions;
}

function formatError(e: TraceError): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.col}: ${e.message}` : `${e.file}: ${e.message}`;
}

/** Replays a trace on the simulator and compares it with recorded kernel results (text of both). */
export function checkRecording(traceText: string, recordingText: string, opts: CheckOptions = {}): RecordingCheck {
  const file = opts.file ?? '<trace>';
  const recordingFile = opts.recordingFile ?? recordingOf(file);
  const trace = parseTrace(traceText, file);
  const rec = parseResults(recordingText, recordingFile);
  const recordingErrors = rec.errors.map(formatError);
  const kernel = typeof rec.meta.kernel === 'string' ? rec.meta.kernel : undefined;
  if (kernel === undefined) recordingErrors.push(`${recordingFile}: no {"kernel": "<uname -r>"} line before the results (record it with test/oracle/record.sh)`);
  if (rec.results.length !== trace.calls.length) {
    recordingErrors.push(`${recordingFile}: ${rec.results.length} results for the trace's ${trace.calls.length} calls: the recording is stale (re-record it with test/oracle/record.sh)`);
  }
  for (const r of rec.results) {
    const call = trace.calls[r.i];
    if (call !== undefined && call.op.value !== r.op) {
      recordingErrors.push(`${recordingFile}: result ${r.i} is of op "${r.op}" but call ${r.i} of the trace is "${call.op.value}": the recording is stale`);
      break;
    }
  }
  /* the simulated CPUs are the recording machine's (protection keys, how many) */
  const simulator = replay(trace, { platformOptions: withHostMachine(opts.platformOptions, recordingMachine(rec.meta)) });
  const differences = simulator.errors.length > 0 || simulator.crash !== undefined
    ? []
    : compareResults(rec.results, simulator.results, { bound: boundCalls(trace), names });
  return {
    file,
    recordingFile,
    trace,
    kernel,
    kernelResults: rec.results,
    recordingErrors,
    simulator,
    differences,
    lacks: simulatorLacks(trace, simulator, rec.results),
    lineOf: new Map(trace.calls.map((c) => [c.i, c.line])),
  };
}

/** checkRecording() of a trace file and the recording beside it. */
export function checkTraceFile(path: string, opts: Omit<CheckOptions, 'file'> = {}): RecordingCheck {
  const recordingFile = opts.recordingFile ?? recordingOf(path);
  let recording = '';
  let missing: string | undefined;
  try {
    recording = readFileSync(recordingFile, 'utf8');
  } catch (e) {
    missing = `${recordingFile}: cannot read the recording (${(e as Error).message}); record it with test/oracle/record.sh`;
  }
  const check = checkRecording(readFileSync(path, 'utf8'), recording, { ...opts, file: path, recordingFile });
  return missing === undefined ? check : { ...check, recordingErrors: [missing] };
}

/** One differing field, in the form the corpus's list of known disagreements records it. */
export interface DisagreementKey {
  readonly i: number;
  readonly line: number;
  readonly op: string;
  /** The differing result field; "result" when one side has no result for the call at all. */
  readonly field: string;
  readonly kernel: JsonValue | null;
  readonly simulator: JsonValue | null;
  /** The field is the ret of a call bound with "as": only success was compared. */
  readonly bound: boolean;
}

/** The differences of a check as DisagreementKeys (absent values are null). */
export function disagreementKeys(check: RecordingCheck): DisagreementKey[] {
  return check.differences.map((d) => ({
    i: d.i,
    line: check.lineOf.get(d.i) ?? 0,
    op: d.op,
    field: d.field ?? 'result',
    kernel: d.only === 'right' ? null : d.left ?? null,
    simulator: d.only === 'left' ? null : d.right ?? null,
    bound: d.bound,
  }));
}

