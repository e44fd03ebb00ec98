import { describe, expect, test } from 'vitest';
import { CostModel, Errno, RingSink, Tracer, createRootContainer, type Pfn } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, mmRegistrar, vm_sysctl, type File } from '@cocosim/mm';
import { kvm_mmu_translate } from './mmu/mmu.js';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import type { KvmVcpu } from './kvm_host.js';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_EXIT_HLT, KVM_EXIT_HYPERCALL,
  KVM_EXIT_HYPERCALL_LONG_MODE, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_INTR, KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_EXIT_MEMORY_FAULT,
  KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN, KVM_EXIT_UNKNOWN, KVM_HC_MAP_GPA_RANGE, KVM_HC_VAPIC_POLL_IRQ, KVM_INTERNAL_ERROR_EMULATION,
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION,
  KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';
import {
  KVM_EINVAL, KVM_ENOSYS, KVM_EPERM, KVM_RUN_WATCHDOG, kvm_arch_vcpu_ioctl_get_regs, kvm_arch_vcpu_ioctl_set_regs,
  kvm_run_exit, kvm_vcpu_concurrently, kvm_vcpu_guest_access, kvm_vcpu_set_guest_program, kvm_vcpu_signal_after,
  vcpu_arch, type KvmRegs,
} from './x86.js';
import { guestAccept, guestLoad, guestScan, guestStore, hlt, pioIn, pioOut, vmcall, type GuestCode, type GuestProgram } from './guest.js';

const MEM = 0x10000;

interface Setup {
  readonly p: Process;
  readonly vm: number;
  readonly vcpu_fd: number;
  readonly vcpu: KvmVcpu;
  readonly hva: bigint;
  readonly cost: CostModel;
  readonly ring: RingSink;
}

/** A VM of `type` on a host with `vendor`, anonymous memory at GPA 0 (slot 0) when `mem`, vCPU 0. */
function setup(opts: { sw?: boolean; type?: number; mem?: boolean } = {}): Setup {
  const c = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar(opts.sw ? { x86_ops: kvm_sw_protected_x86_ops } : {}));
  const ring = new RingSink(1 << 16);
  c.resolve(Tracer).addSink(ring);
  const p = new Process(c.resolve(Kernel));
  const kvm = p.open('/dev/kvm');
  const vm = p.ioctl(kvm, KVM_CREATE_VM, opts.type ?? KVM_X86_DEFAULT_VM);
  expect(vm).toBeGreaterThan(0);
  let hva = 0n;
  if (opts.mem !== false) {
    hva = p.mmap(0, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: 0, memory_size: MEM, userspace_addr: hva })).toBe(0);
  }
  const vcpu_fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  const vcpu = p.task.files.lookup(vcpu_fd)!.private_data as KvmVcpu;
  return { p, vm, vcpu_fd, vcpu, hva, cost: c.resolve(CostModel), ring };
}

function run(s: Setup): number {
  return s.p.ioctl(s.vcpu_fd, KVM_RUN, 0);
}

function program(s: Setup, code: GuestProgram, cpl = 0): void {
  kvm_vcpu_set_guest_program(s.vcpu, code, { cpl });
}

