/**
 * The vitest fixture every scenario test uses: a fresh simulated host per test, disposed after
 * it (a root container per test, never tsyringe's global one, whose registrations would leak between tests). Tracing goes to an
 * in-memory ring the test can read.
 *
 *   import { test } from '../lib/fixtures.js';
 *   test('punch hole zaps the mapping', ({ host }) => { ... });
 */
import { test as base } from 'vitest';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import {
  CostModel, PhysMem, PRandom, RingSink, Tracer, VirtualClock, WarnSink, createRootContainer,
  type HostOptions, type HostRegistrar,
} from '@cocosim/core';

/** The host a test works on, with its core services at hand. */
export interface SimHost {
  readonly container: DependencyContainer;
  readonly clock: VirtualClock;
  readonly cost: CostModel;
  readonly tracer: Tracer;
  readonly warn: WarnSink;
  readonly rng: PRandom;
  readonly phys: PhysMem;
  /** Every trace record of this host (in-memory ring sink). */
  readonly trace: RingSink;
  /** The simulated kernel's globals (mm/src/kernel.ts). */
  readonly kernel: Kernel;
  /** A new user process on this host. */
  process(): Process;
}

/**
 * The registrars of every package a test host includes, lowest first. Test hosts have 2 GiB of
 * RAM unless a test builds a bigger one with createSimHost().
 */
export const HOST_REGISTRARS: readonly HostRegistrar[] = [mmRegistrar({ nr_pages: 2 ** 19 }), kvmRegistrar()];

/** Build a host outside the fixture (e.g. two hosts to compare runs); dispose its container after. */
export function createSimHost(opts: HostOptions = {}, registrars: readonly HostRegistrar[] = HOST_REGISTRARS): SimHost {
  const container = createRootContainer(opts, ...registrars);
  const kernel = container.resolve(Kernel);
  const tracer = container.resolve(Tracer);
  const trace = new RingSink();
  tracer.addSink(trace);
  return {
    container,
    clock: container.resolve(VirtualClock),
    cost: container.resolve(CostModel),
    tracer,
    warn: container.resolve(WarnSink),
    rng: container.resolve(PRandom),
    phys: container.resolve(PhysMem),
    trace,
    kernel,
    process: () => new Process(kernel),
  };
}

/**
 * The registrars of a host whose KVM has KVM_X86_SW_PROTECTED_VM (VMX/SVM with a TDP MMU and
 * CONFIG_KVM_SW_PROTECTED_VM): memory attributes and private guest_memfd memory, no hardware.
 */
export const SW_PROTECTED_REGISTRARS: readonly HostRegistrar[] = [
  mmRegistrar({ nr_pages: 2 ** 19 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
];

/** createSimHost() with SW_PROTECTED_REGISTRARS; dispose its container after. */
export function createSwProtectedHost(opts: HostOptions = {}): SimHost {
  return createSimHost(opts, SW_PROTECTED_REGISTRARS);
}

/** `host`: this machine's kernel (vendor none); `swHost`: one with KVM_X86_SW_PROTECTED_VM. */
export const test = base.extend<{ host: SimHost; swHost: SimHost }>({
  host: async ({ task: _task }, use) => {
    const host = createSimHost({ seed: 0 });
    await use(host);
    await host.container.dispose();
  },
  swHost: async ({ task: _task }, use) => {
    const host = createSwProtectedHost({ seed: 0 });
    await use(host);
    await host.container.dispose();
  },
});
