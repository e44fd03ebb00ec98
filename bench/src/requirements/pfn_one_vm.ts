/**
 * David Hildenbrand's first requirement (fd-based RFC thread, Aug 2021; designs.md §D4): "an
 * encrypted pfn belongs to one VM". Violated when, after some step, one pfn is mapped private
 * by two VMs.
 */
import type { Requirement } from '../compare/requirements.js';
import { afterStep, anyPrivateMapped, hex } from './common.js';

export const pfnOneVm: Requirement = {
  id: 'pfn-one-vm',
  description: 'a private pfn belongs to one VM (Hildenbrand)',
  relevant: (input) => input.snapshots.some((s) => s.vms.length > 1) && anyPrivateMapped(input),
  check(input) {
    for (const s of input.snapshots) {
      const owner = new Map<number, number>();
      for (const v of s.vms) {
        for (const [gfn, pfn] of v.private) {
          const o = owner.get(pfn);
          if (o !== undefined && o !== v.vm) return [`${afterStep(s)}: pfn ${hex(pfn)} is private in VM ${o} and in VM ${v.vm} (gfn ${hex(gfn)})`];
          owner.set(pfn, v.vm);
        }
      }
    }
    return [];
  },
};
