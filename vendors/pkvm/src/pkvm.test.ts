/**
 * pKVM end to end on cocosim's KVM: a protected VM launched from the VMM's memory (donation on
 * fault, pvmfw loaded at its IPA, pvmfw's payload measurement), the guest's MEM_SHARE /
 * MEM_UNSHARE with their contents, the host stage-2 aborts and IOMMU faults of vendor-models.md
 * §5.4, teardown, and the hypervisor's refusals.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  GFP_HIGHUSER_MOVABLE, Kernel, KernelOops, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, MIGRATE_SYNC, MM_HOST_ACCESS_ABORT, MR_COMPACTION, NUMA_NO_NODE,
  PROT_READ, PROT_WRITE, Process, alloc_migration_target, folio_maybe_dma_pinned, isolate_folio_to_list, kernel_host_access,
  migrate_pages, mm_host_access, mmRegistrar, pagemap_pfn, putback_movable_pages, uaccess_host_access, type Folio,
} from '@cocosim/mm';
import {
  KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_EXIT_HLT, KVM_RUN, KVM_SET_USER_MEMORY_REGION,
  fwcall, guestLoad, guestStore, hlt, kvmRegistrar, kvm_vcpu_set_guest_program, type GuestProgram, type Kvm, type KvmVcpu,
} from '@cocosim/kvm';
import { Device, Iommu, iommu_vendor_ops_merge } from '@cocosim/vfio';
import {
  ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID,
  KVM_CAP_ARM_PROTECTED_VM, KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA, KVM_VM_TYPE_ARM_PROTECTED,
  PKVM_NOPAGE, PKVM_PAGE_OWNED, PKVM_PAGE_SHARED_BORROWED, PKVM_PAGE_SHARED_OWNED, SMCCC_RET_INVALID_PARAMETER, SMCCC_RET_NOT_SUPPORTED,
  SMCCC_RET_SUCCESS, createPkvmVendorPlugin, pkvm_hyp, pkvm_iommu_ops, pkvm_vm, pvmfw_measure, pvmfw_measure_payload,
} from './index.js';

const RAM_GPA = 1n << 30n;
const RAM_PAGES = 16;
const PG = BigInt(PAGE_SIZE);

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const PVMFW = bytes(PAGE_SIZE, 99);

interface Host {
  readonly kernel: Kernel;
  readonly p: Process;
  readonly kvm_fd: number;
  dispose(): Promise<void> | void;
}
const hosts: Host[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.dispose();
});

function pkvm_host(): Host {
  const plugin = createPkvmVendorPlugin({ pvmfw: PVMFW });
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: plugin.x86_ops }), plugin.registrar);
  const kernel = c.resolve(Kernel);
  const p = new Process(kernel);
  const h = { kernel, p, kvm_fd: p.open('/dev/kvm'), dispose: () => c.dispose() };
  hosts.push(h);
  return h;
}

interface Vm {
  readonly h: Host;
  readonly fd: number;
  readonly kvm: Kvm;
  readonly hva: bigint;
  vcpu_fd: number;
  vcpu: KvmVcpu | null;
}

/** A VM (protected unless `type` says) with RAM_PAGES of the VMM's anonymous memory at RAM_GPA. */
function vm_create(h: Host, type: bigint = KVM_VM_TYPE_ARM_PROTECTED): Vm {
  const fd = h.p.ioctl(h.kvm_fd, KVM_CREATE_VM, type);
  expect(fd).toBeGreaterThanOrEqual(0);
  const hva = h.p.mmap(0, RAM_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(h.p.ioctl(fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: RAM_GPA, memory_size: RAM_PAGES * PAGE_SIZE, userspace_addr: hva })).toBe(0);
  return { h, fd, kvm: h.p.task.files.lookup(fd)!.private_data as Kvm, hva, vcpu_fd: -1, vcpu: null };
}

function add_vcpu(vm: Vm, prog: GuestProgram): void {
  vm.vcpu_fd = vm.h.p.ioctl(vm.fd, KVM_CREATE_VCPU, 0);
  vm.vcpu = vm.h.p.task.files.lookup(vm.vcpu_fd)!.private_data as KvmVcpu;
  kvm_vcpu_set_guest_program(vm.vcpu, prog);
}

function run(vm: Vm): number {
  const r = vm.h.p.ioctl(vm.vcpu_fd, KVM_RUN, 0);
  return r < 0 ? -vm.h.p.errno : r;
}

/** The pfn of the VMM's page at `gpa`. */
function pfn_of(vm: Vm, gpa: bigint): number {
  return pagemap_pfn(vm.h.p.mm, vm.hva + (gpa - RAM_GPA))!;
}

