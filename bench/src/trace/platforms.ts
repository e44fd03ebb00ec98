/**
 * The platforms a trace can name in its header (`"platform": {"vendor": ..., "design": ...}`).
 * A platform is base + design + vendor; until the design and vendor registries land (kvm's
 * designs, the vendors/ packages), the base kernel with vendor "none" and design "upstream" is
 * the only one. When they land, these lists become lookups in those registries.
 */
import { createPlatform, type Platform, type PlatformOptions } from '../host.js';

export const DEFAULT_VENDOR = 'none';
export const DEFAULT_DESIGN = 'upstream';

/** Registered vendor plugins, by the names traces use. */
export function vendorNames(): readonly string[] {
  return [DEFAULT_VENDOR];
}

/** Registered designs, by the names traces use. */
export function designNames(): readonly string[] {
  return [DEFAULT_DESIGN];
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
export function createTracePlatform(_choice: PlatformChoice, opts: PlatformOptions = {}): Platform {
  return createPlatform(opts);
}
