/**
 * Building and running TDs from user space, after the kernel's TDX selftest library
 * (tools/testing/selftests/kvm/lib/x86/tdx/tdx_util.c: vm_tdx_init_vm(), td_initialize(),
 * tdx_init_mem_region(), td_finalize()) and QEMU's order of the launch ioctls: KVM_CREATE_VM(TDX),
 * KVM_TDX_CAPABILITIES, KVM_TDX_INIT_VM, a guest_memfd memslot, KVM_CREATE_VCPU,
 * KVM_TDX_INIT_VCPU, KVM_SET_MEMORY_ATTRIBUTES(private) of the image, KVM_TDX_INIT_MEM_REGION per
 * page, KVM_TDX_FINALIZE_VM. Everything goes through a Process's syscalls, as a VMM would.
 */
import { createRootContainer, type HostOptions, type HostRegistrar } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP,
  KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ENCRYPT_OP, KVM_MEM_GUEST_MEMFD, KVM_RUN,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2, KVM_X86_TDX_VM, kvmRegistrar, kvm_vcpu_set_guest_program, map_gpa_range_exit,
  type GuestPageTables, type GuestProgram, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import { tdx_x86_ops } from './tdx.js';
import { tdx_module_init, type TdxPlatformOptions } from './tdx_module.js';
import { tdx_define_costs } from './costs.js';
import { tdx_debug_register } from './tdx_debug.js';
import {
  KVM_TDX_CAPABILITIES, KVM_TDX_FINALIZE_VM, KVM_TDX_INIT_MEM_REGION, KVM_TDX_INIT_VCPU,
  KVM_TDX_INIT_VM, KVM_TDX_MEASURE_MEMORY_REGION, TDX_TD_ATTR_SEPT_VE_DISABLE, type KvmTdxCmd,
} from './uapi.js';

const PAGE = 4096n;

/** A simulated host with TDX: the Kernel and the root container (dispose it after). */
export interface TdxHost {
  readonly container: ReturnType<typeof createRootContainer>;
  readonly kernel: Kernel;
}

/**
 * A host of `nr_pages` (default 2^16: 256 MiB) whose KVM is VMX with the TDX module; `registrars`
 * go last (a design's registrar, say).
 */
export function tdx_host(opts: HostOptions & { nr_pages?: number; platform?: TdxPlatformOptions; registrars?: readonly HostRegistrar[] } = {}): TdxHost {
  const tdx: HostRegistrar = (root) => {
    const kernel = root.resolve(Kernel);
    tdx_define_costs(kernel.cost);
    tdx_module_init(kernel, opts.platform ?? {});
    tdx_debug_register(root, kernel);
  };
  const container = createRootContainer(opts, mmRegistrar({ nr_pages: opts.nr_pages ?? 2 ** 16 }), tdx, kvmRegistrar({ x86_ops: tdx_x86_ops }),
    ...(opts.registrars ?? []));
  return { container, kernel: container.resolve(Kernel) };
}

/** What td_create() sets up. */
export interface TdVm {
  readonly p: Process;
  readonly vm_fd: number;
  readonly kvm: Kvm;
  readonly gmem_fd: number;
  /** The guest's first GPA (the memslot's base) and its size in bytes. */
  readonly base: bigint;
  readonly size: bigint;
  /** The memslot's shared backing in the VMM (userspace_addr). */
  readonly hva: bigint;
  /** The shared bit as a GPA mask (bit GPAW - 1). */
  readonly shared: bigint;
  vcpu_fd: number;
  vcpu: KvmVcpu | null;
}

export interface TdCreateOptions {
  /** GPAW: 48 (4-level EPT, shared bit 47) or 52 (shared bit 51). Default 48. */
  readonly gpaw?: 48 | 52;
  /** TD attributes (default SEPT_VE_DISABLE, the one KVM supports). */
  readonly attributes?: bigint;
  /** Guest memory at `base` (default 1 GiB), `size` bytes (default 4 MiB). */
  readonly base?: bigint;
  readonly size?: bigint;
}

/** ioctl that must succeed. */
function must(p: Process, ret: number, what: string): number {
  if (ret < 0) throw new Error(`${what} failed: errno ${p.errno}`);
  return ret;
}

