/**
 * The pKVM hypervisor at EL2 of one host: page ownership between the host, the hypervisor and the
 * guests, as arch/arm64/kvm/hyp/nvhe/mem_protect.c keeps it (mainline 24035886d735 for the host
 * and non-protected-guest transitions; the Android common kernel's variant for protected guests:
 * __pkvm_host_donate_guest(), __pkvm_guest_share_host() / unshare_host(),
 * __pkvm_host_reclaim_page(), hyp_poison_page(), host_inject_abort(), __pkvm_host_use_dma()).
 *
 * State (vendor-models.md §5.1):
 *   host_state   per pfn, the host's view (hyp_vmemmap host_state): PKVM_PAGE_OWNED by default,
 *                PKVM_PAGE_SHARED_OWNED (lent to a guest), PKVM_PAGE_SHARED_BORROWED (a protected
 *                guest's page it shared back), PKVM_NOPAGE with the owner's id (the host stage-2
 *                has an annotated invalid PTE: any host access aborts).
 *   dma refcount per pfn, pages the host mapped for DMA (__pkvm_host_use_dma()): never donated.
 *   vms          per hyp VM (its handle), the guest stage-2: gfn -> pfn with the guest's state
 *                (OWNED for donated pages, SHARED_OWNED after the guest shared them,
 *                SHARED_BORROWED for host pages lent to a non-protected guest); 4 KiB entries
 *                (guest_stage2_force_pte_cb()).
 *
 * Contents: pKVM does not encrypt. A donated page keeps what the host wrote (pvmfw's pages are
 * overwritten with pvmfw's image: pkvm_load_pvmfw_pages()), a shared or unshared page keeps its
 * contents, and a guest-owned page returned to the host at teardown is zeroed and cleaned to the
 * point of coherency first (hyp_poison_page()).
 *
 * Errors are the hypervisor's: -EPERM for a page in the wrong state, -EINVAL for a DMA-mapped
 * page or a bad argument, -EFAULT for a guest IPA with nothing mapped (the guest's share then
 * becomes a stage-2 fault the host handles), -ENOENT for no entry to unshare.
 *
 * Costs: pkvm_hvc per hypercall, pkvm_stage2_update per stage-2 entry changed (with its TLBI),
 * page_zero_4k + pkvm_cmo_poc_4k per poisoned page, page_copy_4k per pvmfw page loaded.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { MM_HOST_ACCESS_ABORT, register_mm_hooks, type Kernel } from '@cocosim/mm';
import { PKVM_COSTS } from './costs.js';

/* enum pkvm_page_state (arch/arm64/kvm/hyp/include/nvhe/memory.h) */
export const PKVM_PAGE_OWNED = 0;
export const PKVM_PAGE_SHARED_OWNED = 1;
export const PKVM_PAGE_SHARED_BORROWED = 2;
export const PKVM_NOPAGE = 3;
export type PkvmPageState = 0 | 1 | 2 | 3;

/* enum pkvm_component_id (nvhe/mem_protect.h) */
export const PKVM_ID_HOST = 0;
export const PKVM_ID_HYP = 1;
export const PKVM_ID_GUEST = 3;

/** The name of a page state, for messages. */
export function pkvm_page_state_name(s: number): string {
  return ['OWNED', 'SHARED_OWNED', 'SHARED_BORROWED', 'NOPAGE'][s] ?? `state ${s}`;
}

/** An entry of a guest's stage-2 at EL2. */
export interface GuestS2Entry {
  readonly pfn: number;
  readonly state: PkvmPageState;
}

/** struct pkvm_hyp_vm: the hypervisor's copy of a VM. */
export class HypVm {
  /** The guest's stage-2, by gfn. */
  readonly pgt = new Map<number, GuestS2Entry>();
  /** __pkvm_start_teardown_vm() was called: its pages can be reclaimed. */
  is_dying = false;

  constructor(
    readonly handle: number,
    readonly is_protected: boolean,
    /** kvm->arch.pkvm.pvmfw_load_addr: where pvmfw is loaded into the guest, or -1n. */
    readonly pvmfw_load_addr: bigint,
  ) {}
}

/** The hypervisor of one host. */
export class PkvmHyp {
  /** The host's state of each page it does not own outright, and the owner of NOPAGE pages. */
  private readonly host_states = new Map<number, { state: PkvmPageState; owner: number }>();
  /** host_share_guest_count of pages lent to non-protected guests. */
  private readonly share_count = new Map<number, number>();
  /** The hyp_page refcount of pages the host mapped for DMA. */
  private readonly dma_refs = new Map<number, number>();
  readonly vms = new Map<number, HypVm>();
  private next_handle = 1;

