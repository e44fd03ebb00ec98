/**
 * The KVM seams for the alternative guest-private-memory designs (kvm/src/designs/), modelled on
 * mm's mm_hooks.ts and on the LSM hook list (security/security.c call_int_hook()): one interface
 * of optional hooks, a per-host list of providers asked in registration order, and a default
 * answer per hook (LSM_RET_DEFAULT) meaning "the base decides". With no provider, or every
 * provider answering the default, KVM behaves exactly as Linux 6.18's.
 *
 * Linux has no ops table at these points: each design patched KVM there (in-place conversion
 * made kvm_mem_is_private() a static call and gave guest_memfd an ioctl; the memfd designs added
 * KVM_MEM_PRIVATE memslots backed by a memfd). The base calls the hooks below with one line at
 * each site and never tests which design is active.
 *
 * A private-memory backing store that is not a guest_memfd (D5/D6's memfile_notifier backing
 * store, D7's restrictedmem) registers itself on its inode (kvm_private_store_register(), like
 * memfile_register_backing_store()); guest_memfd's bind, unbind and get_pfn hand a memslot bound
 * to such a file to its store.
 */
import { Errno, type ErrPtr } from '@cocosim/core';
import type { File, FileOwner, Folio, Inode, Kernel } from '@cocosim/mm';
import type { Kvm, KvmMemorySlot, KvmVcpu } from './kvm_host.js';

/** The default answer of the hooks whose "base decides" value is no valid answer (a value, a boolean). */
export const KVM_HOOK_DEFAULT = -1;
/** -ENOIOCTLCMD (include/linux/errno.h): "not my ioctl", the default of the ioctl hooks. */
export const ENOIOCTLCMD = 515;

export interface KvmHooks {
  /** A name for traces and warnings (the design's). */
  readonly name: string;

  /**
   * kvm_vm_ioctl() (virt/kvm/kvm_main.c), after the -EIO check of another mm or a dead VM and
   * before the base's dispatch: a VM ioctl the design adds or replaces (D10 without
   * CONFIG_KVM_VM_MEMORY_ATTRIBUTES: KVM_SET_MEMORY_ATTRIBUTES is -ENOTTY; D5-D7:
   * KVM_SET_USER_MEMORY_REGION with KVM_MEM_PRIVATE and struct kvm_userspace_memory_region_ext).
   * @returns the ioctl's result, or -ENOIOCTLCMD for the base to handle it.
   */
  vm_ioctl?(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner): number;

  /**
   * kvm_vm_ioctl_check_extension_generic(), before the base's answer: `kvm` is undefined on
   * /dev/kvm. Used by D10 (KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES; KVM_CAP_MEMORY_ATTRIBUTES 0).
   * @returns the capability's value, or KVM_HOOK_DEFAULT for the base's.
   */
  check_extension?(kvm: Kvm | undefined, cap: number): number;

  /**
   * kvm_supported_mem_attributes() of a VM (virt/kvm/kvm_main.c; v8: kvm_supported_vm_mem_attributes):
   * the attributes KVM_SET_MEMORY_ATTRIBUTES accepts. D10: 0, PRIVATE is tracked per guest_memfd.
   * @returns the mask, or KVM_HOOK_DEFAULT for the base's.
   */
  supported_mem_attributes?(kvm: Kvm): number;

  /**
   * kvm_mem_is_private() (include/linux/kvm_host.h; the static call __kvm_mem_is_private of the
   * in-place conversion series): whether `gfn` is private. D10: the attribute of the guest_memfd
   * page behind it; D5/D6: the page is allocated in the memslot's private fd.
   * @returns 1 (private), 0 (shared) or KVM_HOOK_DEFAULT for the per-VM attribute.
   */
  mem_is_private?(kvm: Kvm, gfn: number): number;

  /**
   * kvm_gmem_get_supported_flags() of a VM: GUEST_MEMFD_FLAG_* to add (D10:
   * kvm_arch_supports_gmem_init_shared() is true with in-place conversion, so INIT_SHARED).
   * @returns the flags to add, or 0.
   */
  gmem_supported_flags?(kvm: Kvm): number;