describe('KVM_RUN (kvm_arch_vcpu_ioctl_run)', () => {
  test('the shadow MMU has no root pages before a memslot exists: ENOSPC, exit_reason UNKNOWN; TDP runs', () => {
    const s = setup({ mem: false });
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.ENOSPC);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_UNKNOWN);
    // With pages (a memslot, or KVM_SET_NR_MMU_PAGES) the vCPU fetches at the reset vector, where
    // no memslot is: the emulator cannot fetch code from MMIO (test_zero_memory_regions).
    const hva = s.p.mmap(0, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(s.p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: 0, memory_size: MEM, userspace_addr: hva })).toBe(0);
    expect(run(s)).toBe(0);
    expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_INTERNAL_ERROR', internal: { suberror: KVM_INTERNAL_ERROR_EMULATION } });
    expect(s.vcpu.run.internal.data.slice(0, 2)).toEqual([0n, 48n]);
    const t = setup({ sw: true, mem: false });
    expect(run(t)).toBe(0);
    expect(t.vcpu.run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    // Memory at the reset vector holds x86 code, which cocosim does not execute: the vCPU halts.
    expect(s.p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { slot: 1, guest_phys_addr: 0xfffff000, memory_size: 4096, userspace_addr: hva })).toBe(0);
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
  });

  test('stores land in the memslot\'s memory, loads read it back; a finished program halts (KVM_EXIT_HLT)', () => {
    const s = setup();
    let got: Uint8Array | undefined;
    program(s, function* (): GuestCode {
      yield* guestStore(0x1ffe, Uint8Array.of(1, 2, 3, 4, 5));
      got = yield* guestLoad(0x1ffc, 8);
    });
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(s.p.load(s.hva + 0x1ffen, 5)).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
    expect(got).toEqual(Uint8Array.of(0, 0, 1, 2, 3, 4, 5, 0));
    expect(vcpu_arch(s.vcpu).stat.halt_exits).toBe(1);
    // The host's writes are what the guest reads.
    expect(s.p.store(s.hva + 0x3000n, Uint8Array.of(0xab))).toBe(0);
    program(s, function* () {
      got = yield* guestLoad(0x3000, 1);
    });
    expect(run(s)).toBe(0);
    expect(got).toEqual(Uint8Array.of(0xab));
  });

  test('immediate_exit: EINTR without entering the guest', () => {
    const s = setup();
    let ran = false;
    program(s, function* () {
      ran = true;
      yield* hlt();
    });
    s.vcpu.run.immediate_exit = 1;
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(ran).toBe(false);
  });

  test('an access the guest page tables do not map is a #PF without IDT: KVM_EXIT_SHUTDOWN', () => {
    const s = setup();
    program(s, function* () {
      yield* guestLoad(1n << 39n, 1);
    });
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_SHUTDOWN);
  });

  test('a signal to the vCPU thread ends KVM_RUN with EINTR and KVM_EXIT_INTR; the guest goes on after', () => {
    const s = setup();
    let n = 0;
    program(s, function* () {
      for (;;) {
        yield* guestLoad(0, 8);
        n++;
      }
    });
    kvm_vcpu_signal_after(s.vcpu, 10);
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_INTR);
    expect(vcpu_arch(s.vcpu).guest.retired).toBe(10);
    // A guest that never exits is cut off by the watchdog, as the oracle's alarm does.
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(n).toBeGreaterThan(KVM_RUN_WATCHDOG / 2);
    expect(vcpu_arch(s.vcpu).stat.signal_exits).toBe(2);
  });

  test('another thread\'s ioctl while the guest runs takes effect at that instruction', () => {
    const s = setup({ sw: true, type: KVM_X86_SW_PROTECTED_VM });
    program(s, function* () {
      for (;;) yield* guestLoad(0x1000, 8);
    });
    // Private memory in a memslot without guest_memfd cannot be mapped: the next access faults out.
    kvm_vcpu_concurrently(s.vcpu, 5, () => {
      expect(s.p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0x1000, size: 0x1000, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    });
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EFAULT);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(s.vcpu.run.memory_fault).toEqual({ flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: 0x1000n, size: 4096n });
    expect(vcpu_arch(s.vcpu).guest.retired).toBe(5);
    // The access was not executed: it faults again on the next KVM_RUN.
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EFAULT);
  });

  test('a non-BSP vCPU of a VM with an in-kernel irqchip waits for INIT/SIPI: only a signal ends KVM_RUN', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_CREATE_IRQCHIP, 0)).toBe(-1);
    const c = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), kvmRegistrar());
    const p = new Process(c.resolve(Kernel));
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 0);
    expect(p.ioctl(vm, KVM_CREATE_IRQCHIP, 0)).toBe(0);
    const ap = p.ioctl(vm, KVM_CREATE_VCPU, 1);
    expect(p.ioctl(ap, KVM_RUN, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINTR);
    expect((p.task.files.lookup(ap)!.private_data as KvmVcpu).run.exit_reason).toBe(KVM_EXIT_INTR);
  });
});

