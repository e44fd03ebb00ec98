#!/usr/bin/env node
/**
 * The `cocosim` command line. `npm start -- ARGS` runs it from a fresh clone.
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { CostModel, CostOverrideError } from '@cocosim/core';
import { createPlatform } from './host.js';
import { opsCommand, replayCommand } from './trace/commands.js';
import { diffKernelCommand } from './trace/diff_kernel.js';
import { runCommand } from './scenarios/command.js';
import { fuzzCommand } from './fuzz/command.js';
import { compareCommand, mergeCommand } from './compare/command.js';

const USAGE = `usage: cocosim [COMMAND] [OPTIONS]

commands:
  run [SCENARIO]     run one built-in scenario on one platform and report each call's
                     outcome against Linux's and its modeled cost; --list lists them
  compare            the comparison, the main job (the default command): every scenario on
                     every design x vendor it applies to, outcomes and modeled costs side by
                     side; a table per scenario on stdout, results.json, results.csv and
                     report.html in --out (default out/compare); exit 1 if an outcome
                     differs from what its source states, 3 if a cell crashed
  merge DIR...       merge the --out directories of every shard of a compare sweep into one
                     result (same files; --out DIR, default out/compare)
  costs              list the cost table: every entry, its value, provenance and source
  replay TRACE       replay a trace (docs/trace-format.md; TRACE - is stdin): result lines on
                     stdout, failed expectations on stderr; exit 0 if all hold, 1 on a
                     mismatch, 2 on a trace error, 3 on a simulator bug
  diff-kernel TRACE  replay a trace on the simulator and on this machine's kernel (the kernel
                     oracle, test/oracle; needs /dev/kvm and cc) and show both side by side;
                     exit 0 if every call agrees, 1 if some differ, 4 if there is no kernel
  ops                list the ops a trace can use: arguments, results, platforms that have them
  fuzz               generate traces, replay them with the invariant checks (DEBUG_VM), a
                     digest check of every failed call and a second run for determinism;
                     minimize each finding and save it under test/fuzz/found (or --save DIR);
                     exit 0 if nothing was found, 1 otherwise
  help               this text

options:
  --costs FILE       override cost entries from a JSON file (see core/src/cost.ts)
  --size BYTES       run: memory the scenario works on (default 64M; K, M, G suffixes)
  --out DIR          run: also write the result as JSON and the trace as ftrace text and
                     Perfetto JSON (open it in ui.perfetto.dev) into DIR; compare, merge:
                     the output directory
  --list             run: list the scenarios
  --scenarios A,B    compare: the scenarios (default: the built-in selection)
  --designs D,..     compare: the designs (default: all registered)
  --vendors V,..     compare: the vendors (default: all registered)
  --size S,..        compare: sizes to sweep (default: each scenario's own)
  --page-size P,..   compare: page sizes to sweep, 4K 2M 1G (default 4K)
  --jobs N           compare: worker threads (a number or auto; default 1)
  --shard I/N        compare: run shard I of N of the matrix (merge them with cocosim merge)
  --trace DIR        compare: each cell's trace as Perfetto JSON and ftrace text into DIR
  --seed N           seed of every random choice (default 0)
  --vendor V         replay, diff-kernel: the vendor, instead of the trace header's; run:
                     the vendor (default none)
  --design D         replay, diff-kernel: the design, instead of the trace header's; run:
                     the design (default upstream)
  --expect-only      replay: print no results, only check the trace's expectations
  --calls N          fuzz: calls per platform (default 10000)
  --platform V/D     fuzz: a platform (vendor/design, or a vendor); repeat for more (default all)
  --program-length N fuzz: calls per generated program (default 100)
  --js-shapes N      fuzz: direct calls with JS values no trace can spell (default calls/10)
  --save DIR         fuzz: where minimized findings go (default test/fuzz/found if present)
  --no-check         fuzz: no invariant or digest checks (to measure what they cost)
  --debug-vm         replay, diff-kernel: check the invariants after every call and that a failed
                     call changed nothing (DEBUG_VM); a broken rule is a simulator bug (exit 3)
  --compare RESULTS  replay: also compare the results with a result file (a kernel recording,
                     test/traces/NAME.kernel.jsonl); differences on stderr, exit 1 if any
`;

type Out = (s: string) => void;

function costsCommand(out: Out, costs: string | undefined, seed: string): number {
  const platform = createPlatform({ seed, costOverrides: costs });
  const model = platform.container.resolve(CostModel);
  const rows = model.entries();
  const w = Math.max(...rows.map((e) => e.name.length));
  out(`${'entry'.padEnd(w)}  ${'ns'.padStart(10)}  provenance  source`);
  for (const e of rows) out(`${e.name.padEnd(w)}  ${String(e.value).padStart(10)}  ${e.provenance.padEnd(10)}  ${e.source}`);
  return 0;
}

/** The exit code; a promise of it for the commands that run asynchronously (compare). */
export function main(argv: string[], out: Out = (s) => process.stdout.write(`${s}\n`), err: Out = (s) => process.stderr.write(`${s}\n`)): number | Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        costs: { type: 'string' },
        seed: { type: 'string', default: '0' },
        vendor: { type: 'string' },
        design: { type: 'string' },
        'expect-only': { type: 'boolean', default: false },
        compare: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        size: { type: 'string' },
        out: { type: 'string' },
        list: { type: 'boolean', default: false },
        scenarios: { type: 'string' },
        designs: { type: 'string' },
        vendors: { type: 'string' },
        'page-size': { type: 'string' },
        jobs: { type: 'string' },
        shard: { type: 'string' },
        trace: { type: 'string' },
        calls: { type: 'string' },
        platform: { type: 'string', multiple: true },
        'program-length': { type: 'string' },
        'js-shapes': { type: 'string' },
        save: { type: 'string' },
        'no-check': { type: 'boolean', default: false },
        'debug-vm': { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    err(`cocosim: ${(e as Error).message}`);
    err(USAGE);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = values.help ? 'help' : positionals[0] ?? 'compare';
  try {
    switch (command) {
      case 'help':
        out(USAGE);
        return 0;
      case 'costs':
        return costsCommand(out, values.costs, values.seed!);
      case 'run':
        return runCommand({
          scenario: positionals[1], size: values.size ?? '64M', out: values.out, list: values.list!,
          vendor: values.vendor, design: values.design,
          platform: { seed: values.seed, costOverrides: values.costs },
        }, out, err);
      case 'replay':
        return replayCommand({
          trace: positionals[1],
          vendor: values.vendor,
          design: values.design,
          expectOnly: values['expect-only'],
          compare: values.compare,
          platformOptions: { seed: values.seed, costOverrides: values.costs, debugVm: values['debug-vm'] },
        }, out, err);
      case 'diff-kernel':
        return diffKernelCommand({
          trace: positionals[1],
          vendor: values.vendor,
          design: values.design,
          platformOptions: { seed: values.seed, costOverrides: values.costs, debugVm: values['debug-vm'] },
        }, out, err);
      case 'ops':
        return opsCommand(out);
      case 'fuzz':
        return fuzzCommand({
          calls: values.calls, seed: values.seed!, platforms: values.platform, programLength: values['program-length'],
          save: values.save, noCheck: values['no-check'], jsShapes: values['js-shapes'],
        }, out, err);
      case 'compare':
        return compareCommand({
          scenarios: values.scenarios, designs: values.designs, vendors: values.vendors, size: values.size,
          pageSize: values['page-size'], out: values.out, jobs: values.jobs, shard: values.shard, trace: values.trace,
          seed: values.seed!, costs: values.costs,
        }, out, err);
      case 'merge':
        return mergeCommand(positionals.slice(1), values.out, out, err);
      default:
        err(`cocosim: unknown command "${command}"`);
        err(USAGE);
        return 2;
    }
  } catch (e) {
    if (e instanceof CostOverrideError) {
      err(`cocosim: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  // `cocosim costs | head`: a closed pipe ends the output, not the program with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  void Promise.resolve(main(process.argv.slice(2))).then((code) => {
    process.exitCode = code;
  });
}
