/**
 * The scenario catalog of designs.md §2 (S1..S27), one file per scenario named after it. Each
 * runs on every platform that can host a confidential VM (cvm_scenario.ts) and states the
 * outcome designs.md gives for each design.
 */
import type { Scenario } from '../scenario.js';
import { s01VmmStorePrivate } from './s01_vmm_store_private.js';

/** The catalog in designs.md order. */
export const CATALOG: readonly Scenario[] = [
  s01VmmStorePrivate,
];
