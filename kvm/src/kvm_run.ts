/**
 * struct kvm_run as user space sees it (include/uapi/linux/kvm.h): the bytes of the vCPU's run
 * page, which mmap() of the vCPU fd maps at offset 0 (virt/kvm/kvm_main.c kvm_vcpu_fault()), and
 * of its port I/O data page (offset KVM_PIO_PAGE_OFFSET).
 *
 * In Linux the run page is the only copy: KVM writes exits into it and reads user space's
 * answers from it. cocosim's KVM works on the KvmRun object instead (what a selftest reaches as
 * vcpu->run), so the page is kept in step with it at the points where the kernel reads or writes
 * those fields: kvm_run_load() at the entry of KVM_RUN takes what user space stored through the
 * mapping since the last exit (immediate_exit, mmio.data, hypercall.ret, the port I/O data), and
 * kvm_run_store() writes what the exit filled in (post_kvm_run_save() and the member of the exit
 * union), as KVM_PRE_FAULT_MEMORY's KVM_EXIT_MEMORY_FAULT does too. A field changed both through
 * the object and through the mapping between two KVM_RUNs takes the mapping's bytes.
 *
 * Layout (x86-64): request_interrupt_window u8 @0, immediate_exit u8 @1, exit_reason u32 @8,
 * ready_for_interrupt_injection u8 @12, if_flag u8 @13, flags u16 @14, cr8 u64 @16, apic_base u64
 * @24, the exit union @32 (256 bytes): io {direction u8, size u8, port u16, count u32,
 * data_offset u64}, mmio {phys_addr u64, data[8], len u32, is_write u8}, hypercall {nr, args[6],
 * ret, flags: u64}, internal {suberror u32, ndata u32, data[16] u64}, system_event {type u32,
 * ndata u32, data[16] u64}, memory_fault {flags, gpa, size: u64}. Each exit writes only its
 * member's fields (an MMIO read leaves mmio.data as it was), the rest of the union keeps the bytes
 * an earlier exit left, as in Linux.
 */
import { type Pfn } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import type { KvmVcpu } from './kvm_host.js';
import {
  KVM_EXIT_HYPERCALL, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO,
  KVM_EXIT_SYSTEM_EVENT,
} from './uapi.js';

/** Offsets in struct kvm_run. */
const RUN_IMMEDIATE_EXIT = 1;
const RUN_EXIT_REASON = 8;
const RUN_READY_FOR_INTERRUPT_INJECTION = 12;
const RUN_IF_FLAG = 13;
const RUN_FLAGS = 14;
const RUN_CR8 = 16;
const RUN_APIC_BASE = 24;
const RUN_UNION = 32;
const RUN_MMIO_DATA = RUN_UNION + 8;
const RUN_HYPERCALL_RET = RUN_UNION + 56;
/** kvm_valid_regs and kvm_dirty_regs, after the exit union (u64 each). */
const RUN_VALID_REGS = RUN_UNION + 256;
const RUN_DIRTY_REGS = RUN_VALID_REGS + 8;
/** kvm_run->s.regs.regs: struct kvm_regs (18 u64), the first member of x86's struct kvm_sync_regs. */
const RUN_SYNC_REGS = RUN_DIRTY_REGS + 8;
const KVM_REGS_COUNT = 18;
/** The bytes up to s.regs.regs' end: all that is kept in step (s.regs.sregs and .events are not modelled). */
const RUN_HEAD = RUN_SYNC_REGS + 8 * KVM_REGS_COUNT;

/**
 * A vCPU's port I/O data page (vcpu->arch.pio_data) and what its pages held after the last exit;
 * the run page itself is vcpu.run_page.
 */
interface RunPages {
  readonly pio: Pfn;
  /** The run page's first RUN_HEAD bytes as kvm_run_store() left them. */
  readonly last: Uint8Array;
  /** The port I/O page as kvm_run_store() left it. */
  readonly last_pio: Uint8Array;
  /** KVM wrote an exit into the object outside KVM_RUN since kvm_run_written() last asked. */
  written: boolean;
}

const pages = new WeakMap<KvmVcpu, RunPages>();

/** Attach the port I/O data page (zeroed, as allocated) to `vcpu`, whose run page is allocated. */
export function kvm_run_attach(vcpu: KvmVcpu, pio: Pfn): void {
  pages.set(vcpu, { pio, last: new Uint8Array(RUN_HEAD), last_pio: new Uint8Array(4096), written: false });
}

/** The port I/O data page of `vcpu` once attached, else -1. */
export function kvm_run_pio_page(vcpu: KvmVcpu): number {
  return pages.get(vcpu)?.pio ?? -1;
}

/** kvm_arch_vcpu_destroy()'s half: the port I/O data page, now the caller's to free (-1: none). */
export function kvm_run_detach(vcpu: KvmVcpu): number {
  const pio = kvm_run_pio_page(vcpu);
  pages.delete(vcpu);
  return pio;
}

