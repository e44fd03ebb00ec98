/**
 * pKVM's part of the state digest and of DEBUG_VM (core/src/state_digest.ts, mm/src/debug_vm.ts),
 * after kvm/src/kvm_debug.ts.
 *
 * Digest part "pkvm.hyp", the hypervisor at EL2 (hyp.ts): the host's state and owner of every page
 * it does not own outright, by pfn; the share counts of pages lent to non-protected guests; the
 * DMA references; the hypervisor's VMs by handle (protected, pvmfw load address, dying, and the
 * guest stage-2 by gfn: pfn and state). Digest part "pkvm.vms", KVM's half (kvm->arch.pkvm) of
 * each live pKVM VM in creation order: protected, pvmfw load address, its hypervisor VM, and the
 * pages pinned for the guest (pkvm_mappings) by gfn.
 * Both mirror "kvm.vms": a zap of KVM's SPTEs unmaps the page from the hypervisor's guest stage-2
 * (pkvm_pgtable_stage2_unmap()) and drops its pkvm_mapping.
 * Left out: the hypervisor's next handle (a counter that only names the next VM).
 *
 * DEBUG_VM rules ("pkvm:<rule>"), over live protected VMs that are not bugged:
 *   s2_map     every leaf of the VM's stage-2 in KVM maps the page the host pinned for that gfn
 *              (pkvm_mappings) and the hypervisor's guest stage-2 holds there: guest-owned with
 *              the host NOPAGE (pkvm_private_owner()), or shared back by the guest (host
 *              SHARED_BORROWED). KVM installs a leaf only after the hypervisor mapped the page
 *              (pkvm_set_external_spte()).
 *   page_free  every page the host does not own outright (donated, shared or lent) has a page
 *              refcount > 0: the host keeps what it gave the hypervisor pinned until it reclaims
 *              it (__pkvm_host_reclaim_page()). Whether a host user PTE maps such a page is not
 *              asserted: the hypervisor's stage-2 aborts the host's access, and the VMM's mapping
 *              of guest memory stays.
 */
import { type HostRegistrar, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, page_count, type Kernel } from '@cocosim/mm';
import { KvmModule, KVM_PAGES_PER_HPAGE, tdp_mmu_for_each_leaf, type Kvm, type KvmTdpMmu } from '@cocosim/kvm';
import { pkvm_private_owner } from './cvm.js';
import { PKVM_PAGE_OWNED, PKVM_PAGE_SHARED_BORROWED, PKVM_PAGE_SHARED_OWNED, pkvm_hyp_if_any, pkvm_page_state_name, type HypVm } from './hyp.js';
import { pkvm_vm } from './pkvm.js';

const ROOT_GFNS = 512 ** 5;

const hex = (n: number): string => `0x${n.toString(16)}`;
const by_num = (a: number, b: number): number => a - b;

/** The host's composition root, as a registrar gets it. */
type Root = Parameters<HostRegistrar>[0];

/** The KVM module of the host, once kvmRegistrar() registered it. */
function kvm_module(root: Root): KvmModule | undefined {
  return root.isRegistered(KvmModule, true) ? root.resolve(KvmModule) : undefined;
}

/* ---- the digest ---- */

function hash_num_map(h: StateHash, m: ReadonlyMap<number, number>): void {
  const keys = [...m.keys()].sort(by_num);
  h.num(keys.length);
  for (const k of keys) {
    h.num(k);
    h.num(m.get(k)!);
  }
}

function hash_hyp_vm(h: StateHash, vm: HypVm): void {
  h.num(vm.handle);
  h.bool(vm.is_protected);
  h.big(vm.pvmfw_load_addr);
  h.bool(vm.is_dying);
  const gfns = [...vm.pgt.keys()].sort(by_num);
  h.num(gfns.length);
  for (const gfn of gfns) {
    const e = vm.pgt.get(gfn)!;
    h.num(gfn);
    h.num(e.pfn);
    h.num(e.state);
  }
}

/** The hypervisor of `kernel`'s host (the file comment). */
function hash_hyp(h: StateHash, kernel: Kernel): void {
  const hyp = pkvm_hyp_if_any(kernel);
  if (hyp === undefined) {
    h.num(-1);
    return;
  }
  const t = hyp.debug_tables();
  const pfns = [...t.host_states.keys()].sort(by_num);
  h.num(pfns.length);
  for (const pfn of pfns) {
    const s = t.host_states.get(pfn)!;
    h.num(pfn);
    h.num(s.state);
    h.num(s.owner);
  }
  hash_num_map(h, t.share_count);
  hash_num_map(h, t.dma_refs);
  const handles = [...hyp.vms.keys()].sort(by_num);
  h.num(handles.length);
  for (const handle of handles) {
    const vm = hyp.vms.get(handle)!;
    h.num(h.id(vm).id);
    hash_hyp_vm(h, vm);
  }
}