describe('emulated MMIO (x86_emulate_instruction, complete_emulated_mmio)', () => {
  test('a load from a GPA without memslot exits KVM_EXIT_MMIO; the next KVM_RUN completes it with run->mmio.data', () => {
    const s = setup();
    let got: Uint8Array | undefined;
    program(s, function* () {
      got = yield* guestLoad(0x100000, 4);
      yield* guestStore(0x2000, got);
    });
    expect(run(s)).toBe(0);
    expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100000n, len: 4, is_write: 0 } });
    expect(got).toBeUndefined();
    s.vcpu.run.mmio.data.set([0xde, 0xad, 0xbe, 0xef]);
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(got).toEqual(Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    expect(s.p.load(s.hva + 0x2000n, 4)).toEqual(Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    expect(vcpu_arch(s.vcpu).stat.mmio_exits).toBe(1);
  });

  test('a store exits with its data and has retired; a byte string instruction exits per byte', () => {
    const s = setup();
    program(s, function* () {
      yield* guestStore(0x100008, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
      yield* guestStore(0x200000, Uint8Array.of(9, 10, 11));
    });
    expect(run(s)).toBe(0);
    expect(kvm_run_exit(s.vcpu.run)).toEqual({
      reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100008n, len: 8, is_write: 1, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
    });
    expect(vcpu_arch(s.vcpu).guest.retired).toBe(1);
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      expect(run(s)).toBe(0);
      expect(s.vcpu.run.mmio.phys_addr).toBe(0x200000n + BigInt(i));
      expect(s.vcpu.run.mmio.len).toBe(1);
      seen.push(s.vcpu.run.mmio.data[0]!);
    }
    expect(seen).toEqual([9, 10, 11]);
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
  });

  test('KVM_RUN with immediate_exit completes a pending MMIO read and returns EINTR', () => {
    const s = setup();
    let got: Uint8Array | undefined;
    program(s, function* () {
      got = yield* guestLoad(0x100000, 2);
    });
    expect(run(s)).toBe(0);
    s.vcpu.run.mmio.data.set([7, 8]);
    s.vcpu.run.immediate_exit = 1;
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_MMIO);
    expect(got).toBeUndefined();
    s.vcpu.run.immediate_exit = 0;
    expect(run(s)).toBe(0);
    expect(got).toEqual(Uint8Array.of(7, 8));
  });

  test('a write to a read-only memslot is emulated as MMIO; reads are served by the memslot', () => {
    const s = setup();
    const ro = s.p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(s.p.store(ro, Uint8Array.of(0x5a))).toBe(0);
    expect(s.p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { slot: 1, flags: 2, guest_phys_addr: 0x40000, memory_size: 4096, userspace_addr: ro })).toBe(0);
    let got: Uint8Array | undefined;
    program(s, function* () {
      got = yield* guestLoad(0x40000, 1);
      yield* guestStore(0x40000, Uint8Array.of(0xff));
    });
    expect(run(s)).toBe(0);
    expect(got).toEqual(Uint8Array.of(0x5a));
    expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x40000n, len: 1, is_write: 1, data: Uint8Array.of(0xff) } });
    expect(s.p.load(ro, 1)).toEqual(Uint8Array.of(0x5a));
  });
});

describe('port I/O (kvm_fast_pio)', () => {
  test('`in` exits KVM_EXIT_IO and takes the data page\'s value into al on completion; `out` puts its value there', () => {
    const s = setup();
    let v: bigint | undefined;
    program(s, function* () {
      yield* pioOut(0x3f8, 0x41);
      v = yield* pioIn(0x1000, 1);
    });
    expect(run(s)).toBe(0);
    expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_IO', io: { direction: KVM_EXIT_IO_OUT, size: 1, port: 0x3f8, count: 1 } });
    expect(s.vcpu.run.io.data_offset).toBe(4096n);
    expect(s.vcpu.run.pio_data[0]).toBe(0x41);
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.io.direction).toBe(KVM_EXIT_IO_IN);
    s.vcpu.run.pio_data[0] = 0x99;
    expect(run(s)).toBe(0);
    expect(v).toBe(0x99n);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(vcpu_arch(s.vcpu).stat.io_exits).toBe(2);
  });
});