/** KVM_MEMORY_ENCRYPT_OP with a struct kvm_tdx_cmd; the C result (-1 and errno on failure). */
export function tdx_ioctl(p: Process, fd: number, cmd: KvmTdxCmd): number {
  return p.ioctl(fd, KVM_MEMORY_ENCRYPT_OP, cmd);
}

/** The CPUID configuration of KVM_TDX_INIT_VM: only CPUID 0x80000008's GPAW. */
export function tdx_init_vm_cpuid(gpaw: number): { nent: number; entries: { function: number; eax: number }[] } {
  return { nent: 1, entries: [{ function: 0x8000_0008, eax: gpaw << 16 }] };
}

/**
 * vm_tdx_init_vm() of the selftests (and QEMU's tdx_pre_create_vcpu()): KVM_TDX_CAPABILITIES,
 * then KVM_TDX_INIT_VM with `attributes` (default SEPT_VE_DISABLE), XFAM x87|SSE and the CPUID
 * configuration of a `gpaw`-bit guest physical address width. The C result: 0, or -1 and errno
 * of the ioctl that failed.
 */
export function vm_tdx_init_vm(p: Process, vm_fd: number, gpaw: number, attributes: bigint = TDX_TD_ATTR_SEPT_VE_DISABLE): number {
  if (tdx_ioctl(p, vm_fd, { id: KVM_TDX_CAPABILITIES, data: { cpuid: { nent: 256 } } }) < 0) return -1;
  return tdx_ioctl(p, vm_fd, { id: KVM_TDX_INIT_VM, data: { attributes, xfam: 0x3n, cpuid: tdx_init_vm_cpuid(gpaw) } });
}

/** KVM_TDX_INIT_VCPU with the vCPU's initial RCX of 0: the C result. */
export function vm_tdx_init_vcpu(p: Process, vcpu_fd: number): number {
  return tdx_ioctl(p, vcpu_fd, { id: KVM_TDX_INIT_VCPU, data: 0 });
}

/**
 * The selftests' tdx_init_mem_region(): KVM_TDX_INIT_MEM_REGION of `npages` private pages at
 * `gpa` from the user buffer at `src`, one page an ioctl, in page order; measured (TDH.MR.EXTEND)
 * unless `measure` is false. The C result: 0, or -1 and errno of the first page that failed.
 */
export function vm_tdx_init_mem_region(p: Process, vcpu_fd: number, gpa: bigint, src: bigint, npages: bigint, measure = true): number {
  for (let i = 0n; i < npages; i++) {
    const region = { source_addr: src + i * PAGE, gpa: gpa + i * PAGE, nr_pages: 1 };
    if (tdx_ioctl(p, vcpu_fd, { id: KVM_TDX_INIT_MEM_REGION, flags: measure ? KVM_TDX_MEASURE_MEMORY_REGION : 0, data: region }) < 0) return -1;
  }
  return 0;
}

/**
 * A TD up to KVM_TDX_INIT_VM with its memory: the VM, KVM_TDX_CAPABILITIES, KVM_TDX_INIT_VM, a
 * guest_memfd of `size` bound to a memslot at `base` whose shared half is anonymous shared memory,
 * and KVM_HC_MAP_GPA_RANGE exits enabled. No vCPU yet (td_vcpu_add()).
 */
export function td_create(host: TdxHost, opts: TdCreateOptions = {}): TdVm {
  const p = new Process(host.kernel);
  const kvm_fd = must(p, p.open('/dev/kvm'), 'open(/dev/kvm)');
  const vm_fd = must(p, p.ioctl(kvm_fd, KVM_CREATE_VM, KVM_X86_TDX_VM), 'KVM_CREATE_VM');
  const gpaw = opts.gpaw ?? 48;
  must(p, vm_tdx_init_vm(p, vm_fd, gpaw, opts.attributes), 'KVM_TDX_CAPABILITIES / KVM_TDX_INIT_VM');
  const base = opts.base ?? 1n << 30n;
  const size = opts.size ?? 4n << 20n;
  const hva = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  const gmem_fd = must(p, p.ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, { size, flags: 0 }), 'KVM_CREATE_GUEST_MEMFD');
  must(p, p.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: base, memory_size: size, userspace_addr: hva,
    guest_memfd: gmem_fd, guest_memfd_offset: 0,
  }), 'KVM_SET_USER_MEMORY_REGION2');
  must(p, p.ioctl(vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << KVM_HC_MAP_GPA_RANGE] }), 'KVM_ENABLE_CAP');
  const kvm = p.task.files.lookup(vm_fd)!.private_data as Kvm;
  return { p, vm_fd, kvm, gmem_fd, base, size, hva, shared: 1n << BigInt(gpaw - 1), vcpu_fd: -1, vcpu: null };
}

