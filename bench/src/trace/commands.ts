/**
 * The trace commands of the `cocosim` CLI (bench/src/cli.ts dispatches to them):
 *
 *   cocosim replay TRACE [--vendor V] [--design D] [--expect-only] [--compare RESULTS] [--pku yes|no]
 *       result lines on stdout, expectation mismatches on stderr; exit 0 when every
 *       expectation holds, 1 on a mismatch, 2 on a trace error (file:line:col: message),
 *       3 when the simulator itself failed (a bug). TRACE "-" reads stdin. With --compare,
 *       the results are also compared with a result file (a kernel recording,
 *       NAME.kernel.jsonl): each difference on stderr, and exit 1 if there is one.
 *   cocosim ops
 *       every op: its arguments, what it returns, and the platforms that have it.
 */
import { readFileSync } from 'node:fs';
import { Process } from '@cocosim/mm';
import type { PlatformOptions } from '../host.js';
import { thisMachine, recordingMachine, withHostMachine } from '../host_machine.js';
import { boundCalls, compareResults, formatDifferences, parseResults } from './compare.js';
import { errnoName, names } from './names.js';
import { allOps, hasOp, type ArgSpec, type OpSpec } from './ops.js';
import { formatTraceError, parseTrace } from './parse.js';
import { platformChoices } from './platforms.js';
import { formatCrash, formatWarning, replay } from './replay.js';
import { formatMismatch, resultLine } from './results.js';

type Out = (s: string) => void;

/** Exit codes of `cocosim replay`. */
export const EXIT_OK = 0;
export const EXIT_MISMATCH = 1;
export const EXIT_TRACE_ERROR = 2;
export const EXIT_SIMULATOR_BUG = 3;

export interface ReplayCommandOptions {
  readonly trace: string | undefined;
  readonly vendor?: string;
  readonly design?: string;
  /** Print no results, only check the expectations. */
  readonly expectOnly?: boolean;
  /** A result file to compare the results with (a kernel recording: its {"kernel": ...} line names the other side). */
  readonly compare?: string;
  readonly platformOptions?: PlatformOptions;
  /** The simulated CPU has protection keys (--pku yes|no); default: see replayCommand(). */
  readonly pku?: boolean;
}

export function replayCommand(opts: ReplayCommandOptions, out: Out, err: Out): number {
  if (opts.trace === undefined) {
    err('cocosim replay: which trace? usage: cocosim replay TRACE [--vendor V] [--design D] [--expect-only] [--compare RESULTS]');
    return EXIT_TRACE_ERROR;
  }
  let text: string;
  try {
    text = readFileSync(opts.trace === '-' ? 0 : opts.trace, 'utf8');
  } catch (e) {
    err(`cocosim replay: cannot read ${opts.trace}: ${(e as Error).message}`);
    return EXIT_TRACE_ERROR;
  }
  let expected: { text: string; file: string } | undefined;
  if (opts.compare !== undefined) {
    try {
      expected = { text: readFileSync(opts.compare, 'utf8'), file: opts.compare };
    } catch (e) {
      err(`cocosim replay: cannot read ${opts.compare}: ${(e as Error).message}`);
      return EXIT_TRACE_ERROR;
    }
  }
  const trace = parseTrace(text, opts.trace === '-' ? '<stdin>' : opts.trace);
  /*
   * The simulated CPUs: the recording machine's (--compare), else this machine's (a replay stands
   * for Linux on the machine it runs on); protection keys as --pku says, if it does.
   */
  const recMeta = expected !== undefined ? parseResults(expected.text, expected.file).meta : undefined;
  const cpu = recMeta !== undefined && typeof recMeta.kernel === 'string' ? recordingMachine(recMeta) : thisMachine();
  const report = replay(trace, {
    vendor: opts.vendor,
    design: opts.design,
    platformOptions: withHostMachine(opts.platformOptions, { ...cpu, pku: opts.pku ?? cpu.pku }),
    onResult: (r, missed, warnings) => {
      if (opts.expectOnly !== true) out(resultLine(r));
      for (const w of warnings) err(formatWarning(w));
      for (const m of missed) err(formatMismatch(m));
    },
  });
  if (report.errors.length > 0) {
    for (const e of report.errors) err(formatTraceError(e));
    return EXIT_TRACE_ERROR;
  }
  if (report.crash !== undefined) {
    err(formatCrash(report.crash));
    return EXIT_SIMULATOR_BUG;
  }
  let differ = false;
  if (expected !== undefined) {
    const rec = parseResults(expected.text, expected.file);
    if (rec.errors.length > 0) {
      for (const e of rec.errors) err(formatTraceError(e));
      return EXIT_TRACE_ERROR;
    }
    const other = typeof rec.meta.kernel === 'string' ? `kernel ${rec.meta.kernel}` : expected.file;
    const diffs = compareResults(report.results, rec.results, { bound: boundCalls(trace), names });
    for (const l of formatDifferences(diffs, { left: 'simulator', right: other }, trace)) err(`${report.file}: ${l}`);
    const calls = new Set(diffs.map((d) => d.i)).size;
    if (calls > 0) err(`${report.file}: ${calls} of ${Math.max(trace.calls.length, rec.results.length)} calls differ from ${expected.file}`);
    differ = calls > 0;
  }
  if (report.mismatches.length > 0) {
    const n = report.mismatches.length;
    err(`${report.file}: ${n} expectation${n === 1 ? '' : 's'} failed`);
    return EXIT_MISMATCH;
  }
  return differ ? EXIT_MISMATCH : EXIT_OK;
}

