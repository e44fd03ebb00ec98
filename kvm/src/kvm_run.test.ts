/**
 * The vCPU mapping (kvm_main.c kvm_vcpu_mmap(), kvm_vcpu_fault()) and struct kvm_run in it
 * (kvm_run.ts): what a VMM reads and writes through the page is what KVM reads and writes, as
 * the KVM selftests rely on (vcpu->run is that mapping). The trace test/traces/kvm-run-mmap
 * holds what Linux 6.18 answered for the same.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import type { KvmVcpu } from './kvm_host.js';
import {
  KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO, KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_GET_REGS, KVM_PRE_FAULT_MEMORY, KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_REGS, KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';
import { kvm_vcpu_set_guest_program } from './x86.js';
import { guestLoad, guestStore, pioIn, pioOut } from './guest.js';

const MEM = 0x10000;
const PG = 4096n;

function host(sw = false): { p: Process; kernel: Kernel } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar(sw ? { x86_ops: kvm_sw_protected_x86_ops } : {})).resolve(Kernel);
  return { p: new Process(kernel), kernel };
}

/** A default VM with anonymous memory at GPA 0, vCPU `id`, and its first three pages mapped shared. */
interface Setup {
  p: Process;
  kernel: Kernel;
  vm: number;
  vcpu_fd: number;
  vcpu: KvmVcpu;
  run: bigint;
}

function setup(id = 0): Setup {
  const { p, kernel } = host();
  const kvm = p.open('/dev/kvm');
  const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
  const hva = p.mmap(0, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: 0, memory_size: MEM, userspace_addr: hva })).toBe(0);
  const vcpu_fd = p.ioctl(vm, KVM_CREATE_VCPU, id);
  const vcpu = p.task.files.lookup(vcpu_fd)!.private_data as KvmVcpu;
  const run = p.mmap(0, 3n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
  return { p, kernel, vm, vcpu_fd, vcpu, run };
}

const u32 = (b: Uint8Array | { signo: string }, at: number): number => new DataView((b as Uint8Array).buffer).getUint32(at, true);
const u64 = (b: Uint8Array | { signo: string }, at: number): bigint => new DataView((b as Uint8Array).buffer).getBigUint64(at, true);

describe('the vCPU mapping (kvm_vcpu_fault)', () => {
  test('kvm_run, the port I/O page and the coalesced MMIO ring are kernel pages allocated with the VM and vCPU, freed with them', () => {
    const { p, kernel } = host();
    const kvm = p.open('/dev/kvm');
    const free0 = kernel.page_alloc.nr_free_pages();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free0 - 1);
    const vcpu_fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free0 - 3);
    const run = p.mmap(0, 3n * PG, PROT_READ, MAP_SHARED, vcpu_fd, 0);
    expect(p.load(run, 16)).toEqual(new Uint8Array(16));
    /* the mapping holds the vCPU file, which holds the VM: nothing is freed until it goes */
    expect(p.close(vcpu_fd)).toBe(0);
    expect(p.close(vm)).toBe(0);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free0 - 3);
    expect(p.munmap(run, 3n * PG)).toBe(0);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free0);
  });

  test('pages past the third are SIGBUS; a private mapping\'s write copies the page and leaves kvm_run alone', () => {
    const s = setup();
    expect(s.p.munmap(s.run, 3n * PG)).toBe(0);
    s.run = s.p.mmap(0, 4n * PG, PROT_READ, MAP_SHARED, s.vcpu_fd, 0);
    expect(s.p.load(s.run + 3n * PG, 1)).toEqual({ signo: 'SIGBUS', si_code: 'BUS_ADRERR', si_addr: s.run + 3n * PG });
    const priv = s.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, s.vcpu_fd, 0);
    expect(s.p.store(priv + 8n, Uint8Array.of(0xaa))).toBe(0);
    expect(s.p.load(priv + 8n, 1)).toEqual(Uint8Array.of(0xaa));
    expect(s.p.load(s.run + 8n, 1)).toEqual(Uint8Array.of(0));
  });
});

describe('struct kvm_run through the mapping', () => {
  test('an MMIO read exit shows in the page; mmio.data stored through the mapping completes it', () => {
    const s = setup();
    let got: Uint8Array | undefined;
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      got = yield* guestLoad(0x100000, 4);
      yield* guestStore(0x2000, got);
    });
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    const page = s.p.load(s.run, 64);
    expect(u32(page, 8)).toBe(KVM_EXIT_MMIO);
    expect(u64(page, 24)).toBe(0xfee00900n);
    expect(u64(page, 32)).toBe(0x100000n);
    expect(u32(page, 48)).toBe(4);
    expect(s.p.store(s.run + 40n, Uint8Array.of(0xde, 0xad, 0xbe, 0xef))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(got).toEqual(Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(u32(s.p.load(s.run, 16), 8)).toBe(KVM_EXIT_HLT);
  });

  test('port I/O: an OUT\'s data is in the data page, an IN takes what was stored there', () => {
    const s = setup();
    let v: bigint | undefined;
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* pioOut(0x3f8, 0x41, 1);
      v = yield* pioIn(0x1000, 1);
    });
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    const page = s.p.load(s.run, 48);
    expect(u32(page, 8)).toBe(KVM_EXIT_IO);
    expect(u64(page, 40)).toBe(4096n);
    expect(s.p.load(s.run + PG, 1)).toEqual(Uint8Array.of(0x41));
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(s.p.store(s.run + PG, Uint8Array.of(0x99))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(v).toBe(0x99n);
  });

  test('immediate_exit stored through the mapping makes KVM_RUN EINTR; the object\'s own stays honoured', () => {
    const s = setup(1);
    expect(s.p.store(s.run + 1n, Uint8Array.of(1))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    /* post_kvm_run_save() ran: vCPU 1 is no BSP */
    expect(u64(s.p.load(s.run, 32), 24)).toBe(0xfee00800n);
    /* cleared through the mapping: the guest runs (and halts) */
    kvm_vcpu_set_guest_program(s.vcpu, function* () {});
    expect(s.p.store(s.run + 1n, Uint8Array.of(0))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(u32(s.p.load(s.run, 16), 8)).toBe(KVM_EXIT_HLT);
    /* set on the object (what a selftest's vcpu->run is), the mapping untouched */
    s.vcpu.run.immediate_exit = 1;
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
  });

  test('a KVM_EXIT_MEMORY_FAULT of KVM_PRE_FAULT_MEMORY is in the page', () => {
    const { p } = host(true);
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const hva = p.mmap(0, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: 0, memory_size: MEM, userspace_addr: hva })).toBe(0);
    expect(p.ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0, size: 4096, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    const vcpu_fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    const run = p.mmap(0, PG, PROT_READ, MAP_SHARED, vcpu_fd, 0);
    expect(p.ioctl(vcpu_fd, KVM_PRE_FAULT_MEMORY, { gpa: 0, size: 4096 })).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    const page = p.load(run, 56);
    expect(u32(page, 8)).toBe(KVM_EXIT_MEMORY_FAULT);
    expect([u64(page, 40), u64(page, 48)]).toEqual([0n, 4096n]);
  });
});

