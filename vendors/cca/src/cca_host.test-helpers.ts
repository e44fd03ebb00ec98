/**
 * Test plumbing for the CCA package (cocosim, no kernel file): a simulated host whose KVM is the
 * CCA one, a VMM process, and the VMM's side of a realm launch as QEMU's v8 rme-guest does it
 * (memslot with guest_memfd, attributes private, KVM_CAP_ARM_RME create / init RIPAS / populate /
 * activate).
 */
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2, kvmRegistrar, kvm_vcpu_set_guest_program,
  type GuestProgram, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import { ccaVendorPlugin } from './index.js';
import { realm_guest_page_tables } from './cvm.js';
import {
  KVM_ARM_RME_POPULATE_FLAGS_MEASURE, KVM_CAP_ARM_RME, KVM_CAP_ARM_RME_ACTIVATE_REALM, KVM_CAP_ARM_RME_CREATE_REALM,
  KVM_CAP_ARM_RME_INIT_RIPAS_REALM, KVM_CAP_ARM_RME_POPULATE_REALM, KVM_PHYS_SHIFT, KVM_VM_TYPE_ARM_REALM,
} from './uapi.js';

export interface CcaHost {
  readonly container: DependencyContainer;
  readonly kernel: Kernel;
  readonly p: Process;
  readonly kvm_fd: number;
}

/** A host with 256 MiB of RAM whose KVM is the CCA plugin's. */
export function cca_host(seed = 0): CcaHost {
  const container = createRootContainer({ seed }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: ccaVendorPlugin.x86_ops }), ccaVendorPlugin.registrar);
  const kernel = container.resolve(Kernel);
  const p = new Process(kernel);
  const kvm_fd = p.open('/dev/kvm');
  return { container, kernel, p, kvm_fd };
}

/** The realm's IPA where guest RAM starts in these tests (1 GiB), and its size in pages. */
export const RAM_GPA = 1n << 30n;
export const RAM_PAGES = 16;
/** BIT(ia_bits - 1) of a 40-bit realm: the unprotected alias. */
export const SHARED_BIT = 1n << 39n;

/** A realm VM with one memslot (guest_memfd + the VMM's shared alias at `hva`) and its vCPU 0. */
export interface RealmVm {
  readonly host: CcaHost;
  readonly vm_fd: number;
  readonly kvm: Kvm;
  readonly hva: bigint;
  readonly gmem_fd: number;
  vcpu_fd: number;
  vcpu: KvmVcpu | null;
}

/** The guest's page tables: the realm's whole 40-bit IPA space identity-mapped (both aliases). */
export const realm_page_tables = realm_guest_page_tables(KVM_PHYS_SHIFT);

/** KVM_CREATE_VM(KVM_VM_TYPE_ARM_REALM) and the memslot at RAM_GPA, all of it private. */
export function realm_vm(host: CcaHost): RealmVm {
  const { p } = host;
  const vm_fd = p.ioctl(host.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_REALM);
  if (vm_fd < 0) throw new Error(`KVM_CREATE_VM: errno ${p.errno}`);
  const size = BigInt(RAM_PAGES * PAGE_SIZE);
  const hva = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const gmem_fd = p.ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, { size, flags: 0 });
  if (gmem_fd < 0) throw new Error(`KVM_CREATE_GUEST_MEMFD: errno ${p.errno}`);
  const r = p.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: RAM_GPA, memory_size: size, userspace_addr: hva, guest_memfd: gmem_fd, guest_memfd_offset: 0,
  });
  if (r !== 0) throw new Error(`KVM_SET_USER_MEMORY_REGION2: errno ${p.errno}`);
  set_attributes(host, vm_fd, RAM_GPA, size, true);
  const kvm = p.task.files.lookup(vm_fd)!.private_data as Kvm;
  return { host, vm_fd, kvm, hva, gmem_fd, vcpu_fd: -1, vcpu: null };
}

