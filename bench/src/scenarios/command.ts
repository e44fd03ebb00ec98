/** `cocosim run [SCENARIO]`: the built-in scenarios from the command line. */
import { PAGE_SIZE } from '@cocosim/core';
import type { PlatformOptions } from '../host.js';
import { designNames, vendorNames } from '../trace/platforms.js';
import { SCENARIOS } from './index.js';
import { formatRun, runScenario, scenarioOptions } from './run.js';

export interface RunCommandOptions {
  readonly scenario?: string;
  readonly size: string;
  readonly out?: string;
  readonly list: boolean;
  /** Vendor and design names (defaults "none" and "upstream"). */
  readonly vendor?: string;
  readonly design?: string;
  readonly platform: PlatformOptions;
}

/** "64M" -> 67108864; undefined for anything that is not a positive multiple of the page size. */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (m === null) return undefined;
  const mult = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) && n > 0 && n % (2 * PAGE_SIZE) === 0 ? n : undefined;
}

export function runCommand(opts: RunCommandOptions, out: (s: string) => void, err: (s: string) => void): number {
  if (opts.list) {
    for (const s of SCENARIOS) out(`${s.name.padEnd(20)} ${s.description}`);
    return 0;
  }
  const scenario = opts.scenario === undefined ? SCENARIOS[0]! : SCENARIOS.find((s) => s.name === opts.scenario);
  if (scenario === undefined) {
    err(`cocosim: unknown scenario "${opts.scenario}" (have: ${SCENARIOS.map((s) => s.name).join(', ')})`);
    return 2;
  }
  const size = parseSize(opts.size);
  if (size === undefined) {
    err(`cocosim: --size ${opts.size}: need a positive multiple of ${2 * PAGE_SIZE} bytes (K, M, G suffixes allowed)`);
    return 2;
  }
  for (const [what, name, have] of [['vendor', opts.vendor, vendorNames()], ['design', opts.design, designNames()]] as const) {
    if (name !== undefined && !have.includes(name)) {
      err(`cocosim: unknown ${what} "${name}" (have: ${have.join(', ')})`);
      return 2;
    }
  }
  const why = scenario.applies?.(scenarioOptions({ size, vendor: opts.vendor, design: opts.design }));
  if (why !== undefined) {
    err(`cocosim: ${scenario.name} does not run here: ${why}`);
    return 2;
  }
  const run = runScenario(scenario, { size, vendor: opts.vendor, design: opts.design, out: opts.out, platform: opts.platform });
  out(formatRun(run));
  return run.result.steps.every((s) => s.ok) ? 0 : 1;
}
