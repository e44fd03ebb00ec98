/**
 * SEV's part of the state digest and of DEBUG_VM (core/src/state_digest.ts, mm/src/debug_vm.ts),
 * after kvm/src/kvm_debug.ts.
 *
 * Digest part "sev.firmware", the host's SEV hardware and AMD-SP (host.ts, rmp.ts, psp.ts): the
 * RMP entries not in the Hypervisor state by pfn (assigned, page size, immutable, GPA, ASID, VMSA,
 * validated, VMPL permissions); the firmware's platform state, legacy guests by handle (state,
 * ASID, policy, TIK, the launch digest so far or taken), SNP guests by context page (state, ASID,
 * policy, GOSVW, launch digest, host data), the ASID bindings, the ASIDs awaiting DF_FLUSH and
 * the WBINVD it needs; KVM's ASID bitmaps, the direct-map splits and the leaked pages.
 * Digest part "sev.vms", KVM's half (struct kvm_sev_info) of each live SEV VM in creation order:
 * flags, ASID, handle, VMSA features, GHCB version, locked pages and regions, the SNP context and
 * guest-request pages, the C-bit the guest set per gfn, and per vCPU the VMSA page, protected
 * state, the page-state change in flight and the pending MSR response.
 * Left out: the firmware's next handle (a counter that only names the next guest; the guests'
 * handles are in).
 *
 * DEBUG_VM rules ("sev:<rule>"):
 *   rmp_map    every leaf SPTE of a live SNP VM at a gfn KVM faults privately
 *              (kvm_mem_is_private()) maps a page the RMP assigns to the VM's ASID at that GPA and
 *              not immutable (snp_private_owner()); PVALIDATE may still be to come: KVM maps the
 *              page when sev_gmem_prepare() assigned it, the guest validates it after. Shared
 *              leaves are not asserted hypervisor-owned: a design may keep the page of a shared
 *              gfn assigned (the guest's access takes an RMP #NPF, as on hardware).
 *   rmp_owner  every assigned RMP entry with an ASID belongs to a live SNP VM with that ASID
 *              (snp_leak_pages() excepted: a page whose reclaim failed stays as it was): KVM
 *              reclaims a VM's pages (sev_gmem_invalidate(), snp_page_reclaim()) before the VM
 *              and its ASID go.
 *   rmp_free   every page with an RMP entry outside the Hypervisor state has a page refcount > 0:
 *              the kernel returns a page to the Hypervisor state before it frees it
 *              (snp_free_firmware_page(), kvm_gmem_free_folio()) and leaks it when it cannot.
 *              Whether a host user PTE maps such a page is not asserted: the kernel does not
 *              keep that from happening (D14's anonymous memory is mapped by the VMM), the
 *              hardware answers the host's access with an RMP #PF.
 */
import { type HostRegistrar, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, page_count, type Kernel } from '@cocosim/mm';
import { KvmModule, KVM_PAGES_PER_HPAGE, kvm_mem_is_private, tdp_mmu_for_each_leaf, type Kvm, type KvmTdpMmu } from '@cocosim/kvm';
import { snp_private_owner } from './cvm.js';
import { sev_host } from './host.js';
import { PTRS_PER_PMD } from './rmp.js';
import { KvmSevInfo, sev_snp_guest, to_kvm_sev_info } from './sev.js';
import { RMP_PG_SIZE_2M } from './uapi.js';

/** The 4 KiB-page span of a whole 5-level root. */
const ROOT_GFNS = 512 ** 5;

const hex = (n: number): string => `0x${n.toString(16)}`;
const by_num = (a: number, b: number): number => a - b;

/** The host's composition root, as a registrar gets it. */
type Root = Parameters<HostRegistrar>[0];

/** The KVM module of the host, once kvmRegistrar() registered it (vendor registrars may run first). */
function kvm_module(root: Root): KvmModule | undefined {
  return root.isRegistered(KvmModule, true) ? root.resolve(KvmModule) : undefined;
}

/* ---- the digest ---- */

function hash_sorted_set(h: StateHash, s: ReadonlySet<number>): void {
  const a = [...s].sort(by_num);
  h.num(a.length);
  for (const x of a) h.num(x);
}