/** KVM_SET_MEMORY_ATTRIBUTES: private or shared. */
export function set_attributes(host: CcaHost, vm_fd: number, gpa: bigint, size: bigint, priv: boolean): void {
  const r = host.p.ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size, attributes: priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0 });
  if (r !== 0) throw new Error(`KVM_SET_MEMORY_ATTRIBUTES: errno ${host.p.errno}`);
}

/** KVM_ENABLE_CAP(KVM_CAP_ARM_RME, action, struct): the raw result (-1 and errno on failure). */
export function rme_cap(vm: RealmVm, action: number, arg?: object): number {
  return vm.host.p.ioctl(vm.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_RME, flags: 0, args: [action, arg ?? 0, 0, 0] });
}

/** KVM_CREATE_VCPU 0 running `program` with the realm's page tables. */
export function add_vcpu(vm: RealmVm, program: GuestProgram): void {
  const { p } = vm.host;
  vm.vcpu_fd = p.ioctl(vm.vm_fd, KVM_CREATE_VCPU, 0);
  if (vm.vcpu_fd < 0) throw new Error(`KVM_CREATE_VCPU: errno ${p.errno}`);
  vm.vcpu = p.task.files.lookup(vm.vcpu_fd)!.private_data as KvmVcpu;
  kvm_vcpu_set_guest_program(vm.vcpu, program, { page_tables: realm_page_tables });
}

/** KVM_RUN: 0, or -errno. */
export function run(vm: RealmVm): number {
  const r = vm.host.p.ioctl(vm.vcpu_fd, KVM_RUN, 0);
  return r < 0 ? -vm.host.p.errno : r;
}

/** A deterministic image of `pages` pages, `seed` choosing its bytes. */
export function image(pages: number, seed: number): Uint8Array {
  const img = new Uint8Array(pages * PAGE_SIZE);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < img.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    img[i] = x & 0xff;
  }
  return img;
}

/**
 * The VMM's launch (QEMU's v8 rme-guest): the image into the shared alias, CREATE_REALM,
 * INIT_RIPAS over RAM, POPULATE with measurement of `populate` ranges (page offsets, in the order
 * given), ACTIVATE. Throws on a failed step.
 */
export function launch(vm: RealmVm, img: Uint8Array, populate: readonly (readonly [number, number])[] = [[0, img.length / PAGE_SIZE]]): void {
  const { p } = vm.host;
  if (p.store(vm.hva, img) !== 0) throw new Error('store image');
  const step = (r: number, what: string): void => {
    if (r !== 0) throw new Error(`${what}: errno ${p.errno}`);
  };
  step(rme_cap(vm, KVM_CAP_ARM_RME_CREATE_REALM), 'CREATE_REALM');
  step(rme_cap(vm, KVM_CAP_ARM_RME_INIT_RIPAS_REALM, { base: RAM_GPA, size: BigInt(RAM_PAGES * PAGE_SIZE) }), 'INIT_RIPAS');
  for (const [first, n] of populate) {
    step(rme_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, {
      base: RAM_GPA + BigInt(first * PAGE_SIZE), size: BigInt(n * PAGE_SIZE), flags: KVM_ARM_RME_POPULATE_FLAGS_MEASURE,
    }), 'POPULATE');
  }
  step(rme_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM), 'ACTIVATE');
}

/** The pfn guest_memfd backs a realm gfn with (the granule KVM gave the RMM). */
export function gmem_pfn(vm: RealmVm, gpa: bigint): number {
  const store = vm.host.kernel.store;
  const file = vm.host.p.task.files.lookup(vm.gmem_fd)!;
  const index = Number((gpa - RAM_GPA) >> 12n);
  const folio = file.f_inode.i_mapping.i_pages.xa_load(index);
  if (folio === undefined || folio === null) return -1;
  return (folio as number) + (index - store.index[store.idx(folio as number)]!);
}
