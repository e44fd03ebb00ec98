/**
 * The composition root: the only module that touches tsyringe's global `container`
 * (eslint no-restricted-imports enforces it).
 *
 * One root container per simulated host holds the host-wide services: clock, cost model, tracer,
 * warnings, PRNG and physical memory. Packages above core add theirs through a HostRegistrar (mm
 * its page store and allocator, kvm its device, each vendor its plugin). Each VM is a child
 * container (createVmContainer). Rules from tsyringe's source: every root
 * registration is made before the first child exists, host singletons are built eagerly from
 * the root, and nothing registers into the global container.
 */
import { container, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { WarnSink } from '../bug.js';
import { Clock, VirtualClock } from '../clock.js';
import { CostModel } from '../cost.js';
import { PhysMem } from '../phys_mem.js';
import { PRandom, type PRandomSeed } from '../prandom.js';
import { Tracer } from '../trace/tracer.js';

export interface HostOptions {
  /** Seed of every random choice on this host (default 0): same seed, same run. */
  readonly seed?: PRandomSeed;
  /**
   * Cost overrides: a JSON file path or an already-parsed object (core/src/cost.ts documents the
   * shape). Applied after every registrar ran, so vendor entries can be overridden too.
   */
  readonly costOverrides?: string | { readonly source: string; readonly value: unknown };
}

export const HostOptions: InjectionToken<HostOptions> = Symbol.for('cocosim:core/HostOptions');

/** A package's contribution to a host: registers its host-wide services in the root. */
export type HostRegistrar = (root: DependencyContainer) => void;
/** A package's contribution to a VM: registers its per-VM services in the VM's child. */
export type VmRegistrar = (vm: DependencyContainer) => void;

/**
 * A fresh root container for one simulated host, with core's services registered and resolved,
 * then each registrar applied in order, then the cost overrides. Throws CostOverrideError for a
 * bad override file (a configuration error of the user, reported before anything runs).
 */
export function createRootContainer(opts: HostOptions = {}, ...registrars: HostRegistrar[]): DependencyContainer {
  const root = container.createChildContainer();
  const clock = new VirtualClock();
  const cost = new CostModel({ clock });
  const tracer = new Tracer(clock);
  const warn = new WarnSink(() => clock.now(), (w) => tracer.emit('cocosim_warn', { kind: w.kind, message: w.message }));
  const rng = new PRandom(opts.seed ?? 0);
  const phys = new PhysMem(rng.fork('phys_mem').seed);

  root.registerInstance(HostOptions, opts);
  root.registerInstance(VirtualClock, clock);
  root.registerInstance(Clock, clock);
  root.registerInstance(CostModel, cost);
  root.registerInstance(Tracer, tracer);
  root.registerInstance(WarnSink, warn);
  root.registerInstance(PRandom, rng);
  root.registerInstance(PhysMem, phys);

  for (const register of registrars) register(root);

  const overrides = opts.costOverrides;
  if (typeof overrides === 'string') cost.loadCostOverrides(overrides);
  else if (overrides !== undefined) cost.applyCostOverrides(overrides.value, overrides.source);
  return root;
}

/** A child container for one VM of `root`'s host, with the VM's registrars applied. */
export function createVmContainer(root: DependencyContainer, ...registrars: VmRegistrar[]): DependencyContainer {
  const vm = root.createChildContainer();
  for (const register of registrars) register(vm);
  return vm;
}