describe('hypercalls (kvm_emulate_hypercall)', () => {
  const u64 = (x: number): bigint => BigInt.asUintN(64, BigInt(x));

  function hypercalls(s: Setup, calls: [number | bigint, (number | bigint)[]][], cpl = 0): bigint[] {
    const rets: bigint[] = [];
    program(s, function* () {
      for (const [nr, a] of calls) rets.push(yield* vmcall(nr, ...a));
    }, cpl);
    expect(run(s)).toBe(0);
    return rets;
  }

  test('KVM_HC_MAP_GPA_RANGE is -KVM_ENOSYS until user space enables its exit', () => {
    const s = setup();
    expect(hypercalls(s, [[KVM_HC_MAP_GPA_RANGE, [0x1000, 1, 0]]])).toEqual([u64(-KVM_ENOSYS)]);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
  });

  test('with KVM_CAP_EXIT_HYPERCALL it exits to user space, whose hypercall.ret the guest gets in rax', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << KVM_HC_MAP_GPA_RANGE] })).toBe(0);
    const rets: bigint[] = [];
    program(s, function* () {
      rets.push(yield* vmcall(KVM_HC_MAP_GPA_RANGE, 0x200000, 512, 0x7));
    });
    s.vcpu.run.hypercall.ret = 0x55n;
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HYPERCALL);
    expect(s.vcpu.run.hypercall).toEqual({ nr: BigInt(KVM_HC_MAP_GPA_RANGE), args: [0x200000n, 512n, 7n, 0n, 0n, 0n], ret: 0n, flags: KVM_EXIT_HYPERCALL_LONG_MODE });
    expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_HYPERCALL', hypercall: { nr: 12n, args: [0x200000n, 512n, 7n, 0n, 0n, 0n] } });
    s.vcpu.run.hypercall.ret = u64(-22);
    expect(run(s)).toBe(0);
    expect(rets).toEqual([u64(-22)]);
  });

  test('the kernel checks the range first: unaligned gpa, no pages, or a gfn range wrapping u64 is -KVM_EINVAL', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << KVM_HC_MAP_GPA_RANGE] })).toBe(0);
    const rets = hypercalls(s, [
      [KVM_HC_MAP_GPA_RANGE, [0x1001, 1, 0]],
      [KVM_HC_MAP_GPA_RANGE, [0x1000, 0, 0]],
      [KVM_HC_MAP_GPA_RANGE, [0x1000, 0xffffffffffffffffn, 0]],
      // Nothing bounds the range by the guest's MAXPHYADDR: user space gets it.
      [KVM_HC_MAP_GPA_RANGE, [0xfffffffffffff000n, 1n << 40n, 0]],
    ]);
    expect(rets).toEqual([u64(-KVM_EINVAL), u64(-KVM_EINVAL), u64(-KVM_EINVAL)]);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HYPERCALL);
    expect(s.vcpu.run.hypercall.args.slice(0, 2)).toEqual([0xfffffffffffff000n, 1n << 40n]);
    expect(vcpu_arch(s.vcpu).stat.hypercalls).toBe(4);
  });

  test('an unknown hypercall is -KVM_ENOSYS, VAPIC_POLL_IRQ succeeds, and from CPL3 every hypercall is -KVM_EPERM', () => {
    const s = setup();
    expect(hypercalls(s, [[999, []], [KVM_HC_VAPIC_POLL_IRQ, []]])).toEqual([u64(-KVM_ENOSYS), 0n]);
    expect(hypercalls(s, [[KVM_HC_VAPIC_POLL_IRQ, []]], 3)).toEqual([u64(-KVM_EPERM)]);
    const hc = s.ring.events('kvm_hypercall');
    expect(hc.map((e) => e.args.nr)).toEqual([999n, 1n, 1n]);
  });
});

