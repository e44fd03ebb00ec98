/**
 * Memory attributes (virt/kvm/kvm_main.c, CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES):
 * KVM_SET_MEMORY_ATTRIBUTES and the queries the MMU and guest_memfd make of kvm->mem_attr_array.
 *
 * The kernel stores one xarray value per gfn (and reserves every gfn before it changes one);
 * kvm->mem_attr_array here is a maple tree of gfn ranges whose equal neighbours merge, so setting
 * the attributes of 64 GiB costs what 4 KiB costs when nothing is mapped: the work grows with the
 * ranges and the mappings it touches, never with the pages. A gfn without an entry has
 * attributes 0 (shared); attributes 0 are stored by erasing, as the kernel stores NULL.
 *
 * The kernel cannot fail once the arguments are valid except for the xa_reserve() allocation
 * (ENOMEM), which never fails here: a conversion either is a no-op (every gfn already has the
 * attributes: nothing is invalidated) or completes.
 */
import { Errno, type Gfn } from '@cocosim/core';
import { kvm_arch_has_private_mem, type Kvm, type KvmGfnRange } from './kvm_host.js';
import { kvm_for_each_memslot_in_gfn_range, user_struct_field } from './kvm_memslots.js';
import {
  kvm_arch_post_set_memory_attributes, kvm_arch_pre_set_memory_attributes, kvm_flush_remote_tlbs,
  kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end, kvm_mmu_invalidate_range_add,
} from './mmu/mmu.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './uapi.js';
import { KVM_HOOK_DEFAULT, call_kvm_hook } from './kvm_hooks.js';

const PAGE = 4096n;
const TWO64 = 2n ** 64n;

/** kvm_supported_mem_attributes(): PRIVATE on /dev/kvm and on VMs with private memory. */
export function kvm_supported_mem_attributes(kvm: Kvm | undefined): number {
  const design = kvm === undefined ? KVM_HOOK_DEFAULT : call_kvm_hook(kvm.kernel, 'supported_mem_attributes', KVM_HOOK_DEFAULT, kvm);
  if (design !== KVM_HOOK_DEFAULT) return design;
  if (kvm === undefined || kvm_arch_has_private_mem(kvm)) return KVM_MEMORY_ATTRIBUTE_PRIVATE;
  return 0;
}

/** kvm_get_memory_attributes() (include/linux/kvm_host.h): the attributes of one gfn. */
export function kvm_get_memory_attributes(kvm: Kvm, gfn: number): number {
  return kvm.mem_attr_array.mtree_load(gfn) ?? 0;
}

