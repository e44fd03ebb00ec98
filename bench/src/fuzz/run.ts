/**
 * Running a fuzz program: the trace replayer (bench/src/trace/replay.ts) on a fresh simulated
 * platform whose process is wrapped in DEBUG_VM (mm/src/debug_vm.ts debug_vm_process()), so that
 * after every call the host's invariants are checked and every failed call is shown to have
 * changed nothing (the state digest before and after it).
 *
 * What counts as a finding:
 *   crash                      a JS exception out of the simulator (`cocosim replay` exits 3 on it)
 *   invariant                  a DEBUG_VM rule broke after a call
 *   failed-call-changed-state  a call failed (-1 with errno) and the digest moved
 *   warning                    a WARN_ON the call raised
 *   nondeterminism             the same program twice gave other results or another final digest
 *   trace-error                the generator wrote a trace the replayer refuses (a fuzzer bug)
 *
 * jsShapeCalls() is the direct mode: Process methods called with values no trace can spell
 * (NaN, fractions, 2^64 and beyond, objects, strings where numbers go), each call checked the
 * same way. The project's rule is that any JS shape gets the kernel's errno, never an exception.
 */
import { PRandom, U64_MAX } from '@cocosim/core';
import { debug_vm_process, format_finding, mm_state_digest, type DebugVmFinding, type Process } from '@cocosim/mm';
import type { Platform } from '../host.js';
import {
  allOps, compileTrace, createTracePlatform, formatCrash, formatTraceError, methodOf, parseTrace, resultLine, runCompiled,
} from '../trace/index.js';

export type FindingKind = 'crash' | 'invariant' | 'failed-call-changed-state' | 'warning' | 'nondeterminism' | 'trace-error';

export interface FuzzFinding {
  readonly kind: FindingKind;
  /** The call (index in the program), -1 for the program as a whole. */
  readonly i: number;
  readonly op: string;
  /** What a minimized program must still show to count as the same bug (kind, op, rule...). */
  readonly signature: string;
  readonly message: string;
}

export interface RunOptions {
  /** Seed of the platform (default 0). */
  readonly seed?: string | number;
  /** Pages of simulated RAM (default 2^15: 128 MiB, so that memory runs out sometimes). */
  readonly nr_pages?: number;
  /** The simulated CPU has protection keys (default false; mm/src/pkeys.ts). */
  readonly pku?: boolean;
  /** DEBUG_VM checks after every call (default true). */
  readonly invariants?: boolean;
  /** The digest comparison around failed calls (default true). */
  readonly digest?: boolean;
  readonly file?: string;
}

export interface ProgramOutcome {
  readonly findings: FuzzFinding[];
  /** One result line per call that ran (trace-format results). */
  readonly results: string[];
  /** The digest of the host after the program (empty if it did not run). */
  readonly digest: string;
}

/** The first line of an error, numbers and addresses blanked: what two reports of one bug share. */
function errorKey(e: unknown): string {
  const first = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e).split('\n')[0];
  return first.replace(/0x[0-9a-f]+/gi, 'N').replace(/\d+/g, 'N').slice(0, 120);
}

function debugFinding(f: DebugVmFinding, i: number, op: string): FuzzFinding {
  const signature = f.kind === 'invariant'
    ? `invariant ${op} ${[...new Set(f.violations.map((v) => v.rule))].sort().join(',')}`
    : `failed-call-changed-state ${op} ${f.errno} ${(f.parts ?? []).join(',')}`;
  return { kind: f.kind, i, op, signature, message: format_finding(f) };
}

/** A platform of the trace's choice, its process checked by DEBUG_VM, findings into `findings`. */
function checkedPlatform(platform: Platform, opts: RunOptions, onFinding: (f: DebugVmFinding) => void): Platform {
  if (opts.invariants === false && opts.digest === false) return platform;
  return {
    ...platform,
    process: (): Process => debug_vm_process(platform.process(), { invariants: opts.invariants, digest: opts.digest, onFinding }),
  };
}

/** Runs one program (trace text) on a fresh platform and reports what went wrong. */
export function runProgram(text: string, opts: RunOptions = {}): ProgramOutcome {
  const file = opts.file ?? '<fuzz>';
  const compiled = compileTrace(parseTrace(text, file));
  const findings: FuzzFinding[] = [];
  const results: string[] = [];
  if (compiled.errors.length > 0) {
    const message = compiled.errors.map(formatTraceError).join('\n');
    findings.push({ kind: 'trace-error', i: -1, op: '', signature: 'trace-error', message });
    return { findings, results, digest: '' };
  }
  const platform = createTracePlatform(compiled.platform, { seed: opts.seed ?? 0, mm: { nr_pages: opts.nr_pages ?? 2 ** 15, pku: opts.pku } });
  const opAt = (i: number): string => compiled.calls[i]?.op.name ?? '?';
  const checked = checkedPlatform(platform, opts, (f) => findings.push(debugFinding(f, results.length, opAt(results.length))));
  const report = runCompiled(compiled, checked, { onResult: (r) => results.push(resultLine(r)) });
  for (const w of report.warnings) {
    findings.push({ kind: 'warning', i: w.i, op: w.op, signature: `warning ${w.op} ${w.kind}`, message: `${w.kind}: ${w.message}` });
  }
  if (report.crash !== undefined) {
    const c = report.crash;
    findings.push({ kind: 'crash', i: c.i, op: c.op, signature: `crash ${c.op} ${errorKey(c.error)}`, message: formatCrash(c) });
  }
  /*
   * The platform is not disposed: nothing in it is a tsyringe disposable, and
   * container.dispose() is async, so the continuation it queues would hold the whole host
   * until the event loop turns, which a fuzz run of a million calls never lets it do (the
   * hosts of ~5,000 programs filled a 4 GiB heap).
   */
  return { findings, results, digest: mm_state_digest(platform.kernel).digest };
}