  /**
   * The hypervisor of `kernel`'s host, with `pvmfw` its protected-VM firmware image
   * (pkvm_firmware_mem; null: none). Defines its cost entries and answers every host CPU access
   * (mm's host_access): a page the host does not own aborts (handle_host_mem_abort()).
   */
  constructor(readonly kernel: Kernel, readonly pvmfw: Uint8Array | null) {
    for (const e of PKVM_COSTS) if (!kernel.cost.has(e.name)) kernel.cost.define(e);
    register_mm_hooks(kernel, {
      name: 'pkvm-host-stage2',
      host_access: (_k, pfn, write, actor) => (this.handle_host_mem_abort(pfn, write, actor) ? MM_HOST_ACCESS_ABORT : 0),
    });
  }

  /**
   * The host's page states, the share counts and the DMA references, read-only: for the state
   * digest and the DEBUG_VM rules (pkvm_debug.ts).
   */
  debug_tables(): {
    readonly host_states: ReadonlyMap<number, { readonly state: PkvmPageState; readonly owner: number }>;
    readonly share_count: ReadonlyMap<number, number>;
    readonly dma_refs: ReadonlyMap<number, number>;
  } {
    return { host_states: this.host_states, share_count: this.share_count, dma_refs: this.dma_refs };
  }

  /** The host's state of a page (hyp_phys_to_page(addr)->host_state). */
  host_state(pfn: number): PkvmPageState {
    return this.host_states.get(pfn)?.state ?? PKVM_PAGE_OWNED;
  }

  /** The owner of a page the host has no access to, or PKVM_ID_HOST. */
  host_owner(pfn: number): number {
    const s = this.host_states.get(pfn);
    return s?.state === PKVM_NOPAGE ? s.owner : PKVM_ID_HOST;
  }

  private set_host_state(pfn: number, state: PkvmPageState, owner = PKVM_ID_HOST): void {
    if (state === PKVM_PAGE_OWNED) this.host_states.delete(pfn);
    else this.host_states.set(pfn, { state, owner });
    this.kernel.cost.charge('pkvm_stage2_update');
  }

  private hvc(call: string, pfn: number, gfn: number, ret: number): number {
    this.kernel.cost.charge('pkvm_hvc');
    const tracer = this.kernel.tracer;
    if (tracer.enabled('cocosim_pkvm_hyp')) tracer.emit('cocosim_pkvm_hyp', { call, pfn, gfn, ret });
    return ret;
  }

  /**
   * __host_check_page_state_range() for one page: the host's state must be `state`, and an OWNED
   * page must not be mapped for DMA (-EINVAL); -EPERM otherwise; -EINVAL for a pfn that is not RAM.
   */
  private host_check(pfn: number, state: PkvmPageState): number {
    if (!this.kernel.store.pfn_valid(pfn)) return -Errno.EINVAL;
    if (this.host_state(pfn) !== state) return -Errno.EPERM;
    if (state === PKVM_PAGE_OWNED && (this.dma_refs.get(pfn) ?? 0) > 0) return -Errno.EINVAL;
    return 0;
  }

  /** __pkvm_init_vm(): the hypervisor's copy of a VM; its handle. */
  __pkvm_init_vm(is_protected: boolean, pvmfw_load_addr: bigint): HypVm {
    const vm = new HypVm(this.next_handle++, is_protected, pvmfw_load_addr);
    this.vms.set(vm.handle, vm);
    this.hvc('__pkvm_init_vm', -1, -1, 0);
    return vm;
  }

