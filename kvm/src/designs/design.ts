/**
 * What a design is to the rest of cocosim (ARCHITECTURE.md "Design" axis): a patch series on the
 * 6.18 base, in one folder under kvm/src/designs/, that a platform selects by name. Its registrar
 * installs the design's hooks (mm_hooks.ts, kvm_hooks.ts), file types and ioctls on a host whose
 * mm and KVM are already registered (it goes after mmRegistrar and kvmRegistrar).
 */
import type { HostRegistrar } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import type { CvmDesign } from '../cvm.js';

/** One design: its name, where designs.md describes it, its uAPI and how to install it. */
export interface Design<O extends object = object> {
  /** The platform's design name (cocosim --design) and the folder under kvm/src/designs/. */
  readonly name: string;
  /** One line: the proposal and its dates. */
  readonly title: string;
  /** The rows of designs.md §1 the design implements ("D8", "D9", "D10"...). */
  readonly rows: readonly string[];
  /** The constants the design adds to the uAPI (ioctls, capabilities, flags, seals), by C name. */
  readonly uapi: Readonly<Record<string, number>>;
  /** The options the registrar takes, each with what it selects (for the CLI's listing). */
  readonly options: Readonly<Record<string, string>>;
  /**
   * The VMM side of the design (cvm.ts): how user space backs a confidential VM's memory and
   * answers its conversions on this design. Every design has one; scenarios run through it.
   */
  readonly vmm: CvmDesign;
  /** The registrar installing the design, with `opts` (its defaults when omitted). */
  registrar(opts?: O): HostRegistrar;
}

/** The design a host runs and the options it was installed with. */
export interface InstalledDesign {
  readonly design: Design;
  readonly options: object;
}

const installed = new WeakMap<Kernel, InstalledDesign>();

/**
 * Record that `design` runs on `kernel`'s host: a platform runs one design (base + design +
 * vendor), so installing a second one is a configuration error.
 */
export function design_install(kernel: Kernel, design: Design, options: object): void {
  const prev = installed.get(kernel);
  if (prev !== undefined) throw new RangeError(`design "${design.name}": the host already runs "${prev.design.name}"`);
  installed.set(kernel, { design, options });
}

/** The design `kernel`'s host runs, or undefined for the base kernel alone. */
export function design_of(kernel: Kernel): InstalledDesign | undefined {
  return installed.get(kernel);
}
