/*
 * Test environment of the SEV tests (not a test file: shared by them). A package's tests cannot
 * use the test package (it is built after the packages), so this is the small part of a VMM the
 * tests need, through the uAPI as QEMU drives it: a host with the SEV plugin, VMs, guest_memfd
 * memslots, memory attributes, vCPUs running guest programs, KVM_MEMORY_ENCRYPT_OP, and the SNP
 * launch steps.
 */
import { expect } from 'vitest';
import { CostModel, PAGE_SIZE, PhysMem, RingSink, Tracer, createRootContainer, type HostRegistrar } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, filemap_get_entry, mmRegistrar } from '@cocosim/mm';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEM_GUEST_MEMFD, KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2, kvmRegistrar, kvm_vcpu_set_guest_program,
  type GuestProgram, type Kvm, type KvmRun, type KvmVcpu,
} from '@cocosim/kvm';
import {
  KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_FINISH, KVM_SEV_SNP_LAUNCH_START, KVM_SEV_SNP_LAUNCH_UPDATE, KVM_X86_SNP_VM, SNP_DEFAULT_POLICY,
  sevVendorPlugin, vm_sev_ioctl, type SevHostOptions,
} from './index.js';

export const BASE = 0x10000000n;
export const NPAGES = 16;
/** SNP policy with the bits KVM requires: SMT allowed and the must-be-one bit 17. */
export const POLICY = SNP_DEFAULT_POLICY;
const PG = BigInt(PAGE_SIZE);

/** A simulated host with the SEV plugin and what the tests look at. */
export interface SimHost {
  readonly kernel: Kernel;
  readonly phys: PhysMem;
  readonly cost: CostModel;
  readonly tracer: Tracer;
  /** Every trace record of the host. */
  readonly trace: RingSink;
  process(): Process;
}

/** A host: mm, KVM with the SEV vendor table, the SEV host state with `opts`, then `extra` (a design's registrar). */
export function sevHost(opts: SevHostOptions = {}, seed = 0, nr_pages = 1 << 15, extra: readonly HostRegistrar[] = []): SimHost {
  const registrars: HostRegistrar[] = [
    mmRegistrar({ nr_pages }), kvmRegistrar({ x86_ops: sevVendorPlugin.x86_ops }), sevVendorPlugin.registrar(opts), ...extra,
  ];
  const root = createRootContainer({ seed }, ...registrars);
  const kernel = root.resolve(Kernel);
  const trace = new RingSink();
  kernel.tracer.addSink(trace);
  return { kernel, phys: kernel.phys, cost: kernel.cost, tracer: kernel.tracer, trace, process: () => new Process(kernel) };
}

/** An SNP-capable host with the default options. */
export function snpHost(seed = 0): SimHost {
  return sevHost({}, seed);
}

/** A VM as the VMM holds it: its process, fds and memory regions. */
export interface KvmVm {
  readonly p: Process;
  readonly fd: number;
  readonly kvm_fd: number;
  readonly regions: { gpa: bigint; npages: number; hva: bigint; gmem_fd: number }[];
  readonly vcpus: KvmVcpuFd[];
}

/** A vCPU as the VMM holds it. */
export interface KvmVcpuFd {
  readonly vm: KvmVm;
  readonly fd: number;
  readonly run: KvmRun;
  readonly kvcpu: KvmVcpu;
}

/** KVM_CREATE_VM of `type` on a fresh /dev/kvm fd. */
export function vm_create_barebones_type(p: Process, type: number): KvmVm {
  const kvm_fd = p.open('/dev/kvm');
  expect(kvm_fd).toBeGreaterThanOrEqual(0);
  const fd = p.ioctl(kvm_fd, KVM_CREATE_VM, type);
  expect(fd).toBeGreaterThanOrEqual(0);
  return { p, fd, kvm_fd, regions: [], vcpus: [] };
}

/** struct kvm of the VM. */
export function vm_kvm(vm: KvmVm): Kvm {
  return vm.p.task.files.lookup(vm.fd)!.private_data as Kvm;
}

