/**
 * Design "gmem_hugetlb" (designs.md D11): "1G page support for guest_memfd" (Ackerley Tng, RFC v2
 * of 2025-05-14, cover.1747264138.git.ackerleytng@google.com; RFC v1 of Sep 2024,
 * cover.1726009989.git.ackerleytng@google.com) on the in-place conversion it names as its
 * foundation (D10, gmem_inplace, whose KVM hooks it installs): guest_memfd allocates HugeTLB
 * folios (2 MiB, 1 GiB) with GUEST_MEMFD_FLAG_HUGETLB, splits a huge folio into 4 KiB ones when
 * part of it becomes shared and merges it back when it is all private again or punched
 * (guest_memfd.ts, guestmem_hugetlb.ts), so KVM maps a uniformly private huge page with one huge
 * SPTE.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, hugetlb_pool, set_max_huge_pages } from '@cocosim/mm';
import { KvmModule } from '../../kvm_main.js';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { GmemInplace, type GmemInplaceConfig } from '../gmem_inplace/guest_memfd.js';
import { gmem_inplace_kvm_hooks } from '../gmem_inplace/index.js';
import { GmemHugetlb, gmem_hugetlb_kvm_hooks } from './guest_memfd.js';
import { GMEM_HUGETLB_COST_ENTRIES } from './guestmem_hugetlb.js';
import { GUESTMEM_HUGETLB_FLAG_MASK, GUESTMEM_HUGETLB_FLAG_SHIFT, GUEST_MEMFD_FLAG_HUGETLB } from './uapi.js';
import { gmem_hugetlb_vmm } from './vmm.js';

export * from './uapi.js';
export { gmem_hugetlb_vmm, gmem_hugetlb_vmm_state, gmem_hugetlb_flags, type GmemHugetlbVmmState } from './vmm.js';
export { GmemHugetlb, gmem_hugetlb_of } from './guest_memfd.js';

/** The registrar's options: the host's HugeTLB pools (the hugepagesz=/hugepages= boot parameters). */
export interface GmemHugetlbOptions {
  /** 1 GiB pages in the pool at boot (default 0). */
  readonly hugepages_1g?: number;
  /** 2 MiB pages in the pool at boot (default 0). */
  readonly hugepages_2m?: number;
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function gmemHugetlbRegistrar(opts: GmemHugetlbOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    const module = root.resolve(KvmModule);
    // v8's default configuration of in-place conversion, which the series requires.
    const cfg: GmemInplaceConfig = { vm_memory_attributes: false, gmem_in_place_conversion: true, content_modes: null };
    design_install(kernel, gmem_hugetlb, { ...cfg, hugepages_1g: opts.hugepages_1g ?? 0, hugepages_2m: opts.hugepages_2m ?? 0 });
    for (const e of GMEM_HUGETLB_COST_ENTRIES) if (!kernel.cost.has(e.name)) kernel.cost.define(e);
    const pool = hugetlb_pool(kernel);
    if (opts.hugepages_2m) set_max_huge_pages(kernel, pool.hstates[0]!, opts.hugepages_2m);
    if (opts.hugepages_1g) set_max_huge_pages(kernel, pool.hstates[1]!, opts.hugepages_1g);
    const inplace = new GmemInplace(kernel, cfg);
    register_kvm_hooks(kernel, gmem_hugetlb_kvm_hooks(new GmemHugetlb(kernel, inplace)));
    register_kvm_hooks(kernel, gmem_inplace_kvm_hooks(inplace, module.generic_memory_attributes));
  };
}

export const gmem_hugetlb: Design<GmemHugetlbOptions> = {
  name: 'gmem_hugetlb',
  title: '1G page support for guest_memfd: HugeTLB folios split on conversion, merged back (RFC v2, May 2025), on in-place conversion',
  rows: ['D11'],
  uapi: { GUEST_MEMFD_FLAG_HUGETLB, GUESTMEM_HUGETLB_FLAG_SHIFT, GUESTMEM_HUGETLB_FLAG_MASK },
  options: {
    hugepages_1g: '1 GiB pages in the HugeTLB pool at boot (hugepagesz=1G hugepages=N; default 0)',
    hugepages_2m: '2 MiB pages in the HugeTLB pool at boot (default 0)',
  },
  vmm: gmem_hugetlb_vmm,
  registrar: gmemHugetlbRegistrar,
};
