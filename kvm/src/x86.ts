/**
 * x86 vCPUs (arch/x86/kvm/x86.c), with the VMX exit handlers (arch/x86/kvm/vmx/vmx.c) that the
 * guest's accesses reach: vCPU creation, KVM_RUN (kvm_arch_vcpu_ioctl_run -> vcpu_run ->
 * vcpu_enter_guest), the completion of user-space exits (complete_userspace_io: emulated MMIO,
 * port I/O, hypercalls), kvm_emulate_hypercall() with KVM_HC_MAP_GPA_RANGE, and
 * KVM_GET_REGS / KVM_SET_REGS.
 *
 * The guest itself is guest.ts's program: "entering the guest" runs its instructions until one
 * needs KVM (a VM exit). A load or store is translated by the guest's page tables, then by the
 * MMU's SPTE for the gfn (kvm_mmu_translate); where none is present the exit is an EPT violation,
 * handled by kvm_mmu_page_fault() and retried, or emulated as MMIO when the MMU says so. Data is
 * read and written in host physical memory at the pfn the SPTE maps.
 *
 * The simulator is single-threaded. What another thread of the VMM does while a vCPU is in
 * guest mode (delete a memslot, send the vCPU thread a signal) is given as events at a count of
 * guest instructions (kvm_vcpu_concurrently, kvm_vcpu_signal_after); a KVM_RUN that would never
 * return (a guest spinning without exits, a halted vCPU nobody wakes) is interrupted after
 * KVM_RUN_WATCHDOG steps as the kernel oracle interrupts it with an alarm: -EINTR with
 * KVM_EXIT_INTR.
 */
import { Buffer } from 'node:buffer';
import { Errno, PAGE_SIZE, type PhysMem, type Pfn } from '@cocosim/core';
import {
  GFP_KERNEL_ACCOUNT, MF_ACTION_REQUIRED, __GFP_ZERO, for_each_process, copy_from_user, copy_to_user, task_mm, vm_sysctl, x86_mce_hooks,
  type File, type FileOwner, type GuestAccessResult, type Task,
} from '@cocosim/mm';
import { coalesced_io_write } from './coalesced_mmio.js';
import { kvm_dirty_ring_check_request } from './dirty_ring.js';
import { gfn_to_hva_memslot_prot, kvm_vcpu_gfn_to_memslot, user_struct_field } from './kvm_memslots.js';
import type { Kvm, KvmRun, KvmVcpu } from './kvm_host.js';
import { kvm_hook_emulate_hypercall } from './kvm_hooks.js';
import { kvm_run_attach, kvm_run_detach, kvm_run_load, kvm_run_store, kvm_run_sync_regs, kvm_run_user_store, type KvmRunSave } from './kvm_run.js';
import {
  PFERR_USER_MASK, PFERR_WRITE_MASK, RET_PF_EMULATE, kvm_mmu_page_fault, kvm_mmu_take_pending_signal, kvm_mmu_translate,
  kvm_mmu_translate_access, tdp_access_error_code, tdp_fault_error_code,
} from './mmu/mmu.js';
import { TDP_LEAF_RO } from './mmu/tdp_mmu.js';
import {
  guestLoad, guestStore, identityPageTables,
  type GuestCode, type GuestInsn, type GuestInsnResult, type GuestPageTables, type GuestProgram,
} from './guest.js';
import {
  KVM_EXIT_HLT, KVM_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_LONG_MODE, KVM_EXIT_INTR, KVM_EXIT_IO,
  KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN, KVM_EXIT_UNKNOWN,
  KVM_HC_CLOCK_PAIRING, KVM_HC_KICK_CPU, KVM_HC_MAP_GPA_RANGE, KVM_HC_SCHED_YIELD, KVM_HC_SEND_IPI,
  KVM_HC_VAPIC_POLL_IRQ, KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION, KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_PIO_PAGE_OFFSET, kvm_exit_reason_name,
} from './uapi.js';

/* ---- constants ---- */

/** APIC_DEFAULT_PHYS_BASE and the IA32_APIC_BASE MSR bits (arch/x86/include/asm/apicdef.h, msr-index.h). */
export const APIC_DEFAULT_PHYS_BASE = 0xfee00000n;
export const MSR_IA32_APICBASE_BSP = 1n << 8n;
const X2APIC_ENABLE = 1n << 10n;
const MSR_IA32_APICBASE_ENABLE = 1n << 11n;
/** LAPIC_MODE_X2APIC (arch/x86/kvm/lapic.h): enabled, in x2APIC mode. */
export const LAPIC_MODE_X2APIC = MSR_IA32_APICBASE_ENABLE | X2APIC_ENABLE;
/** X86_EFLAGS_IF. */
const X86_EFLAGS_IF = 1n << 9n;

/** VMX basic exit reasons (arch/x86/include/uapi/asm/vmx.h) of the exits the guest model takes. */
export const EXIT_REASON_EXCEPTION_NMI = 0;
export const EXIT_REASON_EXTERNAL_INTERRUPT = 1;
export const EXIT_REASON_TRIPLE_FAULT = 2;
export const EXIT_REASON_HLT = 12;
export const EXIT_REASON_VMCALL = 18;
export const EXIT_REASON_IO_INSTRUCTION = 30;
export const EXIT_REASON_EPT_VIOLATION = 48;
/**
 * cocosim: an exit the platform's firmware reported and the vendor handled (a REC exit of an Arm
 * CCA realm, a pKVM hypercall forwarded to the host): vmx_handle_exit() returns what the vendor did.
 */
export const EXIT_REASON_VENDOR = -1;

/** Hypercall error codes the guest sees in rax (include/uapi/linux/kvm_para.h). */
export const KVM_ENOSYS = 1000;
export const KVM_EFAULT = Errno.EFAULT;
export const KVM_EINVAL = Errno.EINVAL;
export const KVM_E2BIG = Errno.E2BIG;
export const KVM_EPERM = Errno.EPERM;
export const KVM_EOPNOTSUPP = Errno.EOPNOTSUPP;

/** enum kvm_mp_state values a vCPU takes here (include/uapi/linux/kvm.h). */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_HALTED = 3;

/** cocosim: steps (guest instructions retired and VM entries) one KVM_RUN may take, see the file comment. */
export const KVM_RUN_WATCHDOG = 1 << 16;

/**
 * The kernel oracle's guest (test/oracle/guest_x86.h): its own memslot at 508 GiB, 4 MiB, and
 * the MMIO store to the byte after it that tells the oracle an access completed; accesses are
 * copied through a 1 MiB staging buffer, i.e. in chunks of that size.
 */
export const ORACLE_GPA = 508n << 30n;
export const ORACLE_SIZE = 4n << 20n;
export const ORACLE_DONE_GPA = ORACLE_GPA + ORACLE_SIZE;
const ORACLE_STAGING_SIZE = 1 << 20;

/* ---- per-vCPU and per-VM state ---- */

/** struct kvm_regs (arch/x86/include/uapi/asm/kvm.h). */
export interface KvmRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

export const KVM_REGS_FIELDS = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const satisfies readonly (keyof KvmRegs)[];

/**
 * The vCPU's registers after reset (kvm_vcpu_reset()): rflags bit 1, rip at the reset vector, and
 * rdx the family/model/stepping the CPU reports after INIT: CPUID.1.EAX of the vCPU's CPUID, or
 * 0x600 before KVM_SET_CPUID2 gave it one (cocosim has none: Linux 6.18.44 says 1536).
 */
function reset_regs(): KvmRegs {
  const r = Object.fromEntries(KVM_REGS_FIELDS.map((f) => [f, 0n])) as unknown as KvmRegs;
  r.rflags = 2n;
  r.rip = 0xfff0n;
  r.rdx = 0x600n;
  return r;
}

/** struct kvm_mmio_fragment; `off` is where the fragment's bytes sit in the emulated access. */
interface KvmMmioFragment {
  gpa: bigint;
  data: Uint8Array;
  len: number;
  readonly off: number;
}

/** struct kvm_vcpu_stat, the counters this model keeps (names of arch/x86/include/asm/kvm_host.h). */
export interface KvmVcpuStat {
  exits: number;
  pf_taken: number;
  pf_emulate: number;
  mmio_exits: number;
  io_exits: number;
  halt_exits: number;
  signal_exits: number;
  hypercalls: number;
}

/** What another thread does while the vCPU is in guest mode (cocosim). */
interface ConcurrentEvent {
  /** The guest instruction count at which it happens. */
  readonly at: number;
  readonly fn: () => void;
}

/**
 * The guest CPU's execution state (cocosim: the architectural state a real CPU keeps in its
 * registers and RIP, here the program's position). `insn` is the instruction being executed:
 * it stays until it retires, so that an exit re-executes it; `done` counts the bytes of a
 * string instruction already performed (rcx/rsi/rdi advancing), `buf` a load's bytes so far.
 */
