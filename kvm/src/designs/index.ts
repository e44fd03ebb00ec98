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
import { sev_pinned } from './sev_pinned/index.js';
import { snp_anon } from './snp_anon/index.js';
import { mktme_encrypt } from './mktme_encrypt/index.js';
import { fd_rfc } from './fd_rfc/index.js';
import { gmem_hugetlb } from './gmem_hugetlb/index.js';
import { hwpoison } from './hwpoison/index.js';
import { per_vma } from './per_vma/index.js';
import { kvm_protected } from './kvm_protected/index.js';
import { page_guest } from './page_guest/index.js';

export * from './design.js';
export * from './upstream/index.js';
export * from './gmem_inplace/index.js';
export { memfd_seal, type MemfdSealOptions } from './memfd_seal/index.js';
export { mfd_inaccessible } from './mfd_inaccessible/index.js';
export { memfd_restricted, memfd_restricted_design } from './memfd_restricted/index.js';
export * from './sev_pinned/index.js';
export * from './snp_anon/index.js';
export * from './mktme_encrypt/index.js';
export * from './fd_rfc/index.js';
export * from './gmem_hugetlb/index.js';
export { hwpoison, hwpoison_vmm } from './hwpoison/index.js';
export { per_vma, per_vma_vmm } from './per_vma/index.js';
export { kvm_protected, kvm_protected_vmm } from './kvm_protected/index.js';
export { page_guest, page_guest_vmm } from './page_guest/index.js';

/** Every design by name, in designs.md order. */
export const DESIGNS: ReadonlyMap<string, Design> = new Map<string, Design>(
  [
    kvm_protected,
    hwpoison,
    per_vma,
    page_guest,
    fd_rfc,
    memfd_seal,
    mfd_inaccessible,
    memfd_restricted_design,
    upstream,
    gmem_inplace,
    gmem_hugetlb,
    mktme_encrypt,
    sev_pinned,
    snp_anon,
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
