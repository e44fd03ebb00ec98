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
    expect([...DESIGNS.keys()]).toEqual(['memfd_seal', 'mfd_inaccessible', 'memfd_restricted', 'upstream', 'gmem_inplace']);
    expect([...DESIGNS.values()].map((d) => d.rows.join('/'))).toEqual(['D5', 'D6', 'D7', 'D8/D9', 'D10']);
    for (const d of DESIGNS.values()) {
      for (const [name, v] of Object.entries(d.uapi)) expect(Number.isSafeInteger(v), `${d.name}.${name}`).toBe(true);
    }
  });

  test('a platform runs one design; upstream installs no hook; an unknown name is refused', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('upstream')).resolve(Kernel);
    expect(design_of(kernel)?.design.name).toBe('upstream');
    expect(kvm_hooks_providers(kernel)).toEqual([]);
    expect(() => createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('upstream'), designRegistrar('gmem_inplace')))
      .toThrow(/already runs "upstream"/);
    expect(() => designRegistrar('hwpoison')).toThrow(RangeError);
    const d10 = createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar(), designRegistrar('gmem_inplace', { content_modes: 'rfc-v5' })).resolve(Kernel);
    expect(design_of(d10)?.options).toEqual({ vm_memory_attributes: false, gmem_in_place_conversion: true, content_modes: 'rfc-v5' });
  });
});
