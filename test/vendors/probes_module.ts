/**
 * The vendor probes (bench/src/vendors/probes.ts), loaded from bench's sources at run time by
 * path: the test package has no project reference to bench (test/tsconfig.json), so vitest
 * compiles them as it compiles any import. The parts the matrix test uses are declared here.
 */
import { fileURLToPath } from 'node:url';

export type Actor = 'host user' | 'host kernel' | 'device DMA' | 'guest';
export type AccessKind = 'read' | 'write' | 'partial-line write';

export interface AccessProbe {
  readonly actor: Actor;
  readonly path: string;
  readonly kind: AccessKind;
  readonly outcome: string;
  readonly guest_next_read?: string;
}

export interface LaunchProbe {
  readonly flow: boolean;
  readonly digest: string | null;
  readonly stable: boolean | null;
  readonly changes_with_content: boolean | null;
  readonly changes_with_order: boolean | null;
  readonly guest_reads: string;
  readonly error?: string;
}

export interface ConversionProbe {
  readonly to_private_ret: string;
  readonly to_private_guest_reads: string;
  readonly to_private_vmm_reads: string;
  readonly to_shared_ret: string;
  readonly to_shared_guest_reads: string;
  readonly to_shared_vmm_reads: string;
}

export interface ConversionCost {
  readonly direction: 'to_private' | 'to_shared';
  readonly bytes: number;
  readonly result: string;
  readonly total_ns: number;
  readonly estimated_ns: number;
  readonly items: readonly { readonly name: string; readonly count: number; readonly ns: number; readonly provenance: string }[];
}

export interface VendorProbe {
  readonly vendor: string;
  readonly skipped?: string;
  readonly vm_type: number | null;
  readonly launch?: LaunchProbe;
  readonly conversion?: ConversionProbe;
  readonly access: readonly AccessProbe[];
  readonly costs: readonly ConversionCost[];
  readonly page_sizes?: { readonly private_max_level: number; readonly private_sizes: readonly string[]; readonly iommu_sizes: readonly string[] };
}

export interface ProbesModule {
  readonly MATRIX_VENDORS: readonly string[];
  probeUnavailable(vendor: string): string | undefined;
  probeVendor(vendor: string): VendorProbe;
}

const source = fileURLToPath(new URL('../../bench/src/vendors/probes.ts', import.meta.url));
export const probes = (await import(source)) as ProbesModule;