export class GuestCpu {
  program: GuestProgram | null = null;
  gen: GuestCode | null = null;
  insn: GuestInsn | null = null;
  done = 0;
  buf: Uint8Array | null = null;
  /** The result the program receives when it asks for its next instruction. */
  result: GuestInsnResult = undefined;
  /** The program returned: the vCPU executes `hlt` from then on. */
  finished = false;
  /** Current privilege level: a CPL3 guest's hypercall is refused (-KVM_EPERM). */
  cpl = 0;
  page_tables: GuestPageTables = identityPageTables;
  /** Instructions retired since the program was set. */
  retired = 0;
  readonly events: ConcurrentEvent[] = [];
  /** The retired-instruction count at which a signal reaches the vCPU thread, if one is due. */
  signal_at: number | undefined = undefined;
  /** The pfn of the last machine check, so that a second one at the same place is fatal. */
  mce_pfn = -1;
}

/** The x86 part of struct kvm_vcpu (vcpu->arch and the generic fields x86.c uses). */
export class KvmVcpuArch {
  regs: KvmRegs = reset_regs();
  mp_state = KVM_MP_STATE_RUNNABLE;
  /** vcpu->arch.complete_userspace_io: run on the next KVM_RUN to finish a user-space exit. */
  complete_userspace_io: ((vcpu: KvmVcpu) => number) | null = null;
  /** vcpu->mmio_needed / mmio_read_completed / mmio_is_write / mmio_cur_fragment / mmio_fragments. */
  mmio_needed = 0;
  mmio_read_completed = 0;
  mmio_is_write = 0;
  mmio_cur_fragment = 0;
  mmio_fragments: KvmMmioFragment[] = [];
  /** vcpu->arch.pio: the port I/O user space is completing. */
  pio = { count: 0, port: 0, size: 0, in: false, linear_rip: 0n };
  /** A signal is pending for the vCPU's thread (signal_pending(current)). */
  signal_pending = false;
  readonly stat: KvmVcpuStat = {
    exits: 0, pf_taken: 0, pf_emulate: 0, mmio_exits: 0, io_exits: 0, halt_exits: 0, signal_exits: 0, hypercalls: 0,
  };
  readonly guest = new GuestCpu();
  /** Steps of the current KVM_RUN, against KVM_RUN_WATCHDOG. */
  steps = 0;
  /** The vCPU thread's task (vcpu_task()). */
  task: Task | undefined = undefined;
  /**
   * vcpu->arch.apic_base: xAPIC enabled at the default base, with the BSP bit for vCPU 0
   * (kvm_vcpu_reset(); kvm->arch.bsp_vcpu_id stays 0 here). TDX's vCPU init makes it x2APIC.
   */
  apic_base = APIC_DEFAULT_PHYS_BASE | MSR_IA32_APICBASE_ENABLE;
  /** CR8 (the TPR) as user space last set it through kvm_run without an in-kernel local APIC. */
  cr8 = 0n;
}

/** KVM_SYNC_X86_REGS (arch/x86/include/uapi/asm/kvm.h): struct kvm_regs in kvm_run->s.regs. */
const KVM_SYNC_X86_REGS = 0x1n;
/** KVM_SYNC_X86_VALID_FIELDS: REGS | SREGS | EVENTS. */
const KVM_SYNC_X86_VALID_FIELDS = 0x7n;
/** CR8_RESERVED_BITS: all but the 4-bit task priority. */
const CR8_RESERVED_BITS = ~0xfn;

const vcpu_archs = new WeakMap<KvmVcpu, KvmVcpuArch>();

/** vcpu->arch: the x86 state of a vCPU made by kvm_arch_vcpu_create(). */
export function vcpu_arch(vcpu: KvmVcpu): KvmVcpuArch {
  let a = vcpu_archs.get(vcpu);
  if (a === undefined) vcpu_archs.set(vcpu, (a = new KvmVcpuArch()));
  return a;
}

/** user_exit_on_hypercall() (arch/x86/kvm/x86.h): user space enabled the exit for `hc_nr`. */
export function user_exit_on_hypercall(kvm: Kvm, hc_nr: number): boolean {
  return hc_nr < 32 && (kvm.arch.hypercall_exit_enabled & (1 << hc_nr)) !== 0;
}

/* ---- vCPU creation, registers ---- */

/**
 * kvm_arch_vcpu_create() (arch/x86/kvm/x86.c): a vCPU is runnable unless the VM has an in-kernel
 * irqchip and it is not the BSP (vCPU 0), in which case it waits for INIT/SIPI; then the vendor's
 * vcpu_create.
 */
export function kvm_arch_vcpu_create(vcpu: KvmVcpu): number {
  const arch = new KvmVcpuArch();
  arch.mp_state = !vcpu.kvm.irqchip_in_kernel || vcpu.vcpu_id === 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED;
  if (vcpu.vcpu_id === 0) arch.apic_base |= MSR_IA32_APICBASE_BSP;
  const page_alloc = vcpu.kvm.kernel.page_alloc;
  /* vcpu->arch.pio_data: the page at KVM_PIO_PAGE_OFFSET of the vCPU mapping (kvm_run.ts keeps it) */
  const pio = page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
  if (pio < 0) return -Errno.ENOMEM;
  vcpu_archs.set(vcpu, arch);
  const r = vcpu.kvm.x86_ops.vcpu_create(vcpu);
  if (r < 0) {
    vcpu_archs.delete(vcpu);
    page_alloc.__free_page(pio);
    return r;
  }
  kvm_run_attach(vcpu, pio as Pfn);
  return r;
}

/** kvm_arch_vcpu_destroy(): the port I/O data page goes (the vendor's part goes with the VM). */
export function kvm_arch_vcpu_destroy(vcpu: KvmVcpu): void {
  const pio = kvm_run_detach(vcpu);
  if (pio >= 0) vcpu.kvm.kernel.page_alloc.__free_page(pio);
}

/**
 * kvm_arch_vcpu_ioctl_get_regs() (KVM_GET_REGS): the registers into the struct's fields; -EFAULT
 * for an argument that is no struct, -EINVAL once the vCPU's state is protected.
 */
export function kvm_arch_vcpu_ioctl_get_regs(vcpu: KvmVcpu, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  if (vcpu.kvm.arch.has_protected_state) return -Errno.EINVAL;
  const regs = vcpu_arch(vcpu).regs;
  const out = arg as Record<string, unknown>;
  for (const f of KVM_REGS_FIELDS) out[f] = regs[f];
  return 0;
}

/**
 * kvm_arch_vcpu_ioctl_set_regs() (KVM_SET_REGS): every register from the struct (a missing field
 * is 0, as in a zeroed C struct); -EFAULT for no struct or a field C cannot hold, -EINVAL once the
 * vCPU's state is protected. Nothing changes on failure.
 */
export function kvm_arch_vcpu_ioctl_set_regs(vcpu: KvmVcpu, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const regs = {} as KvmRegs;
  for (const f of KVM_REGS_FIELDS) {
    const v = user_struct_field(o, f, 64);
    if (v === undefined) return -Errno.EFAULT;
    regs[f] = v;
  }
  if (vcpu.kvm.arch.has_protected_state) return -Errno.EINVAL;
  __set_regs(vcpu, regs);
  return 0;
}

/** __set_regs(): every register as given, rflags with bit 1 (X86_EFLAGS_FIXED) set. */
function __set_regs(vcpu: KvmVcpu, regs: KvmRegs): void {
  regs.rflags |= 2n;
  vcpu_arch(vcpu).regs = regs;
}

/* ---- cocosim hooks: the guest program and the VMM's other threads ---- */

export interface GuestProgramOptions {
  /** The guest's privilege level (default 0, as the selftests' guests run). */
  readonly cpl?: number;
  /** GVA -> GPA (default: the identity below 512 GiB). */
  readonly page_tables?: GuestPageTables;
}

/**
 * Load `program` as the code the vCPU runs from its next VM entry (what a VMM does by writing the
 * guest's code to memory and pointing RIP at it). It starts with the argument registers of that
 * entry (rdi, rsi, rdx, rcx, r8, r9). Any instruction in flight is abandoned.
 */
export function kvm_vcpu_set_guest_program(vcpu: KvmVcpu, program: GuestProgram, opts: GuestProgramOptions = {}): void {
  const g = vcpu_arch(vcpu).guest;
  g.program = program;
  g.gen = null;
  g.insn = null;
  g.done = 0;
  g.buf = null;
  g.result = undefined;
  g.finished = false;
  g.retired = 0;
  g.events.length = 0;
  g.signal_at = undefined;
  g.cpl = opts.cpl ?? 0;
  g.page_tables = opts.page_tables ?? identityPageTables;
}