  /**
   * __pkvm_host_share_guest() (mainline): lend host page `pfn` to a non-protected guest at `gfn`:
   * -EINVAL for a protected VM (handle___pkvm_host_share_guest()), -EPERM unless the guest has
   * nothing there and the host owns the page (or lends it already: multi-sharing is for
   * non-protected guests). Host SHARED_OWNED, guest SHARED_BORROWED.
   */
  __pkvm_host_share_guest(pfn: number, gfn: number, vm: HypVm): number {
    const call = '__pkvm_host_share_guest';
    if (vm.is_protected) return this.hvc(call, pfn, gfn, -Errno.EINVAL);
    if (!this.kernel.store.pfn_valid(pfn)) return this.hvc(call, pfn, gfn, -Errno.EINVAL);
    if (vm.pgt.has(gfn)) return this.hvc(call, pfn, gfn, -Errno.EPERM);
    const state = this.host_state(pfn);
    // Only host to np-guest multi-sharing is tolerated: a page shared with the hyp or FF-A is not.
    const multi = state === PKVM_PAGE_SHARED_OWNED && (this.share_count.get(pfn) ?? 0) > 0;
    if (!multi && state !== PKVM_PAGE_OWNED) return this.hvc(call, pfn, gfn, -Errno.EPERM);
    if (!multi) this.set_host_state(pfn, PKVM_PAGE_SHARED_OWNED);
    vm.pgt.set(gfn, { pfn, state: PKVM_PAGE_SHARED_BORROWED });
    this.kernel.cost.charge('pkvm_stage2_update');
    this.share_count.set(pfn, (this.share_count.get(pfn) ?? 0) + 1);
    return this.hvc(call, pfn, gfn, 0);
  }

  /**
   * __pkvm_host_unshare_guest(): take back a page lent to a non-protected guest: -ENOENT with no
   * entry, -EPERM unless the guest borrows it and the host lends it. The host owns it again when
   * no guest borrows it any more.
   */
  __pkvm_host_unshare_guest(gfn: number, vm: HypVm): number {
    const call = '__pkvm_host_unshare_guest';
    const e = vm.pgt.get(gfn);
    if (e === undefined) return this.hvc(call, -1, gfn, -Errno.ENOENT);
    if (e.state !== PKVM_PAGE_SHARED_BORROWED || this.host_state(e.pfn) !== PKVM_PAGE_SHARED_OWNED) return this.hvc(call, e.pfn, gfn, -Errno.EPERM);
    vm.pgt.delete(gfn);
    this.kernel.cost.charge('pkvm_stage2_update');
    const n = (this.share_count.get(e.pfn) ?? 1) - 1;
    if (n > 0) {
      this.share_count.set(e.pfn, n);
    } else {
      this.share_count.delete(e.pfn);
      this.set_host_state(e.pfn, PKVM_PAGE_OWNED);
    }
    return this.hvc(call, e.pfn, gfn, 0);
  }

  /**
   * __pkvm_host_donate_guest() (ACK): give host page `pfn` to a protected guest at `gfn`:
   * -EINVAL for a non-protected VM, then the host must own it and not have it mapped for DMA
   * (-EPERM / -EINVAL) and the guest have nothing there (-EPERM). The host stage-2 is annotated
   * with the guest as owner (host NOPAGE); a page in pvmfw's range gets pvmfw's image
   * (pkvm_load_pvmfw_pages()); the guest maps it OWNED. The host's bytes are the guest's now.
   */
  __pkvm_host_donate_guest(pfn: number, gfn: number, vm: HypVm): number {
    const call = '__pkvm_host_donate_guest';
    if (!vm.is_protected) return this.hvc(call, pfn, gfn, -Errno.EINVAL);
    const r = this.host_check(pfn, PKVM_PAGE_OWNED);
    if (r) return this.hvc(call, pfn, gfn, r);
    if (vm.pgt.has(gfn)) return this.hvc(call, pfn, gfn, -Errno.EPERM);
    this.set_host_state(pfn, PKVM_NOPAGE, PKVM_ID_GUEST);
    const ipa = BigInt(gfn) * BigInt(PAGE_SIZE);
    if (this.pvmfw !== null && vm.pvmfw_load_addr >= 0n && ipa >= vm.pvmfw_load_addr && ipa < vm.pvmfw_load_addr + BigInt(this.pvmfw.length)) {
      pkvm_load_pvmfw_page(this.kernel, this.pvmfw, Number(ipa - vm.pvmfw_load_addr), pfn);
    }
    vm.pgt.set(gfn, { pfn, state: PKVM_PAGE_OWNED });
    this.kernel.cost.charge('pkvm_stage2_update');
    return this.hvc(call, pfn, gfn, 0);
  }

