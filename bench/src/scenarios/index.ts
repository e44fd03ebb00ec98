/**
 * The scenario registry. A scenario registers itself by name (registerScenario) from its module;
 * `cocosim run` and `cocosim compare` find it here, and compare's worker threads load this module,
 * so a scenario registered from a module it imports is in every worker too.
 */
import type { Scenario } from './scenario.js';
import { memfdGuestRam } from './memfd_guest_ram.js';
import { vmTypes } from './vm_types.js';
import { CATALOG } from './catalog/index.js';
import { vfioRamDiscard } from './vfio_ram_discard.js';
import '../requirements/index.js';

const registry: Scenario[] = [];

/** The registered scenarios, in registration order; the first is what `cocosim run` runs with no arguments. */
export const SCENARIOS: readonly Scenario[] = registry;

/** Add a scenario; a second scenario with the same name is a bug of whoever registers it. */
export function registerScenario(s: Scenario): void {
  if (registry.some((r) => r.name === s.name)) throw new Error(`scenario "${s.name}" is already registered`);
  registry.push(s);
}

export function findScenario(name: string): Scenario | undefined {
  return registry.find((s) => s.name === name);
}

registerScenario(memfdGuestRam);
registerScenario(vmTypes);
for (const s of CATALOG) registerScenario(s);
registerScenario(vfioRamDiscard);