describe('what KVM_RUN reads of kvm_run (kvm_arch_vcpu_ioctl_run(); kvm-run-sync-cr8.kernel.jsonl)', () => {
  test('kvm_valid_regs/kvm_dirty_regs beyond REGS|SREGS|EVENTS and a cr8 with reserved bits are EINVAL; cr8 comes back', () => {
    const s = setup();
    const run = (): number => (s.p.ioctl(s.vcpu_fd, KVM_RUN, 0) === 0 ? 0 : s.p.errno);
    const program = (): void => kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* guestStore(0x1000, Uint8Array.of(1));
    });
    program();
    const le64 = (v: bigint): Uint8Array => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      return b;
    };
    expect(s.p.store(s.run + 16n, le64(5n))).toBe(0);
    expect(run()).toBe(0);
    expect(u64(s.p.load(s.run, 24) as Uint8Array, 16)).toBe(5n);
    // a failed KVM_RUN still ends with post_kvm_run_save(): the page's cr8 is the vCPU's again
    expect(s.p.store(s.run + 16n, le64(0x10n))).toBe(0);
    expect(run()).toBe(Errno.EINVAL);
    expect(u64(s.p.load(s.run, 24) as Uint8Array, 16)).toBe(5n);
    for (const [at, v] of [[288n, 8n], [296n, 1n << 63n]] as const) {
      expect(s.p.store(s.run + at, le64(v))).toBe(0);
      expect(run()).toBe(Errno.EINVAL);
      expect(s.p.store(s.run + at, le64(0n))).toBe(0);
    }
    // the valid bits are accepted (of the register sets, only KVM_SYNC_X86_REGS is modelled)
    expect(s.p.store(s.run + 288n, le64(7n))).toBe(0);
    program();
    expect(run()).toBe(0);
  });

  test('KVM_SYNC_X86_REGS: KVM_RUN takes s.regs.regs when dirty (clearing the bit) and leaves the registers there when valid, even on failure', () => {
    const s = setup();
    const le64 = (v: bigint): Uint8Array => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      return b;
    };
    /* rax = 0x1234 and rip = 0x2000 (fields 0 and 16 of struct kvm_regs at @304), dirty and valid */
    expect(s.p.store(s.run + 304n, le64(0x1234n))).toBe(0);
    expect(s.p.store(s.run + 304n + 16n * 8n, le64(0x2000n))).toBe(0);
    expect(s.p.store(s.run + 288n, le64(1n))).toBe(0);
    expect(s.p.store(s.run + 296n, le64(1n))).toBe(0);
    expect(s.p.store(s.run + 1n, Uint8Array.of(1))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    const regs: Record<string, bigint> = {};
    expect(s.p.ioctl(s.vcpu_fd, KVM_GET_REGS, regs)).toBe(0);
    expect([regs.rax, regs.rip, regs.rflags, regs.rdx]).toEqual([0x1234n, 0x2000n, 2n, 0n]);
    const page = s.p.load(s.run + 288n, 160) as Uint8Array;
    expect([u64(page, 0), u64(page, 8)]).toEqual([1n, 0n]);
    /* store_regs() wrote what __set_regs() made of it: rflags has bit 1 */
    expect([u64(page, 16), u64(page, 16 + 16 * 8), u64(page, 16 + 17 * 8)]).toEqual([0x1234n, 0x2000n, 2n]);
    /* KVM_SET_REGS, then an invalid dirty bit: EINVAL before sync_regs(), and still stored */
    expect(s.p.ioctl(s.vcpu_fd, KVM_SET_REGS, { rax: 7n, rip: 0xfff0n })).toBe(0);
    expect(s.p.store(s.run + 296n, le64(9n))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    expect(u64(s.p.load(s.run + 304n, 8) as Uint8Array, 0)).toBe(7n);
    /* not valid: the registers stay user space's */
    expect(s.p.store(s.run + 288n, le64(0n))).toBe(0);
    expect(s.p.store(s.run + 296n, le64(0n))).toBe(0);
    expect(s.p.store(s.run + 304n, le64(0x55n))).toBe(0);
    expect(s.p.ioctl(s.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(u64(s.p.load(s.run + 304n, 8) as Uint8Array, 0)).toBe(0x55n);
  });
});
