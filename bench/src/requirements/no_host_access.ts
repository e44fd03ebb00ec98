/**
 * David Hildenbrand's second requirement (designs.md §D4): "neither user space nor the kernel
 * can access" a private pfn. Checked for what the simulator can see without touching memory:
 * no present, accessible user PTE and no IOMMU leaf maps a page the guest holds private. (A
 * kernel access through the direct map is each design's and vendor's own answer; the vendor
 * matrix and the S3/S22 scenarios show it.)
 */
import type { Requirement } from '../compare/requirements.js';
import { afterStep, anyPrivateMapped, hex } from './common.js';

export const noHostAccess: Requirement = {
  id: 'no-host-access',
  description: 'neither user space nor devices can reach a private pfn (Hildenbrand)',
  relevant: anyPrivateMapped,
  check(input) {
    for (const s of input.snapshots) {
      for (const v of s.vms) {
        for (const [gfn, pfn] of v.private) {
          const user = s.host.get(pfn);
          if (user !== undefined) return [`${afterStep(s)}: VM ${v.vm} gfn ${hex(gfn)} pfn ${hex(pfn)} is mapped in user space (${user})`];
          const dev = s.iommu.get(pfn);
          if (dev !== undefined) return [`${afterStep(s)}: VM ${v.vm} gfn ${hex(gfn)} pfn ${hex(pfn)} is mapped for device DMA (${dev})`];
        }
      }
    }
    return [];
  },
};