/**
 * Another thread of the VMM runs `fn` while the vCPU is in guest mode, after the guest retired
 * `n` more instructions (the selftests' pthread doing a VM ioctl while a vCPU runs).
 */
export function kvm_vcpu_concurrently(vcpu: KvmVcpu, n: number, fn: () => void): void {
  const g = vcpu_arch(vcpu).guest;
  g.events.push({ at: g.retired + n, fn });
  g.events.sort((a, b) => a.at - b.at);
}

/** A signal reaches the vCPU's thread after the guest retired `n` more instructions (pthread_kill). */
export function kvm_vcpu_signal_after(vcpu: KvmVcpu, n: number): void {
  const g = vcpu_arch(vcpu).guest;
  g.signal_at = g.retired + n;
}

/* ---- KVM_RUN ---- */

/**
 * The task whose mm the VM belongs to: the vCPU thread that runs KVM_RUN (KVM_RUN from another
 * mm is -EIO), remembered for the vCPU.
 */
function vcpu_task(vcpu: KvmVcpu): Task | undefined {
  const arch = vcpu_arch(vcpu);
  if (arch.task === undefined) arch.task = for_each_process(vcpu.kvm.kernel).find((t) => task_mm(t) === vcpu.kvm.mm);
  return arch.task;
}

/** signal_pending(current) for the vCPU thread. */
function signal_pending(vcpu: KvmVcpu): boolean {
  const arch = vcpu_arch(vcpu);
  if (arch.signal_pending) return true;
  return (vcpu_task(vcpu)?.pending.length ?? 0) > 0;
}

/** kvm_handle_signal_exit(): KVM_RUN returns -EINTR with KVM_EXIT_INTR. */
function kvm_handle_signal_exit(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  arch.signal_pending = false;
  vcpu.run.exit_reason = KVM_EXIT_INTR;
  arch.stat.signal_exits++;
  return -Errno.EINTR;
}

/**
 * kvm_arch_vcpu_ioctl_run() (KVM_RUN): a vCPU waiting for INIT/SIPI blocks; otherwise -EINVAL for
 * kvm_run's kvm_valid_regs/kvm_dirty_regs beyond the sync fields or a cr8 with reserved bits, the
 * completion of the previous user-space exit (complete_userspace_io), then -EINTR if user space
 * set immediate_exit, then vcpu_run(). The kvm_userspace_exit tracepoint of kvm_vcpu_ioctl() is
 * emitted here.
 */
export function kvm_arch_vcpu_ioctl_run(vcpu: KvmVcpu): number {
  kvm_run_load(vcpu, vcpu_arch(vcpu).complete_userspace_io === complete_fast_pio_in);
  const r = __kvm_arch_vcpu_ioctl_run(vcpu);
  kvm_run_store(vcpu, post_kvm_run_save(vcpu));
  vcpu.kvm.kernel.tracer.emit('kvm_userspace_exit', { reason: vcpu.run.exit_reason, errno: r < 0 ? -r : 0 });
  return r;
}

/**
 * post_kvm_run_save(): the interrupt flag, CR8 and APIC base every KVM_RUN leaves in kvm_run.
 * With no in-kernel PIC and no interrupt shadow or pending event modelled,
 * ready_for_interrupt_injection is RFLAGS.IF (kvm_vcpu_ready_for_interrupt_injection(): an
 * estimate); a vCPU whose state is protected reports 0 for both; CR8 is what user space set.
 */
function post_kvm_run_save(vcpu: KvmVcpu): KvmRunSave {
  const arch = vcpu_arch(vcpu);
  const if_flag = !vcpu.kvm.arch.has_protected_state && (BigInt(arch.regs.rflags) & X86_EFLAGS_IF) !== 0n ? 1 : 0;
  /* kvm_get_cr8(): the local APIC's TPR (0: no interrupts are modelled) when it is in the kernel */
  const cr8 = vcpu.kvm.irqchip_in_kernel ? 0n : arch.cr8;
  /* store_regs() at the out: label, whatever KVM_RUN returned */
  const sync_regs = vcpu.run.kvm_valid_regs & KVM_SYNC_X86_REGS && !vcpu.kvm.arch.has_protected_state
    ? KVM_REGS_FIELDS.map((f) => arch.regs[f])
    : undefined;
  return { if_flag, ready_for_interrupt_injection: if_flag, cr8, apic_base: arch.apic_base, sync_regs };
}

function __kvm_arch_vcpu_ioctl_run(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const run = vcpu.run;
  const wants_to_run = !run.immediate_exit;
  arch.steps = 0;
  if (arch.mp_state === KVM_MP_STATE_UNINITIALIZED) {
    if (!wants_to_run) return -Errno.EINTR;
    // kvm_vcpu_block() until INIT/SIPI: nothing sends them here, so only a signal ends the wait.
    return kvm_handle_signal_exit(vcpu);
  }
  // kvm_sync_valid_fields(): none for a VM whose vCPU state is protected.
  const sync_valid_fields = vcpu.kvm.arch.has_protected_state ? 0n : KVM_SYNC_X86_VALID_FIELDS;
  if (run.kvm_valid_regs & ~sync_valid_fields || run.kvm_dirty_regs & ~sync_valid_fields) return -Errno.EINVAL;
  // sync_regs(): the registers user space changed in kvm_run->s.regs.regs. cocosim models no
  // segment registers or event state, so KVM_SYNC_X86_SREGS and _EVENTS are accepted and left.
  if (run.kvm_dirty_regs & KVM_SYNC_X86_REGS) {
    const values = kvm_run_sync_regs(vcpu);
    __set_regs(vcpu, Object.fromEntries(KVM_REGS_FIELDS.map((f, k) => [f, values[k]])) as unknown as KvmRegs);
    run.kvm_dirty_regs &= ~KVM_SYNC_X86_REGS;
  }
  // re-sync apic's tpr: kvm_set_cr8() refuses the reserved bits
  if (!vcpu.kvm.irqchip_in_kernel) {
    if (run.cr8 & CR8_RESERVED_BITS) return -Errno.EINVAL;
    arch.cr8 = run.cr8;
  }
  if (arch.complete_userspace_io !== null) {
    const cui = arch.complete_userspace_io;
    arch.complete_userspace_io = null;
    const r = cui(vcpu);
    if (r <= 0) return r;
  }
  if (!wants_to_run) return -Errno.EINTR;
  // kvm_x86_vcpu_pre_run(): the vendor may refuse the entry or finish its own work first.
  const pre = vcpu.kvm.x86_ops.vcpu_pre_run(vcpu);
  if (pre <= 0) return pre;
  const exits = arch.stat.exits;
  const r = vcpu_run(vcpu);
  // The way out to the VMM and back in, once the guest ran (not for a KVM_RUN that failed
  // before entering it).
  if (arch.stat.exits !== exits) vcpu.kvm.kernel.cost.charge('kvm_userspace_exit_roundtrip');
  return r;
}

/**
 * vcpu_run(): enter the guest until an exit needs user space (0) or fails (-errno), leaving on a
 * pending signal with -EINTR (xfer_to_guest_mode_handle_work).
 */
function vcpu_run(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  vcpu.run.exit_reason = KVM_EXIT_UNKNOWN;
  for (;;) {
    let r: number;
    if (arch.mp_state === KVM_MP_STATE_RUNNABLE) {
      r = vcpu_enter_guest(vcpu);
    } else {
      // vcpu_block() of a halted vCPU: no interrupt will come, the watchdog's signal ends it.
      arch.signal_pending = true;
      r = 1;
    }
    if (r <= 0) return r;
    if (++arch.steps > KVM_RUN_WATCHDOG) arch.signal_pending = true;
    if (signal_pending(vcpu)) return kvm_handle_signal_exit(vcpu);
  }
}

/** VMs on which the oracle's guest added its memslot (kvm_vcpu_guest_access). */
const oracle_guest_vms = new WeakSet<Kvm>();

/**
 * kvm_mmu_reload() -> kvm_mmu_load(): with TDP the root comes from the TDP MMU; the shadow MMU
 * (tdp_enabled false, the PVM host) takes its root page from kvm->arch.n_max_mmu_pages, which
 * stays 0 until the first memslot is created or deleted (kvm_arch_commit_memory_region ->
 * kvm_mmu_change_mmu_pages: at least KVM_MIN_ALLOC_MMU_PAGES) or KVM_SET_NR_MMU_PAGES sets it,
 * so before that make_mmu_pages_available() fails with -ENOSPC. The oracle's guest counts as a
 * memslot here: the oracle creates one before its first KVM_RUN.
 */
