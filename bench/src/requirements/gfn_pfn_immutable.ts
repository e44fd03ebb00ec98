/**
 * David Hildenbrand's third requirement (designs.md §D4): "the gfn<->pfn assignment is immutable
 * once made" (what TDX and SNP hardware enforce: a private page is bound to its GPA). Violated
 * when a gfn the guest held private the whole time maps a different pfn than it did before
 * (a punch hole under a running guest, a migration of private memory).
 */
import type { Requirement } from '../compare/requirements.js';
import { afterStep, anyPrivateMapped, hex } from './common.js';

export const gfnPfnImmutable: Requirement = {
  id: 'gfn-pfn-immutable',
  description: 'a private gfn keeps its pfn while it stays private (Hildenbrand)',
  relevant: anyPrivateMapped,
  check(input) {
    const bound = new Map<string, number>();
    for (const s of input.snapshots) {
      for (const v of s.vms) {
        for (const key of [...bound.keys()]) {
          const [vm, gfn] = key.split(':').map(Number) as [number, number];
          if (vm === v.vm && !v.held.has(gfn)) bound.delete(key);
        }
        for (const [gfn, pfn] of v.private) {
          const key = `${v.vm}:${gfn}`;
          const was = bound.get(key);
          if (was !== undefined && was !== pfn) return [`${afterStep(s)}: VM ${v.vm} gfn ${hex(gfn)} moved from pfn ${hex(was)} to ${hex(pfn)} while private`];
          bound.set(key, pfn);
        }
      }
    }
    return [];
  },
};