/** KVM_CREATE_VCPU and KVM_TDX_INIT_VCPU; the guest program is set when the test runs it (td_set_program()). */
export function td_vcpu_add(td: TdVm, id = 0): KvmVcpu {
  const p = td.p;
  td.vcpu_fd = must(p, p.ioctl(td.vm_fd, KVM_CREATE_VCPU, id), 'KVM_CREATE_VCPU');
  td.vcpu = p.task.files.lookup(td.vcpu_fd)!.private_data as KvmVcpu;
  must(p, vm_tdx_init_vcpu(p, td.vcpu_fd), 'KVM_TDX_INIT_VCPU');
  return td.vcpu;
}

/** KVM_SET_MEMORY_ATTRIBUTES of [gpa, gpa + size): private or shared. */
export function td_set_private(td: TdVm, gpa: bigint, size: bigint, priv: boolean): number {
  return td.p.ioctl(td.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size, attributes: priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0 });
}

/**
 * The initial image: `pages` copied into a user buffer, made private, and given to
 * KVM_TDX_INIT_MEM_REGION one page at a time in `order` (default 0, 1, ...: page i at base + i
 * pages), measured unless `measure` is false.
 */
export function td_init_mem_region(td: TdVm, pages: readonly Uint8Array[], order?: readonly number[], measure = true): void {
  const p = td.p;
  const n = BigInt(pages.length);
  const src = p.mmap(0, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pages.forEach((pg, i) => {
    if (p.store(src + BigInt(i) * PAGE, pg) !== 0) throw new Error('td_init_mem_region: cannot write the source');
  });
  must(p, td_set_private(td, td.base, n * PAGE, true), 'KVM_SET_MEMORY_ATTRIBUTES');
  for (const i of order ?? pages.map((_, k) => k)) {
    const off = BigInt(i) * PAGE;
    must(p, vm_tdx_init_mem_region(p, td.vcpu_fd, td.base + off, src + off, 1n, measure), 'KVM_TDX_INIT_MEM_REGION');
  }
}

/** KVM_TDX_FINALIZE_VM: the C result. */
export function vm_tdx_finalize(p: Process, vm_fd: number): number {
  return tdx_ioctl(p, vm_fd, { id: KVM_TDX_FINALIZE_VM });
}

/** KVM_TDX_FINALIZE_VM. */
export function td_finalize(td: TdVm): void {
  must(td.p, vm_tdx_finalize(td.p, td.vm_fd), 'KVM_TDX_FINALIZE_VM');
}

/**
 * A TD guest's page tables: every GVA below 2^52 maps to the same GPA, so that the shared alias
 * (the GPA with the shared bit, what cc_mkdec() puts in a PTE) is mapped too.
 */
export const tdx_guest_page_tables: GuestPageTables = (gva) => (gva >= 0n && gva < 1n << 52n ? gva : undefined);

/** The guest program of the TD's vCPU, with tdx_guest_page_tables. */
export function td_set_program(td: TdVm, program: GuestProgram): void {
  kvm_vcpu_set_guest_program(td.vcpu!, program, { page_tables: tdx_guest_page_tables });
}

/**
 * KVM_RUN, handling the KVM_HC_MAP_GPA_RANGE exits as QEMU does (the range's attributes flipped,
 * hypercall.ret 0), until another exit or an error: the C result (0, or -1 with errno). `onMap`
 * sees each MapGPA exit first (gpa, pages, private).
 */
export function td_run(td: TdVm, onMap?: (gpa: bigint, npages: bigint, priv: boolean) => void): number {
  const run = td.vcpu!.run;
  for (;;) {
    const r = td.p.ioctl(td.vcpu_fd, KVM_RUN, 0);
    const req = r < 0 ? undefined : map_gpa_range_exit(run);
    if (req === undefined) return r;
    onMap?.(req.gpa, req.npages, req.to_private);
    run.hypercall.ret = td_set_private(td, req.gpa, req.npages * PAGE, req.to_private) < 0 ? 1n : 0n;
  }
}