  /**
   * The memory attributes of page `index` of a guest_memfd inode, as its host fault handler
   * (kvm_gmem_fault_user_mapping()) asks. The base's answer: PRIVATE unless created
   * INIT_SHARED. D10: the per-inode maple tree (kvm_gmem_get_attributes()).
   * @returns the attributes, or KVM_HOOK_DEFAULT for the base's.
   */
  gmem_get_attributes?(inode: Inode, index: number): number;

  /**
   * kvm_gmem_get_invalidate_filter(): which SPTEs a punch, a release or a memory error of file
   * pages [start, end) zaps (`end` may be MT_MAX: the whole file). The base's: SHARED for
   * INIT_SHARED memory, PRIVATE otherwise. D10: from the attributes of the range.
   * @returns KVM_FILTER_* bits, or 0 for the base's.
   */
  gmem_invalidate_filter?(inode: Inode, start: number, end: number): number;

  /**
   * kvm_gmem_range_is_private(): whether file pages [index, index + nr_pages) are private, as
   * kvm_gmem_populate() (the SNP/TDX launch flows) requires. The base asks the VM's attributes.
   * @returns 1, 0, or KVM_HOOK_DEFAULT for the base's.
   */
  gmem_range_is_private?(inode: Inode, index: number, nr_pages: number): number;

  /**
   * kvm_gmem_ioctl(): an ioctl on a guest_memfd file (6.18 has none: -ENOTTY). D10:
   * KVM_SET_MEMORY_ATTRIBUTES2.
   * @returns the ioctl's result, or -ENOTTY.
   */
  gmem_ioctl?(file: File, cmd: number, arg: unknown, current: FileOwner): number;

  /**
   * kvm_mmu_do_page_fault()'s memslot lookup (D4, Sean Christopherson's fd-based RFC as Chao Peng
   * posted it: __kvm_vcpu_gfn_to_memslot(vcpu, gfn, private), private memslots living in their
   * own address space): the slot a fault of `gfn` uses.
   * @returns the slot, or undefined for the base's (address space 0).
   */
  fault_memslot?(kvm: Kvm, gfn: number, is_private: boolean): KvmMemorySlot | undefined;

  /**
   * kvm_gmem_create() (KVM_CREATE_GUEST_MEMFD), before the base's checks: a creation the design
   * takes over (D11: GUEST_MEMFD_FLAG_HUGETLB and its page size bits, a HugeTLB allocator).
   * @returns the fd or -errno, or -ENOIOCTLCMD for the base's.
   */
  gmem_create?(kvm: Kvm, arg: object, current: FileOwner): number;

  /**
   * kvm_gmem_get_folio(): the folio at file page `index` of a guest_memfd inode, where the design
   * allocates it (D11: a HugeTLB folio, split at once unless its whole range is private).
   * @returns the folio locked and referenced, an ERR_PTR, or undefined for the base's.
   */
  gmem_get_folio?(inode: Inode, index: number): Folio | ErrPtr | undefined;

  /**
   * kvm_gmem_fallocate(), after the base's mode and alignment checks: the design's checks and
   * preparation (D11: huge page alignment, folios merged back before a punch frees them).
   * @returns 0 or -errno.
   */
  gmem_fallocate?(file: File, mode: number, offset: bigint, len: bigint): number;

  /**
   * kvm_gmem_evict_inode(), before the page cache is freed (D11: split folios merged back so that
   * whole huge pages return to their pool, the inode's reservation released).
   * @returns 0.
   */
  gmem_evict_inode?(inode: Inode): number;

  /**
   * kvm_gmem_get_pfn(), once __kvm_gmem_get_pfn() gave the locked, referenced folio for `gfn`
   * (`is_prepared`: it is uptodate): its zeroing and preparation, where the design changes them
   * (D10 on the post-6.18 base that dropped preparation tracking, v8 "KVM: guest_memfd: Only
   * prepare folios for private pages": zero a folio that is not uptodate, then
   * kvm_arch_gmem_prepare() on every fault of a private page and never for a shared one).
   * @returns 0 or the preparation's -errno, or -ENOIOCTLCMD for the base's (6.18: prepare once,
   * when the folio is not uptodate).
   */
  gmem_prepare_folio?(kvm: Kvm, slot: KvmMemorySlot, gfn: number, folio: Folio, is_prepared: boolean): number;