export function kvm_mmu_reload(vcpu: KvmVcpu): number {
  const kvm = vcpu.kvm;
  if (kvm.x86_ops.tdp_enabled) return 0;
  const n_max_mmu_pages_set = kvm.memslots.some((s) => s.generation > 0) || kvm.n_requested_mmu_pages > 0 || oracle_guest_vms.has(kvm);
  return n_max_mmu_pages_set ? 0 : -Errno.ENOSPC;
}

/**
 * vcpu_enter_guest(): exit to user space while the dirty ring is soft-full; load the MMU
 * (kvm_mmu_reload: -ENOSPC on the shadow MMU with no pages to
 * build a root from), cancel the entry if a signal is pending (kvm_vcpu_exit_request), run the
 * guest until it exits, and handle the exit (1: re-enter, 0: to user space, -errno: KVM_RUN
 * fails).
 */
function vcpu_enter_guest(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const kernel = vcpu.kvm.kernel;
  /* a pending KVM_REQ_DIRTY_RING_SOFT_FULL: to user space, KVM_EXIT_DIRTY_RING_FULL */
  if (kvm_dirty_ring_check_request(vcpu)) return 0;
  const r = kvm_mmu_reload(vcpu);
  if (r) return r;
  if (signal_pending(vcpu)) return 1;
  kernel.tracer.emit('kvm_entry', { vcpu_id: vcpu.vcpu_id, rip: arch.regs.rip, immediate_exit: false });
  const exit = guest_execute(vcpu);
  arch.stat.exits++;
  kernel.tracer.emit('kvm_exit', {
    exit_reason: exit.reason, guest_rip: arch.regs.rip, info1: exit.reason === EXIT_REASON_EPT_VIOLATION ? exit.error_code : 0n,
    info2: 0n, vcpu_id: vcpu.vcpu_id,
  });
  kernel.cost.charge('kvm_exit_roundtrip');
  return vmx_handle_exit(vcpu, exit);
}

/* ---- the guest (hardware) ---- */

/** Why the guest stopped running: a VM exit and its exit information. */
type VmExit =
  | { readonly reason: typeof EXIT_REASON_EPT_VIOLATION; readonly gpa: bigint; readonly error_code: bigint }
  | { readonly reason: typeof EXIT_REASON_EXCEPTION_NMI; readonly pfn: number }
  | { readonly reason: typeof EXIT_REASON_VENDOR; readonly ret: number }
  | { readonly reason: typeof EXIT_REASON_EXTERNAL_INTERRUPT | typeof EXIT_REASON_TRIPLE_FAULT | typeof EXIT_REASON_HLT | typeof EXIT_REASON_VMCALL | typeof EXIT_REASON_IO_INSTRUCTION };

/** The instruction retires: RIP moves on and the program receives `result`. */
function guest_retire(vcpu: KvmVcpu, result: GuestInsnResult): void {
  const arch = vcpu_arch(vcpu);
  const g = arch.guest;
  g.insn = null;
  g.done = 0;
  g.buf = null;
  g.result = result;
  g.retired++;
  arch.regs.rip = BigInt.asUintN(64, arch.regs.rip + 1n);
}

/**
 * Run the guest until it exits: fetch instructions from the program and execute them. Concurrent
 * events and signals are taken at instruction boundaries (a signal is an external interrupt).
 */
function guest_execute(vcpu: KvmVcpu): VmExit {
  const arch = vcpu_arch(vcpu);
  const g = arch.guest;
  for (;;) {
    while (g.events.length > 0 && g.events[0]!.at <= g.retired) g.events.shift()!.fn();
    if (g.signal_at !== undefined && g.retired >= g.signal_at) {
      g.signal_at = undefined;
      arch.signal_pending = true;
    }
    // kvm_vcpu_exit_request(): with a signal pending the vCPU leaves (or does not enter) the guest.
    if (++arch.steps > KVM_RUN_WATCHDOG) arch.signal_pending = true;
    if (signal_pending(vcpu)) return { reason: EXIT_REASON_EXTERNAL_INTERRUPT };
    if (g.insn === null) {
      if (g.program === null) return guest_fetch_reset_vector(vcpu);
      if (g.finished) return { reason: EXIT_REASON_HLT };
      if (g.gen === null) {
        const r = arch.regs;
        g.gen = g.program(r.rdi, r.rsi, r.rdx, r.rcx, r.r8, r.r9);
      }
      const next = g.gen.next(g.result);
      g.result = undefined;
      if (next.done === true) {
        g.finished = true;
        return { reason: EXIT_REASON_HLT };
      }
      g.insn = next.value;
    }
    const exit = guest_execute_insn(vcpu, g.insn);
    if (exit !== null) return exit;
  }
}

/** The reset vector: CS.base 0xffff0000 plus RIP (0xfff0 after reset), in real mode. */
const RESET_CS_BASE = 0xffff0000n;

/**
 * A vCPU without a guest program fetches its first instruction at the reset vector. Where no
 * SPTE maps it the fetch is an EPT violation (e.g. no memslot there: the emulator cannot fetch
 * from MMIO, an emulation failure); where memory is mapped the code is x86 that cocosim does not
 * execute, and the vCPU halts.
 */
function guest_fetch_reset_vector(vcpu: KvmVcpu): VmExit {
  const gpa = RESET_CS_BASE + (vcpu_arch(vcpu).regs.rip % 0x10000n);
  if (kvm_mmu_translate(vcpu, Number(gpa / BigInt(PAGE_SIZE)), false, false) !== undefined) return { reason: EXIT_REASON_HLT };
  return { reason: EXIT_REASON_EPT_VIOLATION, gpa, error_code: tdp_fault_error_code(vcpu, gpa, false, true) };
}

/** Execute one instruction: null when it retired, or the exit it caused. */
function guest_execute_insn(vcpu: KvmVcpu, insn: GuestInsn): VmExit | null {
  const arch = vcpu_arch(vcpu);
  switch (insn.op) {
    case 'load':
    case 'store':
    case 'fill':
    case 'scan':
      return guest_access(vcpu);
    case 'vmcall':
      arch.regs.rax = BigInt.asUintN(64, insn.nr);
      [arch.regs.rbx, arch.regs.rcx, arch.regs.rdx, arch.regs.rsi] = insn.args.map((a) => BigInt.asUintN(64, a));
      return { reason: EXIT_REASON_VMCALL };
    case 'pio':
      if (insn.rdi !== undefined) arch.regs.rdi = BigInt.asUintN(64, insn.rdi);
      arch.regs.rdx = BigInt(insn.port);
      if (!insn.in) arch.regs.rax = BigInt(insn.value ?? 0);
      return { reason: EXIT_REASON_IO_INSTRUCTION };
    case 'accept':
      guest_retire(vcpu, vcpu.kvm.x86_ops.guest_accept(vcpu, insn.gpa, insn.npages, insn.to_private));
      return null;
    case 'fwcall':
      return guest_fwcall(vcpu, insn.fn, insn.args);
    case 'hlt':
      return { reason: EXIT_REASON_HLT };
  }
}

/**
 * A call to the platform's firmware (kvm_x86_ops.guest_fwcall): it retires with the registers the
 * firmware returns, or first takes a stage-2 fault (EPT violation at the address the firmware
 * needs mapped; the call is executed again after it), or exits as the vendor decided.
 */
function guest_fwcall(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): VmExit | null {
  const out = vcpu.kvm.x86_ops.guest_fwcall(vcpu, fn, args);
  switch (out.kind) {
    case 'ret':
      guest_retire(vcpu, out.regs);
      return null;
    case 'fault': {
      const error_code = tdp_fault_error_code(vcpu, out.gpa, out.write) | (out.write ? PFERR_WRITE_MASK : PFERR_USER_MASK);
      return { reason: EXIT_REASON_EPT_VIOLATION, gpa: out.gpa, error_code };
    }
    case 'exit':
      return { reason: EXIT_REASON_VENDOR, ret: out.ret };
  }
}

/** ept_violation_error_code()'s values by write | present << 1, built at its first call (mmu.js is loaded by then). */
let ept_violation_error_codes: readonly bigint[] | undefined;

/**
 * The error code of guest_access()'s EPT violation: tdp_fault_error_code() plus WRITE for a
 * write, USER for a read (EPT_VIOLATION_ACC_READ), without building bigints each time.
 */
function ept_violation_error_code(write: boolean, present: boolean): bigint {
  ept_violation_error_codes ??= [false, true, false, true].map((w, k) =>
    tdp_access_error_code(w, false, k >= 2) | (w ? PFERR_WRITE_MASK : PFERR_USER_MASK));
  return ept_violation_error_codes[(write ? 1 : 0) | (present ? 2 : 0)]!;
}