/** An argument as the ops table shows it: `name` with its kind, names and default. */
export function formatArg(a: ArgSpec): string {
  const prefixes = a.names === undefined ? [] : typeof a.names === 'string' ? [a.names] : a.names;
  const names = prefixes.length > 0 ? ` ${prefixes.map((p) => `${p}*`).join('/')}` : '';
  const def = a.default !== undefined ? ` = ${String(a.default)}` : a.optional === true ? ' (optional)' : '';
  return `${a.name}: ${a.enum === true ? 'enum' : a.kind}${names}${def}`;
}

/** The platforms (vendor/design) that have the op. */
export function opPlatforms(op: OpSpec): string[] {
  const base = hasOp(op, Process.prototype);
  return platformChoices()
    .filter((c) => base
      && (op.provider?.vendors === undefined || op.provider.vendors.includes(c.vendor))
      && (op.provider?.designs === undefined || op.provider.designs.includes(c.design)))
    .map((c) => `${c.vendor}/${c.design}`);
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** The op table in the spec's form, plus the platforms column; Markdown, readable as text. */
export function opsTable(): string[] {
  const lines = [
    '| op | arguments | returns (`ret`) | platforms | notes |',
    '|---|---|---|---|---|',
  ];
  for (const op of allOps()) {
    const platforms = opPlatforms(op);
    const all = platformChoices().length;
    // 14 designs x 7 vendors: naming them all would bury the table; only a restriction is news.
    const where = platforms.length === 0 ? `none yet (answers ${errnoName(op.missing) ?? op.missing})`
      : platforms.length === all ? `every platform (${all})` : platforms.join(', ');
    lines.push(`| \`${op.name}\` | ${cell(op.args.map(formatArg).join(', '))} | ${cell(op.returns)} | ${where} | ${cell(op.doc)}${op.generic ? '' : ' (not generic)'} |`);
  }
  lines.push(
    '',
    'Argument kinds: fd (a C int; "$h" refers to a bound fd), int (an integer, signed or not, up to 64 bits),',
    'u64 (an unsigned 64-bit integer; addresses as "$h+OFFSET"), flags (an integer, or kernel names joined',
    'by \'|\', from the prefixes shown), data (hex, or {"fill": BYTE, "len": N}), string (or null for NULL),',
    'struct (an integer, or an object with the kernel\'s field names). Integers beyond 2^53-1 are strings.',
  );
  return lines;
}

export function opsCommand(out: Out): number {
  for (const l of opsTable()) out(l);
  return EXIT_OK;
}
