/**
 * Differential fuzzing against this machine's kernel: generic programs (generate.ts with
 * `generic`: memfd, files, mappings, loads and stores, process_vm_*, no KVM) replayed by the
 * kernel oracle (test/oracle, `--guard`) and by the simulator, their results compared as
 * `cocosim diff-kernel` compares them (values bound with "as" by success only). What differs is a
 * place where the simulator is not Linux, or where the two processes differ in what they hold
 * (see below); each distinct difference is reported once, with the shortest program that shows it.
 *
 * The oracle runs beside its own binary, libraries, heap and stack, where the simulated process
 * has nothing: with --guard it stops at the first call whose range reaches them, and only the
 * calls before it are compared. Memory differs too: the simulated host has `nr_pages` of RAM,
 * the machine its own, so a difference where either side ran out (ENOMEM, ENOSPC, SIGBUS on
 * a full tmpfs) is counted apart, as an environment difference, and not reported; so is one
 * where a pid exists on one side only (ESRCH).
 */
import { spawnSync } from 'node:child_process';
import { boundCalls, compareResults, formatDifferences, parseResults, type Difference } from '../trace/compare.js';
import { ORACLE_BINARY, ensureOracle } from '../trace/diff_kernel.js';
import { getOp, names, parseTrace, replay, type OpSpec } from '../trace/index.js';
import { GENERIC_OPS, generateProgram, programText } from './generate.js';

export interface KernelDiffOptions {
  /** Programs to run. */
  readonly programs: number;
  readonly seed: string;
  /** Calls per program (default 40). */
  readonly programLength?: number;
  /** Pages of simulated RAM (default 2^18: 1 GiB, above the oracle's GUARD_BUDGET). */
  readonly nr_pages?: number;
  readonly onProgress?: (done: number, distinct: number) => void;
}

export interface KernelDifference {
  /** op, field and the two values, numbers blanked: what two reports of one disagreement share. */
  readonly signature: string;
  readonly count: number;
  /** The shortest program that showed it, and its differences. */
  readonly program: string;
  readonly details: string[];
}

export interface KernelDiffReport {
  readonly programs: number;
  readonly calls: number;
  /** Calls compared (before the oracle's guard stopped a program). */
  readonly compared: number;
  readonly guarded: number;
  /** Programs the oracle refused (exit 2) or could not finish. */
  readonly refused: number;
  /** Differences where one side ran out of memory. */
  readonly environment: number;
  readonly differences: KernelDifference[];
}

/*
 * Errnos that say more about the machine than about Linux: running out of memory, and a pid that
 * exists on one side only (F_SETOWN: the machine has its own processes and kernel threads).
 */
const OUT_OF_MEMORY = new Set(['ENOMEM', 'ENOSPC', 'EFBIG', 'ESRCH']);

function signatureOf(d: Difference): string {
  const v = (x: unknown): string => JSON.stringify(x ?? null).replace(/\d+/g, 'N');
  return `${d.op} ${d.field ?? (d.only !== undefined ? `only-${d.only}` : '?')} kernel=${v(d.left)} sim=${v(d.right)}`;
}

/** Runs the oracle on one program: its result lines, cut at a guarded call; undefined if it refused. */
function runOracle(text: string): { out: string; guarded: boolean } | undefined {
  const o = spawnSync(ORACLE_BINARY, ['--guard', '--no-check', '-'], { input: text, encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL', maxBuffer: 1 << 28 });
  if (o.status !== 0 && o.status !== 1) return undefined;
  const lines = o.stdout.split('\n').filter((l) => l !== '');
  const guarded = lines.length > 0 && lines[lines.length - 1].includes('"guarded":true');
  return { out: (guarded ? lines.slice(0, -1) : lines).join('\n') + '\n', guarded };
}

export function kernelDiff(opts: KernelDiffOptions): KernelDiffReport | string {
  const problem = ensureOracle();
  if (problem !== undefined) return problem;
  const ops = GENERIC_OPS.map((n) => getOp(n)).filter((o): o is OpSpec => o !== undefined);
  const len = opts.programLength ?? 40;
  const found = new Map<string, { count: number; program: string; details: string[] }>();
  let calls = 0;
  let compared = 0;
  let guarded = 0;
  let refused = 0;
  let environment = 0;
  for (let k = 0; k < opts.programs; k++) {
    const text = programText(generateProgram(`${opts.seed}:${k}`, { vendor: 'none', design: 'upstream', calls: len, ops, generic: true }));
    calls += len;
    const kernel = runOracle(text);
    if (kernel === undefined) {
      refused++;
      continue;
    }
    if (kernel.guarded) guarded++;
    const rec = parseResults(kernel.out, 'kernel');
    const trace = parseTrace(text, 'fuzz');
    const sim = replay(trace, { platformOptions: { mm: { nr_pages: opts.nr_pages ?? 2 ** 18 } } });
    const upto = rec.results.length;
    compared += upto;
    const simResults = sim.results.filter((r) => r.i < upto);
    let diffs = compareResults(rec.results, simResults, { bound: boundCalls(trace), names });
    /* after the first difference the two processes hold different things: only it counts */
    if (diffs.length > 0) diffs = diffs.filter((d) => d.i === diffs[0].i);
    if (diffs.length === 0) continue;
    const values = diffs.flatMap((d) => [d.left, d.right]).map((x) => String(x));
    if (values.some((x) => OUT_OF_MEMORY.has(x))) {
      environment++;
      continue;
    }
    const sig = diffs.map(signatureOf).join('; ');
    const prior = found.get(sig);
    const cut = text.split('\n').slice(0, 2 + diffs[0].i).join('\n') + '\n';
    if (prior === undefined || cut.length < prior.program.length) {
      found.set(sig, { count: (prior?.count ?? 0) + 1, program: cut, details: formatDifferences(diffs, { left: 'kernel', right: 'simulator' }, trace) });
    } else {
      prior.count++;
    }
    opts.onProgress?.(k + 1, found.size);
  }
  const differences = [...found].map(([signature, f]) => ({ signature, ...f })).sort((a, b) => b.count - a.count);
  return { programs: opts.programs, calls, compared, guarded, refused, environment, differences };
}