/**
 * Back `npages` at `gpa` with anonymous memory as memslot `slot`, and with a guest_memfd of the
 * same size when `gmem` (KVM_MEM_GUEST_MEMFD).
 */
export function vm_mem_add(vm: KvmVm, gpa: bigint, slot: number, npages: number, gmem: boolean): void {
  const size = BigInt(npages) * PG;
  const hva = vm.p.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(hva).not.toBe(MAP_FAILED);
  const gmem_fd = gmem ? vm.p.ioctl(vm.fd, KVM_CREATE_GUEST_MEMFD, { size, flags: 0n }) : -1;
  if (gmem) expect(gmem_fd).toBeGreaterThanOrEqual(0);
  const region = {
    slot, flags: gmem ? KVM_MEM_GUEST_MEMFD : 0, guest_phys_addr: gpa, memory_size: size, userspace_addr: hva,
    guest_memfd: gmem ? gmem_fd : 0, guest_memfd_offset: 0n,
  };
  expect(vm.p.ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION2, region)).toBe(0);
  vm.regions.push({ gpa, npages, hva, gmem_fd });
}

function region_of(vm: KvmVm, gpa: bigint): KvmVm['regions'][number] {
  const r = vm.regions.find((x) => gpa >= x.gpa && gpa < x.gpa + BigInt(x.npages) * PG);
  expect(r).toBeDefined();
  return r!;
}

/** The VMM's address of guest physical address `gpa`. */
export function addr_gpa2hva(vm: KvmVm, gpa: bigint): bigint {
  const r = region_of(vm, gpa);
  return r.hva + (gpa - r.gpa);
}

/** The guest_memfd fd and file offset behind `gpa`. */
export function kvm_gpa_to_guest_memfd(vm: KvmVm, gpa: bigint): { fd: number; fd_offset: bigint } {
  const r = region_of(vm, gpa);
  return { fd: r.gmem_fd, fd_offset: gpa - r.gpa };
}

/** KVM_SET_MEMORY_ATTRIBUTES: [gpa, gpa + size) private or shared. */
export function vm_set_private(vm: KvmVm, gpa: bigint, size: bigint, priv: boolean): void {
  expect(vm.p.ioctl(vm.fd, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size, attributes: priv ? BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0n, flags: 0n })).toBe(0);
}

/** KVM_ENABLE_CAP with one argument. */
export function vm_enable_cap(vm: KvmVm, cap: number, arg0: number | bigint): void {
  expect(vm.p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap, flags: 0, args: [BigInt(arg0), 0n, 0n, 0n] })).toBe(0);
}

/** KVM_CREATE_VCPU, and the guest program loaded at its RIP (identity-mapped guest page tables). */
export function vm_vcpu_add(vm: KvmVm, id: number, guest: GuestProgram): KvmVcpuFd {
  const fd = vm.p.ioctl(vm.fd, KVM_CREATE_VCPU, id);
  expect(fd).toBeGreaterThanOrEqual(0);
  const kvcpu = vm.p.task.files.lookup(fd)!.private_data as KvmVcpu;
  kvm_vcpu_set_guest_program(kvcpu, guest);
  const vcpu = { vm, fd, run: kvcpu.run, kvcpu };
  vm.vcpus.push(vcpu);
  return vcpu;
}

/** KVM_RUN, again while a signal interrupts it; it must return 0. */
export function vcpu_run(vcpu: KvmVcpuFd): void {
  let r: number;
  do r = vcpu.vm.p.ioctl(vcpu.fd, KVM_RUN, 0);
  while (r === -1 && vcpu.vm.p.errno === 4);
  expect(r).toBe(0);
}

/** Close everything the VMM holds for the VM (its vCPUs, guest_memfds, the VM and /dev/kvm fds). */
export function kvm_vm_free(vm: KvmVm): void {
  for (const v of vm.vcpus) expect(vm.p.close(v.fd)).toBe(0);
  for (const r of vm.regions) if (r.gmem_fd >= 0) expect(vm.p.close(r.gmem_fd)).toBe(0);
  expect(vm.p.close(vm.fd)).toBe(0);
  expect(vm.p.close(vm.kvm_fd)).toBe(0);
}