/** The length of a load/store/fill/scan and whether it is one `mov` access (else byte elements). */
function access_shape(insn: GuestInsn): { write: boolean; total: number; single: boolean } {
  const total = insn.op === 'store' ? insn.data.length : insn.op === 'load' || insn.op === 'fill' || insn.op === 'scan' ? insn.len : 0;
  const single = (insn.op === 'load' || insn.op === 'store') && (total === 1 || total === 2 || total === 4 || total === 8);
  return { write: insn.op !== 'load' && insn.op !== 'scan', total, single };
}

/** The page `repe scasb` reads guest memory into, one access at a time: its bytes are never kept. */
const scan_buf = new Uint8Array(PAGE_SIZE);
const scan_view = Buffer.from(scan_buf.buffer, scan_buf.byteOffset, PAGE_SIZE);
/** A page of each byte value a scan compared with, so that the compare is one memcmp. */
const scan_patterns = new Map<number, Buffer>();

/**
 * The compare of `repe scasb` on the `n` bytes at `off` in `pfn`, read through `key`: the index
 * of the first one that is not `byte`, -1 when none, or SCAN_POISON when the read hit poison.
 */
function scan_page(phys: PhysMem, pfn: number, zero_pfn: number, off: number, n: number, byte: number, key: number): number {
  if (pfn === zero_pfn) return byte === 0 ? -1 : 0;
  if (phys.readInto(pfn as Pfn, off, n, scan_buf, 0, key) !== 0) return SCAN_POISON;
  let pattern = scan_patterns.get(byte);
  if (pattern === undefined) scan_patterns.set(byte, (pattern = Buffer.alloc(PAGE_SIZE, byte)));
  if (pattern.compare(scan_view, 0, n, 0, n) === 0) return -1;
  let i = 0;
  while (i < n && scan_buf[i] === byte) i++;
  return i < n ? i : -1;
}
const SCAN_POISON = -2;

/** The bytes a store or fill writes at [off, off + n) of its access. */
function access_data(insn: GuestInsn, off: number, n: number): Uint8Array {
  if (insn.op === 'store') return insn.data.subarray(off, off + n);
  if (insn.op === 'fill') return new Uint8Array(n).fill(insn.byte);
  return new Uint8Array(0);
}

/**
 * A load/store/fill by the CPU: page by page, GVA -> GPA by the guest's page tables (no mapping:
 * #PF, which without an IDT is a triple fault), GPA -> pfn by the SPTE (none: EPT violation).
 */
function guest_access(vcpu: KvmVcpu): VmExit | null {
  const arch = vcpu_arch(vcpu);
  const g = arch.guest;
  const insn = g.insn as Extract<GuestInsn, { op: 'load' | 'store' | 'fill' | 'scan' }>;
  // access_shape() without its object: this runs for every page the guest touches.
  const write = insn.op === 'store' || insn.op === 'fill';
  const total = insn.op === 'store' ? insn.data.length : insn.len;
  const kvm = vcpu.kvm;
  const phys = kvm.kernel.phys;
  const base = insn.gva;
  if (insn.op === 'load' && g.buf === null) g.buf = new Uint8Array(total);
  while (g.done < total) {
    const gva = base + BigInt(g.done);
    const gpa = g.page_tables(gva);
    if (gpa === undefined) return { reason: EXIT_REASON_TRIPLE_FAULT };
    // GPAs stay below 2^52 (MAXPHYADDR): exact as numbers, so the page arithmetic needs no bigints.
    const gpa_n = Number(gpa);
    const off = gpa_n % PAGE_SIZE;
    const n = Math.min(total - g.done, PAGE_SIZE - off, PAGE_SIZE - Number(gva % 4096n));
    const gfn = (gpa_n - off) / PAGE_SIZE;
    // What the platform does before the stage-2 walk (Arm CCA: an SEA for RIPAS EMPTY).
    const hw = kvm.x86_ops.guest_access_fault(vcpu, gpa, write);
    if (hw !== undefined) return hw.kind === 'inject' ? { reason: EXIT_REASON_TRIPLE_FAULT } : { reason: EXIT_REASON_VENDOR, ret: hw.ret };
    const is_private = kvm.x86_ops.guest_access_is_private(vcpu, gpa);
    const pfn = kvm_mmu_translate_access(vcpu, gfn, write, is_private);
    if (pfn < 0) {
      // handle_ept_violation(): WRITE for a write, USER for a read (EPT_VIOLATION_ACC_READ),
      // PRESENT if the entry was readable, GUEST_FINAL.
      return { reason: EXIT_REASON_EPT_VIOLATION, gpa, error_code: ept_violation_error_code(write, pfn === TDP_LEAF_RO) };
    }
    // The platform's checks of the access and the key it goes through (SNP: RMP, C-bit ASID key).
    const acc = kvm.x86_ops.guest_mem_access(vcpu, gpa, pfn, write, is_private, n);
    if (acc.kind !== 'ok') return acc.kind === 'exception' ? { reason: EXIT_REASON_TRIPLE_FAULT } : { reason: EXIT_REASON_VENDOR, ret: acc.ret };
    if (insn.op === 'scan') {
      const k = scan_page(phys, pfn, kvm.kernel.store.zero_pfn, off, n, insn.byte, acc.key);
      if (k === SCAN_POISON) return { reason: EXIT_REASON_EXCEPTION_NMI, pfn };
      if (k >= 0) {
        // The first byte that differs ends the string instruction: nothing after it is read.
        g.mce_pfn = -1;
        guest_retire(vcpu, g.done + k);
        return null;
      }
    } else if (!write) {
      if (pfn === kvm.kernel.store.zero_pfn) {
        g.buf!.fill(0, g.done, g.done + n);
      } else {
        // Straight into the load's buffer: a 2 MiB `rep movsb` is 512 of these.
        if (phys.readInto(pfn as Pfn, off, n, g.buf!, g.done, acc.key) !== 0) return { reason: EXIT_REASON_EXCEPTION_NMI, pfn };
      }
    } else if (insn.op === 'fill' && n === PAGE_SIZE) {
      phys.fill(pfn as Pfn, insn.byte, acc.key);
    } else {
      phys.write(pfn as Pfn, off, access_data(insn, g.done, n), acc.key);
    }
    g.mce_pfn = -1;
    g.done += n;
  }
  guest_retire(vcpu, insn.op === 'load' ? g.buf! : insn.op === 'scan' ? -1 : undefined);
  return null;
}

/* ---- exit handling (vmx_handle_exit and the handlers of the exits above) ---- */

/** vmx_handle_exit() -> kvm_vmx_exit_handlers[exit_reason]. */
function vmx_handle_exit(vcpu: KvmVcpu, exit: VmExit): number {
  switch (exit.reason) {
    case EXIT_REASON_EPT_VIOLATION:
      return handle_ept_violation(vcpu, exit.gpa, exit.error_code);
    case EXIT_REASON_EXCEPTION_NMI:
      return kvm_machine_check(vcpu, exit.pfn);
    case EXIT_REASON_EXTERNAL_INTERRUPT:
      return 1;
    case EXIT_REASON_TRIPLE_FAULT:
      return handle_triple_fault(vcpu);
    case EXIT_REASON_HLT:
      return kvm_emulate_halt(vcpu);
    case EXIT_REASON_VMCALL:
      return kvm_emulate_hypercall(vcpu);
    case EXIT_REASON_IO_INSTRUCTION:
      return handle_io(vcpu);
    case EXIT_REASON_VENDOR:
      return exit.ret;
  }
}

/**
 * handle_ept_violation() -> kvm_mmu_page_fault(): the MMU fixes the fault (re-enter: the access
 * is executed again), fails (-errno, with KVM_EXIT_MEMORY_FAULT filled in for -EFAULT and
 * -EHWPOISON), or asks for emulation: x86_emulate_instruction().
 */
function handle_ept_violation(vcpu: KvmVcpu, gpa: bigint, error_code: bigint): number {
  const arch = vcpu_arch(vcpu);
  arch.stat.pf_taken++;
  const r = kvm_mmu_page_fault(vcpu, gpa, error_code);
  // kvm_send_hwpoison_signal(): a SIGBUS for poisoned host memory, pending for the vCPU thread.
  const sig = kvm_mmu_take_pending_signal(vcpu);
  if (sig !== undefined) vcpu_task(vcpu)?.pending.push(sig);
  if (r < 0) return r;
  if (r !== RET_PF_EMULATE) return 1;
  arch.stat.pf_emulate++;
  return x86_emulate_instruction(vcpu, { reason: EXIT_REASON_EPT_VIOLATION, gpa, error_code });
}

