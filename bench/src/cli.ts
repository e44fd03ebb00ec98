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

const USAGE = `usage: cocosim [COMMAND] [OPTIONS]

commands:
  run [SCENARIO]     run a built-in scenario (the default command) and report each call's
                     outcome against Linux's and its modeled cost; --list lists them
  costs              list the cost table: every entry, its value, provenance and source
  replay TRACE       replay a trace (docs/trace-format.md; TRACE - is stdin): result lines on
                     stdout, failed expectations on stderr; exit 0 if all hold, 1 on a
                     mismatch, 2 on a trace error, 3 on a simulator bug
  diff-kernel TRACE  replay a trace on the simulator and on this machine's kernel (the kernel
                     oracle, test/oracle; needs /dev/kvm and cc) and show both side by side;
                     exit 0 if every call agrees, 1 if some differ, 4 if there is no kernel
  ops                list the ops a trace can use: arguments, results, platforms that have them
  help               this text

options:
  --costs FILE       override cost entries from a JSON file (see core/src/cost.ts)
  --size BYTES       run: memory the scenario works on (default 64M; K, M, G suffixes)
  --out DIR          run: also write the result as JSON and the trace as ftrace text and
                     Perfetto JSON (open it in ui.perfetto.dev) into DIR
  --list             run: list the scenarios
  --seed N           seed of every random choice (default 0)
  --vendor V         replay, diff-kernel: the vendor, instead of the trace header's
  --design D         replay, diff-kernel: the design, instead of the trace header's
  --expect-only      replay: print no results, only check the trace's expectations
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

export function main(argv: string[], out: Out = (s) => process.stdout.write(`${s}\n`), err: Out = (s) => process.stderr.write(`${s}\n`)): number {
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
        size: { type: 'string', default: '64M' },
        out: { type: 'string' },
        list: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    err(`cocosim: ${(e as Error).message}`);
    err(USAGE);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = values.help ? 'help' : positionals[0] ?? 'run';
  try {
    switch (command) {
      case 'help':
        out(USAGE);
        return 0;
      case 'costs':
        return costsCommand(out, values.costs, values.seed!);
      case 'run':
        return runCommand({
          scenario: positionals[1], size: values.size!, out: values.out, list: values.list!,
          platform: { seed: values.seed, costOverrides: values.costs },
        }, out, err);
      case 'replay':
        return replayCommand({
          trace: positionals[1],
          vendor: values.vendor,
          design: values.design,
          expectOnly: values['expect-only'],
          compare: values.compare,
          platformOptions: { seed: values.seed, costOverrides: values.costs },
        }, out, err);
      case 'diff-kernel':
        return diffKernelCommand({
          trace: positionals[1],
          vendor: values.vendor,
          design: values.design,
          platformOptions: { seed: values.seed, costOverrides: values.costs },
        }, out, err);
      case 'ops':
        return opsCommand(out);
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
  process.exitCode = main(process.argv.slice(2));
}