const PAYLOAD_PAGES = 3;

/** Launch a protected VM whose VMM wrote `payload` after pvmfw's page; the measurement pvmfw takes, and what pvmfw found at its IPA. */
function launch(payload: Uint8Array): { vm: Vm; digest: string; fw: Uint8Array } {
  const h = pkvm_host();
  const vm = vm_create(h);
  expect(h.p.store(vm.hva, new Uint8Array(PAGE_SIZE).fill(0xee))).toBe(0);
  expect(h.p.store(vm.hva + PG, payload)).toBe(0);
  expect(h.p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA, args: [RAM_GPA] })).toBe(0);
  const out: { digest?: string; fw?: Uint8Array } = {};
  add_vcpu(vm, function* () {
    out.fw = yield* guestLoad(RAM_GPA, PAGE_SIZE);
    out.digest = yield* pvmfw_measure(RAM_GPA + PG, payload.length);
    yield* hlt();
  });
  expect(run(vm)).toBe(0);
  expect(vm.vcpu!.run.exit_reason).toBe(KVM_EXIT_HLT);
  return { vm, digest: out.digest!, fw: out.fw! };
}

describe('launch: donation of the VMM\'s memory, pvmfw, and pvmfw\'s payload measurement', () => {
  test('the same payload gives the same measurement; a changed byte or swapped pages another; pvmfw is the hypervisor\'s image', () => {
    const payload = bytes(PAYLOAD_PAGES * PAGE_SIZE, 1);
    const a = launch(payload);
    expect(a.digest).toBe(pvmfw_measure_payload(payload));
    expect(launch(bytes(PAYLOAD_PAGES * PAGE_SIZE, 1)).digest).toBe(a.digest);
    const changed = payload.slice();
    changed[2 * PAGE_SIZE + 5] ^= 0x80;
    expect(launch(changed).digest).not.toBe(a.digest);
    const swapped = payload.slice();
    swapped.set(payload.subarray(0, PAGE_SIZE), PAGE_SIZE);
    swapped.set(payload.subarray(PAGE_SIZE, 2 * PAGE_SIZE), 0);
    expect(launch(swapped).digest).not.toBe(a.digest);
    // The hypervisor loaded pvmfw over what the VMM had written at pvmfw's IPA.
    expect(Buffer.from(a.fw).equals(Buffer.from(PVMFW))).toBe(true);
  });

  test('KVM_CAP_ARM_PROTECTED_VM: info, and the firmware IPA fixed once the hypervisor\'s VM exists', () => {
    const { vm } = launch(bytes(PAGE_SIZE, 2));
    const { p } = vm.h;
    expect(p.ioctl(vm.h.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PROTECTED_VM)).toBe(1);
    const info: { firmware_size?: bigint } = {};
    expect(p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, args: [info] })).toBe(0);
    expect(info.firmware_size).toBe(BigInt(PAGE_SIZE));
    expect(p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA, args: [0] })).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: 7, args: [0] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, args: [0, 1] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const np = vm_create(vm.h, 0n);
    expect(p.ioctl(np.fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_INFO, args: [info] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm.h.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_PROTECTED | 0x100n)).toBe(-1);
    expect(p.ioctl(vm.h.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_PROTECTED | 20n)).toBe(-1);
  });
});