  /**
   * ____kvm_emulate_hypercall() (arch/x86/kvm/x86.c), for a hypercall from CPL 0 before the
   * base's switch: a hypercall the design handles inside KVM (D1/D2: KVM_HC_ENABLE_MEM_PROTECTED,
   * KVM_HC_MEM_SHARE, which reuse numbers 12 and 13 that 6.18 gives KVM_HC_MAP_GPA_RANGE and none).
   * @returns the guest's result in rax (0 or -KVM_E*), or -ENOIOCTLCMD for the base's.
   */
  emulate_hypercall?(vcpu: KvmVcpu, nr: bigint, a0: bigint, a1: bigint, a2: bigint, a3: bigint): number;

  /**
   * hva_to_pfn_slow() (virt/kvm/kvm_main.c): FOLL_* bits KVM adds to its GUP of a guest page
   * through the memslot's hva (D2 FOLL_ALLOW_POISONED once kvm->mem_protected; D1 FOLL_KVM; the
   * per-VMA write denial: the flag that may write a VM_DENYUSERWRITE VMA).
   * @returns the bits to add, or 0.
   */
  hva_gup_flags?(kvm: Kvm, write: boolean): number;

  /**
   * __kvm_faultin_pfn() through the hva, once GUP gave page `pfn` (with a reference) for `gfn`:
   * the design's check and action on it (D2: kvm_page_allowed() against the owner xarray, then
   * kvm_protect_pfn() poisoning a page that is not shared).
   * @returns 0, or -errno: -EHWPOISON makes the pfn KVM_PFN_ERR_HWPOISON (SIGBUS to the vCPU
   * thread), anything else KVM_PFN_ERR_FAULT; the reference is dropped.
   */
  hva_faultin_pfn?(kvm: Kvm, gfn: number, pfn: number, write: boolean): number;

  /** kvm_destroy_vm(), before the MMU and the memslots go: the design drops what it holds for `kvm`. */
  vm_destroy?(kvm: Kvm): number;

  /**
   * kvm_create_vm(), where the VM's memslot sets are set up, before kvm_arch_init_vm(): per-VM
   * structures the design's kernel had in struct kvm from creation (D4: the private address
   * space's memslots), so no later call creates them (a failed ioctl must change nothing).
   * Cannot fail; what it sets up lives in `kvm` only.
   */
  vm_init?(kvm: Kvm): void;
}

/**
 * The KVM side of a private-memory backing store other than guest_memfd (D5/D6
 * memfile_notifier's memfile_pfn_ops, D7 restrictedmem_bind()/restrictedmem_get_page()): what
 * guest_memfd's entry points hand a memslot bound to one of its files.
 */
export interface KvmPrivateStore {
  /** kvm_gmem_bind()'s part for such a file: bind `slot` at byte `offset` of `file`. 0 or -errno. */
  bind(kvm: Kvm, slot: KvmMemorySlot, file: File, offset: bigint): number;
  /** kvm_gmem_unbind()'s part: the slot is going away. */
  unbind(slot: KvmMemorySlot): void;
  /** kvm_gmem_get_pfn()'s part: the pfn backing private `gfn` of the slot, or -errno. */
  get_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number): { readonly pfn: number; readonly max_order: number } | number;
}

type IntHookName = Exclude<{ [K in keyof KvmHooks]-?: KvmHooks[K] extends ((...a: never[]) => number) | undefined ? K : never }[keyof KvmHooks], undefined>;

const registries = new WeakMap<Kernel, KvmHooks[]>();
/** Hosts that ever registered KVM hooks: while none has, the hot paths skip the lookup. */
let nr_hooked_hosts = 0;

/** security_add_hooks(): add a provider on `kernel`'s host; earlier providers are asked first. */
export function register_kvm_hooks(kernel: Kernel, hooks: KvmHooks): void {
  let list = registries.get(kernel);
  if (list === undefined) {
    list = [];
    registries.set(kernel, list);
    nr_hooked_hosts++;
  }
  list.push(hooks);
}

/** The providers registered on `kernel`'s host, in order (for tools that list a platform's design). */
export function kvm_hooks_providers(kernel: Kernel): readonly KvmHooks[] {
  return registries.get(kernel) ?? [];
}

