import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, RingSink, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, Kernel, MADV_DONTNEED, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE,
  MAP_SHARED, PROT_READ, PROT_WRITE, Process, memory_failure, mmRegistrar, pagemap_pfn,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_none_x86_ops, kvm_sw_protected_x86_ops } from '../kvm.js';
import type { Kvm, KvmVcpu } from '../kvm_host.js';
import type { KvmX86Ops } from '../kvm_x86_ops.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM,
  KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_PRE_FAULT_MEMORY, KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
} from '../uapi.js';
import {
  PFERR_GUEST_FINAL_MASK, PFERR_PRESENT_MASK, PFERR_PRIVATE_ACCESS, PFERR_WRITE_MASK, RET_PF_EMULATE, RET_PF_FIXED,
  RET_PF_RETRY, RET_PF_SPURIOUS, kvm_mmu_page_fault, kvm_mmu_take_pending_signal, kvm_mmu_translate, tdp_fault_error_code,
} from './mmu.js';
import { PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K } from './spte.js';
import { kvm_tdp_mmu_count_sptes, kvm_tdp_mmu_spte, kvm_tdp_mmu_spte_level } from './tdp_mmu.js';

const MiB = 1024 * 1024;
const W = PFERR_WRITE_MASK;

interface Vm {
  kernel: Kernel;
  p: Process;
  vm: number;
  kvm: Kvm;
  vcpu: KvmVcpu;
  vcpu_fd: number;
}

/** A host with `ops` (SW_PROTECTED by default), a process, a VM of `type` and one vCPU. */
function setup(opts: { ops?: KvmX86Ops; type?: number; nr_pages?: number } = {}): Vm {
  const ops = opts.ops ?? kvm_sw_protected_x86_ops;
  const container = createRootContainer({}, mmRegistrar({ nr_pages: opts.nr_pages ?? 16384 }), kvmRegistrar({ x86_ops: ops }));
  const kernel = container.resolve(Kernel);
  const p = new Process(kernel);
  const type = opts.type ?? (ops === kvm_none_x86_ops ? KVM_X86_DEFAULT_VM : KVM_X86_SW_PROTECTED_VM);
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, type);
  expect(vm, `KVM_CREATE_VM errno ${p.errno}`).toBeGreaterThan(0);
  const kvm = p.task.files.lookup(vm)!.private_data as Kvm;
  const vcpu_fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  expect(vcpu_fd).toBeGreaterThan(0);
  return { kernel, p, vm, kvm, vcpu: kvm.vcpus.get(0)!, vcpu_fd };
}

/** Anonymous memory of `size` bytes whose start is aligned to `align`. */
function anon(v: Vm, size: number, align = PAGE_SIZE, prot = PROT_READ | PROT_WRITE): bigint {
  const raw = v.p.mmap(0, size + align, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(raw).not.toBe(MAP_FAILED);
  const a = BigInt(align);
  return (raw + a - 1n) / a * a;
}

function memslot(v: Vm, slot: number, gpa: number, size: number, hva: bigint, flags = 0, guest_memfd = 0, off = 0): number {
  return v.p.ioctl(v.vm, KVM_SET_USER_MEMORY_REGION2, {
    slot, flags, guest_phys_addr: gpa, memory_size: size, userspace_addr: hva, guest_memfd, guest_memfd_offset: off,
  });
}

function set_attr(v: Vm, gpa: number, size: number, private_: boolean): void {
  const r = v.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size, attributes: private_ ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0 });
  expect(r, `KVM_SET_MEMORY_ATTRIBUTES errno ${v.p.errno}`).toBe(0);
}

function gmem_fd(v: Vm, size: number, flags = 0): number {
  const fd = v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size, flags });
  expect(fd, `KVM_CREATE_GUEST_MEMFD errno ${v.p.errno}`).toBeGreaterThan(0);
  return fd;
}

/** A guest access at gpa as the vCPU loop handles it: the error code of an EPT violation, then the fault. */
function access(v: Vm, gpa: number, write: boolean): number {
  return kvm_mmu_page_fault(v.vcpu, BigInt(gpa), tdp_fault_error_code(v.vcpu, BigInt(gpa), write));
}

function count(v: Vm): [number, number, number] {
  const c = kvm_tdp_mmu_count_sptes(v.kvm);
  return [c[PG_LEVEL_4K], c[PG_LEVEL_2M], c[PG_LEVEL_1G]];
}