describe('MEM_SHARE / MEM_UNSHARE: the same page, contents preserved both ways', () => {
  test('private -> shared -> private with the VMM reading and writing the shared page', () => {
    const h = pkvm_host();
    const vm = vm_create(h);
    const page = RAM_GPA + 2n * PG;
    const out: { share?: readonly bigint[]; unshare?: readonly bigint[]; share_again?: readonly bigint[]; seen?: Uint8Array; meminfo?: readonly bigint[] } = {};
    add_vcpu(vm, function* () {
      out.meminfo = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID);
      yield* guestStore(page, new Uint8Array(64).fill(0xa1));
      out.share = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page, 1, 0);
      yield* hlt();
      out.seen = yield* guestLoad(page, 64);
      out.unshare = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID, page, 1, 0);
      yield* hlt();
      yield* guestStore(page, new Uint8Array(64).fill(0xc3));
      out.share_again = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page, 1, 0);
      yield* hlt();
    });
    expect(run(vm)).toBe(0);
    expect(out.meminfo).toEqual([BigInt(PAGE_SIZE)]);
    expect(out.share).toEqual([SMCCC_RET_SUCCESS, 1n]);
    const hyp = pkvm_hyp(h.kernel);
    const pfn = pfn_of(vm, page);
    expect(hyp.host_state(pfn)).toBe(PKVM_PAGE_SHARED_BORROWED);
    expect(pkvm_vm(vm.kvm)!.hyp!.pgt.get(Number(page >> 12n))!.state).toBe(PKVM_PAGE_SHARED_OWNED);
    const hva = vm.hva + 2n * PG;
    expect(h.p.load(hva, 64)).toEqual(new Uint8Array(64).fill(0xa1));
    expect(h.p.store(hva, new Uint8Array(64).fill(0xb2))).toBe(0);
    expect(run(vm)).toBe(0);
    expect(out.seen).toEqual(new Uint8Array(64).fill(0xb2));
    expect(out.unshare).toEqual([SMCCC_RET_SUCCESS, 1n]);
    expect(hyp.host_state(pfn)).toBe(PKVM_NOPAGE);
    expect(h.p.load(hva, 1)).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });
    // The page is the guest's again, with what it held; shared once more, the host sees the guest's bytes.
    expect(h.kernel.phys.read(pfn as never, 0, 4)).toEqual(new Uint8Array(4).fill(0xb2));
    expect(run(vm)).toBe(0);
    expect(out.share_again).toEqual([SMCCC_RET_SUCCESS, 1n]);
    expect(h.p.load(hva, 64)).toEqual(new Uint8Array(64).fill(0xc3));
  });

  test('sharing an IPA the guest never touched faults it in first (donating the VMM\'s bytes); bad calls are refused', () => {
    const h = pkvm_host();
    const vm = vm_create(h);
    const page = RAM_GPA + 5n * PG;
    expect(h.p.store(vm.hva + 5n * PG, new Uint8Array(8).fill(0x5c))).toBe(0);
    const out: Record<string, readonly bigint[]> = {};
    add_vcpu(vm, function* () {
      out.share = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page, 0, 0);
      out.twice = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page, 1, 0);
      out.unaligned = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page + 8n, 1, 0);
      out.x3 = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, page, 1, 1);
      out.unshare_unmapped = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID, RAM_GPA + 9n * PG, 1, 0);
      out.unknown = yield* fwcall(0xc6000042n);
      yield* hlt();
    });
    const { cost } = h.kernel.cost.measure('share', () => expect(run(vm)).toBe(0));
    expect(out.share).toEqual([SMCCC_RET_SUCCESS, 1n]);
    for (const k of ['twice', 'unaligned', 'x3', 'unshare_unmapped']) expect(out[k]).toEqual([SMCCC_RET_INVALID_PARAMETER]);
    expect(out.unknown).toEqual([SMCCC_RET_NOT_SUPPORTED]);
    expect(h.p.load(vm.hva + 5n * PG, 8)).toEqual(new Uint8Array(8).fill(0x5c));
    const n = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    expect(n('pkvm_hvc')).toBeGreaterThanOrEqual(3);
    expect(n('pkvm_stage2_update')).toBeGreaterThanOrEqual(3);
    expect(n('kvm_exit_roundtrip')).toBeGreaterThanOrEqual(1);
  });
});

