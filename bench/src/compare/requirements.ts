/**
 * Requirements a design must meet (the LKML threads' list: a private page is never mapped by the
 * host, a pfn belongs to one VM, no double allocation after conversion...), checked on each cell
 * after its scenario ran. The registry starts empty: whoever models a requirement registers its
 * check here from a module the comparison loads, and every cell's report lists the violations.
 * A violation is a finding about the design, not a simulator error: it does not fail the run.
 *
 * Register from a module that bench/src/scenarios/index.ts imports (as the scenarios do): the
 * worker threads of `--jobs N` load that module, so they check the same requirements.
 */
import type { Platform } from '../host.js';
import type { ScenarioOptions, Step } from '../scenarios/scenario.js';
import type { StateSnapshot } from '../requirements/snapshot.js';

export interface RequirementInput {
  readonly scenario: string;
  readonly opts: ScenarioOptions;
  /** The host after the scenario ran, to inspect its state. */
  readonly platform: Platform;
  readonly steps: readonly Step[];
  /** The state after every step of a scenario on a confidential VM (empty for the others). */
  readonly snapshots: readonly StateSnapshot[];
}

export interface Requirement {
  /** Short stable name, shown in tables (`no-host-mapping-of-private`). */
  readonly id: string;
  readonly description: string;
  /** One message per violation found; empty when the requirement holds. */
  check(input: RequirementInput): readonly string[];
  /** False when the run gives the requirement nothing to judge (no private page was mapped...). */
  relevant?(input: RequirementInput): boolean;
}

/** A requirement's verdict on one cell. */
export type RequirementStatus = 'held' | 'violated' | 'not applicable';

export interface RequirementResult {
  readonly requirement: string;
  readonly status: RequirementStatus;
  /** The first violation (naming the step after which it was seen), when violated. */
  readonly message?: string;
}

export interface Violation {
  readonly requirement: string;
  readonly message: string;
}

const registry: Requirement[] = [];

/** Add a requirement; returns a function removing it. */
export function registerRequirement(r: Requirement): () => void {
  if (registry.some((x) => x.id === r.id)) throw new Error(`requirement "${r.id}" is already registered`);
  registry.push(r);
  return () => {
    const i = registry.indexOf(r);
    if (i >= 0) registry.splice(i, 1);
  };
}

/** The registered requirements, in registration order. */
export function requirements(): readonly Requirement[] {
  return registry;
}

/** Each registered requirement's verdict on this cell, in registry order. */
export function evaluateRequirements(input: RequirementInput): RequirementResult[] {
  return registry.map((r) => {
    const v = r.check(input);
    if (v.length > 0) return { requirement: r.id, status: 'violated' as const, message: v[0] };
    return { requirement: r.id, status: r.relevant === undefined || r.relevant(input) ? 'held' as const : 'not applicable' as const };
  });
}

/** Every violation of every registered requirement on this cell, in registry order. */
export function checkRequirements(input: RequirementInput): Violation[] {
  return registry.flatMap((r) => r.check(input).map((message) => ({ requirement: r.id, message })));
}
