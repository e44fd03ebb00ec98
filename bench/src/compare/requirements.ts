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

export interface RequirementInput {
  readonly scenario: string;
  readonly opts: ScenarioOptions;
  /** The host after the scenario ran, to inspect its state. */
  readonly platform: Platform;
  readonly steps: readonly Step[];
}

export interface Requirement {
  /** Short stable name, shown in tables (`no-host-mapping-of-private`). */
  readonly id: string;
  readonly description: string;
  /** One message per violation found; empty when the requirement holds. */
  check(input: RequirementInput): readonly string[];
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

/** Every violation of every registered requirement on this cell, in registry order. */
export function checkRequirements(input: RequirementInput): Violation[] {
  return registry.flatMap((r) => r.check(input).map((message) => ({ requirement: r.id, message })));
}
