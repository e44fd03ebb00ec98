/**
 * Design "gmem_inplace" (designs.md D10): guest_memfd in-place conversion, "guest_memfd: In-place
 * conversion support" v8 (2026-06-18), with RFC v4/v5's content modes as an option. The series'
 * KVM changes reach the base through kvm_hooks.ts:
 *   - kvm_mem_is_private() becomes kvm_gmem_is_private() (v8 08/46, 10/46);
 *   - the VM's memory attributes stop tracking PRIVATE: kvm_supported_vm_mem_attributes() is 0,
 *     KVM_CAP_MEMORY_ATTRIBUTES 0, and without CONFIG_KVM_VM_MEMORY_ATTRIBUTES (v8's default)
 *     KVM_SET_MEMORY_ATTRIBUTES is not compiled in (-ENOTTY);
 *   - guest_memfd gets per-page attributes, INIT_SHARED on CoCo VMs (25/46), the
 *     KVM_SET_MEMORY_ATTRIBUTES2 ioctl and KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES (17/46);
 *   - kvm_gmem_get_pfn() prepares private pages only, on every fault ("Only prepare folios for
 *     private pages"), and a conversion to shared gives the pages back to the vendor
 *     (kvm_arch_gmem_invalidate()).
 */
import { Errno, type HostRegistrar } from '@cocosim/core';
import { Kernel, type Inode } from '@cocosim/mm';
import { KvmModule } from '../../kvm_main.js';
import { ENOIOCTLCMD, KVM_HOOK_DEFAULT, register_kvm_hooks, type KvmHooks } from '../../kvm_hooks.js';
import { kvm_arch_has_private_mem, type Kvm } from '../../kvm_host.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, KVM_CAP_MEMORY_ATTRIBUTES, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_MEMORY_ATTRIBUTES2,
} from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import {
  GmemInplace, kvm_gmem_attributes, kvm_gmem_get_attributes, kvm_gmem_get_invalidate_filter, kvm_gmem_inplace_prepare_folio, kvm_gmem_ioctl,
  kvm_gmem_is_private, type GmemInplaceConfig,
} from './guest_memfd.js';
import {
  KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES_RFC, KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS,
  KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED, KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE, KVM_SET_MEMORY_ATTRIBUTES2_ZERO,
} from './uapi.js';
import { kvm_arch_gmem_supported_content_modes, type ContentModesVersion } from './x86.js';
import { gmem_inplace_vmm } from './vmm.js';

export * from './uapi.js';
export { GmemInplace, type GmemInplaceConfig } from './guest_memfd.js';
export type { ContentModesVersion } from './x86.js';
export * from './vmm.js';

/** The registrar's options; each defaults to v8's default configuration. */
export interface GmemInplaceOptions {
  /** CONFIG_KVM_VM_MEMORY_ATTRIBUTES=y (default false, v8 "Make in-place conversion the default"). */
  readonly vm_memory_attributes?: boolean;
  /** kvm.gmem_in_place_conversion (default !vm_memory_attributes); false needs vm_memory_attributes. */
  readonly gmem_in_place_conversion?: boolean;
  /** The content modes of RFC v4 or v5 (and their capability numbers), or none (default, v6+). */
  readonly content_modes?: ContentModesVersion;
}

/**
 * The series' capabilities (kvm_vm_ioctl_check_extension_generic()): with in-place conversion,
 * KVM_CAP_MEMORY_ATTRIBUTES is 0 and KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES is PRIVATE where
 * private memory exists (/dev/kvm of a host with private VM types, or a VM with private memory);
 * RFC v4/v5 numbered the latter 249 and had KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS (250).
 */
function gmem_inplace_check_extension(st: GmemInplace, has_private_types: boolean, kvm: Kvm | undefined, cap: number): number {
  const in_place = st.cfg.gmem_in_place_conversion;
  const rfc = st.cfg.content_modes;
  // kvm_supports_private_mem(): !kvm || kvm_arch_has_private_mem(kvm), where the arch has any.
  const supports_private_mem = has_private_types && (kvm === undefined || kvm_arch_has_private_mem(kvm));
  if (cap === (rfc === null ? KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES : KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES_RFC)) {
    return in_place && supports_private_mem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  }
  if (rfc !== null && cap === KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS) {
    return in_place && supports_private_mem ? kvm_arch_gmem_supported_content_modes(rfc, kvm, false, true) : 0;
  }
  // Without CONFIG_KVM_VM_MEMORY_ATTRIBUTES the case is not compiled: 0, as with in-place conversion.
  if (cap === KVM_CAP_MEMORY_ATTRIBUTES && (in_place || !st.cfg.vm_memory_attributes)) return 0;
  return KVM_HOOK_DEFAULT;
}