/**
 * Runs a program twice, the second time without the checks (which must not change anything
 * either), and reports a difference in results or final state as nondeterminism.
 */
export function runTwice(text: string, opts: RunOptions = {}): ProgramOutcome {
  const first = runProgram(text, opts);
  if (first.findings.some((f) => f.kind === 'trace-error')) return first;
  const again = runProgram(text, { ...opts, invariants: false, digest: false });
  const k = first.results.findIndex((r, i) => r !== again.results[i]);
  if (k >= 0 || first.results.length !== again.results.length) {
    const i = k >= 0 ? k : Math.min(first.results.length, again.results.length);
    first.findings.push({
      kind: 'nondeterminism', i, op: '', signature: 'nondeterminism results',
      message: `call ${i}: ${first.results[i] ?? '(none)'} then ${again.results[i] ?? '(none)'}`,
    });
  } else if (first.digest !== again.digest) {
    first.findings.push({ kind: 'nondeterminism', i: -1, op: '', signature: 'nondeterminism digest', message: `final digest ${first.digest} then ${again.digest}` });
  }
  return first;
}

/* ---- the direct mode: JS shapes no trace can spell ---- */

/** Values of every JS shape a caller could pass where the kernel takes an integer, a buffer or a struct. */
export const JS_SHAPES: readonly (readonly [string, unknown])[] = [
  ['NaN', NaN], ['0.5', 0.5], ['-1.5', -1.5], ['4096.5', 4096.5], ['Infinity', Infinity], ['-Infinity', -Infinity],
  ['-0', -0], ['2^53', 2 ** 53], ['2^64', 2 ** 64], ['-2^63', -(2 ** 63)], ['2^64n', 2n ** 64n], ['-1n', -1n],
  ['2^63n', 2n ** 63n], ['U64_MAX', U64_MAX], ['"7"', '7'], ['""', ''], ['null', null], ['undefined', undefined],
  ['true', true], ['{}', {}], ['[]', []], ['[1]', [1]], ['bytes(0)', new Uint8Array(0)], ['bytes(4097)', new Uint8Array(4097)],
  ['{size:NaN}', { size: NaN, flags: 0.5 }], ['{slot:-1}', { slot: -1, memory_size: 2n ** 64n, guest_phys_addr: 1.5 }],
];

/**
 * `count` direct calls: a random op's method with random JS shapes (and, half the time, a valid
 * fd or address from the process's own resources first), on a fresh checked process. Returns
 * the findings; a call is described as `method(shape, ...)`.
 */
export function jsShapeCalls(seed: string | number, count: number, opts: RunOptions & { vendor?: string } = {}): FuzzFinding[] {
  const rng = new PRandom(`js-shapes:${seed}`);
  const findings: FuzzFinding[] = [];
  const platform = createTracePlatform({ vendor: opts.vendor ?? 'none', design: 'upstream' }, { seed: opts.seed ?? 0, mm: { nr_pages: opts.nr_pages ?? 2 ** 15 } });
  let current = '';
  let i = 0;
  const p = debug_vm_process(platform.process(), {
    invariants: opts.invariants, digest: opts.digest,
    onFinding: (f) => findings.push(debugFinding(f, i, current)),
  });
  /* something to aim at: a memfd, /dev/kvm, a mapping */
  const memfd = p.memfd_create('js', 0);
  p.ftruncate(memfd, 16 * 4096);
  const kvm = p.open('/dev/kvm');
  const map = p.mmap(0, 16n * 4096n, 3, 1, memfd, 0);
  const sane: unknown[] = [memfd, kvm, map, 4096, 0];
  const ops = allOps().filter((op) => methodOf(p, op.method) !== undefined);
  for (; i < count; i++) {
    const op = ops[rng.below(ops.length)];
    const n = Math.max(1, op.args.length);
    const shown: string[] = [];
    const args: unknown[] = [];
    for (let k = 0; k < n; k++) {
      if (rng.below(2) === 0) {
        const v = sane[rng.below(sane.length)];
        args.push(v);
        shown.push(typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v));
      } else {
        const [name, v] = JS_SHAPES[rng.below(JS_SHAPES.length)];
        args.push(v);
        shown.push(name);
      }
    }
    current = op.method;
    const call = `${op.method}(${shown.join(', ')})`;
    try {
      (methodOf(p, op.method)!).apply(p, args);
    } catch (e) {
      findings.push({ kind: 'crash', i, op: op.method, signature: `crash ${op.method} ${errorKey(e)}`, message: `${call}: ${e instanceof Error ? e.stack ?? e.message : String(e)}` });
    }
  }
  return findings;
}
