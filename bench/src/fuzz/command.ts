/**
 * `cocosim fuzz [--calls N] [--seed S] [--platform VENDOR/DESIGN]... [--program-length N]
 * [--save DIR] [--no-check] [--js-shapes N]`: fuzz the simulator (fuzz.ts). Prints each distinct
 * finding (with its minimized trace when it has one) and a summary; exit 0 when nothing was
 * found, 1 otherwise, 2 on bad options.
 */
import { existsSync } from 'node:fs';
import { platformChoices, type PlatformChoice } from '../trace/index.js';
import { fuzz } from './fuzz.js';
import { kernelDiff } from './kernel_diff.js';
import { kvmUsable } from '../trace/diff_kernel.js';

type Out = (s: string) => void;

export interface FuzzCommandOptions {
  readonly calls?: string;
  readonly seed: string;
  /** VENDOR/DESIGN or VENDOR; none means every registered platform. */
  readonly platforms?: readonly string[];
  readonly programLength?: string;
  /** Where minimized programs go (default test/fuzz/found when it exists here). */
  readonly save?: string;
  readonly noCheck?: boolean;
  readonly jsShapes?: string;
  /** Differential mode: generic programs on this machine's kernel and on the simulator (kernel_diff.ts). */
  readonly kernelDiff?: boolean;
  /** With kernelDiff: a default VM's KVM calls too (kernel_diff.ts KernelDiffOptions.kvm). */
  readonly kvm?: boolean;
}

function count(s: string | undefined, def: number, what: string, err: Out): number | undefined {
  if (s === undefined) return def;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) {
    err(`cocosim fuzz: ${what} must be a whole number, not "${s}"`);
    return undefined;
  }
  return n;
}

export function fuzzCommand(o: FuzzCommandOptions, out: Out, err: Out): number {
  const calls = count(o.calls, 10000, '--calls', err);
  const len = count(o.programLength, 100, '--program-length', err);
  const js = count(o.jsShapes, Math.ceil((calls ?? 0) / 10), '--js-shapes', err);
  if (calls === undefined || len === undefined || js === undefined || len === 0) return 2;
  if (o.kernelDiff === true) return kernelDiffCommand(o.seed, calls, len, o.kvm === true, out, err);
  const known = platformChoices();
  let platforms: PlatformChoice[] = known;
  if (o.platforms !== undefined && o.platforms.length > 0) {
    platforms = [];
    for (const p of o.platforms) {
      const [vendor, design] = p.split('/');
      const match = known.filter((c) => c.vendor === vendor && (design === undefined || c.design === design));
      if (match.length === 0) {
        err(`cocosim fuzz: unknown platform "${p}" (known: ${known.map((c) => `${c.vendor}/${c.design}`).join(', ')})`);
        return 2;
      }
      platforms.push(...match);
    }
  }
  const saveDir = o.save ?? (existsSync('test/fuzz/found') ? 'test/fuzz/found' : undefined);
  const report = fuzz({
    calls, seed: o.seed, platforms, programLength: len, saveDir, jsShapes: js,
    run: o.noCheck === true ? { invariants: false, digest: false } : {},
    progress: err,
  });
  for (const b of report.bugs) {
    out(`${b.platform.vendor}/${b.platform.design}: ${b.finding.signature} (${b.count}x)`);
    out(`  ${b.finding.message.split('\n').slice(0, 6).join('\n  ')}`);
    if (b.saved !== undefined) out(`  minimized to ${b.program!.lines.length} calls: ${b.saved}`);
    else if (b.text !== undefined) out(b.text);
  }
  const kinds = Object.entries(report.byKind).map(([k, n]) => `${k} ${n}`).join(', ');
  const n = report.calls + report.jsShapeCalls;
  const us = (ms: number): string => (n > 0 ? ((ms * 1000) / n).toFixed(0) : '0');
  out(`fuzz: ${report.calls} calls in ${report.programs} programs and ${report.jsShapeCalls} direct calls on ` +
    `${platforms.map((p) => `${p.vendor}/${p.design}`).join(', ')}: ${(report.ms / 1000).toFixed(1)} s ` +
    `(${us(report.ms)} us a call; CPU ${(report.cpuMs / 1000).toFixed(1)} s, ${us(report.cpuMs)} us a call), ` +
    `${report.bugs.length} distinct findings${kinds === '' ? '' : ` (${kinds})`}`);
  return report.bugs.length === 0 ? 0 : 1;
}

/**
 * `cocosim fuzz --kernel-diff`: `calls` calls of generic programs on this machine's kernel (the
 * oracle, no /dev/kvm needed) and on the simulator; exit 0 when they agree, 1 when some differ,
 * 4 when the oracle cannot be built or run here.
 */
function kernelDiffCommand(seed: string, calls: number, len: number, kvm: boolean, out: Out, err: Out): number {
  if (process.platform !== 'linux') {
    err(`cocosim fuzz --kernel-diff: this is ${process.platform}, not Linux: there is no kernel to compare with`);
    return 4;
  }
  if (kvm && !kvmUsable()) {
    err('cocosim fuzz --kernel-diff --kvm: /dev/kvm is missing or not readable and writable by this user');
    return 4;
  }
  const t0 = performance.now();
  const report = kernelDiff({
    programs: Math.ceil(calls / len), seed, programLength: len, kvm,
    onProgress: (done, distinct) => { if (done % 50 === 0) err(`kernel-diff: ${done} programs, ${distinct} distinct differences`); },
  });
  if (typeof report === 'string') {
    err(`cocosim fuzz --kernel-diff: ${report}`);
    return 4;
  }
  for (const d of report.differences) {
    out(`${d.count}x ${d.signature}`);
    for (const l of d.details) out(`  ${l}`);
    out(d.program.trimEnd().split('\n').map((l) => `    ${l}`).join('\n'));
  }
  for (const e of report.environmentSignatures) {
    out(`set aside (environment): ${e.count}x ${e.signature}`);
    out(e.program.trimEnd().split('\n').map((l) => `    ${l}`).join('\n'));
  }
  out(`kernel-diff: ${report.programs} programs, ${report.calls} calls generated, ${report.compared} compared ` +
    `(${report.dropped} guarded calls taken out, ${report.guarded} programs stopped by the oracle's guard, ${report.refused} refused, ${report.environment} environment differences set aside): ` +
    `${report.differences.length} distinct differences, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return report.differences.length === 0 ? 0 : 1;
}