/** KVM_MEMORY_ENCRYPT_OP with struct kvm_sev_cmd: the ioctl's result, errno and the firmware error. */
export function sev_cmd(vm: KvmVm, id: number, data: unknown, sev_fd: number): { r: number; errno: number; error: number } {
  const { r, error } = vm_sev_ioctl(vm.p, vm.fd, sev_fd, id, data);
  return { r, errno: r < 0 ? vm.p.errno : 0, error };
}

export interface SnpVm {
  vm: KvmVm;
  vcpu: KvmVcpuFd;
  sev_fd: number;
  kvm: Kvm;
}

function* no_guest(): Generator<never, void, never> {
  /* no instructions: the launch tests do not run the guest */
}

/**
 * An SNP VM after KVM_SEV_INIT2 with NPAGES of guest_memfd memory at BASE, the first
 * `private_pages` of them private, and one vCPU running `guest`.
 */
export function snp_vm(host: SimHost, guest: GuestProgram = no_guest, private_pages = NPAGES): SnpVm {
  const p = host.process();
  const vm = vm_create_barebones_type(p, KVM_X86_SNP_VM);
  const sev_fd = p.open('/dev/sev');
  expect(sev_fd).toBeGreaterThanOrEqual(0);
  expect(sev_cmd(vm, KVM_SEV_INIT2, { vmsa_features: 0, flags: 0, ghcb_version: 0 }, sev_fd).r).toBe(0);
  vm_mem_add(vm, BASE, 1, NPAGES, true);
  if (private_pages) vm_set_private(vm, BASE, BigInt(private_pages) * PG, true);
  const vcpu = vm_vcpu_add(vm, 0, guest);
  return { vm, vcpu, sev_fd, kvm: vm_kvm(vm) };
}

/** A buffer in the VMM holding `data` (the image QEMU loads), its address. */
export function vmm_buffer(vm: KvmVm, data: Uint8Array): bigint {
  const len = BigInt(Math.max(PAGE_SIZE, Math.ceil(data.length / PAGE_SIZE) * PAGE_SIZE));
  const a = vm.p.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(vm.p.store(a, data)).toBe(0);
  return a;
}

/** A `npages` image: page i filled with `seed + i`, first byte of page i = i. */
export function image(npages: number, seed: number): Uint8Array {
  const out = new Uint8Array(npages * PAGE_SIZE);
  for (let i = 0; i < npages; i++) {
    out.fill((seed + i) & 0xff, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    out[i * PAGE_SIZE] = i;
  }
  return out;
}

/** SNP_LAUNCH_START, SNP_LAUNCH_UPDATE of each (gpa, data, type) in order, SNP_LAUNCH_FINISH. */
export function snp_launch(s: SnpVm, updates: readonly { gpa: bigint; data: Uint8Array | null; type: number }[], finish: object = {}): void {
  expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_START, { policy: POLICY }, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
  for (const u of updates) {
    const len = u.data === null ? PAGE_SIZE : u.data.length;
    const p = { gfn_start: u.gpa >> 12n, uaddr: u.data === null ? 0n : vmm_buffer(s.vm, u.data), len: BigInt(len), type: u.type };
    expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_UPDATE, p, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
    expect(p.len).toBe(0n);
  }
  expect(sev_cmd(s.vm, KVM_SEV_SNP_LAUNCH_FINISH, finish, s.sev_fd)).toEqual({ r: 0, errno: 0, error: 0 });
}

/** The pfn guest_memfd holds for `gpa` (an order-0 folio), failing when there is none. */
export function gmem_pfn(kvm: Kvm, gpa: bigint): number {
  const gfn = Number(gpa >> 12n);
  const slot = [...kvm.memslots[0]!.id_hash.values()].find((sl) => gfn >= sl.base_gfn && gfn < sl.base_gfn + sl.npages)!;
  const folio = filemap_get_entry(kvm.kernel, slot.gmem.file!.f_inode.i_mapping, slot.gmem.pgoff + gfn - slot.base_gfn);
  expect(folio).toBeDefined();
  return folio!;
}
