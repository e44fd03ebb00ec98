/**
 * Sean Christopherson's rule (fd-based RFC thread; designs.md §2 S13): a pfn is never mapped
 * private and shared at once, host mappings included. Violated when a page the guest holds
 * private is also what a shared gfn of a VM maps, or what a user PTE maps.
 */
import type { Requirement } from '../compare/requirements.js';
import { afterStep, anyPrivateMapped, hex } from './common.js';

export const neverPrivateAndShared: Requirement = {
  id: 'never-private-and-shared',
  description: 'a pfn is never mapped private and shared at once (Christopherson)',
  relevant: anyPrivateMapped,
  check(input) {
    for (const s of input.snapshots) {
      const shared = new Map<number, string>();
      for (const v of s.vms) for (const [gfn, pfn] of v.shared) shared.set(pfn, `shared gfn ${hex(gfn)} of VM ${v.vm}`);
      for (const [pfn, who] of s.host) if (!shared.has(pfn)) shared.set(pfn, `user space (${who})`);
      for (const v of s.vms) {
        for (const [gfn, pfn] of v.private) {
          const other = shared.get(pfn);
          if (other !== undefined) return [`${afterStep(s)}: pfn ${hex(pfn)} is private at VM ${v.vm} gfn ${hex(gfn)} and mapped by ${other}`];
        }
      }
    }
    return [];
  },
};