  /**
   * The guest pages [gfn, gfn + nr) for a guest-initiated transition from `desired`
   * (__guest_request_page_transition()): -EFAULT where the guest has nothing mapped, -EPERM in
   * another state; the count is cut where the pages stop being physically contiguous.
   */
  private guest_request(vm: HypVm, gfn: number, nr: number, desired: PkvmPageState): { ret: number; entries: GuestS2Entry[] } {
    const entries: GuestS2Entry[] = [];
    for (let i = 0; i < nr; i++) {
      const e = vm.pgt.get(gfn + i);
      if (e === undefined) return { ret: -Errno.EFAULT, entries };
      if (e.state !== desired) return { ret: -Errno.EPERM, entries };
      if (i > 0 && e.pfn !== entries[0]!.pfn + i) break;
      entries.push(e);
    }
    return { ret: 0, entries };
  }

  /**
   * __pkvm_guest_share_host() (the guest's MEM_SHARE hypercall): the guest's OWNED pages at `gfn`
   * become SHARED_OWNED and the host's NOPAGE ones SHARED_BORROWED (the host can access them
   * again, contents preserved). -EFAULT where nothing is mapped yet, -EPERM in another state.
   * Returns the count shared, or -errno.
   */
  __pkvm_guest_share_host(vm: HypVm, gfn: number, nr_pages: number): number {
    const call = '__pkvm_guest_share_host';
    const req = this.guest_request(vm, gfn, nr_pages, PKVM_PAGE_OWNED);
    if (req.ret) return this.hvc(call, -1, gfn, req.ret);
    for (const e of req.entries) {
      const r = this.host_check(e.pfn, PKVM_NOPAGE);
      if (r) return this.hvc(call, e.pfn, gfn, r);
    }
    req.entries.forEach((e, i) => {
      vm.pgt.set(gfn + i, { pfn: e.pfn, state: PKVM_PAGE_SHARED_OWNED });
      this.set_host_state(e.pfn, PKVM_PAGE_SHARED_BORROWED);
    });
    return this.hvc(call, req.entries[0]!.pfn, gfn, req.entries.length);
  }

  /**
   * __pkvm_guest_unshare_host() (MEM_UNSHARE): the guest's SHARED_OWNED pages become OWNED again
   * and the host loses them (NOPAGE, owner the guest): contents preserved, host accesses abort.
   * -EFAULT / -EPERM as for sharing. Returns the count unshared, or -errno.
   */
  __pkvm_guest_unshare_host(vm: HypVm, gfn: number, nr_pages: number): number {
    const call = '__pkvm_guest_unshare_host';
    const req = this.guest_request(vm, gfn, nr_pages, PKVM_PAGE_SHARED_OWNED);
    if (req.ret) return this.hvc(call, -1, gfn, req.ret);
    for (const e of req.entries) {
      const r = this.host_check(e.pfn, PKVM_PAGE_SHARED_BORROWED);
      if (r) return this.hvc(call, e.pfn, gfn, r);
    }
    req.entries.forEach((e, i) => {
      vm.pgt.set(gfn + i, { pfn: e.pfn, state: PKVM_PAGE_OWNED });
      this.set_host_state(e.pfn, PKVM_NOPAGE, PKVM_ID_GUEST);
    });
    return this.hvc(call, req.entries[0]!.pfn, gfn, req.entries.length);
  }

  /** __pkvm_start_teardown_vm(): the VM is dying; its pages can be reclaimed. */
  __pkvm_start_teardown_vm(vm: HypVm): number {
    vm.is_dying = true;
    return this.hvc('__pkvm_start_teardown_vm', -1, -1, 0);
  }

  /**
   * __pkvm_reclaim_dying_guest_page() -> __pkvm_host_reclaim_page(): -EINVAL unless the VM is
   * dying; the page at `gfn` goes back to the host: -EINVAL with no entry, -EPERM for another pfn.
   * A page the guest owned is zeroed and cleaned to the PoC first (hyp_poison_page()); shared
   * pages return as they are.
   */
  __pkvm_reclaim_dying_guest_page(vm: HypVm, pfn: number, gfn: number): number {
    const call = '__pkvm_reclaim_dying_guest_page';
    if (!vm.is_dying) return this.hvc(call, pfn, gfn, -Errno.EINVAL);
    const e = vm.pgt.get(gfn);
    if (e === undefined) return this.hvc(call, pfn, gfn, -Errno.EINVAL);
    if (e.pfn !== pfn) return this.hvc(call, pfn, gfn, -Errno.EPERM);
    vm.pgt.delete(gfn);
    this.kernel.cost.charge('pkvm_stage2_update');
    if (e.state === PKVM_PAGE_OWNED) hyp_poison_page(this.kernel, pfn);
    if (e.state === PKVM_PAGE_SHARED_BORROWED) {
      const n = (this.share_count.get(pfn) ?? 1) - 1;
      if (n > 0) {
        this.share_count.set(pfn, n);
        return this.hvc(call, pfn, gfn, 0);
      }
      this.share_count.delete(pfn);
    }
    this.set_host_state(pfn, PKVM_PAGE_OWNED);
    return this.hvc(call, pfn, gfn, 0);
  }

