/**
 * The platform composition for the CLI and benchmarks: a simulated host with every package's
 * registrar, lowest first. (Designs and vendors join here as they land: a platform is
 * base + design + vendor.)
 */
import type { DependencyContainer } from 'tsyringe';
import { RingSink, Tracer, createRootContainer, type HostOptions } from '@cocosim/core';
import { Kernel, Process, mmRegistrar, type MmHostOptions } from '@cocosim/mm';
import { kvmRegistrar } from '@cocosim/kvm';

export interface PlatformOptions extends HostOptions {
  readonly mm?: MmHostOptions;
}

export interface Platform {
  readonly container: DependencyContainer;
  readonly kernel: Kernel;
  /** Every trace record of the run. */
  readonly trace: RingSink;
  process(): Process;
}

export function createPlatform(opts: PlatformOptions = {}): Platform {
  const container = createRootContainer(opts, mmRegistrar(opts.mm), kvmRegistrar());
  const kernel = container.resolve(Kernel);
  const trace = new RingSink(1 << 20);
  container.resolve(Tracer).addSink(trace);
  return { container, kernel, trace, process: () => new Process(kernel) };
}