/**
 * handle_emulation_failure() at CPL0 outside guest mode: prepare_emulation_failure_exit(), i.e.
 * KVM_EXIT_INTERNAL_ERROR with suberror KVM_INTERNAL_ERROR_EMULATION and no instruction bytes:
 * data[0] the flags (0), data[1..5] the exit information (reason, qualification, info2,
 * interruption info, error code), data[6] the CPU of the last VM entry. At CPL > 0 the guest gets
 * #UD instead, which without an IDT is a triple fault.
 */
function handle_emulation_failure(vcpu: KvmVcpu, exit: VmExit): number {
  const arch = vcpu_arch(vcpu);
  if (arch.guest.cpl !== 0) return handle_triple_fault(vcpu);
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  run.internal.data = [0n, BigInt(exit.reason), exit.reason === EXIT_REASON_EPT_VIOLATION ? exit.error_code : 0n, 0n, 0n, 0n, 0n];
  run.internal.ndata = run.internal.data.length;
  return 0;
}

/** handle_triple_fault(): KVM_EXIT_SHUTDOWN. */
function handle_triple_fault(vcpu: KvmVcpu): number {
  vcpu.run.exit_reason = KVM_EXIT_SHUTDOWN;
  vcpu_arch(vcpu).mmio_needed = 0;
  return 0;
}

/**
 * kvm_emulate_halt(): `hlt` retires; without an in-kernel local APIC user space handles it
 * (KVM_EXIT_HLT), with one the vCPU blocks as HALTED.
 */
function kvm_emulate_halt(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  arch.stat.halt_exits++;
  if (arch.guest.insn !== null) guest_retire(vcpu, undefined);
  if (vcpu.kvm.irqchip_in_kernel) {
    arch.mp_state = KVM_MP_STATE_HALTED;
    return 1;
  }
  vcpu.run.exit_reason = KVM_EXIT_HLT;
  return 0;
}

/**
 * kvm_machine_check(): the guest consumed poison. do_machine_check() runs with a ring-3 context
 * faked for the vCPU thread, so kill_me_maybe() follows on its way out: memory_failure(pfn,
 * MF_ACTION_REQUIRED) (SIGBUS BUS_MCEERR_AR queued for the thread), or a plain SIGBUS when the
 * error cannot be recovered (no CONFIG_MEMORY_FAILURE, or a second machine check in a row at the
 * same page). The pending signal makes KVM_RUN return -EINTR; a page that was recovered without
 * a signal is accessed again.
 */
function kvm_machine_check(vcpu: KvmVcpu, pfn: number): number {
  const kernel = vcpu.kvm.kernel;
  const g = vcpu_arch(vcpu).guest;
  const task = vcpu_task(vcpu);
  const kill_me_now = (): void => {
    task?.pending.push({ signo: 'SIGBUS', si_code: 'SI_KERNEL', si_addr: 0n });
  };
  if (g.mce_pfn === pfn) {
    kill_me_now();
    return 1;
  }
  g.mce_pfn = pfn;
  const mf = x86_mce_hooks.memory_failure;
  const ret = vm_sysctl(kernel).memory_failure && mf !== undefined ? mf(kernel, pfn as Pfn, MF_ACTION_REQUIRED, vcpu.kvm.mm) : -Errno.ENXIO;
  const signalled = task?.pending.some((s) => s.signo === 'SIGBUS' && s.si_code === 'BUS_MCEERR_AR') ?? false;
  if (!signalled && ret !== 0 && ret !== -Errno.EHWPOISON && ret !== -Errno.EOPNOTSUPP) kill_me_now();
  return 1;
}

/* ---- instruction emulation: guest memory through the memslot, or MMIO ---- */

/**
 * kvm_vcpu_read_guest() (virt/kvm/kvm_main.c): copy from the memslot's user mapping
 * (__copy_from_user on kvm->mm); -EFAULT without a slot or where the mapping cannot be read.
 */
export function kvm_vcpu_read_guest(vcpu: KvmVcpu, gpa: bigint, len: number): Uint8Array | number {
  const gfn = Number(gpa / BigInt(PAGE_SIZE));
  const hva = gfn_to_hva_memslot_prot(kvm_vcpu_gfn_to_memslot(vcpu, gfn), gfn);
  if (typeof hva === 'number') return hva;
  return copy_from_user(vcpu.kvm.mm, hva.hva + gpa % BigInt(PAGE_SIZE), len) ?? -Errno.EFAULT;
}

/** kvm_vcpu_write_guest(): copy to the memslot's user mapping; -EFAULT as above or for a read-only slot. */
export function kvm_vcpu_write_guest(vcpu: KvmVcpu, gpa: bigint, data: Uint8Array): number {
  const gfn = Number(gpa / BigInt(PAGE_SIZE));
  const hva = gfn_to_hva_memslot_prot(kvm_vcpu_gfn_to_memslot(vcpu, gfn), gfn);
  if (typeof hva === 'number') return hva;
  if (!hva.writable) return -Errno.EFAULT;
  return copy_to_user(vcpu.kvm.mm, hva.hva + gpa % BigInt(PAGE_SIZE), data);
}

/**
 * x86_emulate_instruction() for the access in flight: one element (the whole `mov`, or one byte
 * of a string instruction), page by page through emulator_read_write_onepage(): guest memory
 * where a memslot maps it (kvm_vcpu_read_guest / kvm_vcpu_write_guest), otherwise an MMIO
 * fragment. With fragments the vCPU exits to user space with KVM_EXIT_MMIO for the first 8 bytes
 * of the first one; a write has already retired (its data is in the exit), a read completes in
 * complete_emulated_mmio() with the data user space puts in run->mmio.data.
 */
function x86_emulate_instruction(vcpu: KvmVcpu, exit: VmExit): number {
  const arch = vcpu_arch(vcpu);
  const g = arch.guest;
  const insn = g.insn;
  // An instruction fetch (no data access in flight): the emulator cannot fetch code from MMIO.
  if (insn === null || (insn.op !== 'load' && insn.op !== 'store' && insn.op !== 'fill' && insn.op !== 'scan')) return handle_emulation_failure(vcpu, exit);
  const { write, total, single } = access_shape(insn);
  const elem = single ? total - g.done : 1;
  const frags: KvmMmioFragment[] = [];
  if ((insn.op === 'load' || insn.op === 'scan') && g.buf === null) g.buf = new Uint8Array(total);
  for (let off = 0; off < elem;) {
    const gva = (insn as { gva: bigint }).gva + BigInt(g.done + off);
    const gpa = g.page_tables(gva);
    if (gpa === undefined) return handle_triple_fault(vcpu);
    const n = Math.min(elem - off, PAGE_SIZE - Number(gpa % BigInt(PAGE_SIZE)));
    if (write) {
      const data = access_data(insn, g.done + off, n);
      if (kvm_vcpu_write_guest(vcpu, gpa, data) < 0) {
        /* emulator_read_write_onepage(): what the MMIO bus (a coalesced zone) takes needs no exit */
        const handled = vcpu_mmio_write(vcpu, gpa, data);
        if (handled < n) frags.push({ gpa: gpa + BigInt(handled), data: data.slice(handled), len: n - handled, off: off + handled });
      }
    } else {
      const data = kvm_vcpu_read_guest(vcpu, gpa, n);
      if (typeof data === 'number') frags.push({ gpa, data: new Uint8Array(n), len: n, off });
      else g.buf!.set(data, g.done + off);
    }
    off += n;
  }
  if (write) {
    g.done += elem;
    if (g.done >= total) guest_retire(vcpu, undefined);
  } else if (frags.length === 0) {
    emulated_read_done(vcpu, elem);
  }
  if (frags.length === 0) return 1;
  arch.mmio_fragments = frags;
  arch.mmio_cur_fragment = 0;
  arch.mmio_needed = 1;
  arch.mmio_is_write = write ? 1 : 0;
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_MMIO;
  run.mmio.phys_addr = frags[0]!.gpa;
  run.mmio.len = Math.min(8, frags[0]!.len);
  run.mmio.is_write = arch.mmio_is_write;
  if (write) run.mmio.data.set(frags[0]!.data.subarray(0, run.mmio.len));
  arch.complete_userspace_io = complete_emulated_mmio;
  arch.stat.mmio_exits++;
  return 0;
}

/**
 * vcpu_mmio_write(): the write, 8 bytes at a time, to the VM's MMIO bus (no in-kernel local APIC
 * is modelled: its coalesced zones); stops at the first piece no device takes. Returns the bytes
 * taken.
 */
function vcpu_mmio_write(vcpu: KvmVcpu, gpa: bigint, data: Uint8Array): number {
  let handled = 0;
  while (handled < data.length) {
    const n = Math.min(data.length - handled, 8);
    if (!coalesced_io_write(vcpu.kvm, false, gpa + BigInt(handled), data.subarray(handled, handled + n))) break;
    handled += n;
  }
  return handled;
}