function charged(v: Vm, name: string, fn: () => void): number {
  v.kernel.cost.begin('t');
  fn();
  return v.kernel.cost.end('t').items.find((i) => i.name === name)?.count ?? 0;
}

describe('faults through the hva (arch/x86/kvm/mmu/mmu.c kvm_mmu_faultin_pfn, hva_to_pfn)', () => {
  test('a write fault maps the page the host maps, writable; a second access is no fault at all', () => {
    const v = setup();
    const hva = anon(v, 2 * MiB);
    expect(memslot(v, 0, 0, 2 * MiB, hva)).toBe(0);
    expect(v.p.store(hva + 0x3000n, new Uint8Array([7]))).toBe(0);
    expect(access(v, 0x3000, true)).toBe(RET_PF_FIXED);
    const host_pfn = pagemap_pfn(v.p.mm, hva + 0x3000n);
    expect(kvm_mmu_translate(v.vcpu, 3, true)).toBe(host_pfn);
    expect(kvm_tdp_mmu_spte_level(v.kvm, 3)).toBe(PG_LEVEL_4K);
    expect(count(v)).toEqual([1, 0, 0]);
    /* The EPT violation that raced another vCPU's fix: the present, writable SPTE makes it spurious. */
    expect(kvm_mmu_page_fault(v.vcpu, 0x3000n, W | PFERR_PRESENT_MASK | PFERR_GUEST_FINAL_MASK)).toBe(RET_PF_SPURIOUS);
  });

  test('a read of never-touched anonymous memory maps the zero page read-only; the write after it breaks CoW via the notifier and retries', () => {
    const v = setup();
    const hva = anon(v, 2 * MiB);
    expect(memslot(v, 0, 0, 2 * MiB, hva)).toBe(0);
    expect(access(v, 0x5000, false)).toBe(RET_PF_FIXED);
    const zero = kvm_mmu_translate(v.vcpu, 5, false);
    expect(zero).toBe(v.kernel.store.zero_pfn);
    expect(kvm_mmu_translate(v.vcpu, 5, true)).toBeUndefined();
    const seq = v.kvm.mmu_invalidate_seq;
    /* GUP(FOLL_WRITE) replaces the zero page: the notifier zaps the SPTE and bumps the sequence. */
    expect(access(v, 0x5000, true)).toBe(RET_PF_RETRY);
    expect(v.kvm.mmu_invalidate_seq).toBe(seq + 1);
    expect(count(v)).toEqual([0, 0, 0]);
    expect(access(v, 0x5000, true)).toBe(RET_PF_FIXED);
    const pfn = kvm_mmu_translate(v.vcpu, 5, true);
    expect(pfn).not.toBe(zero);
    expect(pfn).toBe(pagemap_pfn(v.p.mm, hva + 0x5000n));
  });

  test('a read fault of a page the host maps writable is mapped writable (hva_to_pfn_fast), and the folio is marked dirty', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    expect(v.p.store(hva, new Uint8Array([1]))).toBe(0);
    expect(access(v, 0, false)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 0, true)).toBe(pagemap_pfn(v.p.mm, hva));
  });

  test('KVM_MEM_READONLY: reads map read-only, writes are emulated (MMIO exit)', () => {
    const v = setup({ ops: kvm_none_x86_ops });
    const hva = anon(v, 64 * 1024);
    expect(v.p.store(hva, new Uint8Array([1]))).toBe(0);
    expect(memslot(v, 0, 0, 64 * 1024, hva, KVM_MEM_READONLY)).toBe(0);
    expect(access(v, 0, false)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 0, false)).toBe(pagemap_pfn(v.p.mm, hva));
    expect(kvm_mmu_translate(v.vcpu, 0, true)).toBeUndefined();
    expect(access(v, 0, true)).toBe(RET_PF_EMULATE);
    expect(kvm_tdp_mmu_spte(v.kvm, 0)!.spte & 2n).toBe(0n);
  });

  test('a write to a PROT_READ host mapping is -EFAULT without a memory-fault exit; a read maps it read-only', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024, PAGE_SIZE, PROT_READ);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    v.vcpu.run.exit_reason = 0;
    expect(access(v, 0x1000, true)).toBe(-Errno.EFAULT);
    expect(v.vcpu.run.exit_reason).toBe(0);
    expect(count(v)).toEqual([0, 0, 0]);
    expect(access(v, 0x1000, false)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 1, true)).toBeUndefined();
  });

  test('poisoned host memory: the SPTE goes with the page; the next fault sends SIGBUS BUS_MCEERR_AR at the hva and retries', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    expect(v.p.store(hva, new Uint8Array(64 * 1024).fill(1))).toBe(0);
    expect(access(v, 0x2000, true)).toBe(RET_PF_FIXED);
    expect(memory_failure(v.kernel, pagemap_pfn(v.p.mm, hva + 0x2000n)!, 0)).toBe(0);
    expect(kvm_mmu_translate(v.vcpu, 2, false)).toBeUndefined();
    expect(kvm_mmu_take_pending_signal(v.vcpu)).toBeUndefined();
    expect(access(v, 0x2000, false)).toBe(RET_PF_RETRY);
    expect(kvm_mmu_take_pending_signal(v.vcpu)).toEqual({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR', si_addr: hva + 0x2000n, si_addr_lsb: 12 });
    expect(kvm_mmu_take_pending_signal(v.vcpu)).toBeUndefined();
    expect(access(v, 0x3000, false)).toBe(RET_PF_FIXED);
    /* KVM_PRE_FAULT_MEMORY: the signal interrupts it (EINTR), the range written back as left. */
    const arg = { gpa: 0x2000, size: 0x2000 };
    expect(v.p.ioctl(v.vcpu_fd, KVM_PRE_FAULT_MEMORY, arg)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EINTR);
    expect(arg).toEqual({ gpa: 0x2000, size: 0x2000 });
    expect(kvm_mmu_take_pending_signal(v.vcpu)?.si_code).toBe('BUS_MCEERR_AR');
  });

  test('no memslot: a shared access is emulated (MMIO), a private one exits KVM_EXIT_MEMORY_FAULT', () => {
    const v = setup();
    expect(access(v, 0x10000, true)).toBe(RET_PF_EMULATE);
    set_attr(v, 0x10000, PAGE_SIZE, true);
    expect(access(v, 0x10000, false)).toBe(-Errno.EFAULT);
    expect(v.vcpu.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(v.vcpu.run.memory_fault).toEqual({ flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: 0x10000n, size: 4096n });
    expect(count(v)).toEqual([0, 0, 0]);
  });

  test('costs: kvm_tdp_fault per fault, spte_set per SPTE installed', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    expect(v.p.store(hva, new Uint8Array(64 * 1024).fill(1))).toBe(0);
    v.kernel.cost.begin('faults');
    for (let i = 0; i < 16; i++) expect(access(v, i * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
    const b = v.kernel.cost.end('faults');
    expect(b.items.find((i) => i.name === 'kvm_tdp_fault')?.count).toBe(16);
    expect(b.items.find((i) => i.name === 'spte_set')?.count).toBe(16);
  });

  test('tracepoints: kvm_page_fault, kvm_mmu_spte_requested, kvm_mmu_set_spte, kvm_tdp_mmu_spte_changed', () => {
    const v = setup();
    const ring = new RingSink();
    v.kernel.tracer.addSink(ring);
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0x100000, 64 * 1024, hva)).toBe(0);
    expect(v.p.store(hva, new Uint8Array([1]))).toBe(0);
    expect(access(v, 0x100000, true)).toBe(RET_PF_FIXED);
    const pfn = pagemap_pfn(v.p.mm, hva)!;
    expect(ring.find('kvm_page_fault')[0]!.args).toMatchObject({ vcpu_id: 0, fault_address: 0x100000n });
    expect(ring.find('kvm_mmu_spte_requested')[0]!.args).toMatchObject({ gfn: 0x100, pfn, level: 1 });
    const set = ring.find('kvm_mmu_set_spte')[0]!.args;
    expect(set).toMatchObject({ gfn: 0x100, level: 1 });
    expect((set.spte as bigint) >> 12n & ((1n << 40n) - 1n)).toBe(BigInt(pfn));
    const changed = ring.find('kvm_tdp_mmu_spte_changed').filter((r) => r.args.level === 1);
    expect(changed).toHaveLength(1);
    expect(changed[0]!.args.new_spte).toBe(set.spte);
  });
});

