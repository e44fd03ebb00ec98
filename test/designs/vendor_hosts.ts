/**
 * Hosts of a design on the SEV-SNP and TDX vendors for the designs' cross-package tests, built as
 * bench's createPlatform() composes a platform (mm, the vendor's firmware registrar, KVM with the
 * vendor's kvm_x86_ops, the design's registrar). The vendor packages and the restrictedmem file
 * are loaded from their sources at run time by path: the test package has no project reference to
 * them (test/tsconfig.json), so vitest compiles them as any import (as vendors/probes_module.ts
 * loads bench). The parts the tests use are declared here.
 */
import { fileURLToPath } from 'node:url';
import { createRootContainer, type HostRegistrar } from '@cocosim/core';
import { Kernel, Process, filemap_get_entry, folio_put, mmRegistrar, type AddressSpace, type File } from '@cocosim/mm';
import { cvm_create, cvm_launch, kvmRegistrar, type CvmDesign, type CvmPolicy, type CvmVendor, type CvmVm, type Design, type Kvm, type KvmX86Ops } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';

/** The vendor plugin a package exports (sevVendorPlugin, tdxVendorPlugin). */
interface VendorPlugin {
  readonly x86_ops: KvmX86Ops;
  registrar(): HostRegistrar;
  readonly cvm: CvmVendor;
}

/** One RMP entry (vendors/sev/src/rmp.ts RmpEntry), the fields the tests read. */
export interface RmpEntry {
  readonly assigned: boolean;
  readonly validated: boolean;
  readonly gpa: bigint;
  readonly asid: number;
}

interface SevModule {
  readonly sevVendorPlugin: VendorPlugin;
  sev_host(kernel: Kernel): { readonly rmp: { authoritative(pfn: number): { readonly e: RmpEntry } } };
  to_kvm_sev_info(kvm: Kvm): { readonly asid: number };
}

interface TdxModule {
  readonly tdxVendorPlugin: VendorPlugin;
  tdx_module_of(kernel: Kernel): { td_of_page(pfn: number): unknown };
}

interface RestrictedmemModule {
  restrictedmem(file: File): { readonly memfd: File } | undefined;
}

const load = async <T>(path: string): Promise<T> => (await import(fileURLToPath(new URL(path, import.meta.url)))) as T;
const sev = await load<SevModule>('../../vendors/sev/src/index.ts');
const tdx = await load<TdxModule>('../../vendors/tdx/src/index.ts');
const rm = await load<RestrictedmemModule>('../../kvm/src/designs/memfd_restricted/restrictedmem.ts');

export type VendorName = 'sev' | 'tdx';

/** A host running `design` on `vendor`. */
export interface VendorHost {
  readonly vendor: VendorName;
  readonly container: DependencyContainer;
  readonly kernel: Kernel;
  readonly cvm: CvmVendor;
}

const PLUGINS: Record<VendorName, VendorPlugin> = { sev: sev.sevVendorPlugin, tdx: tdx.tdxVendorPlugin };

/** mm, the vendor's registrar, KVM with its ops table, then the design's registrar (bench/src/host.ts createPlatform()). */
export function vendorHost<O extends object>(vendor: VendorName, design: Design<O>, opts?: O): VendorHost {
  const plugin = PLUGINS[vendor];
  const container = createRootContainer({ seed: 1 }, mmRegistrar({ nr_pages: 1 << 15 }), plugin.registrar(), kvmRegistrar({ x86_ops: plugin.x86_ops }),
    design.registrar(opts));
  return { vendor, container, kernel: container.resolve(Kernel), cvm: plugin.cvm };
}

/** A launched confidential VM of `npages` pages of the design's memory on the host (cvm_create(), cvm_launch()). */
export function vendorVm(h: VendorHost, vmm: CvmDesign, npages = 16, policy?: Partial<CvmPolicy>): CvmVm {
  const vm = cvm_create(new Process(h.kernel), h.cvm, vmm, { size: BigInt(npages) * 4096n, ...(policy === undefined ? {} : { policy }) });
  if (typeof vm === 'number') throw new Error(`cvm_create on ${h.vendor}: ${vm}`);
  // No image: the vendor's launch finish only (a TD runs once KVM_TDX_FINALIZE_VM made it so).
  if (cvm_launch(vm, vm.base, new Uint8Array(0)) !== 0) throw new Error(`cvm_launch on ${h.vendor}: errno ${vm.p.errno}`);
  return vm;
}

/** The page cache of the file holding private memory (the shmem file behind a restricted fd). */
function private_mapping(file: File): AddressSpace {
  return rm.restrictedmem(file)?.memfd.f_mapping ?? file.f_mapping;
}

/** The pfn of the design's private memory for `gpa` (its private fd's page), or undefined for a hole. */
export function private_pfn(vm: CvmVm, gpa: bigint): number | undefined {
  const where = vm.design.private_fd!(vm, gpa)!;
  const file = vm.p.task.files.lookup(where.fd)!;
  const folio = filemap_get_entry(vm.kvm.kernel, private_mapping(file), Number(where.offset >> 12n));
  if (folio === undefined) return undefined;
  // The lookup's reference goes at once: a conversion counts the references a folio holds.
  folio_put(vm.kvm.kernel.store, folio);
  return Number(folio);
}

/** SNP: the RMP entry of `pfn`. */
export function rmp_entry(kernel: Kernel, pfn: number): RmpEntry {
  return sev.sev_host(kernel).rmp.authoritative(pfn).e;
}

/** SNP: the VM's ASID. */
export function snp_asid(vm: CvmVm): number {
  return sev.to_kvm_sev_info(vm.kvm).asid;
}

/** TDX: whether the TDX module holds `pfn` as some TD's page (PAMT owner). */
export function td_owns(kernel: Kernel, pfn: number): boolean {
  return tdx.tdx_module_of(kernel).td_of_page(pfn) !== undefined;
}

/** Whether the vendor holds `pfn` for a VM: SNP's RMP assigns it, TDX's PAMT gives it to a TD. */
export function vendor_owns(h: VendorHost, pfn: number): boolean {
  return h.vendor === 'sev' ? rmp_entry(h.kernel, pfn).assigned : td_owns(h.kernel, pfn);
}

/** Whether every byte of `data` (of `len` bytes) is `byte`. */
export function filled(data: Uint8Array | undefined | unknown, byte: number, len = 4096): boolean {
  return data instanceof Uint8Array && data.length === len && data.every((b) => b === byte);
}