/** A value of plain data (numbers, bigints, strings, booleans, bytes, arrays, records by key). */
function hash_plain(h: StateHash, v: unknown): void {
  if (v === undefined || v === null || typeof v === 'string') h.str(v as string | null | undefined);
  else if (typeof v === 'number') h.num(v);
  else if (typeof v === 'bigint') h.big(v);
  else if (typeof v === 'boolean') h.bool(v);
  else if (v instanceof Uint8Array) h.bytes(v);
  else if (Array.isArray(v)) {
    h.num(v.length);
    for (const x of v) hash_plain(h, x);
  } else {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    h.num(keys.length);
    for (const k of keys) {
      h.str(k);
      hash_plain(h, o[k]);
    }
  }
}

/** The host's RMP, firmware and KVM host state (the file comment). */
function hash_firmware(h: StateHash, kernel: Kernel): void {
  const host = sev_host(kernel);
  const entries = host.rmp.debug_entries();
  const pfns = [...entries.keys()].sort(by_num);
  h.num(pfns.length);
  for (const pfn of pfns) {
    const e = entries.get(pfn)!;
    h.num(pfn);
    h.bool(e.assigned);
    h.num(e.pagesize);
    h.bool(e.immutable);
    h.big(e.gpa);
    h.num(e.asid);
    h.bool(e.vmsa);
    h.bool(e.validated);
    for (const p of e.vmpl_perms) h.num(p);
  }
  const fw = host.fw;
  h.bool(fw.platform_init);
  const handles = [...fw.guests.keys()].sort(by_num);
  h.num(handles.length);
  for (const handle of handles) {
    const g = fw.guests.get(handle)!;
    h.num(handle);
    h.num(h.id(g).id);
    h.num(g.state);
    h.num(g.asid);
    h.num(g.policy);
    h.bytes(g.tik);
    /* the running SHA-256 of the launch: a copy, so that hashing does not finish it */
    if (g.ld_final !== undefined) h.bytes(g.ld_final);
    else h.bytes(g.ld.copy().digest());
  }
  const gctxs = [...fw.snp_guests.keys()].sort(by_num);
  h.num(gctxs.length);
  for (const pfn of gctxs) {
    const g = fw.snp_guests.get(pfn)!;
    h.num(pfn);
    h.num(h.id(g).id);
    h.num(g.state);
    h.num(g.asid);
    h.big(g.policy);
    h.bytes(g.gosvw);
    h.bytes(g.ld);
    h.bytes(g.host_data);
  }
  const asids = [...fw.asid_owner.keys()].sort(by_num);
  h.num(asids.length);
  for (const asid of asids) {
    h.num(asid);
    h.num(h.id(fw.asid_owner.get(asid)!).id);
  }
  hash_sorted_set(h, fw.dirty_asids);
  h.bool(fw.wbinvd_required);
  hash_sorted_set(h, host.asid_bitmap);
  hash_sorted_set(h, host.reclaim_asid_bitmap);
  hash_sorted_set(h, host.direct_map_split);
  hash_sorted_set(h, host.leaked);
}

/** KVM's half of each live SEV VM (struct kvm_sev_info, the vCPUs' SEV-ES state). */
function hash_vms(h: StateHash, module: KvmModule | undefined): void {
  const vms = module === undefined ? [] : [...module.vms].filter((kvm) => kvm.arch.vendor instanceof KvmSevInfo);
  h.num(vms.length);
  for (const kvm of vms) {
    const s = to_kvm_sev_info(kvm);
    h.num(h.id(kvm).id);
    h.bool(s.active);
    h.bool(s.es_active);
    h.bool(s.need_init);
    h.num(s.asid);
    h.num(s.handle);
    h.num(s.fd);
    h.big(s.vmsa_features);
    h.num(s.ghcb_version);
    h.num(s.pages_locked);
    h.num(s.regions_list.length);
    for (const r of s.regions_list) hash_plain(h, { pages: r.pages, uaddr: r.uaddr, size: r.size });
    h.num(s.snp_context);
    h.num(s.guest_req_buf);
    h.num(s.guest_resp_buf);
    const gfns = [...s.c_bit.keys()].sort(by_num);
    h.num(gfns.length);
    for (const gfn of gfns) {
      h.num(gfn);
      h.bool(s.c_bit.get(gfn)!);
    }
    const vcpus = [...s.vcpus.entries()].sort((a, b) => a[0].vcpu_id - b[0].vcpu_id);
    h.num(vcpus.length);
    for (const [vcpu, v] of vcpus) {
      h.num(vcpu.vcpu_id);
      h.num(v.vmsa_pfn);
      h.bool(v.guest_state_protected);
      hash_plain(h, v.psc);
      hash_plain(h, v.msr_resp);
    }
  }
}

