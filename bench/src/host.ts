/**
 * The platform composition for the CLI and benchmarks: a simulated host with every package's
 * registrar, lowest first. A platform is base + design + vendor: the vendor's KVM and IOMMU
 * tables and firmware registrar, and the design's registrar (kvm/src/designs).
 */
import type { DependencyContainer } from 'tsyringe';
import { RingSink, Tracer, createRootContainer, type HostOptions, type HostRegistrar } from '@cocosim/core';
import { Kernel, Process, debug_vm_process, mmRegistrar, type MmHostOptions } from '@cocosim/mm';
import {
  DESIGNS, designRegistrar, kvmRegistrar, kvm_none_x86_ops, kvm_sw_protected_x86_ops, sw_protected_cvm, type CvmVendor, type KvmX86Ops,
} from '@cocosim/kvm';
import { vfioRegistrar, type IommuVendorOps } from '@cocosim/vfio';
import { tdxVendorPlugin } from '@cocosim/vendor-tdx';
import { sevVendorPlugin } from '@cocosim/vendor-sev';
import { ccaVendorPlugin } from '@cocosim/vendor-cca';
import { pkvmVendorPlugin } from '@cocosim/vendor-pkvm';
import { mktmeVendorPlugin } from '@cocosim/vendor-mktme';

/** What the composition root takes from a vendor package. */
export interface VendorPlugin {
  readonly name: string;
  /** The kvm_x86_ops table the host's KVM module loads with. */
  readonly x86_ops: KvmX86Ops;
  /** The IOMMU's vendor table (what a device DMA to a VM-owned page does). */
  readonly iommu_ops?: IommuVendorOps;
  /** Host-wide firmware state and cost entries (after mm, before KVM's VMs exist). */
  readonly registrars: readonly HostRegistrar[];
  /**
   * How user space builds and a guest converts a VM with private memory on this vendor
   * (kvm/src/cvm.ts); absent where the vendor has no such VM type (this machine's host, MKTME).
   */
  readonly cvm?: CvmVendor;
}

/**
 * The vendor plugins by the names traces and the CLI use. "none" is this machine's host (the
 * kernel oracle's: default VMs only, shadow paging); "sw_protected" is VMX/SVM with a TDP MMU
 * and KVM_X86_SW_PROTECTED_VM; the others are the vendors/ packages (MKTME has no private VM
 * type: its VMs are default ones whose memory the host keys with encrypt_mprotect()).
 */
export const VENDORS: ReadonlyMap<string, VendorPlugin> = new Map<string, VendorPlugin>([
  ['none', { name: 'none', x86_ops: kvm_none_x86_ops, registrars: [] }],
  ['sw_protected', { name: 'sw_protected', x86_ops: kvm_sw_protected_x86_ops, registrars: [], cvm: sw_protected_cvm }],
  ['tdx', { name: 'tdx', x86_ops: tdxVendorPlugin.x86_ops, iommu_ops: tdxVendorPlugin.iommu_ops, registrars: [tdxVendorPlugin.registrar()], cvm: tdxVendorPlugin.cvm }],
  ['sev', { name: 'sev', x86_ops: sevVendorPlugin.x86_ops, iommu_ops: sevVendorPlugin.iommu_ops, registrars: [sevVendorPlugin.registrar()], cvm: sevVendorPlugin.cvm }],
  ['cca', { name: 'cca', x86_ops: ccaVendorPlugin.x86_ops, iommu_ops: ccaVendorPlugin.iommu_ops, registrars: [ccaVendorPlugin.registrar], cvm: ccaVendorPlugin.cvm }],
  ['pkvm', { name: 'pkvm', x86_ops: pkvmVendorPlugin.x86_ops, iommu_ops: pkvmVendorPlugin.iommu_ops, registrars: [pkvmVendorPlugin.registrar], cvm: pkvmVendorPlugin.cvm }],
  ['mktme', { name: 'mktme', x86_ops: mktmeVendorPlugin.x86_ops, iommu_ops: mktmeVendorPlugin.iommu_ops, registrars: [mktmeVendorPlugin.registrar()] }],
]);

/** The designs by name (kvm/src/designs): "upstream" is the base kernel itself. */
export const DESIGN_NAMES: readonly string[] = ['upstream', ...[...DESIGNS.keys()].filter((d) => d !== 'upstream')];

export interface PlatformOptions extends HostOptions {
  readonly mm?: MmHostOptions;
  /** The KVM build (default: CONFIG_KVM_GUEST_MEMFD built in). */
  readonly kvm?: { readonly guest_memfd?: boolean };
  /** A name in VENDORS (default "none"). */
  readonly vendor?: string;
  /** A name in DESIGN_NAMES (default "upstream"). */
  readonly design?: string;
  /**
   * CONFIG_DEBUG_VM: every call of the platform's processes is followed by the invariant checks
   * and a failed call must leave the state digest as it was (mm/src/debug_vm.ts); a broken rule
   * throws DebugVmError, which the replayer reports as a simulator bug.
   */
  readonly debugVm?: boolean;
}

export interface Platform {
  readonly container: DependencyContainer;
  readonly kernel: Kernel;
  /** Every trace record of the run. */
  readonly trace: RingSink;
  process(): Process;
}

/**
 * A simulated host; a vendor or design name outside VENDORS / DESIGNS is a caller bug (the CLI
 * checks names first).
 */
export function createPlatform(opts: PlatformOptions = {}): Platform {
  const vendor = VENDORS.get(opts.vendor ?? 'none');
  if (vendor === undefined) throw new RangeError(`unknown vendor "${opts.vendor}"`);
  const container = createRootContainer(
    opts,
    mmRegistrar(opts.mm),
    ...vendor.registrars,
    kvmRegistrar({ x86_ops: vendor.x86_ops, guest_memfd: opts.kvm?.guest_memfd }),
    vfioRegistrar({ iommu_ops: vendor.iommu_ops }),
    designRegistrar(opts.design ?? 'upstream'),
  );
  const kernel = container.resolve(Kernel);
  const trace = new RingSink(1 << 20);
  container.resolve(Tracer).addSink(trace);
  const process = opts.debugVm === true ? () => debug_vm_process(new Process(kernel)) : () => new Process(kernel);
  return { container, kernel, trace, process };
}
