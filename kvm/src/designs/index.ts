/**
 * The design registry: every design of kvm/src/designs/ by the name a platform selects it with
 * (base + design + vendor). A design's folder holds the whole patch series; this file only lists
 * them. `designRegistrar(name, options)` is what a composition root adds after mmRegistrar and
 * kvmRegistrar.
 */
import type { HostRegistrar } from '@cocosim/core';
import type { Design } from './design.js';
import { upstream } from './upstream/index.js';
import { gmem_inplace } from './gmem_inplace/index.js';
import { memfd_seal } from './memfd_seal/index.js';
import { mfd_inaccessible } from './mfd_inaccessible/index.js';
import { memfd_restricted_design } from './memfd_restricted/index.js';

export * from './design.js';
export * from './upstream/index.js';
export * from './gmem_inplace/index.js';
export { memfd_seal, type MemfdSealOptions } from './memfd_seal/index.js';
export { mfd_inaccessible } from './mfd_inaccessible/index.js';
export { memfd_restricted, memfd_restricted_design } from './memfd_restricted/index.js';

/** Every design by name, in designs.md order. */
export const DESIGNS: ReadonlyMap<string, Design> = new Map<string, Design>(
  [
    memfd_seal,
    mfd_inaccessible,
    memfd_restricted_design,
    upstream,
    gmem_inplace,
  ].map((d) => [d.name, d as Design]),
);

/**
 * The registrar of design `name` with `options` (the design's defaults when omitted). An unknown
 * name is a configuration error (the CLI checks names against DESIGNS first).
 */
export function designRegistrar(name: string, options?: object): HostRegistrar {
  const design = DESIGNS.get(name);
  if (design === undefined) throw new RangeError(`unknown design "${name}"`);
  return design.registrar(options);
}
