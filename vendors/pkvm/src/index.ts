/**
 * @cocosim/vendor-pkvm: protected KVM (pKVM, the nVHE hypervisor at EL2 of arm64 Android) as a
 * cocosim vendor: the kvm_x86_ops table of a pKVM host (pkvm.ts), the hypervisor's page
 * ownership (hyp.ts), the IOMMU that mirrors the host stage-2, pvmfw's payload measurement and
 * the cost entries.
 *
 * Hooks of the x86 seam this vendor uses beyond the x86 ones (kvm_x86_ops.ts, optional with
 * x86 defaults): vm_type_decode, vm_enable_cap (with its flags: KVM_CAP_ARM_PROTECTED_VM's
 * subcommand), check_extension, vcpu_pre_run, external_direct_root, guest_fwcall; and mm's
 * MM_HOST_ACCESS_ABORT outcome for the abort the hypervisor injects into the host.
 */
import type { CostEntry, HostRegistrar, Pfn } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import type { CvmVendor, HostAccessOutcome, KvmX86Ops } from '@cocosim/kvm';
import type { Device, DmaAccessOutcome, IommuVendorOps } from '@cocosim/vfio';
import { PKVM_COSTS } from './costs.js';
import { pkvm_cvm } from './cvm.js';
import { pkvm_debug_register } from './pkvm_debug.js';
import { PKVM_NOPAGE, pkvm_hyp, pkvm_hyp_if_any } from './hyp.js';
import {
  pkvm_destroy_hyp_vm, pkvm_guest_fwcall, pkvm_init_host_vm, pkvm_remove_external_spte, pkvm_set_external_spte,
  pkvm_vcpu_pre_run, pkvm_vm_ioctl_enable_cap, pkvm_vm_type_decode,
} from './pkvm.js';
import { KVM_CAP_ARM_PROTECTED_VM, KVM_VM_PROTECTED_INDEX } from './uapi.js';

export * from './hyp.js';
export * from './pkvm.js';
export * from './pvmfw.js';
export * from './uapi.js';
export * from './cvm.js';
export * from './pkvm_debug.js';
export { PKVM_COSTS } from './costs.js';

/** The options of a pKVM host. */
export interface PkvmHostOptions {
  /** The protected VM firmware image the bootloader gave the hypervisor (pkvm_firmware_mem); none by default. */
  readonly pvmfw?: Uint8Array;
}

const ABORT: HostAccessOutcome = { kind: 'fault', reason: 'abort injected into the host (pKVM host stage-2: page not owned by the host)' };
const IOMMU_FAULT: HostAccessOutcome = { kind: 'fault', reason: 'IOMMU fault (pKVM mirrors the host stage-2 into the IOMMU)' };
const OK: HostAccessOutcome = { kind: 'ok' };

/** Whether the host stage-2 refuses the host (and the devices it drives) access to `pfn`. */
function host_has_no_access(kernel: Kernel, pfn: number): boolean {
  return pkvm_hyp_if_any(kernel)?.host_state(pfn) === PKVM_NOPAGE;
}

/** The kvm_x86_ops table of a pKVM host. */
export function pkvm_x86_ops(opts: PkvmHostOptions = {}): KvmX86Ops {
  const pvmfw = opts.pvmfw ?? null;
  return {
    name: 'pkvm',
    supported_vm_types: 1 << KVM_VM_PROTECTED_INDEX,
    tdp_enabled: true,
    vm_type_decode: pkvm_vm_type_decode,
    vm_init: (kvm) => {
      pkvm_hyp(kvm.kernel, pvmfw);
      return pkvm_init_host_vm(kvm, pvmfw);
    },
    vm_destroy: pkvm_destroy_hyp_vm,
    vcpu_pre_run: pkvm_vcpu_pre_run,
    vm_enable_cap: pkvm_vm_ioctl_enable_cap,
    check_extension: (cap) => (cap === KVM_CAP_ARM_PROTECTED_VM ? 1 : 0),
    external_direct_root: () => true,
    set_external_spte: pkvm_set_external_spte,
    remove_external_spte: pkvm_remove_external_spte,
    guest_fwcall: pkvm_guest_fwcall,
    host_access: (kvm, pfn) => (host_has_no_access(kvm.kernel, pfn) ? ABORT : OK),
    dma_access: (kvm, pfn) => (host_has_no_access(kvm.kernel, pfn) ? IOMMU_FAULT : OK),
  };
}

/** The IOMMU of a pKVM host (S2MPU/SMMU driven by the hypervisor): it refuses DMA to pages the host does not own. */
export const pkvm_iommu_ops: IommuVendorOps = {
  name: 'pkvm-iommu',
  dma_access: (dev: Device, pfn: Pfn): DmaAccessOutcome =>
    host_has_no_access(dev.iommu.kernel, pfn) ? { kind: 'fault', reason: 'IOMMU fault (pKVM mirrors the host stage-2 into the IOMMU)' } : { kind: 'ok' },
};

/** Creates the host's hypervisor (its cost entries, its check of host accesses) when the host boots. */
export function pkvmRegistrar(opts: PkvmHostOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    pkvm_hyp(kernel, opts.pvmfw ?? null);
    pkvm_debug_register(root, kernel);
  };
}

/** A vendor plugin: its name, its KVM table, its IOMMU table, its costs and its host registrar. */
export interface PkvmVendorPlugin {
  readonly name: 'pkvm';
  readonly x86_ops: KvmX86Ops;
  readonly iommu_ops: IommuVendorOps;
  readonly costs: readonly CostEntry[];
  readonly registrar: HostRegistrar;
  /** How user space builds a protected VM and how the guest shares its memory (kvm/src/cvm.ts). */
  readonly cvm: CvmVendor;
}

/** The pKVM plugin, with `opts.pvmfw` as the host's pvmfw image. */
export function createPkvmVendorPlugin(opts: PkvmHostOptions = {}): PkvmVendorPlugin {
  return {
    name: 'pkvm', x86_ops: pkvm_x86_ops(opts), iommu_ops: pkvm_iommu_ops, costs: PKVM_COSTS, registrar: pkvmRegistrar(opts), cvm: pkvm_cvm,
  };
}

/** The pKVM plugin of a host without pvmfw. */
export const pkvmVendorPlugin: PkvmVendorPlugin = createPkvmVendorPlugin();
