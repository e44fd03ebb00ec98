#!/usr/bin/env node
/**
 * `npm run bench -- [SUITE...] [--quick] [--out DIR]`: run benchmark suites on the built output
 * (never in CI: 2 noisy cores). With no suite, lists them. A suite with a real-kernel side (mm)
 * then runs the same cases on this machine's kernel and ends with the smallest speedup.
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { runSuite } from './harness.js';
import { compareWithRealKernel } from './real_kernel.js';
import { SUITES } from './suites/index.js';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { quick: { type: 'boolean', default: false }, out: { type: 'string', default: 'bench/results' } },
  });
  if (positionals.length === 0) {
    process.stdout.write(`usage: npm run bench -- SUITE... [--quick] [--out DIR]\nsuites:\n`);
    for (const s of SUITES) process.stdout.write(`  ${s.name.padEnd(8)} ${s.description}\n`);
    return 0;
  }
  for (const name of positionals) {
    const suite = SUITES.find((s) => s.name === name);
    if (suite === undefined) {
      process.stderr.write(`bench: unknown suite "${name}" (have: ${SUITES.map((s) => s.name).join(', ')})\n`);
      return 2;
    }
    const result = await runSuite(suite, { outDir: values.out!, quick: values.quick });
    if (suite.realKernel !== undefined) {
      compareWithRealKernel(result, suite.realKernel, { outDir: values.out!, samples: values.quick ? 3 : 7 });
    }
    for (const line of suite.summary?.(result) ?? []) process.stdout.write(`${line}\n`);
  }
  return 0;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