/**
 * complete_emulated_mmio(): take the data of the fragment piece user space completed (a read),
 * move to the next 8 bytes or fragment and exit again, or, when all are done, finish the read in
 * the emulator (complete_emulated_io) and resume the guest.
 */
function complete_emulated_mmio(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const run = vcpu.run;
  if (!arch.mmio_needed) throw new Error('BUG: complete_emulated_mmio without mmio_needed');
  const frag = arch.mmio_fragments[arch.mmio_cur_fragment]!;
  const len = Math.min(8, frag.len);
  const consumed = frag.data.length - frag.len;
  if (!arch.mmio_is_write) frag.data.set(run.mmio.data.subarray(0, len), consumed);
  if (frag.len <= 8) {
    arch.mmio_cur_fragment++;
  } else {
    frag.gpa += BigInt(len);
    frag.len -= len;
  }
  if (arch.mmio_cur_fragment >= arch.mmio_fragments.length) {
    arch.mmio_needed = 0;
    if (arch.mmio_is_write) return 1;
    arch.mmio_read_completed = 1;
    return complete_emulated_io(vcpu);
  }
  const next = arch.mmio_fragments[arch.mmio_cur_fragment]!;
  run.exit_reason = KVM_EXIT_MMIO;
  run.mmio.phys_addr = next.gpa;
  run.mmio.len = Math.min(8, next.len);
  run.mmio.is_write = arch.mmio_is_write;
  if (arch.mmio_is_write) run.mmio.data.set(next.data.subarray(next.data.length - next.len, next.data.length - next.len + run.mmio.len));
  arch.complete_userspace_io = complete_emulated_mmio;
  return 0;
}

/** complete_emulated_io(): the emulator finishes the read element with the MMIO data. */
function complete_emulated_io(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const g = arch.guest;
  const insn = g.insn;
  arch.mmio_read_completed = 0;
  if (insn === null || (insn.op !== 'load' && insn.op !== 'scan')) return 1;
  const { single, total } = access_shape(insn);
  const elem = single ? total - g.done : 1;
  for (const f of arch.mmio_fragments) g.buf!.set(f.data, g.done + f.off);
  arch.mmio_fragments = [];
  emulated_read_done(vcpu, elem);
  return 1;
}

/**
 * An element of an emulated load or scan is in g.buf: the access moves on, and retires at its
 * end, a scan also at a byte that is not its byte (`repe` stops there).
 */
function emulated_read_done(vcpu: KvmVcpu, elem: number): void {
  const g = vcpu_arch(vcpu).guest;
  const insn = g.insn!;
  if (insn.op === 'scan' && g.buf![g.done] !== insn.byte) {
    guest_retire(vcpu, g.done);
    return;
  }
  g.done += elem;
  if (g.done >= access_shape(insn).total) guest_retire(vcpu, insn.op === 'load' ? g.buf! : -1);
}

/* ---- port I/O ---- */

/**
 * handle_io() -> kvm_fast_pio(): no in-kernel device answers the port (no PIT/PIC/serial here),
 * so emulator_pio_in_out() exits to user space with KVM_EXIT_IO, the data in the page at
 * io.data_offset; the instruction retires in complete_fast_pio_in/out on the next KVM_RUN,
 * unless user space moved RIP meanwhile.
 */
function handle_io(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const insn = arch.guest.insn;
  if (insn === null || insn.op !== 'pio') throw new Error('BUG: an I/O exit without an I/O instruction');
  const run = vcpu.run;
  if (!insn.in) {
    /* kernel_pio(): an OUT into a coalesced PIO zone completes in the kernel */
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, Number(arch.regs.rax % (1n << BigInt(8 * insn.size))) >>> 0, true);
    if (coalesced_io_write(vcpu.kvm, true, BigInt(insn.port), out.subarray(0, insn.size))) {
      guest_retire(vcpu, undefined);
      return 1;
    }
  }
  arch.pio = { count: 1, port: insn.port, size: insn.size, in: insn.in, linear_rip: arch.regs.rip };
  run.exit_reason = KVM_EXIT_IO;
  run.io.direction = insn.in ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  run.io.size = insn.size;
  run.io.port = insn.port;
  run.io.count = 1;
  run.io.data_offset = BigInt(KVM_PIO_PAGE_OFFSET * PAGE_SIZE);
  if (!insn.in) new DataView(run.pio_data.buffer).setUint32(0, Number(arch.regs.rax % (1n << BigInt(8 * insn.size))) >>> 0, true);
  arch.complete_userspace_io = insn.in ? complete_fast_pio_in : complete_fast_pio_out;
  arch.stat.io_exits++;
  return 0;
}

/** complete_fast_pio_in(): the value user space left in the data page goes to al/ax/eax. */
function complete_fast_pio_in(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const pio = arch.pio;
  pio.count = 0;
  if (arch.regs.rip !== pio.linear_rip) return 1;
  const bits = BigInt(8 * pio.size);
  const v = BigInt(new DataView(vcpu.run.pio_data.buffer).getUint32(0, true)) % (1n << bits);
  // For sizes below 4 the value merges into rax; a 4-byte `in` zero-extends.
  arch.regs.rax = pio.size < 4 ? (arch.regs.rax >> bits << bits) | v : v;
  guest_retire(vcpu, v);
  return 1;
}

/** complete_fast_pio_out(). */
function complete_fast_pio_out(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  arch.pio.count = 0;
  if (arch.regs.rip !== arch.pio.linear_rip) return 1;
  guest_retire(vcpu, undefined);
  return 1;
}

/* ---- hypercalls ---- */

/**
 * complete_hypercall_exit(): rax gets run->hypercall.ret (what user space answered, or what
 * ____kvm_emulate_hypercall() put there), and the vmcall retires.
 */
function complete_hypercall_exit(vcpu: KvmVcpu): number {
  const arch = vcpu_arch(vcpu);
  const ret = vcpu.run.hypercall.ret as bigint | number;
  arch.regs.rax = BigInt.asUintN(64, typeof ret === 'bigint' ? ret : Number.isSafeInteger(ret) ? BigInt(ret) : 0n);
  guest_retire(vcpu, arch.regs.rax);
  return 1;
}

/**
 * ____kvm_emulate_hypercall() (arch/x86/kvm/x86.c): nr in rax, a0..a3 in rbx, rcx, rdx, rsi.
 * A hypercall from CPL > 0 is -KVM_EPERM. KVM_HC_MAP_GPA_RANGE goes to user space
 * (KVM_EXIT_HYPERCALL) when it enabled the exit, after checking that gpa is page aligned and
 * [gfn, gfn + npages) neither empty nor wrapping (-KVM_EINVAL); the PV hypercalls need features
 * the guest's CPUID does not offer here, and anything else is -KVM_ENOSYS. Returns 0 for the exit
 * to user space, 1 with run->hypercall.ret holding the guest's result.
 */
function ____kvm_emulate_hypercall(vcpu: KvmVcpu, cpl: number): number {
  const arch = vcpu_arch(vcpu);
  const r = arch.regs;
  const [nr, a0, a1, a2, a3] = [r.rax, r.rbx, r.rcx, r.rdx, r.rsi];
  const run = vcpu.run;
  arch.stat.hypercalls++;
  vcpu.kvm.kernel.tracer.emit('kvm_hypercall', { nr, a0, a1, a2, a3 });
  let ret: bigint;
  if (cpl) {
    ret = -BigInt(KVM_EPERM);
  } else {
    const design = kvm_hook_emulate_hypercall(vcpu, nr, a0, a1, a2, a3);
    if (design !== undefined) ret = BigInt(design);
    else switch (nr) {
      case BigInt(KVM_HC_VAPIC_POLL_IRQ):
        ret = 0n;
        break;
      case BigInt(KVM_HC_CLOCK_PAIRING):
        // kvm_pv_clock_pairing(): the simulated host clock is no TSC clocksource, so
        // kvm_get_walltime_and_clockread() fails.
        ret = -BigInt(KVM_EOPNOTSUPP);
        break;
      case BigInt(KVM_HC_KICK_CPU):
      case BigInt(KVM_HC_SEND_IPI):
      case BigInt(KVM_HC_SCHED_YIELD):
        // guest_pv_has(): the guest's CPUID has no KVM PV features here.
        ret = -BigInt(KVM_ENOSYS);
        break;
      case BigInt(KVM_HC_MAP_GPA_RANGE): {
        const [gpa, npages, attrs] = [a0, a1, a2];
        ret = -BigInt(KVM_ENOSYS);
        if (!user_exit_on_hypercall(vcpu.kvm, KVM_HC_MAP_GPA_RANGE)) break;
        const gfn = gpa >> 12n;
        if (gpa % BigInt(PAGE_SIZE) !== 0n || npages === 0n || BigInt.asUintN(64, gfn + npages) <= gfn) {
          ret = -BigInt(KVM_EINVAL);
          break;
        }
        run.exit_reason = KVM_EXIT_HYPERCALL;
        run.hypercall.nr = BigInt(KVM_HC_MAP_GPA_RANGE);
        // Zeroed for QEMU <= 9.2, which assumed KVM never changes it.
        run.hypercall.ret = 0n;
        run.hypercall.args[0] = gpa;
        run.hypercall.args[1] = npages;
        run.hypercall.args[2] = attrs;
        run.hypercall.flags = KVM_EXIT_HYPERCALL_LONG_MODE;
        arch.complete_userspace_io = complete_hypercall_exit;
        return 0;
      }
      default:
        ret = -BigInt(KVM_ENOSYS);
    }
  }
  run.hypercall.ret = BigInt.asUintN(64, ret);
  return 1;
}