describe('registers (KVM_GET_REGS / KVM_SET_REGS)', () => {
  test('set then get; bit 1 of rflags is always set; a bad struct is EFAULT and changes nothing', () => {
    const s = setup();
    const regs = {} as KvmRegs;
    expect(kvm_arch_vcpu_ioctl_get_regs(s.vcpu, regs)).toBe(0);
    expect(regs.rip).toBe(0xfff0n);
    expect(regs.rflags).toBe(2n);
    // kvm_vcpu_reset(): rdx is CPUID.1.EAX, 0x600 without a CPUID (kvm-regs.kernel.jsonl)
    expect(regs.rdx).toBe(0x600n);
    expect(kvm_arch_vcpu_ioctl_set_regs(s.vcpu, { rdi: 0x1234n, rflags: 0 })).toBe(0);
    expect(kvm_arch_vcpu_ioctl_get_regs(s.vcpu, regs)).toBe(0);
    expect([regs.rdi, regs.rip, regs.rflags]).toEqual([0x1234n, 0n, 2n]);
    expect(kvm_arch_vcpu_ioctl_set_regs(s.vcpu, { rdi: 'x' })).toBe(-Errno.EFAULT);
    expect(kvm_arch_vcpu_ioctl_set_regs(s.vcpu, 7)).toBe(-Errno.EFAULT);
    expect(kvm_arch_vcpu_ioctl_get_regs(s.vcpu, null)).toBe(-Errno.EFAULT);
    expect(kvm_arch_vcpu_ioctl_get_regs(s.vcpu, regs)).toBe(0);
    expect(regs.rdi).toBe(0x1234n);
  });

  test('the guest program starts with the argument registers', () => {
    const s = setup();
    let args: bigint[] = [];
    program(s, function* (...a: bigint[]) {
      args = a;
      yield* hlt();
    });
    expect(kvm_arch_vcpu_ioctl_set_regs(s.vcpu, { rdi: 1, rsi: 2, rdx: 3, rcx: 4, r8: 5, r9: 6 })).toBe(0);
    expect(run(s)).toBe(0);
    expect(args).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
  });
});

describe('costs and tracepoints', () => {
  test('a VM exit costs kvm_exit_roundtrip, each return to user space kvm_userspace_exit_roundtrip', () => {
    const s = setup();
    program(s, function* () {
      yield* guestStore(0x1000, Uint8Array.of(1));
      yield* guestLoad(0x100000, 1);
    });
    const { cost } = s.cost.measure('run', () => expect(run(s)).toBe(0));
    const count = (n: string): number => cost.items.find((i) => i.name === n)?.count ?? 0;
    // Two exits: the EPT violation on gfn 1 (fixed, back into the guest) and the MMIO one.
    expect(count('kvm_exit_roundtrip')).toBe(2);
    expect(count('kvm_userspace_exit_roundtrip')).toBe(1);
    expect(s.ring.events('kvm_entry')).toHaveLength(2);
    expect(s.ring.events('kvm_exit').map((e) => e.args.exit_reason)).toEqual([48, 48]);
    expect(s.ring.events('kvm_userspace_exit').map((e) => e.args)).toEqual([{ reason: KVM_EXIT_MMIO, errno: 0 }]);
    // A KVM_RUN that fails before entering the guest costs no exit.
    const t = setup({ mem: false });
    const { cost: c2 } = t.cost.measure('run', () => expect(run(t)).toBe(-1));
    expect(c2.items.map((i) => i.name)).not.toContain('kvm_userspace_exit_roundtrip');
    expect(t.ring.events('kvm_userspace_exit').map((e) => e.args)).toEqual([{ reason: KVM_EXIT_UNKNOWN, errno: Errno.ENOSPC }]);
  });
});

