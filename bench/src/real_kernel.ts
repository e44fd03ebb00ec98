/**
 * The real-kernel side of a benchmark suite: a C program under bench/real/ that runs the suite's
 * cases (the same names) on this machine's kernel and prints its timings as JSON (see
 * bench/real/mm_bench.c for the format). `npm run bench -- SUITE` builds it with the system `cc`
 * when it is missing or older than its source, runs it, prints the simulator's and the kernel's
 * times side by side and, as its last line, `SUITE/real-kernel speedup: X`: the smallest of the
 * per-case ratios real / simulator, over the cases both ran.
 *
 * It runs only where the comparison means something: on Linux, with /dev/kvm usable when the
 * suite's cases need KVM (`needs_kvm`: guest_memfd does, the mm cases do not, so that a host
 * without KVM, such as a PVM guest, still compares mm), memfd working (the program checks that
 * one and says so) and a C compiler when the program must be built. Otherwise the last line
 * says why there is no comparison instead of giving a speedup.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMs, type SuiteResult } from './harness.js';
import { ccAvailable, kvmUsable } from './trace/diff_kernel.js';

/** bench/real/ of this checkout, from bench/src/ (vitest) and bench/dist/ (the bench command). */
export const REAL_DIR = fileURLToPath(new URL('../real/', import.meta.url));

/** One case as the C program reports it. */
export interface RealCaseResult {
  readonly name: string;
  /** Median time of one operation, in ms. */
  readonly ms: number;
  readonly min_ms: number;
  readonly max_ms: number;
  readonly samples: number;
  readonly ops: number;
}

export interface RealKernelResult {
  readonly kernel: string;
  readonly cases: readonly RealCaseResult[];
}

/** What a suite needs to be compared with the real kernel. */
export interface RealKernelSide {
  /** The C source in bench/real/, e.g. `mm_bench.c`. */
  readonly source: string;
  /** The program needs /dev/kvm (it creates VMs or guest_memfds). */
  readonly needs_kvm: boolean;
}

/** A case of the side-by-side table. */
export interface ComparedCase {
  readonly name: string;
  readonly sim_ms: number | undefined;
  readonly real_ms: number | undefined;
  /** real / simulator, when both ran the case. */
  readonly speedup: number | undefined;
}

/** What stops the comparison on this machine, in plain words; empty when nothing does. */
export function realKernelProblems(needs_kvm: boolean): string[] {
  const problems: string[] = [];
  if (process.platform !== 'linux') problems.push(`this is ${process.platform}, not Linux`);
  else if (needs_kvm && !kvmUsable()) problems.push('/dev/kvm is missing or not readable and writable by this user');
  return problems;
}

/** Build bench/real/build/NAME from NAME.c when missing or stale: the binary, or the build's complaint. */
export function buildRealProgram(source: string): { binary: string } | { error: string } {
  const src = join(REAL_DIR, source);
  const binary = join(REAL_DIR, 'build', basename(source, '.c'));
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(src).mtimeMs) return { binary };
  if (!ccAvailable()) return { error: `no C compiler \`${process.env.CC ?? 'cc'}\` to build bench/real/${source}` };
  mkdirSync(join(REAL_DIR, 'build'), { recursive: true });
  const r = spawnSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-o', binary, src], { encoding: 'utf8' });
  if (r.status === 0) return { binary };
  return { error: `cc ${source} failed${r.error !== undefined ? ` (${r.error.message})` : ''}: ${r.stderr ?? ''}`.trim() };
}

/** Parse the program's output: the results, or why there are none (its `error`, or bad output). */
export function parseRealOutput(stdout: string): RealKernelResult | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return { error: `the real-kernel program printed no JSON: ${stdout.slice(0, 200)}` };
  }
  const o = parsed as Partial<RealKernelResult> & { error?: unknown };
  if (typeof o.error === 'string') return { error: o.error };
  if (typeof o.kernel !== 'string' || !Array.isArray(o.cases)) return { error: 'the real-kernel program printed JSON without kernel and cases' };
  for (const c of o.cases) {
    if (typeof c?.name !== 'string' || typeof c.ms !== 'number' || !(c.ms > 0)) return { error: `bad case in the real-kernel output: ${JSON.stringify(c)}` };
  }
  return { kernel: o.kernel, cases: o.cases };
}

/** Pair the simulator's and the kernel's cases by name, simulator's order first. */
export function compareCases(sim: SuiteResult, real: RealKernelResult): ComparedCase[] {
  const byName = new Map(real.cases.map((c) => [c.name, c]));
  const out: ComparedCase[] = sim.results.map((r) => {
    const k = byName.get(r.name);
    return { name: r.name, sim_ms: r.ms, real_ms: k?.ms, speedup: k === undefined ? undefined : k.ms / r.ms };
  });
  for (const c of real.cases) {
    if (!sim.results.some((r) => r.name === c.name)) out.push({ name: c.name, sim_ms: undefined, real_ms: c.ms, speedup: undefined });
  }
  return out;
}

/** The smallest speedup of the cases both sides ran, or undefined when there is none. */
export function smallestSpeedup(cases: readonly ComparedCase[]): number | undefined {
  let min: number | undefined;
  for (const c of cases) if (c.speedup !== undefined && (min === undefined || c.speedup < min)) min = c.speedup;
  return min;
}

/**
 * Run the suite's real-kernel side and print the comparison; the last line printed is the
 * speedup line, or the reason there is no comparison.
 */
export function compareWithRealKernel(
  sim: SuiteResult,
  side: RealKernelSide,
  opts: { outDir: string; samples: number; log?: (s: string) => void },
): number | undefined {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const none = (why: string): undefined => {
    log(`${sim.suite}/real-kernel: no comparison: ${why}`);
    return undefined;
  };
  const problems = realKernelProblems(side.needs_kvm);
  if (problems.length !== 0) return none(problems.join('; '));
  const built = buildRealProgram(side.source);
  if ('error' in built) return none(built.error);
  log(`# ${sim.suite} on the real kernel: ${basename(built.binary)} --samples ${opts.samples}`);
  const r = spawnSync(built.binary, ['--samples', String(opts.samples)], { encoding: 'utf8', timeout: 30 * 60 * 1000, maxBuffer: 1 << 20 });
  if (r.status !== 0) return none(`${basename(built.binary)} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim()}`);
  const real = parseRealOutput(r.stdout);
  if ('error' in real) return none(real.error);
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(join(opts.outDir, `${sim.suite}.real.json`), `${JSON.stringify(real, null, 2)}\n`);

  const cases = compareCases(sim, real);
  const width = Math.max(...cases.map((c) => c.name.length));
  const cell = (ms: number | undefined): string => (ms === undefined ? '-' : formatMs(ms)).padStart(12);
  log(`# ${sim.suite}: simulator (node ${sim.node}) vs Linux ${real.kernel}, median time per operation`);
  log(`${'case'.padEnd(width)}  ${'simulator'.padStart(12)}  ${'real kernel'.padStart(12)}  speedup`);
  for (const c of cases) {
    log(`${c.name.padEnd(width)}  ${cell(c.sim_ms)}  ${cell(c.real_ms)}  ${c.speedup === undefined ? '-' : c.speedup.toFixed(2)}`);
  }
  const min = smallestSpeedup(cases);
  if (min === undefined) return none('the simulator and the real kernel ran no case in common');
  log(`${sim.suite}/real-kernel speedup: ${min.toFixed(2)}`);
  return min;
}