/**
 * A fault outside KVM_RUN (KVM_PRE_FAULT_MEMORY) wrote exit_reason, and with
 * kvm_prepare_memory_fault_exit() the memory_fault member, straight into vcpu->run: mark it so
 * the caller writes the page, which it must not touch otherwise (a failed call changes nothing).
 */
export function kvm_run_mark_written(vcpu: KvmVcpu): void {
  const p = pages.get(vcpu);
  if (p !== undefined) p.written = true;
}

/** Whether kvm_run_mark_written() was called since the last ask; clears the mark. */
export function kvm_run_written(vcpu: KvmVcpu): boolean {
  const p = pages.get(vcpu);
  if (p === undefined || !p.written) return false;
  p.written = false;
  return true;
}

function read_page(kernel: Kernel, pfn: Pfn, len: number): Uint8Array {
  const r = kernel.phys.read(pfn, 0, len);
  /* a poisoned line reads as what was there (the kernel's own access would take a machine check) */
  return r instanceof Uint8Array ? r : new Uint8Array(len);
}

function differs(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return true;
  return false;
}

const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, BigInt(v));

/**
 * The entry of KVM_RUN: the fields KVM reads from user space (kvm_vcpu_ioctl()'s immediate_exit,
 * complete_emulated_mmio()'s mmio.data, complete_hypercall_exit()'s hypercall.ret,
 * complete_fast_pio_in()'s data page, read when `pio_pending`: a port I/O exit awaits completion)
 * that user space changed through the mapping since the last exit, into the object.
 */
export function kvm_run_load(vcpu: KvmVcpu, pio_pending = false): void {
  const p = pages.get(vcpu);
  if (p === undefined) return;
  const kernel = vcpu.kvm.kernel;
  const now = read_page(kernel, vcpu.run_page as Pfn, RUN_HEAD);
  const run = vcpu.run;
  if (now[RUN_IMMEDIATE_EXIT] !== p.last[RUN_IMMEDIATE_EXIT]) run.immediate_exit = now[RUN_IMMEDIATE_EXIT];
  const v = new DataView(now.buffer, now.byteOffset);
  if (differs(now, p.last, RUN_CR8, RUN_CR8 + 8)) run.cr8 = v.getBigUint64(RUN_CR8, true);
  if (differs(now, p.last, RUN_VALID_REGS, RUN_VALID_REGS + 8)) run.kvm_valid_regs = v.getBigUint64(RUN_VALID_REGS, true);
  if (differs(now, p.last, RUN_DIRTY_REGS, RUN_DIRTY_REGS + 8)) run.kvm_dirty_regs = v.getBigUint64(RUN_DIRTY_REGS, true);
  if (differs(now, p.last, RUN_MMIO_DATA, RUN_MMIO_DATA + 8)) run.mmio.data.set(now.subarray(RUN_MMIO_DATA, RUN_MMIO_DATA + 8));
  if (differs(now, p.last, RUN_HYPERCALL_RET, RUN_HYPERCALL_RET + 8)) {
    run.hypercall.ret = new DataView(now.buffer, now.byteOffset).getBigUint64(RUN_HYPERCALL_RET, true);
  }
  /* the data page is read only to complete a port I/O exit (complete_fast_pio_in()) */
  if (!pio_pending) return;
  const pio = read_page(kernel, p.pio, 4096);
  for (let i = 0; i < 4096; i++) if (pio[i] !== p.last_pio[i]) run.pio_data[i] = pio[i];
}

/** What post_kvm_run_save() (arch/x86/kvm/x86.c) writes after every KVM_RUN, and store_regs() before it. */
export interface KvmRunSave {
  readonly if_flag: number;
  readonly ready_for_interrupt_injection: number;
  readonly cr8: bigint;
  readonly apic_base: bigint;
  /** store_regs() with KVM_SYNC_X86_REGS valid: struct kvm_regs into s.regs.regs, in its field order. */
  readonly sync_regs?: readonly bigint[];
}

/**
 * sync_regs()'s KVM_SYNC_X86_REGS: the struct kvm_regs user space left in kvm_run->s.regs.regs,
 * its 18 registers in field order (read at the entry of KVM_RUN, after kvm_run_load()).
 */
export function kvm_run_sync_regs(vcpu: KvmVcpu): bigint[] {
  const img = read_page(vcpu.kvm.kernel, vcpu.run_page as Pfn, RUN_HEAD);
  const v = new DataView(img.buffer, img.byteOffset);
  return Array.from({ length: KVM_REGS_COUNT }, (_, k) => v.getBigUint64(RUN_SYNC_REGS + 8 * k, true));
}

/**
 * The exit just made, into the page: exit_reason and the union member of that exit; with `save`
 * also what post_kvm_run_save() writes (the end of every KVM_RUN). The port I/O data of an OUT
 * exit goes to the data page (emulator_pio_out()). What user space stored since the last
 * kvm_run_load() is taken as its own: a caller outside KVM_RUN loads first.
 */