describe('guest_load / guest_store (the kernel oracle\'s guest)', () => {
  test('copies through the SPTEs and reports other exits in kernel names, draining pending MMIO', () => {
    const s = setup();
    const file = s.p.task.files.lookup(s.vcpu_fd)!;
    expect(kvm_vcpu_guest_access(file, 0x1ffe, Uint8Array.of(1, 2, 3, 4), s.p.task)).toBe(0);
    expect(s.p.load(s.hva + 0x1ffen, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(kvm_vcpu_guest_access(file, 0x1fff, 2, s.p.task)).toEqual(Uint8Array.of(2, 3));
    expect(kvm_vcpu_guest_access(file, 0, 0, s.p.task)).toEqual(new Uint8Array(0));
    expect(kvm_vcpu_guest_access(file, 0x100000, 4, s.p.task)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100000n, len: 4, is_write: 0 } });
    expect(vcpu_arch(s.vcpu).complete_userspace_io).toBeNull();
    expect(kvm_vcpu_guest_access(file, 0x100000, Uint8Array.of(0x11, 0x22), s.p.task))
      .toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100000n, len: 2, is_write: 1, data: Uint8Array.of(0x11, 0x22) } });
    expect(kvm_vcpu_guest_access(file, 1n << 40n, 1, s.p.task)).toEqual({ reason: 'KVM_EXIT_SHUTDOWN' });
    expect(kvm_vcpu_guest_access(file, -1, 1, s.p.task)).toBe(-Errno.EINVAL);
    expect(kvm_vcpu_guest_access(file, 0, 'x', s.p.task)).toBe(-Errno.EINVAL);
    expect(kvm_vcpu_guest_access(file, 0, 1, new Process(s.p.kernel).task)).toBe(-Errno.EIO);
  });

  test('a VM without memslots: the oracle\'s own memslot makes the access an MMIO exit, not ENOSPC', () => {
    const s = setup({ mem: false });
    const file = s.p.task.files.lookup(s.vcpu_fd)!;
    expect(kvm_vcpu_guest_access(file, 0x1000, 2, s.p.task)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x1000n, len: 2, is_write: 0 } });
  });

  test('a private access to a memslot without guest_memfd is KVM_RUN\'s EFAULT with the memory-fault exit', () => {
    const s = setup({ sw: true, type: KVM_X86_SW_PROTECTED_VM });
    expect(s.p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0x3000, size: 0x1000, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    const file = s.p.task.files.lookup(s.vcpu_fd)!;
    expect(kvm_vcpu_guest_access(file, 0x3008, 8, s.p.task)).toEqual({
      ret: -Errno.EFAULT, exit: { reason: 'KVM_EXIT_MEMORY_FAULT', memory_fault: { flags: 'KVM_MEMORY_EXIT_FLAG_PRIVATE', gpa: 0x3000n, size: 4096n } },
    });
  });
});

describe('machine checks (kvm_machine_check)', () => {
  function poisoned(mf: boolean): { s: Setup; file: File } {
    const s = setup();
    vm_sysctl(s.p.kernel).memory_failure = mf;
    const file = s.p.task.files.lookup(s.vcpu_fd)!;
    expect(kvm_vcpu_guest_access(file, 0x5000, Uint8Array.of(1), s.p.task)).toBe(0);
    const pfn = kvm_mmu_translate(s.vcpu, 5, false)!;
    s.p.kernel.phys.poison(pfn as Pfn);
    return { s, file };
  }

  test('a guest load of poison without memory-failure support: SIGBUS to the vCPU thread, KVM_RUN EINTR', () => {
    const { s, file } = poisoned(false);
    expect(kvm_vcpu_guest_access(file, 0x5000, 1, s.p.task)).toEqual({ signo: 'SIGBUS', si_code: 'SI_KERNEL', si_addr: 0n });
    program(s, function* () {
      yield* guestLoad(0x5000, 1);
    });
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_INTR);
    expect(s.p.dequeue_signal()).toMatchObject({ signo: 'SIGBUS' });
  });

  test('with memory failure: the page is taken away (BUS_MCEERR_AR at its address) and the guest cannot map it again', () => {
    const { s, file } = poisoned(true);
    const r = kvm_vcpu_guest_access(file, 0x5000, 1, s.p.task);
    expect(r).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
    expect(kvm_mmu_translate(s.vcpu, 5, false)).toBeUndefined();
    // The next access faults on the hwpoisoned host page: KVM sends SIGBUS again (kvm_send_hwpoison_signal).
    expect(kvm_vcpu_guest_access(file, 0x5000, 1, s.p.task)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
  });
});