/** kvm_mem_is_private() (include/linux/kvm_host.h): the gfn has KVM_MEMORY_ATTRIBUTE_PRIVATE. */
export function kvm_mem_is_private(kvm: Kvm, gfn: number): boolean {
  const design = call_kvm_hook(kvm.kernel, 'mem_is_private', KVM_HOOK_DEFAULT, kvm, gfn);
  if (design !== KVM_HOOK_DEFAULT) return design !== 0;
  return (kvm_get_memory_attributes(kvm, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
}

/**
 * kvm_range_has_memory_attributes() (virt/kvm/kvm_main.c): whether every gfn of [start, end)
 * has attributes whose `mask` bits (limited to the supported ones) equal `attrs`. Asking for 0
 * means no gfn of the range has any attribute stored, as the kernel's xas_find() does.
 */
export function kvm_range_has_memory_attributes(kvm: Kvm, start: number, end: number, mask: number, attrs: number): boolean {
  mask &= kvm_supported_mem_attributes(kvm);
  if ((attrs & ~mask) !== 0) return false;
  if (end === start + 1) return (kvm_get_memory_attributes(kvm, start) & mask) === attrs;
  if (end <= start) return true;
  if (!attrs) return kvm.mem_attr_array.mt_find(start, end - 1) === undefined;
  return kvm.mem_attr_array.mt_range_is(start, end - 1, (e) => e !== undefined && (e & mask) === attrs);
}

/** The handler and lock callback of a struct kvm_mmu_notifier_range (virt/kvm/kvm_main.c). */
interface KvmMmuNotifierRange {
  readonly start: number;
  readonly end: number;
  readonly attributes: number;
  readonly handler: (kvm: Kvm, range: KvmGfnRange) => boolean;
  readonly on_lock: (kvm: Kvm) => void;
  readonly flush_on_ret: boolean;
}

/**
 * kvm_handle_gfn_range() (virt/kvm/kvm_main.c): run the handler on the part of [start, end)
 * each memslot covers, in every address space; the first memslot found takes mmu_lock and runs
 * on_lock. Gfns no memslot covers are not visited (attributes do not need memslots).
 */
function kvm_handle_gfn_range(kvm: Kvm, range: KvmMmuNotifierRange): void {
  let found_memslot = false;
  let ret = false;
  for (const slots of kvm.memslots) {
    kvm_for_each_memslot_in_gfn_range(slots, range.start, range.end, (slot) => {
      const start = Math.max(range.start, slot.base_gfn);
      const end = Math.min(range.end, slot.base_gfn + slot.npages);
      if (start >= end) return;
      if (!found_memslot) {
        found_memslot = true;
        range.on_lock(kvm);
      }
      // attr_filter is the arch's to set (x86 zaps the mappings of the old attribute only).
      ret = range.handler(kvm, { slot, start, end, attributes: range.attributes, attr_filter: 0, may_block: true }) || ret;
    });
  }
  if (range.flush_on_ret && ret) kvm_flush_remote_tlbs(kvm);
}

/**
 * kvm_pre_set_memory_attributes(): add the range to the invalidation in progress, whether or not
 * the arch zaps anything, then let the arch zap (returns whether a TLB flush is needed).
 */
function kvm_pre_set_memory_attributes(kvm: Kvm, range: KvmGfnRange): boolean {
  kvm_mmu_invalidate_range_add(kvm, range.start, range.end);
  return kvm_arch_pre_set_memory_attributes(kvm, range);
}

/**
 * kvm_vm_set_mem_attributes() (virt/kvm/kvm_main.c): set `attributes` on gfns [start, end).
 * Nothing happens when every gfn already has them; otherwise every memslot in range is
 * invalidated (kvm_mmu_invalidate_begin, the arch zaps the old attribute's mappings, one TLB
 * flush), the attributes are stored, and the arch recomputes what may be mapped huge
 * (kvm_arch_post_set_memory_attributes, then kvm_mmu_invalidate_end). Returns 0.
 */
export function kvm_vm_set_mem_attributes(kvm: Kvm, start: number, end: number, attributes: number): number {
  kvm.kernel.tracer.emit('kvm_vm_set_mem_attributes', { start: start as Gfn, end: end as Gfn, attr: attributes });

  // Nothing to do if the entire range has the desired attributes.
  if (kvm_range_has_memory_attributes(kvm, start, end, ~0, attributes)) return 0;

  kvm_handle_gfn_range(kvm, {
    start, end, attributes, handler: kvm_pre_set_memory_attributes, on_lock: kvm_mmu_invalidate_begin, flush_on_ret: true,
  });

  if (attributes) kvm.mem_attr_array.mtree_store_range(start, end - 1, attributes);
  else kvm.mem_attr_array.mtree_erase_range(start, end - 1);

  kvm_handle_gfn_range(kvm, {
    start, end, attributes, handler: kvm_arch_post_set_memory_attributes, on_lock: kvm_mmu_invalidate_end, flush_on_ret: false,
  });
  return 0;
}

/**
 * kvm_vm_ioctl_set_mem_attributes() and the KVM_SET_MEMORY_ATTRIBUTES case of kvm_vm_ioctl()
 * (virt/kvm/kvm_main.c): copy struct kvm_memory_attributes in (-EFAULT), then in order: flags
 * must be 0, attributes within kvm_supported_mem_attributes(), size non-zero and the range not
 * wrapping, address and size page-aligned (each -EINVAL).
 */
export function kvm_vm_ioctl_set_mem_attributes(kvm: Kvm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const address = user_struct_field(o, 'address', 64);
  const size = user_struct_field(o, 'size', 64);
  const attributes = user_struct_field(o, 'attributes', 64);
  const flags = user_struct_field(o, 'flags', 64);
  if (address === undefined || size === undefined || attributes === undefined || flags === undefined) return -Errno.EFAULT;

  // flags is currently not used.
  if (flags !== 0n) return -Errno.EINVAL;
  if ((attributes & ~BigInt(kvm_supported_mem_attributes(kvm))) !== 0n) return -Errno.EINVAL;
  if (size === 0n || address + size >= TWO64) return -Errno.EINVAL;
  if (address % PAGE !== 0n || size % PAGE !== 0n) return -Errno.EINVAL;

  // Gfns of a u64 address are below 2^52, and the attributes within the supported bits: numbers.
  const start = Number(address / PAGE);
  const end = Number((address + size) / PAGE);
  return kvm_vm_set_mem_attributes(kvm, start, end, Number(attributes));
}