/**
 * kvm_emulate_hypercall(): ____kvm_emulate_hypercall() at the guest's CPL; a hypercall handled
 * in the kernel completes at once (complete_hypercall_exit).
 */
export function kvm_emulate_hypercall(vcpu: KvmVcpu): number {
  const r = ____kvm_emulate_hypercall(vcpu, vcpu_arch(vcpu).guest.cpl);
  return r > 0 ? complete_hypercall_exit(vcpu) : r;
}

/* ---- struct kvm_run in kernel names (traces, the oracle's render_exit) ---- */

/** The exit of `run` as the trace tools write it (docs/trace-format.md), kernel names for values. */
export function kvm_run_exit(run: KvmRun): Record<string, unknown> {
  const reason = kvm_exit_reason_name(run.exit_reason) ?? run.exit_reason;
  switch (run.exit_reason) {
    case KVM_EXIT_MMIO: {
      const mmio: Record<string, unknown> = { phys_addr: run.mmio.phys_addr, len: run.mmio.len, is_write: run.mmio.is_write };
      if (run.mmio.is_write && run.mmio.len <= 8) mmio.data = run.mmio.data.slice(0, run.mmio.len);
      return { reason, mmio };
    }
    case KVM_EXIT_MEMORY_FAULT: {
      const f = run.memory_fault;
      const flags = BigInt(f.flags) === BigInt(KVM_MEMORY_EXIT_FLAG_PRIVATE) ? 'KVM_MEMORY_EXIT_FLAG_PRIVATE' : f.flags;
      return { reason, memory_fault: { flags, gpa: f.gpa, size: f.size } };
    }
    case KVM_EXIT_IO:
      return { reason, io: { direction: run.io.direction, size: run.io.size, port: run.io.port, count: run.io.count } };
    case KVM_EXIT_HYPERCALL:
      return { reason, hypercall: { nr: run.hypercall.nr, args: [...run.hypercall.args] } };
    case KVM_EXIT_INTERNAL_ERROR:
      return { reason, internal: { suberror: run.internal.suberror } };
    default:
      return { reason };
  }
}

/* ---- guest_load / guest_store (the trace ops), on a vCPU file ---- */

/**
 * Let KVM finish a pending MMIO/PIO (KVM_RUN with immediate_exit), as the oracle's guest_drain()
 * (test/oracle/guest_x86.h). An access abandoned at an MMIO read of `rep movsb` has its count cut
 * to the pending element first (the oracle's KVM_SET_REGS of rcx = 1, which the emulator re-reads
 * when it finishes the element), so that the string ends there and the next access starts clean.
 */
function guest_drain(vcpu: KvmVcpu, abandoned: boolean): void {
  const g = vcpu_arch(vcpu).guest;
  const insn = g.insn;
  if (abandoned && vcpu.run.exit_reason === KVM_EXIT_MMIO && !vcpu.run.mmio.is_write && insn !== null && insn.op === 'load' &&
    !access_shape(insn).single && insn.len - g.done > 1) {
    g.insn = { op: 'load', gva: insn.gva, len: g.done + 1 };
  }
  for (let i = 0; i < 8; i++) {
    vcpu.run.mmio.data.fill(0);
    vcpu.run.immediate_exit = 1;
    kvm_run_user_store(vcpu, ['mmio_data', 'immediate_exit']);
    const r = kvm_arch_vcpu_ioctl_run(vcpu);
    vcpu.run.immediate_exit = 0;
    kvm_run_user_store(vcpu, ['immediate_exit']);
    if (r < 0) break;
  }
}

/**
 * The guest_load/guest_store ops (docs/trace-format.md) as the kernel oracle performs them on a
 * vCPU (test/oracle/guest_x86.h guest_access()): in chunks of its 1 MiB staging buffer, a CPL3
 * guest with the first 512 GiB identity-mapped copies between the target GPA and the buffer with
 * `mov` (1, 2, 4, 8 bytes) or `rep movsb`, then signals completion with an MMIO store to the GPA
 * after the oracle's memslot. Any other outcome of KVM_RUN is the result: an exit (ret 0), a
 * failure (-errno, with the exit when it is KVM_EXIT_MEMORY_FAULT), or the SIGBUS a machine check
 * sent the thread; pending MMIO is drained after each KVM_RUN. -EIO from another process or on a
 * dead VM, as every vCPU ioctl; -EINVAL for a gpa or length that is no u64.
 *
 * `access` is the length of a load or the bytes of a store.
 */
export function kvm_vcpu_guest_access(file: File, gpa: unknown, access: unknown, current: FileOwner): GuestAccessResult {
  const vcpu = file.private_data as KvmVcpu;
  const kvm = vcpu.kvm;
  if (task_mm(current as Task) !== kvm.mm || kvm.vm_dead) return -Errno.EIO;
  const target = typeof gpa === 'bigint' ? gpa : typeof gpa === 'number' && Number.isSafeInteger(gpa) ? BigInt(gpa) : undefined;
  if (target === undefined || target < 0n || target >= 1n << 64n) return -Errno.EINVAL;
  const store = access instanceof Uint8Array ? access : undefined;
  const len = store !== undefined ? store.length : typeof access === 'number' && Number.isSafeInteger(access) && access >= 0 ? access : -1;
  if (len < 0) return -Errno.EINVAL;
  const out = new Uint8Array(store === undefined ? len : 0);
  if (len > 0) oracle_guest_vms.add(kvm);
  for (let done = 0; done < len;) {
    const n = Math.min(len - done, ORACLE_STAGING_SIZE);
    const at = BigInt.asUintN(64, target + BigInt(done));
    let loaded: Uint8Array | undefined;
    /* the oracle's mov entries (a whole access of 1, 2, 4 or 8 bytes) leave its first byte in AL, rep movsb leaves rax 0 */
    const mov = n === len && (n === 1 || n === 2 || n === 4 || n === 8);
    kvm_vcpu_set_guest_program(vcpu, function* oracle_guest_access() {
      let al = 0;
      if (store !== undefined) {
        yield* guestStore(at, store.subarray(done, done + n));
        if (mov) al = store[done]!;
      } else {
        loaded = yield* guestLoad(at, n);
        if (mov) al = loaded[0]!;
      }
      /* the done store: mov [rdx], al */
      yield* guestStore(ORACLE_DONE_GPA, Uint8Array.of(al));
    }, { cpl: 3 });
    const run = vcpu.run;
    run.exit_reason = KVM_EXIT_UNKNOWN;
    run.immediate_exit = 0;
    kvm_run_user_store(vcpu, ['exit_reason', 'immediate_exit']);
    const r = kvm_arch_vcpu_ioctl_run(vcpu);
    let result: GuestAccessResult | undefined;
    if (r < 0) {
      const sig = vcpu_task(vcpu)?.pending.find((s) => s.signo === 'SIGBUS');
      if (r === -Errno.EINTR && sig !== undefined) {
        const task = vcpu_task(vcpu)!;
        task.pending.splice(task.pending.indexOf(sig), 1);
        result = sig;
      } else {
        result = run.exit_reason === KVM_EXIT_MEMORY_FAULT ? { ret: r, exit: kvm_run_exit(run) } : r;
      }
    } else if (run.exit_reason !== KVM_EXIT_MMIO || !run.mmio.is_write || run.mmio.phys_addr !== ORACLE_DONE_GPA) {
      result = kvm_run_exit(run);
    }
    guest_drain(vcpu, result !== undefined);
    if (result !== undefined) return result;
    if (loaded !== undefined) out.set(loaded, done);
    done += n;
  }
  return store !== undefined ? 0 : out;
}