/** KVM's half (kvm->arch.pkvm) of each live pKVM VM. */
function hash_vms(h: StateHash, module: KvmModule | undefined): void {
  const vms = module === undefined ? [] : [...module.vms].filter((kvm) => pkvm_vm(kvm) !== undefined);
  h.num(vms.length);
  for (const kvm of vms) {
    const p = pkvm_vm(kvm)!;
    h.num(h.id(kvm).id);
    h.bool(p.is_protected);
    h.big(p.pvmfw_load_addr);
    h.num(p.hyp === null ? 0 : h.id(p.hyp).id);
    hash_num_map(h, p.pinned);
  }
}

/* ---- the checks ---- */

type Report = (rule: string, message: string, pfn?: number) => void;

/** The s2_map rule for one protected VM. */
function check_vm_leaves(kvm: Kvm, vm: string, report: Report): void {
  const p = pkvm_vm(kvm)!;
  const hyp = pkvm_hyp_if_any(kvm.kernel);
  const mmu = kvm.arch.mmu as KvmTdpMmu | undefined;
  if (mmu === undefined || kvm.vm_dead || hyp === undefined) return;
  tdp_mmu_for_each_leaf(mmu.direct_root, 0, ROOT_GFNS, (sp, i, gfn) => {
    const n = KVM_PAGES_PER_HPAGE(sp.level);
    const pfn = sp.pfn[i]!;
    for (let j = 0; j < n; j++) {
      const g = gfn + j;
      const e = p.hyp?.pgt.get(g);
      let what: string | undefined;
      if (p.pinned.get(g) !== pfn + j) what = `the host pinned ${p.pinned.has(g) ? `pfn ${hex(p.pinned.get(g)!)}` : 'nothing'} there`;
      else if (e?.state === PKVM_PAGE_SHARED_OWNED) {
        if (e.pfn !== pfn + j || hyp.host_state(pfn + j) !== PKVM_PAGE_SHARED_BORROWED) {
          what = `the guest stage-2 shares pfn ${hex(e.pfn)}, host ${pkvm_page_state_name(hyp.host_state(pfn + j))}`;
        }
      } else {
        const owner = pkvm_private_owner(kvm, BigInt(g) * 4096n, pfn + j);
        if (owner !== 'guest') what = owner;
      }
      if (what !== undefined) {
        report('s2_map', `${vm}: SPTE gfn ${hex(g)} maps pfn ${hex(pfn + j)}, the hypervisor: ${what}`, pfn + j);
        return;
      }
    }
  });
}

/** The page_free rule over the host's page states. */
function check_pages(kernel: Kernel, report: Report): void {
  const hyp = pkvm_hyp_if_any(kernel);
  if (hyp === undefined) return;
  const store = kernel.store;
  for (const [pfn, s] of hyp.debug_tables().host_states) {
    if (s.state === PKVM_PAGE_OWNED) continue;
    if (pfn >= store.base_pfn && pfn < store.end_pfn && page_count(store, pfn) <= 0) {
      report('page_free', `pfn ${hex(pfn)} is ${pkvm_page_state_name(s.state)} to the host and free in the page allocator`, pfn);
    }
  }
}

/** The DEBUG_VM check of the hypervisor against the host's protected VMs (the rules of the file comment). */
export function pkvm_check(kernel: Kernel, module: KvmModule | undefined, report: Report): void {
  if (module !== undefined) {
    let n = 0;
    for (const kvm of module.vms) {
      const vm = `VM ${n++} (type ${kvm.arch.vm_type})`;
      if (pkvm_vm(kvm)?.is_protected === true) check_vm_leaves(kvm, vm, report);
    }
  }
  check_pages(kernel, report);
}

/** Registers pKVM's digest parts and DEBUG_VM rules on the host (from its registrar; once per host). */
export function pkvm_debug_register(root: Root, kernel: Kernel): void {
  const registry = stateDigestRegistry(kernel);
  if (registry.has('pkvm.hyp')) return;
  registry.register('pkvm.hyp', (h) => hash_hyp(h, kernel), 110, 'kvm.vms');
  registry.register('pkvm.vms', (h) => hash_vms(h, kvm_module(root)), 111, 'kvm.vms');
  debug_vm_register(kernel, 'pkvm', (k, report) => pkvm_check(k, kvm_module(root), report));
}