describe('illegal accesses (vendor-models.md §5.4)', () => {
  function donated(): { vm: Vm; pfn: number } {
    const h = pkvm_host();
    const vm = vm_create(h);
    add_vcpu(vm, function* () {
      yield* guestStore(RAM_GPA, Uint8Array.of(1, 2, 3));
      yield* hlt();
    });
    expect(run(vm)).toBe(0);
    return { vm, pfn: pfn_of(vm, RAM_GPA) };
  }

  test('host user: SIGSEGV SEGV_ACCERR for reads, writes and partial writes of a donated page', () => {
    const { vm } = donated();
    expect(vm.h.p.load(vm.hva, 1)).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });
    expect(vm.h.p.store(vm.hva + 8n, Uint8Array.of(9))).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });
    expect(vm.h.p.store(vm.hva, new Uint8Array(PAGE_SIZE))).toMatchObject({ signo: 'SIGSEGV' });
    // Its neighbour, never donated, is still the VMM's.
    expect(vm.h.p.load(vm.hva + PG, 1)).toBeInstanceOf(Uint8Array);
  });

  test('host kernel: the injected abort is fixed up in a uaccess copy and an oops elsewhere', () => {
    const { vm, pfn } = donated();
    const k = vm.h.kernel;
    for (const [write, len] of [[false, 64], [true, 8], [true, PAGE_SIZE]] as const) {
      expect(mm_host_access(k, pfn, write, 'kernel', 0, len)).toBe(MM_HOST_ACCESS_ABORT);
      expect(uaccess_host_access(k, pfn, write, 0, len)).toBe(-Errno.EFAULT);
      expect(() => kernel_host_access(k, pfn, write, 0, len)).toThrow(KernelOops);
      expect(vm.kvm.x86_ops.host_access(vm.kvm, pfn, write)).toMatchObject({ kind: 'fault' });
    }
  });

  test('device DMA: the IOMMU mirrors the host stage-2; a page mapped for DMA cannot be donated', () => {
    const { vm, pfn } = donated();
    const k = vm.h.kernel;
    const dev = new Device('0000:00:02.0', new Iommu(k, iommu_vendor_ops_merge(pkvm_iommu_ops)), 'vfio-pci');
    expect(dev.iommu.ops.dma_access(dev, pfn as never, false)).toMatchObject({ kind: 'fault' });
    expect(dev.iommu.ops.dma_access(dev, pfn_of(vm, RAM_GPA + PG) as never, true)).toEqual({ kind: 'ok' });
    const hyp = pkvm_hyp(k);
    const free = k.page_alloc.alloc_page(0);
    expect(hyp.__pkvm_host_use_dma(free, 1)).toBe(0);
    expect(hyp.__pkvm_host_donate_guest(free, 100, pkvm_vm(vm.kvm)!.hyp!)).toBe(-Errno.EINVAL);
    expect(hyp.__pkvm_host_use_dma(pfn, 1)).toBe(-Errno.EPERM);
    hyp.__pkvm_host_unuse_dma(free, 1);
    expect(hyp.__pkvm_host_donate_guest(free, 100, pkvm_vm(vm.kvm)!.hyp!)).toBe(0);
  });

  test('a donated page is pinned: migration refuses it', () => {
    const { vm, pfn } = donated();
    const k = vm.h.kernel;
    expect(folio_maybe_dma_pinned(k.store, pfn)).toBe(true);
    const list: Folio[] = [];
    expect(isolate_folio_to_list(k, pfn as Folio, list)).toBe(true);
    const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_COMPACTION };
    expect(migrate_pages(k, list, (src) => alloc_migration_target(k, src, mtc), undefined, MIGRATE_SYNC, MR_COMPACTION)).toBe(1);
    putback_movable_pages(k, list);
    expect(pfn_of(vm, RAM_GPA)).toBe(pfn);
  });

  test('teardown: owned pages come back zeroed, shared ones as they are, and unpinned', () => {
    const h = pkvm_host();
    const vm = vm_create(h);
    add_vcpu(vm, function* () {
      yield* guestStore(RAM_GPA, new Uint8Array(16).fill(0x11));
      yield* guestStore(RAM_GPA + PG, new Uint8Array(16).fill(0x22));
      yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, RAM_GPA + PG, 1, 0);
      yield* hlt();
    });
    expect(run(vm)).toBe(0);
    const owned = pfn_of(vm, RAM_GPA);
    const shared = pfn_of(vm, RAM_GPA + PG);
    const { cost } = h.kernel.cost.measure('teardown', () => {
      for (const fd of [vm.vcpu_fd, vm.fd]) expect(h.p.close(fd)).toBe(0);
    });
    const hyp = pkvm_hyp(h.kernel);
    expect(hyp.host_state(owned)).toBe(PKVM_PAGE_OWNED);
    expect(hyp.vms.size).toBe(0);
    expect(h.p.load(vm.hva, 16)).toEqual(new Uint8Array(16));
    expect(h.p.load(vm.hva + PG, 16)).toEqual(new Uint8Array(16).fill(0x22));
    expect(folio_maybe_dma_pinned(h.kernel.store, owned)).toBe(false);
    expect(folio_maybe_dma_pinned(h.kernel.store, shared)).toBe(false);
    expect(cost.items.find((i) => i.name === 'pkvm_cmo_poc_4k')?.count).toBe(1);
  });

  test('a non-protected VM\'s pages are lent, not donated: the host keeps access', () => {
    const h = pkvm_host();
    const vm = vm_create(h, 0n);
    let share: readonly bigint[] = [];
    add_vcpu(vm, function* () {
      yield* guestStore(RAM_GPA, Uint8Array.of(7));
      share = yield* fwcall(ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID, RAM_GPA, 1, 0);
      yield* hlt();
    });
    expect(run(vm)).toBe(0);
    expect(share).toEqual([SMCCC_RET_NOT_SUPPORTED]);
    const pfn = pfn_of(vm, RAM_GPA);
    expect(pkvm_hyp(h.kernel).host_state(pfn)).toBe(PKVM_PAGE_SHARED_OWNED);
    expect(h.p.load(vm.hva, 1)).toEqual(Uint8Array.of(7));
    // The VMM unmaps its memory: KVM zaps the guest mapping and the hypervisor unshares the page.
    expect(h.p.munmap(vm.hva, RAM_PAGES * PAGE_SIZE)).toBe(0);
    expect(pkvm_hyp(h.kernel).host_state(pfn)).toBe(PKVM_PAGE_OWNED);
  });
});