/* ---- the checks ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

/** The rmp_map rule for one SNP VM. */
function check_vm_leaves(kvm: Kvm, vm: string, report: Report): void {
  const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
  if (mmu === undefined || kvm.vm_dead) return;
  tdp_mmu_for_each_leaf(mmu.direct_root, 0, ROOT_GFNS, (sp, i, gfn) => {
    const n = KVM_PAGES_PER_HPAGE(sp.level);
    const pfn = sp.pfn[i]!;
    for (let j = 0; j < n; j++) {
      if (!kvm_mem_is_private(kvm, gfn + j)) continue;
      const owner = snp_private_owner(kvm, BigInt(gfn + j) * 4096n, pfn + j, true);
      if (owner !== 'guest') {
        report('rmp_map', `${vm}: private SPTE gfn ${hex(gfn + j)} level ${sp.level} maps pfn ${hex(pfn + j)}, the RMP: ${owner}`, pfn + j);
        return;
      }
    }
  });
}

/** The rmp_owner and rmp_free rules over the RMP. */
function check_rmp(kernel: Kernel, module: KvmModule | undefined, report: Report): void {
  const host = sev_host(kernel);
  const store = kernel.store;
  const asids = new Set<number>();
  if (module !== undefined) for (const kvm of module.vms) if (sev_snp_guest(kvm)) asids.add(to_kvm_sev_info(kvm).asid);
  for (const [pfn, e] of host.rmp.debug_entries()) {
    if (host.leaked.has(pfn)) continue;
    if (module !== undefined && e.assigned && e.asid !== 0 && !asids.has(e.asid)) {
      report('rmp_owner', `pfn ${hex(pfn)} is assigned to ASID ${e.asid} at gpa 0x${e.gpa.toString(16)}, which no live SNP VM holds`, pfn);
    }
    const n = e.pagesize === RMP_PG_SIZE_2M ? PTRS_PER_PMD : 1;
    for (let p = pfn; p < pfn + n; p++) {
      if (p >= store.base_pfn && p < store.end_pfn && page_count(store, p) <= 0) {
        report('rmp_free', `pfn ${hex(p)} has an RMP entry (${e.assigned ? `assigned to ASID ${e.asid}` : 'not assigned'}${e.immutable ? ', immutable' : ''}) and is free in the page allocator`, p);
        break;
      }
    }
  }
}

/** The DEBUG_VM check of the host's RMP against its SNP VMs (the rules of the file comment). */
export function sev_check(kernel: Kernel, module: KvmModule | undefined, report: Report): void {
  if (module !== undefined) {
    let n = 0;
    for (const kvm of module.vms) {
      const vm = `VM ${n++} (type ${kvm.arch.vm_type})`;
      if (sev_snp_guest(kvm)) check_vm_leaves(kvm, vm, report);
    }
  }
  check_rmp(kernel, module, report);
}

/** Registers SEV's digest parts and DEBUG_VM rules on the host (from its registrar; once per host). */
export function sev_debug_register(root: Root, kernel: Kernel): void {
  const registry = stateDigestRegistry(kernel);
  if (registry.has('sev.firmware')) return;
  registry.register('sev.firmware', (h) => hash_firmware(h, kernel), 110);
  registry.register('sev.vms', (h) => hash_vms(h, kvm_module(root)), 111);
  debug_vm_register(kernel, 'sev', (k, report) => sev_check(k, kvm_module(root), report));
}
