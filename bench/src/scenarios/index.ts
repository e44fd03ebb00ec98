import type { Scenario } from './scenario.js';
import { memfdGuestRam } from './memfd_guest_ram.js';

/** The built-in scenarios, by name; the first is what `cocosim` runs with no arguments. */
export const SCENARIOS: readonly Scenario[] = [memfdGuestRam];
