/**
 * What the requirement checks look at after every step of a scenario: for each confidential VM
 * the pages its private gfns map (the guest's leaf SPTEs of the gfns it holds private), the pages
 * its shared gfns map, and on the host every page user space can reach through a present,
 * accessible PTE and every page a device can reach through an IOMMU leaf. Read-only: taking a
 * snapshot charges nothing and changes nothing.
 */
import type { Pfn } from '@cocosim/core';
import { PTRS_PER_PTE as PMD_PAGES, pte_present, pte_protnone } from '@cocosim/mm';
import { cvm_spte, kvm_module, type CvmVm } from '@cocosim/kvm';
import { vfio_module } from '@cocosim/vfio';
import type { ScenarioContext } from '../scenarios/scenario.js';

export interface VmSnapshot {
  /** The VM's index in the scenario. */
  readonly vm: number;
  /** gfn -> pfn of each gfn the guest holds private that KVM maps. */
  readonly private: ReadonlyMap<number, Pfn>;
  /** gfn -> pfn of each shared gfn KVM maps (the shared alias on VMs that have one). */
  readonly shared: ReadonlyMap<number, Pfn>;
  /** The gfns the guest holds private, mapped or not. */
  readonly held: ReadonlySet<number>;
  /**
   * gfn -> what the vendor's tracker says of the page each private gfn maps (CvmVendor
   * private_owner: 'guest', or what it is instead); undefined where the vendor keeps no tracker.
   */
  readonly owner?: ReadonlyMap<number, string>;
}

export interface StateSnapshot {
  /** The step after which it was taken (index into the scenario's steps) and its call. */
  readonly step: number;
  readonly call: string;
  readonly vms: readonly VmSnapshot[];
  /** pfn -> who maps it in user space (`pid 3 va 0x7fff...`), present and accessible PTEs only. */
  readonly host: ReadonlyMap<Pfn, string>;
  /** pfn -> the device IOVA mapping it. */
  readonly iommu: ReadonlyMap<Pfn, string>;
}

function vmSnapshot(vm: CvmVm, index: number): VmSnapshot {
  const priv = new Map<number, Pfn>();
  const shared = new Map<number, Pfn>();
  const first = Number(vm.base / 4096n);
  const n = Number(vm.size / 4096n);
  for (let gfn = first; gfn < first + n; gfn++) {
    if (vm.guest_private.has(gfn)) {
      const s = cvm_spte(vm, BigInt(gfn) * 4096n, true);
      if (s !== undefined) priv.set(gfn, s.pfn as Pfn);
    }
    const alias = vm.vendor.shared_gpa(vm, BigInt(gfn) * 4096n);
    if (alias !== BigInt(gfn) * 4096n || !vm.guest_private.has(gfn)) {
      const s = cvm_spte(vm, alias, false);
      if (s !== undefined) shared.set(Number(alias / 4096n), s.pfn as Pfn);
    }
  }
  const snap = { vm: index, private: priv, shared, held: new Set(vm.guest_private) };
  const { vendor } = vm;
  if (vendor.private_owner === undefined) return snap;
  const owner = new Map<number, string>();
  for (const [gfn, pfn] of priv) owner.set(gfn, vendor.private_owner(vm, BigInt(gfn) * 4096n, pfn));
  return { ...snap, owner };
}

/** Every page the scenario's processes reach: present PTEs and PMD leaves that are not PROT_NONE. */
function hostPages(ctx: ScenarioContext): Map<Pfn, string> {
  const out = new Map<Pfn, string>();
  for (const proc of ctx.processes) {
    const { mm, task } = proc;
    for (const [pmd, t] of mm.pgd.ptes) {
      for (let i = 0; i < PMD_PAGES; i++) {
        const f = t.flags[i]!;
        if (!pte_present(f) || pte_protnone(f)) continue;
        const pfn = t.val[i] as Pfn;
        if (!out.has(pfn)) out.set(pfn, `pid ${task.pid} va 0x${((pmd * PMD_PAGES + i) * 4096).toString(16)}`);
      }
    }
    for (const [pmd, e] of mm.pgd.pmds) {
      if (!pte_present(e.flags) || pte_protnone(e.flags)) continue;
      for (let i = 0; i < PMD_PAGES; i++) {
        const pfn = (e.val + i) as Pfn;
        if (!out.has(pfn)) out.set(pfn, `pid ${task.pid} va 0x${((pmd * PMD_PAGES + i) * 4096).toString(16)} (PMD)`);
      }
    }
  }
  return out;
}

/** Every page a device reaches through the IOMMU domains of the host's VFIO devices. */
function iommuPages(ctx: ScenarioContext): Map<Pfn, string> {
  const out = new Map<Pfn, string>();
  const module = vfio_module(ctx.platform.kernel);
  if (module === undefined) return out;
  const seen = new Set<unknown>();
  for (const d of module.devices) {
    const domain = d.dev.iommu_group.domain;
    if (domain === null || seen.has(domain)) continue;
    seen.add(domain);
    for (const [pmd, t] of domain.ptes) {
      for (let i = 0; i < PMD_PAGES; i++) {
        const pfn = t.pfn[i]!;
        if (pfn >= 0 && !out.has(pfn as Pfn)) out.set(pfn as Pfn, `iova 0x${((pmd * PMD_PAGES + i) * 4096).toString(16)}`);
      }
    }
    for (const [pmd, l] of domain.pmds) for (let i = 0; i < PMD_PAGES; i++) out.set((l.pfn + i) as Pfn, `iova 0x${((pmd * PMD_PAGES + i) * 4096).toString(16)} (2M)`);
  }
  return out;
}

/** The snapshot after the context's last step. */
export function takeSnapshot(ctx: ScenarioContext): StateSnapshot {
  const step = ctx.steps.length - 1;
  return {
    step,
    call: ctx.steps[step]?.call ?? '',
    // A destroyed VM (its last fd closed) maps nothing any more.
    vms: ctx.cvms.map((vm, i) => (kvm_module(vm.kvm).vms.has(vm.kvm) ? vmSnapshot(vm, i) : { vm: i, private: new Map(), shared: new Map(), held: new Set() })),
    host: hostPages(ctx),
    iommu: iommuPages(ctx),
  };
}