export function kvm_run_store(vcpu: KvmVcpu, save?: KvmRunSave): void {
  const p = pages.get(vcpu);
  if (p === undefined) return;
  const kernel = vcpu.kvm.kernel;
  const run = vcpu.run;
  const img = read_page(kernel, vcpu.run_page as Pfn, RUN_HEAD);
  const v = new DataView(img.buffer, img.byteOffset);
  v.setUint32(RUN_EXIT_REASON, run.exit_reason >>> 0, true);
  if (save !== undefined) {
    img[RUN_READY_FOR_INTERRUPT_INJECTION] = save.ready_for_interrupt_injection;
    img[RUN_IF_FLAG] = save.if_flag;
    v.setUint16(RUN_FLAGS, 0, true);
    v.setBigUint64(RUN_CR8, save.cr8, true);
    run.cr8 = save.cr8;
    v.setBigUint64(RUN_APIC_BASE, save.apic_base, true);
    /* sync_regs() clears the KVM_SYNC_X86_REGS bit it consumed; otherwise the field is as loaded */
    v.setBigUint64(RUN_DIRTY_REGS, u64(run.kvm_dirty_regs), true);
    save.sync_regs?.forEach((r, k) => v.setBigUint64(RUN_SYNC_REGS + 8 * k, u64(r), true));
  }
  const at = RUN_UNION;
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      img[at] = run.io.direction;
      img[at + 1] = run.io.size;
      v.setUint16(at + 2, run.io.port, true);
      v.setUint32(at + 4, run.io.count >>> 0, true);
      v.setBigUint64(at + 8, u64(run.io.data_offset), true);
      if (run.io.direction === KVM_EXIT_IO_OUT) {
        const n = Math.min(4096, run.io.size * run.io.count);
        kernel.phys.write(p.pio, 0, run.pio_data.subarray(0, n));
        p.last_pio.set(read_page(kernel, p.pio, 4096));
      }
      break;
    case KVM_EXIT_HYPERCALL:
      v.setBigUint64(at, u64(run.hypercall.nr), true);
      for (let i = 0; i < 6; i++) v.setBigUint64(at + 8 + 8 * i, u64(run.hypercall.args[i] ?? 0n), true);
      v.setBigUint64(at + 64, u64(run.hypercall.flags), true);
      break;
    case KVM_EXIT_MMIO:
      v.setBigUint64(at, u64(run.mmio.phys_addr), true);
      if (run.mmio.is_write) img.set(run.mmio.data.subarray(0, Math.min(8, run.mmio.len)), RUN_MMIO_DATA);
      v.setUint32(at + 16, run.mmio.len >>> 0, true);
      img[at + 20] = run.mmio.is_write;
      break;
    case KVM_EXIT_INTERNAL_ERROR:
    case KVM_EXIT_SYSTEM_EVENT: {
      /* internal {suberror, ndata, data} and system_event {type, ndata, data} share a layout */
      const internal = run.exit_reason === KVM_EXIT_INTERNAL_ERROR;
      const m = internal ? run.internal : run.system_event;
      v.setUint32(at, (internal ? run.internal.suberror : run.system_event.type) >>> 0, true);
      v.setUint32(at + 4, m.ndata >>> 0, true);
      for (let i = 0; i < Math.min(16, m.ndata, m.data.length); i++) v.setBigUint64(at + 8 + 8 * i, u64(m.data[i]), true);
      break;
    }
    case KVM_EXIT_MEMORY_FAULT:
      v.setBigUint64(at, u64(run.memory_fault.flags), true);
      v.setBigUint64(at + 8, u64(run.memory_fault.gpa), true);
      v.setBigUint64(at + 16, u64(run.memory_fault.size), true);
      break;
    default:
      break;
  }
  kernel.phys.write(vcpu.run_page as Pfn, 0, img);
  p.last.set(img);
}

/** The fields user space writes that the simulator may write for it (kvm_run_user_store()). */
export type KvmRunUserField = 'exit_reason' | 'immediate_exit' | 'mmio_data';

/**
 * Stores user space makes through its mapping, made by the simulator on its behalf (the kernel
 * oracle's guest_access() and guest_drain() write exit_reason, immediate_exit and mmio.data of
 * their kvm_run), so that the page shows them as the oracle's process's does.
 */
export function kvm_run_user_store(vcpu: KvmVcpu, fields: readonly KvmRunUserField[]): void {
  const p = pages.get(vcpu);
  if (p === undefined) return;
  const phys = vcpu.kvm.kernel.phys;
  const run = vcpu.run;
  for (const f of fields) {
    let at: number;
    let bytes: Uint8Array;
    if (f === 'exit_reason') {
      at = RUN_EXIT_REASON;
      bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, run.exit_reason >>> 0, true);
    } else if (f === 'immediate_exit') {
      at = RUN_IMMEDIATE_EXIT;
      bytes = Uint8Array.of(run.immediate_exit);
    } else {
      at = RUN_MMIO_DATA;
      bytes = run.mmio.data.slice(0, 8);
    }
    phys.write(vcpu.run_page as Pfn, at, bytes);
    p.last.set(bytes, at);
  }
}
