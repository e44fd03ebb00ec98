/**
 * The platforms a trace can name in its header (`"platform": {"vendor": ..., "design": ...}`).
 * A platform is base + design + vendor: host.ts's VENDORS and kvm's DESIGNS.
 */
import { DESIGN_NAMES, VENDORS, createPlatform, type Platform, type PlatformOptions } from '../host.js';

export const DEFAULT_VENDOR = 'none';
export const DEFAULT_DESIGN = 'upstream';

/** Registered vendor plugins, by the names traces use. */
export function vendorNames(): readonly string[] {
  return [...VENDORS.keys()];
}

/** Registered designs, by the names traces use. */
export function designNames(): readonly string[] {
  return DESIGN_NAMES;
}

export interface PlatformChoice {
  readonly vendor: string;
  readonly design: string;
}

/** Every vendor/design pair, in a stable order. */
export function platformChoices(): PlatformChoice[] {
  return vendorNames().flatMap((vendor) => designNames().map((design) => ({ vendor, design })));
}

/** A new simulated host for the choice (the names must be registered ones). */
export function createTracePlatform(choice: PlatformChoice, opts: PlatformOptions = {}): Platform {
  return createPlatform({ ...opts, vendor: choice.vendor, design: choice.design });
}
