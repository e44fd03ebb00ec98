/**
 * A scenario: a sequence of uAPI calls on a platform, each with the outcome Linux gives, run in
 * selftest style. Every step records what the call returned (as C sees it), whether that is the
 * expected outcome, and what it cost in virtual time, item by item.
 *
 * A scenario is parameterized by the platform (design x vendor) and by size and page size. It
 * says where it cannot run (`applies`, with the reason `cocosim compare` shows for the skipped
 * cell) and what outcome the platform should give (`expect`, with its source: designs.md §2 or
 * the kernel code), and it sums its run up in one outcome (`ctx.verdict`) that the comparison
 * puts side by side across platforms.
 */
import { errno_name, type CostBreakdown } from '@cocosim/core';
import type { Process } from '@cocosim/mm';
import type { CvmVm } from '@cocosim/kvm';
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
  /**
   * Set-up the scenario needs but does not study (creating the VM, mapping memory): its cost is
   * on the clock but not in the scenario's measured cost.
   */
  readonly setup: boolean;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly params: Readonly<Record<string, string | number>>;
  readonly steps: readonly Step[];
  /** The scenario's verdict (ScenarioContext.outcome) and what its sources expect on this platform. */
  readonly outcome: Outcome;
  readonly expected: Expectation | null;
  /** Virtual time of the whole run, ns. */
  readonly total_ns: number;
  /** Tracepoint counts by name. */
  readonly events: Readonly<Record<string, number>>;
}

/** 4 KiB, 2 MiB and 1 GiB: the page sizes a scenario can ask its backing memory for. */
export const PAGE_SIZES: readonly number[] = [4096, 2 * 1024 * 1024, 1024 * 1024 * 1024];

export interface ScenarioOptions {
  /** Bytes of memory the scenario works on. */
  readonly size: number;
  /** Page size of the backing memory, bytes (one of PAGE_SIZES; 4096 unless asked). */
  readonly page_size: number;
  /** The platform: a vendor name (host.ts VENDORS) and a design name (trace/platforms.ts). */
  readonly vendor: string;
  readonly design: string;
}

/** The outcome a platform should give, and where that is stated. */
export interface Expectation {
  readonly outcome: Outcome;
  /** designs.md §2 with its tag ([S] stated, inferred), or the kernel function that decides. */
  readonly source: string;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** The scenario of designs.md §2 it implements (`S14`), if it is one of them. */
  readonly ref?: string;
  /** Size used when the user gives none: the built-in comparison runs every scenario at it. */
  readonly default_size?: number;
  /** False keeps the scenario out of the built-in selection (too slow for it); default true. */
  readonly in_default?: boolean;
  /** RAM the host needs for `opts` (pages). */
  nr_pages(opts: ScenarioOptions): number;
  /**
   * Why the scenario cannot exist on this platform and parameters (a design without the uAPI
   * it needs, a vendor without private memory, a page size it does not use); undefined when it
   * can run.
   */
  applies?(opts: ScenarioOptions): string | undefined;
  /** The verdict this platform should give; undefined where nobody stated one. */
  expect?(opts: ScenarioOptions): Expectation | undefined;
  run(ctx: ScenarioContext, opts: ScenarioOptions): void;
}

/** The outcome of a call returning a number: `3`, or `-1 EBUSY`. */
export function sysOutcome(p: Process, ret: number | bigint): Outcome {
  if (ret === -1 || ret === -1n) return `-1 ${errno_name(p.errno) ?? p.errno}`;
  return String(ret);
}

/** What a step's `expected` says when no source states an outcome for this platform. */
export const NOT_STATED = 'not stated';

/** Runs steps on one platform and collects them. */
export class ScenarioContext {
  readonly steps: Step[] = [];
  /** The confidential VMs the scenario runs (cvm_scenario.ts), for the requirement checks. */
  readonly cvms: CvmVm[] = [];
  /** The processes of the scenario (the VMM first; a second process joins when created). */
  readonly processes: Process[];
  /** Called after every step (the requirement checks' snapshot, cell.ts). */
  afterStep: ((ctx: ScenarioContext) => void) | undefined = undefined;
  private verdictOutcome: Outcome | undefined;

  constructor(readonly platform: Platform, readonly p: Process) {
    this.processes = [p];
  }

  /**
   * Run `fn` as one step. `fn` returns the outcome (use sysOutcome for a syscall); `expected` is
   * the outcome Linux gives, a predicate for outcomes like fds and addresses, or undefined where
   * nothing states the outcome on this platform (the step is then not counted as a difference).
   */
  step<T>(call: string, expected: Outcome | ((o: Outcome) => boolean) | undefined, why: string, fn: () => [Outcome, T]): T {
    return this.record(false, call, expected, why, fn);
  }

  /** A step of set-up: like step(), but its cost stays out of the scenario's measured cost. */
  setupStep<T>(call: string, expected: Outcome | ((o: Outcome) => boolean) | undefined, why: string, fn: () => [Outcome, T]): T {
    return this.record(true, call, expected, why, fn);
  }

  /** The run summed up in one outcome, compared with the scenario's `expect` for the platform. */
  verdict(outcome: Outcome): void {
    this.verdictOutcome = outcome;
  }

  /** The verdict given, or the count of steps as expected when the scenario gave none. */
  get outcome(): Outcome {
    if (this.verdictOutcome !== undefined) return this.verdictOutcome;
    return `${this.steps.filter((s) => s.ok).length}/${this.steps.length} steps as expected`;
  }

  private record<T>(setup: boolean, call: string, expected: Outcome | ((o: Outcome) => boolean) | undefined, why: string, fn: () => [Outcome, T]): T {
    const { result, cost } = this.platform.kernel.cost.measure(call, fn);
    const [outcome, value] = result;
    const ok = expected === undefined || (typeof expected === 'string' ? outcome === expected : expected(outcome));
    const shown = expected === undefined ? NOT_STATED : typeof expected === 'string' ? expected : ok ? outcome : 'success';
    this.steps.push({ call, outcome, expected: shown, ok, why, cost, setup });
    this.afterStep?.(this);
    return value;
  }
}
