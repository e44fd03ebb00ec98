/**
 * A scenario: a sequence of uAPI calls on a platform, each with the outcome Linux gives, run in
 * selftest style. Every step records what the call returned (as C sees it), whether that is the
 * expected outcome, and what it cost in virtual time, item by item.
 */
import { errno_name, type CostBreakdown } from '@cocosim/core';
import type { Process } from '@cocosim/mm';
import type { Platform } from '../host.js';

/** What a call returned, as a C program would report it. */
export type Outcome = string;

export interface Step {
  /** The call, written as C (`fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)`). */
  readonly call: string;
  readonly outcome: Outcome;
  readonly expected: Outcome;
  readonly ok: boolean;
  /** Why Linux answers this way (a kernel function or rule). */
  readonly why: string;
  readonly cost: CostBreakdown;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly params: Readonly<Record<string, string | number>>;
  readonly steps: readonly Step[];
  /** Virtual time of the whole run, ns. */
  readonly total_ns: number;
  /** Tracepoint counts by name. */
  readonly events: Readonly<Record<string, number>>;
}

export interface ScenarioOptions {
  /** Bytes of memory the scenario works on. */
  readonly size: number;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** RAM the host needs for `opts` (pages). */
  nr_pages(opts: ScenarioOptions): number;
  run(ctx: ScenarioContext, opts: ScenarioOptions): void;
}

/** The outcome of a call returning a number: `3`, or `-1 EBUSY`. */
export function sysOutcome(p: Process, ret: number | bigint): Outcome {
  if (ret === -1 || ret === -1n) return `-1 ${errno_name(p.errno) ?? p.errno}`;
  return String(ret);
}

/** Runs steps on one platform and collects them. */
export class ScenarioContext {
  readonly steps: Step[] = [];

  constructor(readonly platform: Platform, readonly p: Process) {}

  /**
   * Run `fn` as one step. `fn` returns the outcome (use sysOutcome for a syscall); `expected` is
   * the outcome Linux gives, or a predicate for outcomes like fds and addresses.
   */
  step<T>(call: string, expected: Outcome | ((o: Outcome) => boolean), why: string, fn: () => [Outcome, T]): T {
    const { result, cost } = this.platform.kernel.cost.measure(call, fn);
    const [outcome, value] = result;
    const ok = typeof expected === 'string' ? outcome === expected : expected(outcome);
    const shown = typeof expected === 'string' ? expected : ok ? outcome : 'success';
    this.steps.push({ call, outcome, expected: shown, ok, why, cost });
    return value;
  }
}
