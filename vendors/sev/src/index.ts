/**
 * @cocosim/vendor-sev: AMD SEV, SEV-ES and SEV-SNP as a kvm_x86_ops vendor table (svm with its
 * SEV support: arch/x86/kvm/svm/sev.c), the host's RMP and AMD-SP firmware, its cost entries and
 * its IOMMU's DMA check.
 *
 * A host with the plugin:
 *
 *   createRootContainer(opts,
 *     mmRegistrar({...}),
 *     kvmRegistrar({ x86_ops: sevVendorPlugin.x86_ops }),
 *     sevVendorPlugin.registrar(),            // RMP, firmware, costs, /dev/sev
 *   );
 *
 * and for VFIO, sevVendorPlugin.iommu_ops as the IOMMU vendor table.
 */
import type { CostEntry, HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import type { CvmVendor, KvmX86Ops } from '@cocosim/kvm';
import type { IommuVendorOps } from '@cocosim/vfio';
import { SEV_COST_ENTRIES } from './costs.js';
import { sevHostRegistrar, type SevHostOptions } from './host.js';
import { snp_iommu_vendor_ops } from './iommu.js';
import {
  sev_dma_access, sev_gmem_invalidate, sev_gmem_prepare, sev_guest_accept, sev_guest_access_is_private, sev_guest_fwcall,
  sev_guest_mem_access, sev_host_access, sev_mem_enc_ioctl, sev_mem_enc_register_region, sev_mem_enc_unregister_region,
  sev_private_max_mapping_level, sev_vcpu_create, sev_vm_destroy, sev_vm_init,
} from './sev.js';
import { KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM } from './uapi.js';
import { snp_cvm } from './cvm.js';
import { sev_debug_register } from './sev_debug.js';

export * from './uapi.js';
export * from './rmp.js';
export * from './psp.js';
export * from './host.js';
export * from './costs.js';
export * from './sev.js';
export * from './iommu.js';
export * from './guest.js';
export * from './sev_util.js';
export * from './cvm.js';
export * from './sev_debug.js';

/**
 * kvm_x86_ops of an SVM host with SEV, SEV-ES and SEV-SNP (sev_set_cpu_caps():
 * KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM and KVM_X86_SNP_VM; NPT, i.e. TDP).
 */
export const sev_x86_ops: KvmX86Ops = {
  name: 'sev',
  supported_vm_types: (1 << KVM_X86_SEV_VM) | (1 << KVM_X86_SEV_ES_VM) | (1 << KVM_X86_SNP_VM),
  tdp_enabled: true,
  vm_init: sev_vm_init,
  vm_destroy: sev_vm_destroy,
  vcpu_create: sev_vcpu_create,
  gmem_prepare: sev_gmem_prepare,
  gmem_invalidate: sev_gmem_invalidate,
  gmem_max_mapping_level: sev_private_max_mapping_level,
  mem_enc_ioctl: sev_mem_enc_ioctl,
  mem_enc_register_region: sev_mem_enc_register_region,
  mem_enc_unregister_region: sev_mem_enc_unregister_region,
  guest_access_is_private: sev_guest_access_is_private,
  guest_accept: sev_guest_accept,
  guest_mem_access: sev_guest_mem_access,
  guest_fwcall: sev_guest_fwcall,
  host_access: sev_host_access,
  dma_access: sev_dma_access,
};

/** What the bench's vendor registry takes from a vendor package. */
export interface SevVendorPlugin {
  readonly name: 'sev';
  readonly x86_ops: KvmX86Ops;
  readonly costs: readonly CostEntry[];
  readonly iommu_ops: IommuVendorOps;
  /** The host registrar: RMP, firmware, cost entries, /dev/sev. */
  registrar(opts?: SevHostOptions): HostRegistrar;
  /** How user space builds, launches and converts an SNP VM (kvm/src/cvm.ts). */
  readonly cvm: CvmVendor;
}

/** The SEV/SEV-ES/SEV-SNP vendor plugin. */
export const sevVendorPlugin: SevVendorPlugin = {
  name: 'sev',
  x86_ops: sev_x86_ops,
  costs: SEV_COST_ENTRIES,
  iommu_ops: snp_iommu_vendor_ops,
  registrar: (opts = {}) => (root) => {
    sevHostRegistrar(opts)(root);
    sev_debug_register(root, root.resolve(Kernel));
  },
  cvm: snp_cvm,
};