describe('mapping levels (kvm_mmu_max_mapping_level, kvm_mmu_hugepage_adjust, lpage_info)', () => {
  /** A THP-backed, 2M-aligned slot of 4 MiB at gpa 0x40000000, fully touched. */
  function thp_slot(v: Vm, gpa = 0x40000000, hva_off = 0): bigint {
    const hva = anon(v, 4 * MiB, 2 * MiB);
    expect(v.p.madvise(hva, 4 * MiB, MADV_HUGEPAGE)).toBe(0);
    expect(v.p.store(hva, new Uint8Array(4 * MiB).fill(1))).toBe(0);
    expect(pagemap_pfn(v.p.mm, hva)! % 512).toBe(0);
    expect(memslot(v, 0, gpa, 4 * MiB - hva_off, hva + BigInt(hva_off))).toBe(0);
    return hva;
  }

  test('a THP behind an aligned slot is mapped with one 2M SPTE that covers the whole huge page', () => {
    const v = setup();
    const hva = thp_slot(v);
    expect(access(v, 0x40000000 + 0x5000, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([0, 1, 0]);
    expect(kvm_tdp_mmu_spte_level(v.kvm, 0x40000 + 511)).toBe(PG_LEVEL_2M);
    expect(kvm_mmu_translate(v.vcpu, 0x40000 + 7, true)).toBe(pagemap_pfn(v.p.mm, hva + 7n * 4096n));
  });

  test('gfn and hva misaligned within 2M: every mapping is 4K', () => {
    const v = setup();
    thp_slot(v, 0x40000000, PAGE_SIZE);
    expect(access(v, 0x40000000 + 0x5000, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([1, 0, 0]);
  });

  test('a 4K host mapping (no THP) is mapped 4K even in an aligned slot', () => {
    const v = setup();
    const hva = anon(v, 2 * MiB, 2 * MiB);
    expect(v.p.store(hva, new Uint8Array(2 * MiB).fill(1))).toBe(0);
    expect(memslot(v, 0, 0, 2 * MiB, hva)).toBe(0);
    expect(access(v, 0, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([1, 0, 0]);
  });

  test('mixed attributes in a 2M range force 4K shared mappings; converting back re-allows 2M', () => {
    const v = setup();
    thp_slot(v);
    set_attr(v, 0x40000000 + 0x10000, PAGE_SIZE, true);
    expect(access(v, 0x40000000, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([1, 0, 0]);
    /* The other 2M page of the slot is uniform. */
    expect(access(v, 0x40200000, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([1, 1, 0]);
    set_attr(v, 0x40000000 + 0x10000, PAGE_SIZE, false);
    /* Only the converted gfn is unmapped: the 4K SPTE next to it stays, and still serves its page. */
    expect(count(v)).toEqual([1, 1, 0]);
    expect(access(v, 0x40000000, true)).toBe(RET_PF_SPURIOUS);
    /* A fault elsewhere in the 2M page maps it huge, replacing the page table under it. */
    expect(charged(v, 'spte_zap', () => expect(access(v, 0x40001000, true)).toBe(RET_PF_FIXED))).toBe(1);
    expect(count(v)).toEqual([0, 2, 0]);
  });

  test('a private fault where the attribute is shared (or the reverse) exits KVM_EXIT_MEMORY_FAULT', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    /* guest_access_is_private (SW_PROTECTED: the attribute) is bypassed by passing the bit directly. */
    const err = PFERR_PRIVATE_ACCESS | PFERR_GUEST_FINAL_MASK;
    expect(kvm_mmu_page_fault(v.vcpu, 0x2000n, err)).toBe(-Errno.EFAULT);
    expect(v.vcpu.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(v.vcpu.run.memory_fault).toEqual({ flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: 0x2000n, size: 4096n });
  });

  test('a private access to a memslot without guest_memfd exits KVM_EXIT_MEMORY_FAULT', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    set_attr(v, 0, 64 * 1024, true);
    v.vcpu.run.exit_reason = 0;
    expect(access(v, 0x3000, true)).toBe(-Errno.EFAULT);
    expect(v.vcpu.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(v.vcpu.run.memory_fault.gpa).toBe(0x3000n);
    expect(v.vcpu.run.memory_fault.flags).toBe(KVM_MEMORY_EXIT_FLAG_PRIVATE);
  });
});

describe('guest_memfd faults and conversions', () => {
  function gmem_slot(v: Vm, size: number, flags = 0): { hva: bigint; fd: number } {
    const hva = anon(v, size);
    const fd = gmem_fd(v, size, flags);
    expect(memslot(v, 0, 0, size, hva, KVM_MEM_GUEST_MEMFD, fd, 0)).toBe(0);
    return { hva, fd };
  }

  test('private faults map guest_memfd pages 4K; converting to shared zaps them and shared faults use the hva', () => {
    const v = setup();
    const { hva } = gmem_slot(v, 2 * MiB);
    set_attr(v, 0, 2 * MiB, true);
    for (let i = 0; i < 8; i++) expect(access(v, i * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([8, 0, 0]);
    const private_pfn = kvm_mmu_translate(v.vcpu, 0, true)!;
    expect(private_pfn).not.toBe(pagemap_pfn(v.p.mm, hva));
    const zaps = charged(v, 'spte_zap', () => set_attr(v, 0, 2 * MiB, false));
    expect(zaps).toBe(8);
    expect(count(v)).toEqual([0, 0, 0]);
    expect(v.p.store(hva, new Uint8Array([9]))).toBe(0);
    expect(access(v, 0, true)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 0, true)).toBe(pagemap_pfn(v.p.mm, hva));
  });

  test('a conversion flushes the TLBs of every vCPU once; one that changes nothing costs nothing', () => {
    const v = setup();
    gmem_slot(v, 64 * 1024);
    expect(v.p.ioctl(v.vm, KVM_CREATE_VCPU, 1)).toBeGreaterThan(0);
    set_attr(v, 0, 64 * 1024, true);
    for (let i = 0; i < 4; i++) expect(access(v, i * PAGE_SIZE, false)).toBe(RET_PF_FIXED);
    expect(charged(v, 'kvm_flush_remote_tlbs_per_vcpu', () => set_attr(v, 0, 64 * 1024, false))).toBe(2);
    expect(charged(v, 'kvm_flush_remote_tlbs_per_vcpu', () => set_attr(v, 0, 64 * 1024, false))).toBe(0);
  });

  test('punching a hole in guest_memfd zaps the private SPTEs of the hole only', () => {
    const v = setup();
    const { fd } = gmem_slot(v, 64 * 1024);
    set_attr(v, 0, 64 * 1024, true);
    for (let i = 0; i < 16; i++) expect(access(v, i * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
    expect(v.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * PAGE_SIZE, 4 * PAGE_SIZE)).toBe(0);
    expect(count(v)).toEqual([12, 0, 0]);
    expect(kvm_mmu_translate(v.vcpu, 5, false)).toBeUndefined();
    expect(kvm_mmu_translate(v.vcpu, 8, false)).toBeDefined();
  });

  test('a GMEM_ONLY slot (MMAP|INIT_SHARED, default VM) serves shared faults from guest_memfd: the page the host mmap sees', () => {
    const v = setup({ ops: kvm_none_x86_ops });
    const fd = gmem_fd(v, 64 * 1024, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    const map = v.p.mmap(0, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(map).not.toBe(MAP_FAILED);
    const other = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, other, KVM_MEM_GUEST_MEMFD, fd, 0)).toBe(0);
    expect(v.p.store(map + 0x2000n, new Uint8Array([5]))).toBe(0);
    expect(access(v, 0x2000, true)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 2, true)).toBe(pagemap_pfn(v.p.mm, map + 0x2000n));
  });
});

describe('the mmu_notifier (virt/kvm/kvm_main.c kvm_mmu_notifier_invalidate_range_start)', () => {
  function faulted(v: Vm, n: number): bigint {
    const hva = anon(v, n * PAGE_SIZE);
    expect(memslot(v, 0, 0, n * PAGE_SIZE, hva)).toBe(0);
    expect(v.p.store(hva, new Uint8Array(n * PAGE_SIZE).fill(3))).toBe(0);
    for (let i = 0; i < n; i++) expect(access(v, i * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
    return hva;
  }

  test('MADV_DONTNEED of part of a slot zaps exactly those SPTEs, and bumps mmu_invalidate_seq once', () => {
    const v = setup();
    const hva = faulted(v, 16);
    const seq = v.kvm.mmu_invalidate_seq;
    expect(v.p.madvise(hva + 0x4000n, 0x3000, MADV_DONTNEED)).toBe(0);
    expect(count(v)).toEqual([13, 0, 0]);
    expect(v.kvm.mmu_invalidate_seq).toBe(seq + 1);
    expect(v.kvm.mmu_invalidate_in_progress).toBe(0);
    for (const g of [4, 5, 6]) expect(kvm_mmu_translate(v.vcpu, g, false)).toBeUndefined();
    expect(kvm_mmu_translate(v.vcpu, 7, false)).toBeDefined();
  });

  test('munmap zaps the SPTEs; the next access faults -EFAULT (no VMA)', () => {
    const v = setup();
    const hva = faulted(v, 8);
    const ring = new RingSink();
    v.kernel.tracer.addSink(ring);
    expect(v.p.munmap(hva, 8 * PAGE_SIZE)).toBe(0);
    expect(count(v)).toEqual([0, 0, 0]);
    expect(ring.find('kvm_unmap_hva_range')[0]!.args).toEqual({ start: hva, end: hva + 8n * 4096n });
    expect(access(v, 0, false)).toBe(-Errno.EFAULT);
  });

  test('host memory outside every slot changes nothing and bumps nothing', () => {
    const v = setup();
    faulted(v, 4);
    const elsewhere = anon(v, 4 * PAGE_SIZE);
    expect(v.p.store(elsewhere, new Uint8Array([1]))).toBe(0);
    const seq = v.kvm.mmu_invalidate_seq;
    expect(v.p.munmap(elsewhere, 4 * PAGE_SIZE)).toBe(0);
    expect(v.kvm.mmu_invalidate_seq).toBe(seq);
    expect(count(v)).toEqual([4, 0, 0]);
  });
});

describe('memslot changes', () => {
  test('deleting a slot of a default VM zaps every SPTE (KVM_X86_QUIRK_SLOT_ZAP_ALL); of other VMs, the slot only', () => {
    for (const [ops, left] of [[kvm_none_x86_ops, 0], [kvm_sw_protected_x86_ops, 2]] as const) {
      const v = setup({ ops });
      for (const slot of [0, 1]) {
        const hva = anon(v, 2 * PAGE_SIZE);
        expect(v.p.store(hva, new Uint8Array(2 * PAGE_SIZE).fill(1))).toBe(0);
        expect(memslot(v, slot, slot * 0x10000, 2 * PAGE_SIZE, hva)).toBe(0);
        for (const i of [0, 1]) expect(access(v, slot * 0x10000 + i * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
      }
      expect(count(v)).toEqual([4, 0, 0]);
      expect(memslot(v, 0, 0, 0, 0n)).toBe(0);
      expect(count(v), ops.name).toEqual([left, 0, 0]);
      expect(access(v, 0, false), ops.name).toBe(RET_PF_EMULATE);
    }
  });

  test('dirty logging: enabling splits huge SPTEs and write-protects; writes are fixed in place and logged; disabling maps huge again', () => {
    const v = setup();
    const hva = anon(v, 4 * MiB, 2 * MiB);
    expect(v.p.madvise(hva, 4 * MiB, MADV_HUGEPAGE)).toBe(0);
    expect(v.p.store(hva, new Uint8Array(2 * MiB).fill(1))).toBe(0);
    expect(memslot(v, 0, 0, 2 * MiB, hva)).toBe(0);
    expect(access(v, 0, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([0, 1, 0]);
    expect(memslot(v, 0, 0, 2 * MiB, hva, KVM_MEM_LOG_DIRTY_PAGES)).toBe(0);
    expect(count(v)).toEqual([512, 0, 0]);
    expect(kvm_mmu_translate(v.vcpu, 3, false)).toBeDefined();
    expect(kvm_mmu_translate(v.vcpu, 3, true)).toBeUndefined();
    const slot = v.kvm.memslots[0]!.id_hash.get(0)!;
    expect(slot.dirty_bitmap).not.toBeNull();
    expect(kvm_mmu_page_fault(v.vcpu, 0x3000n, tdp_fault_error_code(v.vcpu, 0x3000n, true))).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 3, true)).toBe(pagemap_pfn(v.p.mm, hva + 0x3000n));
    expect(slot.dirty_bitmap![0]).toBe(1 << 3);
    expect(memslot(v, 0, 0, 2 * MiB, hva, 0)).toBe(0);
    /* Recovered in place from the first leaf (gfn 0, still write-protected): the fast path makes it writable. */
    expect(count(v)).toEqual([0, 1, 0]);
    expect(kvm_mmu_translate(v.vcpu, 3, true)).toBeUndefined();
    expect(access(v, 0x3000, true)).toBe(RET_PF_FIXED);
    expect(count(v)).toEqual([0, 1, 0]);
    expect(kvm_mmu_translate(v.vcpu, 3, true)).toBe(pagemap_pfn(v.p.mm, hva + 0x3000n));
  });
});

describe('KVM_PRE_FAULT_MEMORY (kvm_vcpu_pre_fault_memory, kvm_arch_vcpu_pre_fault_memory)', () => {
  function prefault(v: Vm, arg: unknown): number {
    const r = v.p.ioctl(v.vcpu_fd, KVM_PRE_FAULT_MEMORY, arg);
    return r < 0 ? -v.p.errno : r;
  }

  test('argument checks: EFAULT for no struct; EINVAL for flags, unaligned gpa or size, an empty or wrapping range', () => {
    const v = setup();
    expect(prefault(v, 0)).toBe(-Errno.EFAULT);
    for (const arg of [
      { gpa: 0, size: 4096, flags: 1 }, { gpa: 1, size: 4096 }, { gpa: 0, size: 100 }, { gpa: 0, size: 0 },
      { gpa: 2n ** 64n - 4096n, size: 8192 }, { gpa: 0, size: 4096, flags: 2n ** 64n },
    ]) expect(prefault(v, arg), JSON.stringify(arg, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))).toBe(-Errno.EINVAL);
  });

  test('without TDP (this machine: shadow paging) it is EOPNOTSUPP and the range comes back unchanged', () => {
    const v = setup({ ops: kvm_none_x86_ops });
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva)).toBe(0);
    const arg = { gpa: 0, size: 8192, flags: 0 };
    expect(prefault(v, arg)).toBe(-Errno.EOPNOTSUPP);
    expect(arg).toEqual({ gpa: 0, size: 8192, flags: 0 });
  });

  test('maps the range as read faults and writes back gpa = end, size = 0', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    expect(memslot(v, 0, 0x10000, 64 * 1024, hva)).toBe(0);
    const arg = { gpa: 0x10000n, size: 0x4000n };
    expect(prefault(v, arg)).toBe(0);
    expect(arg).toEqual({ gpa: 0x14000n, size: 0n });
    expect(count(v)).toEqual([4, 0, 0]);
    /* Pre-faulted SPTEs are not Accessed (prefetch). */
    expect(kvm_tdp_mmu_spte(v.kvm, 0x10)!.spte & (1n << 8n)).toBe(0n);
  });

  test('outside every memslot: ENOENT when nothing was done; 0 with the rest written back when some was', () => {
    const v = setup();
    const hva = anon(v, 8 * PAGE_SIZE);
    expect(memslot(v, 0, 0, 8 * PAGE_SIZE, hva)).toBe(0);
    const none = { gpa: 0x100000, size: 0x2000 };
    expect(prefault(v, none)).toBe(-Errno.ENOENT);
    expect(none).toEqual({ gpa: 0x100000, size: 0x2000 });
    const part = { gpa: 0x6000, size: 0x4000 };
    expect(prefault(v, part)).toBe(0);
    expect(part).toEqual({ gpa: 0x8000, size: 0x2000 });
    expect(count(v)).toEqual([2, 0, 0]);
  });

  test('a huge mapping advances gpa to the end of the huge page', () => {
    const v = setup();
    const hva = anon(v, 2 * MiB, 2 * MiB);
    expect(v.p.madvise(hva, 2 * MiB, MADV_HUGEPAGE)).toBe(0);
    expect(v.p.store(hva, new Uint8Array([1]))).toBe(0);
    expect(memslot(v, 0, 0x200000, 2 * MiB, hva)).toBe(0);
    const arg = { gpa: 0x201000, size: 0x1000 };
    expect(prefault(v, arg)).toBe(0);
    expect(arg).toEqual({ gpa: 0x202000, size: 0 });
    expect(count(v)).toEqual([0, 1, 0]);
    const rest = { gpa: 0x202000, size: 0x1fe000 };
    expect(prefault(v, rest)).toBe(0);
    expect(rest).toEqual({ gpa: 0x400000, size: 0 });
  });

  test('private gfns are pre-faulted from guest_memfd; a private gfn of a slot without one is EFAULT', () => {
    const v = setup();
    const hva = anon(v, 64 * 1024);
    const fd = gmem_fd(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva, KVM_MEM_GUEST_MEMFD, fd, 0)).toBe(0);
    const hva2 = anon(v, 64 * 1024);
    expect(memslot(v, 1, 0x100000, 64 * 1024, hva2)).toBe(0);
    set_attr(v, 0, 64 * 1024, true);
    set_attr(v, 0x100000, 64 * 1024, true);
    expect(prefault(v, { gpa: 0, size: 0x10000 })).toBe(0);
    expect(count(v)).toEqual([16, 0, 0]);
    expect(kvm_mmu_translate(v.vcpu, 0, true)).not.toBe(pagemap_pfn(v.p.mm, hva));
    expect(prefault(v, { gpa: 0x100000, size: 0x1000 })).toBe(-Errno.EFAULT);
  });

  test('a pre-fault is read-only where the host page is the zero page', () => {
    const v = setup();
    const hva = anon(v, 4 * PAGE_SIZE);
    expect(memslot(v, 0, 0, 4 * PAGE_SIZE, hva)).toBe(0);
    expect(prefault(v, { gpa: 0, size: 0x1000 })).toBe(0);
    expect(kvm_mmu_translate(v.vcpu, 0, false)).toBe(v.kernel.store.zero_pfn);
    expect(kvm_mmu_translate(v.vcpu, 0, true)).toBeUndefined();
  });
});

describe('mirror roots (TDX-style kvm_has_mirrored_tdp)', () => {
  test('private SPTEs live in the mirror root and reach the vendor; a shared-only unmap leaves them', () => {
    const calls: string[] = [];
    const SHARED_BIT = 2 ** 20;
    const ops: KvmX86Ops = {
      name: 'mirror-test',
      supported_vm_types: 1 << 5,
      tdp_enabled: true,
      gfn_attr_mask: SHARED_BIT,
      has_mirrored_tdp: (kvm) => kvm.arch.vm_type === 5,
      vm_init: (kvm) => {
        kvm.arch.has_private_mem = true;
        kvm.arch.pre_fault_allowed = true;
        return 0;
      },
      guest_access_is_private: (_vcpu, gpa) => (Number(gpa >> 12n) & SHARED_BIT) === 0,
      set_external_spte: (_kvm, gfn, level, pfn) => {
        calls.push(`set ${gfn} ${level} ${pfn}`);
        return 0;
      },
      remove_external_spte: (_kvm, gfn, level) => {
        calls.push(`remove ${gfn} ${level}`);
        return 0;
      },
    };
    const v = setup({ ops, type: 5 });
    const hva = anon(v, 64 * 1024);
    const fd = gmem_fd(v, 64 * 1024);
    expect(memslot(v, 0, 0, 64 * 1024, hva, KVM_MEM_GUEST_MEMFD, fd, 0)).toBe(0);
    set_attr(v, 0, 64 * 1024, true);
    expect(access(v, 0x1000, true)).toBe(RET_PF_FIXED);
    const pfn = kvm_mmu_translate(v.vcpu, 1, true, true)!;
    expect(calls).toEqual([`set 1 1 ${pfn}`]);
    expect(kvm_mmu_translate(v.vcpu, 1, false, false)).toBeUndefined();
    /* The shared alias of gfn 2 faults through the hva into the direct root. */
    expect(v.p.store(hva + 0x2000n, new Uint8Array([1]))).toBe(0);
    set_attr(v, 0x2000, PAGE_SIZE, false);
    expect(access(v, 0x2000 + SHARED_BIT * PAGE_SIZE, true)).toBe(RET_PF_FIXED);
    expect(kvm_mmu_translate(v.vcpu, 2, true, false)).toBe(pagemap_pfn(v.p.mm, hva + 0x2000n));
    expect(v.p.madvise(hva, 64 * 1024, MADV_DONTNEED)).toBe(0);
    expect(kvm_mmu_translate(v.vcpu, 2, false, false)).toBeUndefined();
    expect(kvm_mmu_translate(v.vcpu, 1, false, true)).toBe(pfn);
    /* Converting gfn 1 to shared zaps the private SPTE through the vendor. */
    set_attr(v, 0x1000, PAGE_SIZE, false);
    expect(calls).toEqual([`set 1 1 ${pfn}`, 'remove 1 1']);
    expect(kvm_mmu_translate(v.vcpu, 1, false, true)).toBeUndefined();
  });
});
