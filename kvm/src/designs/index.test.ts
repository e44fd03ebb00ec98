/**
 * The design registry: every design by name with its designs.md rows, one design per host, and
 * "upstream" (D8/D9) being the base kernel itself (no hook installed).
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from '../kvm.js';
import { kvm_hooks_providers } from '../kvm_hooks.js';
import { DESIGNS, designRegistrar, design_of } from './index.js';

describe('design registry', () => {
  test('names, designs.md rows and uAPI of every design', () => {
    expect([...DESIGNS.keys()]).toEqual([
      'kvm_protected', 'hwpoison', 'per_vma', 'page_guest', 'fd_rfc', 'memfd_seal', 'mfd_inaccessible', 'memfd_restricted',
      'upstream', 'gmem_inplace', 'gmem_hugetlb', 'mktme_encrypt', 'sev_pinned', 'snp_anon',
    ]);
    // designs.md §1 order; per_vma is Hildenbrand's alternative from D2's thread.
    expect([...DESIGNS.values()].map((d) => d.rows.join('/'))).toEqual(['D1', 'D2', 'D2', 'D3', 'D4', 'D5', 'D6', 'D7', 'D8/D9', 'D10', 'D11', 'D12', 'D13', 'D14']);
    for (const d of DESIGNS.values()) {
      for (const [name, v] of Object.entries(d.uapi)) expect(Number.isSafeInteger(v), `${d.name}.${name}`).toBe(true);
      expect(d.vmm.name, `${d.name}: its VMM side`).toBe(d.name);
    }
  });

  test('a platform runs one design; upstream installs no hook; an unknown name is refused', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('upstream')).resolve(Kernel);
    expect(design_of(kernel)?.design.name).toBe('upstream');
    expect(kvm_hooks_providers(kernel)).toEqual([]);
    expect(() => createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('upstream'), designRegistrar('gmem_inplace')))
      .toThrow(/already runs "upstream"/);
    expect(() => designRegistrar('no_such_design')).toThrow(RangeError);
    const d10 = createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('gmem_inplace', { content_modes: 'rfc-v5' })).resolve(Kernel);
    expect(design_of(d10)?.options).toEqual({ vm_memory_attributes: false, gmem_in_place_conversion: true, content_modes: 'rfc-v5' });
  });
});
