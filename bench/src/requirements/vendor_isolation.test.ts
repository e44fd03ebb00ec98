/**
 * The 'vendor-isolation' requirement: on the comparison's cells of s01-vmm-store-private with the
 * upstream design, every vendor with a tracker (TDX, SEV-SNP, CCA, pKVM) holds each private page
 * KVM maps as the VM's own; SW_PROTECTED has no tracker, so there is nothing to judge. And the
 * check itself: a snapshot whose tracker says anything but 'guest' is a violation naming the step,
 * the gfn, the pfn and what the tracker said.
 */
import { describe, expect, test } from 'vitest';
import type { Pfn } from '@cocosim/core';
import { runCell, type RanCell } from '../compare/cell.js';
import { buildMatrix, type Matrix } from '../compare/matrix.js';
import type { RequirementInput } from '../compare/requirements.js';
import type { StateSnapshot, VmSnapshot } from './snapshot.js';
import { vendorIsolation } from './vendor_isolation.js';
import '../scenarios/index.js';

function cell(vendor: string): RanCell {
  const m = buildMatrix({ seed: '0', scenarios: ['s01-vmm-store-private'], designs: ['upstream'], vendors: [vendor] }) as Matrix;
  expect(m.cells).toHaveLength(1);
  const r = runCell(m.cells[0]!).result;
  expect(r.status).toBe('ran');
  return r as RanCell;
}

function verdict(c: RanCell): { status: string; message?: string } {
  const r = c.requirements.find((x) => x.requirement === 'vendor-isolation');
  expect(r).toBeDefined();
  return { status: r!.status, ...(r!.message === undefined ? {} : { message: r!.message }) };
}

describe('vendor-isolation on s01-vmm-store-private/upstream', () => {
  for (const vendor of ['tdx', 'sev', 'cca', 'pkvm']) {
    test(`${vendor}: held (the vendor's tracker holds every mapped private page as the VM's)`, () => {
      expect(verdict(cell(vendor))).toEqual({ status: 'held' });
    });
  }

  test('sw_protected: not applicable (no tracker)', () => {
    expect(verdict(cell('sw_protected'))).toEqual({ status: 'not applicable' });
  });
});

describe('vendor-isolation: the check', () => {
  const vm = (owner: ReadonlyMap<number, string> | undefined): VmSnapshot => ({
    vm: 0, private: new Map([[0x100000, 0x42 as Pfn]]), shared: new Map(), held: new Set([0x100000]), ...(owner === undefined ? {} : { owner }),
  });
  const snap = (step: number, v: VmSnapshot): StateSnapshot => ({ step, call: `step${step}`, vms: [v], host: new Map(), iommu: new Map() });
  const input = (snapshots: StateSnapshot[]): RequirementInput => ({
    scenario: 'x', opts: {} as RequirementInput['opts'], platform: {} as RequirementInput['platform'], steps: [], snapshots,
  });

  test('the first snapshot whose tracker disagrees is the violation, with gfn, pfn and the tracker\'s answer', () => {
    const said = (what: string): VmSnapshot => vm(new Map([[0x100000, what]]));
    const i = input([snap(0, said('guest')), snap(1, said('S-EPT PENDING at this GPA')), snap(2, said('granule DELEGATED'))]);
    expect(vendorIsolation.relevant!(i)).toBe(true);
    expect(vendorIsolation.check(i)).toEqual(['after step 2 (step1): VM 0 gfn 0x100000 maps pfn 0x42, which the vendor\'s tracker holds as: S-EPT PENDING at this GPA']);
  });

  test('no tracker: nothing to judge and nothing violated', () => {
    const i = input([snap(0, vm(undefined))]);
    expect(vendorIsolation.relevant!(i)).toBe(false);
    expect(vendorIsolation.check(i)).toEqual([]);
  });
});