describe('repe scasb (guestScan)', () => {
  test('compares page by page through the SPTEs and stops at the first byte that differs, reading nothing after it', () => {
    const s = setup();
    expect(s.p.store(s.hva + 0x1800n, new Uint8Array(0x3000).fill(0x5a))).toBe(0);
    expect(s.p.store(s.hva + 0x2abcn, Uint8Array.of(0x5b))).toBe(0);
    const got: number[] = [];
    program(s, function* () {
      got.push(yield* guestScan(0x1800, 0x5a, 0x12bc));
      got.push(yield* guestScan(0x1800, 0x5a, 0x12bd));
      got.push(yield* guestScan(0x1800, 0x15a, 1));
    });
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    // al is a byte: 0x15a compares as 0x5a.
    expect(got).toEqual([-1, 0x12bc, -1]);
    // The second scan stopped in the page at 0x2000: the one at 0x4000 was never touched.
    expect(kvm_mmu_translate(s.vcpu, 2, false)).toBeDefined();
    expect(kvm_mmu_translate(s.vcpu, 4, false)).toBeUndefined();
    // Memory never written reads as zeroes (the zero page).
    program(s, function* () {
      got.push(yield* guestScan(0x8000, 0, 0x2000));
      got.push(yield* guestScan(0x8000, 0xff, 0x2000));
    });
    expect(run(s)).toBe(0);
    expect(got.slice(3)).toEqual([-1, 0]);
  });

  test('on MMIO each byte is an emulated read exit; the scan retires at the first byte that differs', () => {
    const s = setup();
    let got: number | undefined;
    program(s, function* () {
      got = yield* guestScan(0x100000, 7, 4);
    });
    for (const [i, b] of [[0, 7], [1, 7], [2, 9]] as const) {
      expect(run(s)).toBe(0);
      expect(kvm_run_exit(s.vcpu.run)).toEqual({ reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100000n + BigInt(i), len: 1, is_write: 0 } });
      expect(got).toBeUndefined();
      s.vcpu.run.mmio.data[0] = b;
    }
    expect(run(s)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(got).toBe(2);
    expect(vcpu_arch(s.vcpu).stat.mmio_exits).toBe(3);
  });

  test('a scan that reads poison is a machine check, as a load', () => {
    const s = setup();
    vm_sysctl(s.p.kernel).memory_failure = false;
    const file = s.p.task.files.lookup(s.vcpu_fd)!;
    expect(kvm_vcpu_guest_access(file, 0x5000, Uint8Array.of(1), s.p.task)).toBe(0);
    s.p.kernel.phys.poison(kvm_mmu_translate(s.vcpu, 5, false)! as Pfn);
    program(s, function* () {
      yield* guestScan(0x4ff0, 0, 0x20);
    });
    expect(run(s)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINTR);
    expect(s.p.dequeue_signal()).toMatchObject({ signo: 'SIGBUS' });
  });
});

describe('guest acceptance of private memory (kvm_x86_ops.guest_accept)', () => {
  test('the vendor answers the guest without a VM exit', () => {
    const calls: [bigint, number, boolean][] = [];
    const c = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({
      x86_ops: { ...kvm_sw_protected_x86_ops, guest_accept: (_v, gpa, npages, to_private) => (calls.push([gpa, npages, to_private]), to_private ? 0 : -Errno.EINVAL) },
    }));
    const p = new Process(c.resolve(Kernel));
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    const vcpu = p.task.files.lookup(fd)!.private_data as KvmVcpu;
    const rets: number[] = [];
    kvm_vcpu_set_guest_program(vcpu, function* () {
      rets.push(yield* guestAccept(0x200000, 512, true), yield* guestAccept(0x1000, 1, false));
    });
    expect(p.ioctl(fd, KVM_RUN, 0)).toBe(0);
    expect(calls).toEqual([[0x200000n, 512, true], [0x1000n, 1, false]]);
    expect(rets).toEqual([0, -Errno.EINVAL]);
    // One exit: the halt at the end of the program.
    expect(vcpu_arch(vcpu).stat.exits).toBe(1);
  });
});