describe('page sizes', () => {
  test('a THP-backed 2 MiB guest mapping is donated as 512 pages (ACK maps PMD-sized guest memory)', () => {
    const h = pkvm_host();
    const fd = h.p.ioctl(h.kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_PROTECTED);
    const SZ_2M = 2n << 20n;
    const raw = h.p.mmap(0, 2n * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const hva = raw + ((SZ_2M - (raw % SZ_2M)) % SZ_2M);
    expect(h.p.madvise(hva, SZ_2M, MADV_HUGEPAGE)).toBe(0);
    expect(h.p.store(hva + 3n * PG, Uint8Array.of(0x33))).toBe(0);
    expect(h.p.ioctl(fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: RAM_GPA, memory_size: SZ_2M, userspace_addr: hva })).toBe(0);
    const vm: Vm = { h, fd, kvm: h.p.task.files.lookup(fd)!.private_data as Kvm, hva, vcpu_fd: -1, vcpu: null };
    let seen: Uint8Array | null = null;
    add_vcpu(vm, function* () {
      seen = yield* guestLoad(RAM_GPA + 3n * PG, 1);
      yield* hlt();
    });
    expect(run(vm)).toBe(0);
    expect(seen).toEqual(Uint8Array.of(0x33));
    const hv = pkvm_vm(vm.kvm)!.hyp!;
    expect(hv.pgt.size).toBe(512);
    const hyp = pkvm_hyp(h.kernel);
    expect(hyp.host_state(pfn_of(vm, RAM_GPA + 511n * PG))).toBe(PKVM_NOPAGE);
    expect(h.p.load(hva + 100n * PG, 1)).toMatchObject({ signo: 'SIGSEGV' });
  });
});

describe('the hypervisor\'s page-state rules (mem_protect.c)', () => {
  test('donate, share and unshare refuse pages in the wrong state', () => {
    const h = pkvm_host();
    const hyp = pkvm_hyp(h.kernel);
    const pvm = hyp.__pkvm_init_vm(true, -1n);
    const npvm = hyp.__pkvm_init_vm(false, -1n);
    const a = h.kernel.page_alloc.alloc_page(0);
    const b = h.kernel.page_alloc.alloc_page(0);
    expect(hyp.__pkvm_host_share_guest(a, 1, pvm)).toBe(-Errno.EINVAL);
    expect(hyp.__pkvm_host_donate_guest(a, 1, npvm)).toBe(-Errno.EINVAL);
    expect(hyp.__pkvm_host_donate_guest(a, 1, pvm)).toBe(0);
    expect(hyp.__pkvm_host_donate_guest(a, 2, pvm)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_host_donate_guest(b, 1, pvm)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_host_share_guest(a, 1, npvm)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_host_share_guest(b, 1, npvm)).toBe(0);
    const npvm2 = hyp.__pkvm_init_vm(false, -1n);
    expect(hyp.__pkvm_host_share_guest(b, 3, npvm2)).toBe(0);
    expect(hyp.__pkvm_host_unshare_guest(3, npvm2)).toBe(0);
    expect(hyp.host_state(b)).toBe(PKVM_PAGE_SHARED_OWNED);
    expect(hyp.__pkvm_host_unshare_guest(1, npvm)).toBe(0);
    expect(hyp.host_state(b)).toBe(PKVM_PAGE_OWNED);
    expect(hyp.__pkvm_host_unshare_guest(1, npvm)).toBe(-Errno.ENOENT);
    expect(hyp.__pkvm_guest_unshare_host(pvm, 1, 1)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_guest_share_host(pvm, 5, 1)).toBe(-Errno.EFAULT);
    expect(hyp.__pkvm_guest_share_host(pvm, 1, 1)).toBe(1);
    expect(hyp.__pkvm_guest_share_host(pvm, 1, 1)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_reclaim_dying_guest_page(pvm, a, 1)).toBe(-Errno.EINVAL);
    expect(hyp.__pkvm_start_teardown_vm(pvm)).toBe(0);
    expect(hyp.__pkvm_reclaim_dying_guest_page(pvm, b, 1)).toBe(-Errno.EPERM);
    expect(hyp.__pkvm_reclaim_dying_guest_page(pvm, a, 1)).toBe(0);
    expect(hyp.host_state(a)).toBe(PKVM_PAGE_OWNED);
  });
});