  /** __pkvm_teardown_vm(): the hypervisor forgets a VM whose pages were all reclaimed. */
  __pkvm_teardown_vm(vm: HypVm): number {
    if (vm.pgt.size > 0) return this.hvc('__pkvm_teardown_vm', -1, -1, -Errno.EBUSY);
    this.vms.delete(vm.handle);
    return this.hvc('__pkvm_teardown_vm', -1, -1, 0);
  }

  /**
   * __pkvm_host_use_dma(): the host maps `nr` pages at `pfn` in an IOMMU: they must be OWNED
   * (-EPERM) and are refcounted, so they cannot be donated while mapped.
   */
  __pkvm_host_use_dma(pfn: number, nr: number): number {
    for (let i = 0; i < nr; i++) {
      if (!this.kernel.store.pfn_valid(pfn + i)) return this.hvc('__pkvm_host_use_dma', pfn, -1, -Errno.EINVAL);
      if (this.host_state(pfn + i) !== PKVM_PAGE_OWNED) return this.hvc('__pkvm_host_use_dma', pfn, -1, -Errno.EPERM);
    }
    for (let i = 0; i < nr; i++) this.dma_refs.set(pfn + i, (this.dma_refs.get(pfn + i) ?? 0) + 1);
    return this.hvc('__pkvm_host_use_dma', pfn, -1, 0);
  }

  /** __pkvm_host_unuse_dma(): drop the DMA references. */
  __pkvm_host_unuse_dma(pfn: number, nr: number): number {
    for (let i = 0; i < nr; i++) {
      const n = (this.dma_refs.get(pfn + i) ?? 0) - 1;
      if (n > 0) this.dma_refs.set(pfn + i, n);
      else this.dma_refs.delete(pfn + i);
    }
    return this.hvc('__pkvm_host_unuse_dma', pfn, -1, 0);
  }

  /**
   * handle_host_mem_abort(): a host access to a page whose host stage-2 entry is invalid (NOPAGE)
   * cannot be fixed (host_stage2_idmap(): -EPERM), so the hypervisor injects the abort into the
   * host (host_inject_abort(), ESR_ELx_S1PTW marking it). True when it does.
   */
  handle_host_mem_abort(pfn: number, write: boolean, actor: string): boolean {
    if (this.host_state(pfn) !== PKVM_NOPAGE) return false;
    const tracer = this.kernel.tracer;
    if (tracer.enabled('cocosim_pkvm_host_abort')) tracer.emit('cocosim_pkvm_host_abort', { pfn, write, actor });
    return true;
  }
}

/** hyp_poison_page(): zero the page and clean it to the point of coherency. */
export function hyp_poison_page(kernel: Kernel, pfn: number): void {
  kernel.phys.clear(pfn as Pfn);
  kernel.cost.charge('page_zero_4k');
  kernel.cost.charge('pkvm_cmo_poc_4k');
}

/** pkvm_load_pvmfw_pages() for one page: pvmfw's bytes at `offset`, zero beyond its end. */
function pkvm_load_pvmfw_page(kernel: Kernel, pvmfw: Uint8Array, offset: number, pfn: number): void {
  const page = new Uint8Array(PAGE_SIZE);
  page.set(pvmfw.subarray(offset, offset + PAGE_SIZE));
  kernel.phys.write(pfn as Pfn, 0, page);
  kernel.cost.charge('page_copy_4k');
}

/** The hypervisor of each host (per Kernel, never module-wide). */
const hyps = new WeakMap<Kernel, PkvmHyp>();

/** The host's hypervisor, created with `pvmfw` on first use. */
export function pkvm_hyp(kernel: Kernel, pvmfw: Uint8Array | null = null): PkvmHyp {
  let hyp = hyps.get(kernel);
  if (hyp === undefined) {
    hyp = new PkvmHyp(kernel, pvmfw);
    hyps.set(kernel, hyp);
  }
  return hyp;
}

/** The host's hypervisor if it was created. */
export function pkvm_hyp_if_any(kernel: Kernel): PkvmHyp | undefined {
  return hyps.get(kernel);
}
