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
import { Errno } from '@cocosim/core';
import type { File, FileOwner, Inode, Kernel } from '@cocosim/mm';
import type { Kvm, KvmMemorySlot } from './kvm_host.js';

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