/**
 * call_int_hook() with the hook's default `dflt`: ask each provider of hook `name` in order; the
 * first answer other than `dflt` wins; `dflt` when there is none.
 */
export function call_kvm_hook<K extends IntHookName>(kernel: Kernel, name: K, dflt: number, ...args: Parameters<NonNullable<KvmHooks[K]>>): number {
  if (nr_hooked_hosts === 0) return dflt;
  const list = registries.get(kernel);
  if (list === undefined) return dflt;
  for (const p of list) {
    const fn = p[name] as ((...a: unknown[]) => number) | undefined;
    if (fn === undefined) continue;
    const ret = fn.apply(p, args);
    if (ret !== dflt) return ret;
  }
  return dflt;
}

/** The vm_ioctl hook's answer, or undefined for the base's dispatch (kvm_vm_ioctl()). */
export function kvm_hook_vm_ioctl(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner): number | undefined {
  const r = call_kvm_hook(kvm.kernel, 'vm_ioctl', -ENOIOCTLCMD, kvm, cmd, arg, current);
  return r === -ENOIOCTLCMD ? undefined : r;
}

/** The check_extension hook's answer, or undefined for the base's. */
export function kvm_hook_check_extension(kernel: Kernel, kvm: Kvm | undefined, cap: number): number | undefined {
  const r = call_kvm_hook(kernel, 'check_extension', KVM_HOOK_DEFAULT, kvm, cap);
  return r === KVM_HOOK_DEFAULT ? undefined : r;
}

/** The guest_memfd ioctl of a design, or -ENOTTY (kvm_gmem_ioctl()). */
export function kvm_hook_gmem_ioctl(kernel: Kernel, file: File, cmd: number, arg: unknown, current: FileOwner): number {
  return call_kvm_hook(kernel, 'gmem_ioctl', -Errno.ENOTTY, file, cmd, arg, current);
}

/** The fault_memslot hook's slot, or undefined for the base's (kvm_mmu_do_page_fault()). */
export function kvm_hook_fault_memslot(kvm: Kvm, gfn: number, is_private: boolean): KvmMemorySlot | undefined {
  if (nr_hooked_hosts === 0) return undefined;
  const list = registries.get(kvm.kernel);
  if (list === undefined) return undefined;
  for (const p of list) {
    const slot = p.fault_memslot?.(kvm, gfn, is_private);
    if (slot !== undefined) return slot;
  }
  return undefined;
}

/** The gmem_get_folio hook's folio (or ERR_PTR), or undefined for the base's (kvm_gmem_get_folio()). */
export function kvm_hook_gmem_get_folio(kernel: Kernel, inode: Inode, index: number): Folio | ErrPtr | undefined {
  if (nr_hooked_hosts === 0) return undefined;
  const list = registries.get(kernel);
  if (list === undefined) return undefined;
  for (const p of list) {
    const folio = p.gmem_get_folio?.(inode, index);
    if (folio !== undefined) return folio;
  }
  return undefined;
}

/** The emulate_hypercall hook's result for the guest, or undefined for the base's switch. */
export function kvm_hook_emulate_hypercall(vcpu: KvmVcpu, nr: bigint, a0: bigint, a1: bigint, a2: bigint, a3: bigint): number | undefined {
  const r = call_kvm_hook(vcpu.kvm.kernel, 'emulate_hypercall', -ENOIOCTLCMD, vcpu, nr, a0, a1, a2, a3);
  return r === -ENOIOCTLCMD ? undefined : r;
}

/* ---- private-memory backing stores other than guest_memfd ---- */

const private_stores = new WeakMap<Inode, KvmPrivateStore>();

/**
 * memfile_register_backing_store() / restrictedmem's file creation: `inode` is private memory
 * of `store`, which KVM binds, unbinds and asks for pfns when a memslot uses a file of it.
 */
export function kvm_private_store_register(inode: Inode, store: KvmPrivateStore): void {
  private_stores.set(inode, store);
}

/** The backing store of `file`, if a design registered one (null or a guest_memfd: none). */
export function kvm_private_store(file: File | null): KvmPrivateStore | undefined {
  return file === null ? undefined : private_stores.get(file.f_inode);
}