/** The design's KVM hooks on one host. */
export function gmem_inplace_kvm_hooks(st: GmemInplace, has_private_types: boolean): KvmHooks {
  const in_place = st.cfg.gmem_in_place_conversion;
  return {
    name: 'gmem_inplace',
    vm_ioctl: (_kvm, cmd) => (cmd === KVM_SET_MEMORY_ATTRIBUTES && !st.cfg.vm_memory_attributes ? -Errno.ENOTTY : -ENOIOCTLCMD),
    check_extension: (kvm, cap) => gmem_inplace_check_extension(st, has_private_types, kvm, cap),
    // kvm_supported_vm_mem_attributes(): "return 0 if attributes are tracked in guest_memfd".
    supported_mem_attributes: () => (in_place ? 0 : KVM_HOOK_DEFAULT),
    mem_is_private: (kvm, gfn) => (in_place ? Number(kvm_gmem_is_private(st, kvm, gfn)) : KVM_HOOK_DEFAULT),
    // kvm_arch_supports_gmem_init_shared(): gmem_in_place_conversion || !kvm_arch_has_private_mem(kvm).
    gmem_supported_flags: () => (in_place ? GUEST_MEMFD_FLAG_INIT_SHARED : 0),
    gmem_get_attributes: (inode: Inode, index: number) => kvm_gmem_get_attributes(st, inode, index),
    gmem_invalidate_filter: (inode, start, end) => (in_place ? kvm_gmem_get_invalidate_filter(st, inode, start, end) : 0),
    gmem_range_is_private: (inode, index, nr_pages) => {
      if (!in_place) return KVM_HOOK_DEFAULT;
      return Number(kvm_gmem_attributes(st, inode).mt_range_is(index, index + nr_pages - 1, (e) => e === KVM_MEMORY_ATTRIBUTE_PRIVATE));
    },
    gmem_ioctl: (file, cmd, arg, current) => kvm_gmem_ioctl(st, file, cmd, arg, current),
    gmem_prepare_folio: (kvm, slot, gfn, folio, is_prepared) => kvm_gmem_inplace_prepare_folio(st, kvm, slot, gfn, folio, is_prepared),
  };
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function gmemInplaceRegistrar(opts: GmemInplaceOptions = {}): HostRegistrar {
  const vm_memory_attributes = opts.vm_memory_attributes ?? false;
  const cfg: GmemInplaceConfig = {
    vm_memory_attributes,
    gmem_in_place_conversion: opts.gmem_in_place_conversion ?? !vm_memory_attributes,
    content_modes: opts.content_modes ?? null,
  };
  // v8 24/46: with neither, nothing tracks PRIVATE ("Warn if the admin sets gmem_in_place_conversion
  // as false when CONFIG_KVM_VM_MEMORY_ATTRIBUTES is not enabled"): a configuration error here.
  if (!cfg.vm_memory_attributes && !cfg.gmem_in_place_conversion) {
    throw new RangeError('gmem_inplace: gmem_in_place_conversion=false needs vm_memory_attributes');
  }
  return (root) => {
    const kernel = root.resolve(Kernel);
    const module = root.resolve(KvmModule);
    design_install(kernel, gmem_inplace, cfg);
    const st = new GmemInplace(kernel, cfg);
    register_kvm_hooks(kernel, gmem_inplace_kvm_hooks(st, module.generic_memory_attributes));
  };
}

export const gmem_inplace: Design<GmemInplaceOptions> = {
  name: 'gmem_inplace',
  title: 'guest_memfd in-place conversion: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd (v8, Jun 2026; RFC v4/v5 content modes)',
  rows: ['D10'],
  uapi: {
    KVM_SET_MEMORY_ATTRIBUTES2,
    KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES,
    KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS,
    KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED,
    KVM_SET_MEMORY_ATTRIBUTES2_ZERO,
    KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE,
  },
  options: {
    vm_memory_attributes: 'CONFIG_KVM_VM_MEMORY_ATTRIBUTES=y: per-VM KVM_SET_MEMORY_ATTRIBUTES stays (without PRIVATE while in place)',
    gmem_in_place_conversion: 'the kvm.gmem_in_place_conversion module parameter (default: !vm_memory_attributes)',
    content_modes: '"rfc-v4" or "rfc-v5": ZERO/PRESERVE/UNSPECIFIED in flags, per-VM-type EOPNOTSUPP (dropped in v6)',
  },
  vmm: gmem_inplace_vmm,
  registrar: gmemInplaceRegistrar,
};
