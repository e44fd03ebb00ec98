/**
 * The platform composition for the CLI and benchmarks: a simulated host with every package's
 * registrar, lowest first. (Designs and vendors join here as they land: a platform is
 * base + design + vendor.)
 */
import type { DependencyContainer } from 'tsyringe';
import { RingSink, Tracer, createRootContainer, type HostOptions } from '@cocosim/core';
import { Kernel, Process, debug_vm_process, mmRegistrar, type MmHostOptions } from '@cocosim/mm';
import { kvmRegistrar, kvm_none_x86_ops, kvm_sw_protected_x86_ops, type KvmX86Ops } from '@cocosim/kvm';

/**
 * The vendor plugins by the names traces and the CLI use: each is the kvm_x86_ops table its
 * KVM module loads with. "none" is this machine's host (the kernel oracle's: default VMs only,
 * shadow paging); "sw_protected" is VMX/SVM with a TDP MMU and KVM_X86_SW_PROTECTED_VM.
 */
export const VENDORS: ReadonlyMap<string, KvmX86Ops> = new Map([
  ['none', kvm_none_x86_ops],
  ['sw_protected', kvm_sw_protected_x86_ops],
]);

export interface PlatformOptions extends HostOptions {
  readonly mm?: MmHostOptions;
  /** A name in VENDORS (default "none"). */
  readonly vendor?: string;
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

/** A simulated host; a vendor name outside VENDORS is a caller bug (the CLI checks names first). */
export function createPlatform(opts: PlatformOptions = {}): Platform {
  const x86_ops = VENDORS.get(opts.vendor ?? 'none');
  if (x86_ops === undefined) throw new RangeError(`unknown vendor "${opts.vendor}"`);
  const container = createRootContainer(opts, mmRegistrar(opts.mm), kvmRegistrar({ x86_ops }));
  const kernel = container.resolve(Kernel);
  const trace = new RingSink(1 << 20);
  container.resolve(Tracer).addSink(trace);
  const process = opts.debugVm === true ? () => debug_vm_process(new Process(kernel)) : () => new Process(kernel);
  return { container, kernel, trace, process };
}
