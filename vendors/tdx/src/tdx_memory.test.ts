/**
 * A running TD's memory: conversions through TDG.VP.VMCALL<MapGPA> and TDG.MEM.PAGE.ACCEPT with
 * their contents and the removal order, what they cost, the guest touching a page it has not
 * accepted, host, kernel and device accesses to its private pages, page sizes and mobility.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, RingSink, type Pfn } from '@cocosim/core';
import {
  GFP_KERNEL, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, __alloc_contig_migrate_range, isSigInfo, page_count, reclaim,
} from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_ENABLE_CAP, KVM_EXIT_SYSTEM_EVENT, KVM_CAP_EXIT_HYPERCALL, KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_IO, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_SHUTDOWN,
  KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_PRE_FAULT_MEMORY, KVM_RUN, guestAccept, guestFill, guestLoad, guestStore,
  kvm_tdp_mmu_spte, pioOut, vmcall,
  type GuestCode, type Kvm,
} from '@cocosim/kvm';
import type { Device } from '@cocosim/vfio';
import { tdxIommuOps } from './index.js';
import { tdx_module_of } from './tdx_module.js';
import { tdx_td, tdx_x86_ops, to_kvm_tdx } from './tdx.js';
import {
  TDX_NON_RECOVERABLE_TD, TDX_PAGE_ALREADY_ACCEPTED, TDX_PAGE_SIZE_MISMATCH, TDX_SUCCESS, TDX_TD_FATAL,
} from './tdx_errno.js';
import { tdcall, tdg_mem_page_accept, tdvmcall_map_gpa, tdx_accept_memory, tdx_enc_status_changed } from './tdx_guest.js';
import {
  KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_SYSTEM_EVENT_TDX_FATAL, TDG_VP_VMCALL, TDVMCALL_GET_QUOTE, TDVMCALL_REPORT_FATAL_ERROR, TDVMCALL_STATUS_ALIGN_ERROR, TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, TDVMCALL_STATUS_SUCCESS, TDX_PS_2M, TDX_PS_4K,
} from './uapi.js';
import {
  td_create, td_finalize, td_init_mem_region, td_run, td_set_private, td_set_program, td_vcpu_add, tdx_host,
  type TdCreateOptions, type TdVm, type TdxHost,
} from './tdx_util.js';
import type { TdxPlatformOptions } from './tdx_module.js';

const PAGE = 4096;
const hosts: TdxHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

/** A finalized TD with a one-page image and one vCPU, on a fresh host. */
function running_td(opts: TdCreateOptions = {}, platform: TdxPlatformOptions = {}): { h: TdxHost; td: TdVm; trace: RingSink } {
  const h = tdx_host({ seed: 2, platform });
  hosts.push(h);
  const trace = new RingSink();
  h.kernel.tracer.addSink(trace);
  const td = td_create(h, opts);
  td_vcpu_add(td);
  td_init_mem_region(td, [new Uint8Array(PAGE).fill(0x11)]);
  td_finalize(td);
  return { h, td, trace };
}

/** KVM_RUN until the guest's `out 0x80` checkpoint: its value. */
function checkpoint(td: TdVm, onMap?: (gpa: bigint, npages: bigint, priv: boolean) => void): number {
  expect(td_run(td, onMap)).toBe(0);
  expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_IO);
  return new DataView(td.vcpu!.run.pio_data.buffer).getUint8(0);
}

function* sync(n: number): GuestCode {
  yield* pioOut(0x80, n);
}

/** Whether every byte of `data` is `byte` (a deep toEqual of a 4 KiB array is slow). */
function filled(data: Uint8Array | undefined, byte: number, len = PAGE): boolean {
  return data !== undefined && data.length === len && Buffer.from(data.buffer, data.byteOffset, data.length).equals(Buffer.alloc(len, byte));
}

/** The SEAMCALLs traced since `from` (their names). */
function seamcalls(trace: RingSink, from: number): string[] {
  return trace.events('cocosim_tdx_seamcall').slice(from).map((r) => String(r.args.fn));
}

describe('conversions', () => {
  test('shared -> private -> shared: MapGPA exits, AUG + ACCEPT zero the page, BLOCK/TRACK/REMOVE/WBINVD/clear destroy it', () => {
    const { h, td, trace } = running_td();
    const S = td.shared;
    const X = td.base + 0x20_0000n;
    const gfn = Number(X >> 12n);
    const rec: { accept?: boolean; priv?: Uint8Array; priv2?: Uint8Array; back?: boolean; shared?: Uint8Array; again?: Uint8Array } = {};
    td_set_program(td, function* () {
      yield* guestFill(X | S, 0xaa, PAGE);
      yield* sync(1);
      rec.accept = yield* tdx_enc_status_changed(X, 1, true, S);
      rec.priv = yield* guestLoad(X, PAGE);
      yield* guestFill(X, 0x5a, PAGE);
      rec.priv2 = yield* guestLoad(X, 64);
      yield* sync(2);
      rec.back = yield* tdx_enc_status_changed(X, 1, false, S);
      rec.shared = yield* guestLoad(X | S, PAGE);
      yield* sync(3);
      yield* tdx_enc_status_changed(X, 1, true, S);
      rec.again = yield* guestLoad(X, PAGE);
      yield* sync(4);
    });
    const maps: [bigint, bigint, boolean][] = [];
    const onMap = (gpa: bigint, n: bigint, priv: boolean): void => void maps.push([gpa, n, priv]);
    expect(checkpoint(td, onMap)).toBe(1);
    // The shared page is the VMM's own memory.
    expect(td.p.load(td.hva + 0x20_0000n, 4)).toEqual(new Uint8Array([0xaa, 0xaa, 0xaa, 0xaa]));
    const t0 = trace.events('cocosim_tdx_seamcall').length;
    expect(checkpoint(td, onMap)).toBe(2);
    expect(maps).toEqual([[X, 1n, true]]);
    expect(rec.accept).toBe(true);
    // Content on to-private: zeros (the module's ACCEPT), then the guest's data.
    expect(filled(rec.priv, 0)).toBe(true);
    expect(rec.priv2).toEqual(new Uint8Array(64).fill(0x5a));
    expect(seamcalls(trace, t0)).toEqual(['TDG.VP.VMCALL', 'TDG.MEM.PAGE.ACCEPT', 'TDH.MEM.SEPT.ADD', 'TDH.MEM.PAGE.AUG', 'TDG.MEM.PAGE.ACCEPT']);
    const module = tdx_module_of(h.kernel);
    const t = tdx_td(td.kvm)!;
    const pfn = kvm_tdp_mmu_spte(td.kvm, gfn, true)!.pfn;
    expect(module.sept_state(t, gfn)).toBe('MAPPED');
    expect(h.kernel.phys.inspect(pfn as Pfn)).toMatchObject({ kind: 'ciphertext', key: t.hkid });
    // The VMM's shared page is untouched by the private one.
    expect(td.p.load(td.hva + 0x20_0000n, 1)).toEqual(new Uint8Array([0xaa]));

    const t1 = trace.events('cocosim_tdx_seamcall').length;
    expect(checkpoint(td, onMap)).toBe(3);
    expect(maps[1]).toEqual([X, 1n, false]);
    expect(rec.back).toBe(true);
    // The removal order of tdx_sept_remove_private_spte().
    expect(seamcalls(trace, t1)).toEqual(['TDG.VP.VMCALL', 'TDH.MEM.RANGE.BLOCK', 'TDH.MEM.TRACK', 'TDH.MEM.PAGE.REMOVE', 'TDH.PHYMEM.PAGE.WBINVD']);
    // Content on to-shared: destroyed; the private page is zeroed with KeyID 0 and given back.
    expect(h.kernel.phys.state(pfn as Pfn)).toBe('zero');
    expect(module.pamt_get(pfn).pt).toBe('PT_NDA');
    expect(module.sept_state(t, gfn)).toBe('FREE');
    expect(kvm_tdp_mmu_spte(td.kvm, gfn, true)).toBeUndefined();
    // The guest's shared GPA reaches the VMM's page, which kept its own contents.
    expect(filled(rec.shared, 0xaa)).toBe(true);

    expect(checkpoint(td, onMap)).toBe(4);
    // To private again: zeros once more, not the 0x5a of before.
    expect(filled(rec.again, 0)).toBe(true);
  });

  test('MapGPA: 2 MiB chunks, a chunk user space fails, a mixed or unaligned range, exits not enabled', () => {
    const { td } = running_td();
    const S = td.shared;
    const Y = td.base + 0x10_0000n;
    const res: { status: bigint; r11: bigint }[] = [];
    td_set_program(td, function* () {
      res.push(yield* tdvmcall_map_gpa(Y, 0x30_0000n));
      res.push(yield* tdvmcall_map_gpa(Y, 0x30_0000n));
      res.push(yield* tdvmcall_map_gpa(Y, 0x20_0000n | S));
      res.push(yield* tdvmcall_map_gpa(Y + 1n, BigInt(PAGE)));
      res.push(yield* tdvmcall_map_gpa(Y, 0n));
      yield* sync(1);
      res.push(yield* tdvmcall_map_gpa(Y, BigInt(PAGE)));
      yield* sync(2);
    });
    const chunks: [bigint, bigint][] = [];
    let fail_second = false;
    const run = td.vcpu!.run;
    for (;;) {
      expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(0);
      if (run.exit_reason === KVM_EXIT_IO) break;
      const [gpa, n] = run.hypercall.args as [bigint, bigint];
      chunks.push([gpa, n]);
      run.hypercall.ret = fail_second && chunks.length === 4 ? 1n : 0n;
      if (chunks.length === 2) fail_second = true;
    }
    // 3 MiB: a 2 MiB exit, then the last 1 MiB; the second MapGPA's second chunk is failed.
    expect(chunks).toEqual([[Y, 512n], [Y + 0x20_0000n, 256n], [Y, 512n], [Y + 0x20_0000n, 256n]]);
    expect(res[0]).toEqual({ status: TDVMCALL_STATUS_SUCCESS, r11: 0n });
    expect(res[1]).toEqual({ status: TDVMCALL_STATUS_INVALID_OPERAND, r11: Y + 0x20_0000n });
    expect(res[2]!.status).toBe(TDVMCALL_STATUS_INVALID_OPERAND);
    expect(res[3]!.status).toBe(TDVMCALL_STATUS_ALIGN_ERROR);
    expect(res[4]!.status).toBe(TDVMCALL_STATUS_INVALID_OPERAND);
    expect(td.p.ioctl(td.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [0] })).toBe(0);
    expect(checkpoint(td)).toBe(2);
    expect(res[5]!.status).toBe(TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED);
  });

  test('ReportFatalError exits KVM_EXIT_SYSTEM_EVENT (TDX_FATAL) with the registers; GetQuote is unsupported here', () => {
    const { td } = running_td();
    let quote: readonly bigint[] = [];
    td_set_program(td, function* () {
      quote = yield* tdcall(TDG_VP_VMCALL, 0n, 0n, 0n, 0n, 0n, TDVMCALL_GET_QUOTE, 0n, 0n);
      yield* tdcall(TDG_VP_VMCALL, 0xfc00n, 0n, 0n, 0n, 0n, TDVMCALL_REPORT_FATAL_ERROR, 0xdeadn, 0n);
    });
    expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(0);
    const run = td.vcpu!.run;
    expect(run.exit_reason).toBe(KVM_EXIT_SYSTEM_EVENT);
    expect(run.system_event.type).toBe(KVM_SYSTEM_EVENT_TDX_FATAL);
    expect(run.system_event.ndata).toBe(16);
    expect(run.system_event.data[1]).toBe(0xfc00n);
    expect(run.system_event.data[12]).toBe(0xdeadn);
    expect(quote[5]).toBe(TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED);
  });

  test('the generic guest instructions work on a TD: vmcall(KVM_HC_MAP_GPA_RANGE), a TDVMCALL hypercall, accept', () => {
    const { td } = running_td();
    const X = td.base + 0x20_0000n;
    const rec: { map?: bigint; acc?: number; data?: Uint8Array; tdvm?: readonly bigint[]; acc2?: number } = {};
    td_set_program(td, function* () {
      // A KVM hypercall (VMCALL; in a TD, TDG.VP.VMCALL with R10 = the hypercall number).
      rec.map = yield* vmcall(KVM_HC_MAP_GPA_RANGE, X, 1, KVM_MAP_GPA_RANGE_ENCRYPTED, 0);
      rec.acc = yield* guestAccept(X, 1, true);
      rec.data = yield* guestLoad(X, 16);
      rec.tdvm = yield* tdcall(TDG_VP_VMCALL, 0n, 0n, 0n, 0n, BigInt(KVM_HC_MAP_GPA_RANGE), X + 4096n, 1n, KVM_MAP_GPA_RANGE_ENCRYPTED);
      rec.acc2 = yield* guestAccept(X + 4096n, 1, true);
      yield* sync(1);
    });
    const maps: [bigint, bigint, boolean][] = [];
    expect(checkpoint(td, (gpa, n, priv) => void maps.push([gpa, n, priv]))).toBe(1);
    expect(maps).toEqual([[X, 1n, true], [X + 4096n, 1n, true]]);
    expect(rec.map).toBe(0n);
    expect(rec.tdvm![5]).toBe(0n);
    expect(rec.acc).toBe(0);
    expect(rec.acc2).toBe(0);
    expect(rec.data).toEqual(new Uint8Array(16));
    expect(tdx_module_of(td.kvm.kernel).sept_state(tdx_td(td.kvm)!, Number(X >> 12n) + 1)).toBe('MAPPED');
  });

  test('what a 4 KiB conversion costs each way', () => {
    const { h, td } = running_td();
    const S = td.shared;
    const X = td.base + 0x20_0000n;
    td_set_program(td, function* () {
      yield* sync(0);
      yield* tdx_enc_status_changed(X, 1, true, S);
      yield* sync(1);
      yield* tdx_enc_status_changed(X, 1, false, S);
      yield* sync(2);
    });
    checkpoint(td);
    const cost = h.kernel.cost;
    cost.begin('to_private');
    checkpoint(td);
    const to_private = cost.end();
    cost.begin('to_shared');
    checkpoint(td);
    const to_shared = cost.end();
    const count = (b: typeof to_private, name: string): number => b.items.find((i) => i.name === name)?.count ?? 0;
    expect(count(to_private, 'tdx_tdh_mem_page_aug')).toBe(1);
    expect(count(to_private, 'tdx_tdg_mem_page_accept_4k')).toBe(1);
    expect(count(to_private, 'page_zero_4k')).toBe(1);
    expect(count(to_private, 'tdx_tdh_phymem_page_wbinvd')).toBe(0);
    // BLOCK, TRACK, REMOVE; one vCPU kicked; the write-back; the clear.
    expect(count(to_shared, 'tdx_seamcall')).toBe(3);
    expect(count(to_shared, 'tdx_vcpu_kick_ipi')).toBe(1);
    expect(count(to_shared, 'tdx_tdh_phymem_page_wbinvd')).toBe(1);
    expect(count(to_shared, 'tdx_clear_page_4k')).toBe(1);
    expect(count(to_shared, 'kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(1);
    expect(to_shared.estimated_ns).toBeGreaterThan(0);
    expect(to_shared.depends_on).toContain('tdx_tdh_phymem_page_wbinvd');
  });
});

describe('the guest and PENDING pages', () => {
  test('a load of a page AUGed but not accepted kills the TD (SEPT_VE_DISABLE): KVM_RUN -EIO', () => {
    const { td, trace } = running_td();
    const X = td.base + 0x20_0000n;
    expect(td_set_private(td, X, BigInt(PAGE), true)).toBe(0);
    // KVM_PRE_FAULT_MEMORY after finalize: TDH.MEM.PAGE.AUG, the page is PENDING.
    expect(td.p.ioctl(td.vcpu_fd, KVM_PRE_FAULT_MEMORY, { gpa: X, size: BigInt(PAGE) })).toBe(0);
    expect(tdx_module_of(td.kvm.kernel).sept_state(tdx_td(td.kvm)!, Number(X >> 12n))).toBe('PENDING');
    td_set_program(td, function* () {
      yield* guestLoad(X, 8);
    });
    expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(td.p.errno).toBe(Errno.EIO);
    expect(td.kvm.vm_dead).toBe(true);
    expect(trace.events('console').map((r) => r.args.msg)).toContain(`kvm_intel: Guest access before accepting 0x${X.toString(16)} on vCPU 0`);
  });

  test('without SEPT_VE_DISABLE the guest takes #VE instead (no handler here: a triple fault)', () => {
    const { td } = running_td({ attributes: 0n });
    const X = td.base + 0x20_0000n;
    expect(td_set_private(td, X, BigInt(PAGE), true)).toBe(0);
    expect(td.p.ioctl(td.vcpu_fd, KVM_PRE_FAULT_MEMORY, { gpa: X, size: BigInt(PAGE) })).toBe(0);
    td_set_program(td, function* () {
      yield* guestStore(X, new Uint8Array(8));
    });
    expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_SHUTDOWN);
    expect(td.kvm.vm_dead).toBe(false);
  });

  test('ACCEPT: 2 MiB over 4 KiB mappings is a size mismatch, twice is ALREADY_ACCEPTED; a shared gfn is a memory fault', () => {
    const { td } = running_td();
    const Y = td.base + 0x20_0000n;
    expect(td_set_private(td, Y, 0x20_0000n, true)).toBe(0);
    const st: bigint[] = [];
    let ok = false;
    td_set_program(td, function* () {
      st.push(yield* tdg_mem_page_accept(Y, TDX_PS_2M));
      ok = yield* tdx_accept_memory(Y, Y + 2n * BigInt(PAGE));
      st.push(yield* tdg_mem_page_accept(Y, TDX_PS_4K));
      yield* sync(1);
      yield* tdg_mem_page_accept(td.base + 0x10_0000n, TDX_PS_4K);
    });
    expect(checkpoint(td)).toBe(1);
    // KVM maps private memory 4 KiB only: the first ACCEPT's EPT violation built a page table.
    expect(st[0]).toBe(TDX_PAGE_SIZE_MISMATCH | 1n);
    expect(ok).toBe(true);
    expect(st[1]).toBe(TDX_PAGE_ALREADY_ACCEPTED | 0n);
    // Accepting a gfn user space never made private: KVM_EXIT_MEMORY_FAULT.
    expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(td.p.errno).toBe(Errno.EFAULT);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(td.vcpu!.run.memory_fault).toMatchObject({ gpa: td.base + 0x10_0000n, flags: KVM_MEMORY_EXIT_FLAG_PRIVATE });
  });
});

/** A TD whose private page at base + 2 MiB the guest accepted and filled with 0x5a; its pfn. */
function td_with_private_page(platform: TdxPlatformOptions = {}): { h: TdxHost; td: TdVm; pfn: number; kvm: Kvm; X: bigint } {
  const { h, td } = running_td({}, platform);
  const X = td.base + 0x20_0000n;
  td_set_program(td, function* () {
    yield* tdx_enc_status_changed(X, 1, true, td.shared);
    yield* guestFill(X, 0x5a, PAGE);
    yield* sync(1);
  });
  expect(checkpoint(td)).toBe(1);
  return { h, td, pfn: kvm_tdp_mmu_spte(td.kvm, Number(X >> 12n), true)!.pfn, kvm: td.kvm, X };
}

/** The guest reads `len` bytes at `gpa`; the result of KVM_RUN and what it read. */
function guest_read(td: TdVm, gpa: bigint, len: number): { ret: number; data?: Uint8Array } {
  const out: { ret: number; data?: Uint8Array } = { ret: 0 };
  td_set_program(td, function* () {
    out.data = yield* guestLoad(gpa, len);
    yield* sync(9);
  });
  out.ret = td.p.ioctl(td.vcpu_fd, KVM_RUN, 0);
  return out;
}

describe('illegal accesses to a TD private page', () => {
  test('host user: guest_memfd without MMAP cannot be mapped; with MMAP, a TD\'s (private) page faults SIGBUS', () => {
    const { td } = td_with_private_page();
    const p = td.p;
    expect(p.mmap(0, td.size, PROT_READ | PROT_WRITE, MAP_SHARED, td.gmem_fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.ENODEV);
    const fd = p.ioctl(td.vm_fd, KVM_CREATE_GUEST_MEMFD, { size: td.size, flags: GUEST_MEMFD_FLAG_MMAP });
    expect(fd).toBeGreaterThanOrEqual(0);
    const va = p.mmap(0, td.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const r = p.load(va, 8);
    expect(isSigInfo(r) && r.signo).toBe('SIGBUS');
  });

  test('host kernel: reads give zeros; a full-line write passes and the TD\'s next read of the line machine-checks it dead', () => {
    const { h, td, pfn, kvm, X } = td_with_private_page();
    const ops = tdx_x86_ops;
    expect(ops.host_access!(kvm, pfn, false, 'kernel', 0, PAGE)).toEqual({ kind: 'zeros' });
    expect(ops.host_access!(kvm, pfn, true, 'kernel', 64, 64)).toEqual({ kind: 'ok' });
    h.kernel.phys.write(pfn as Pfn, 64, new Uint8Array(64).fill(0xee));
    // The host reads back its own line; the TD's lines still read as zeros.
    expect(ops.host_access!(kvm, pfn, false, 'kernel', 64, 64)).toEqual({ kind: 'ok' });
    expect(ops.host_access!(kvm, pfn, false, 'kernel', 0, 64)).toEqual({ kind: 'zeros' });
    // The TD's other lines are intact: line 0 reads its data.
    const a = guest_read(td, X, 64);
    expect(a.ret).toBe(0);
    expect(a.data).toEqual(new Uint8Array(64).fill(0x5a));
    // Line 1: the integrity check fails, the line is poisoned, the TD is dead.
    const b = guest_read(td, X + 64n, 8);
    expect(b.ret).toBe(0);
    const run = td.vcpu!.run;
    expect(run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    expect(run.internal.data[0]).toBe(TDX_NON_RECOVERABLE_TD | 6n);
    expect(h.kernel.phys.poisonedLines(pfn as Pfn)).toContain(1);
    expect(td.p.ioctl(td.vcpu_fd, KVM_RUN, 0)).toBe(0);
    expect(run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    expect(run.internal.data[0]).toBe(TDX_TD_FATAL);
  });

  test('a partial-line write poisons the line at once on X86_BUG_TDX_PW_MCE parts: anyone\'s read machine-checks', () => {
    const { h, td, pfn, kvm, X } = td_with_private_page();
    expect(tdx_x86_ops.host_access!(kvm, pfn, true, 'kernel', 130, 8)).toEqual({ kind: 'ok' });
    expect(h.kernel.phys.poisonedLines(pfn as Pfn)).toEqual([2]);
    expect(tdx_x86_ops.host_access!(kvm, pfn, false, 'user', 128, 64).kind).toBe('mce');
    expect(guest_read(td, X + 128n, 4).ret).toBe(0);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
  });

  test('without the erratum a partial write only clears the TD-owner bit: the TD still machine-checks on its read', () => {
    const { h, td, pfn, kvm, X } = td_with_private_page({ partial_write_poison: false });
    expect(tdx_x86_ops.host_access!(kvm, pfn, true, 'kernel', 130, 8)).toEqual({ kind: 'ok' });
    expect(h.kernel.phys.poisonedLines(pfn as Pfn)).toEqual([]);
    expect(guest_read(td, X + 128n, 4).ret).toBe(0);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    expect(h.kernel.phys.poisonedLines(pfn as Pfn)).toEqual([2]);
  });

  test('device DMA: the IOMMU lets it through, reads are zeros, a write breaks the TD\'s next read', () => {
    const { h, td, pfn, kvm, X } = td_with_private_page();
    const dev = { iommu: { kernel: h.kernel } } as unknown as Device;
    expect(tdxIommuOps.dma_access!(dev, pfn as Pfn, false, 0, 256)).toEqual({ kind: 'zeros' });
    expect(tdx_x86_ops.dma_access!(kvm, pfn, false)).toEqual({ kind: 'zeros' });
    expect(tdxIommuOps.dma_access!(dev, pfn as Pfn, true, 256, 64)).toEqual({ kind: 'ok' });
    // A partial-line DMA write poisons its line (X86_BUG_TDX_PW_MCE); a device reading it gets poison.
    expect(tdxIommuOps.dma_access!(dev, pfn as Pfn, true, 1000, 8)).toEqual({ kind: 'ok' });
    expect(h.kernel.phys.poisonedLines(pfn as Pfn)).toEqual([15]);
    expect(tdxIommuOps.dma_access!(dev, pfn as Pfn, false, 960, 64)).toEqual({ kind: 'ok' });
    expect(guest_read(td, X + 192n, 64).ret).toBe(0);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_IO);
    expect(guest_read(td, X + 256n, 64).ret).toBe(0);
    expect(td.vcpu!.run.exit_reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    // A page that is not the TD's (the shared half) is plain memory for devices and the host.
    const shared_pfn = kvm_tdp_mmu_spte(kvm, Number(td.base >> 12n), true)!.pfn + 100000;
    expect(tdxIommuOps.dma_access!(dev, shared_pfn as Pfn, false, 0, 64)).toEqual({ kind: 'ok' });
  });
});

describe('sizes and mobility', () => {
  test('private memory is mapped 4 KiB, pinned while mapped, and neither migrated nor swapped', () => {
    const { h, td, pfn, kvm, X } = td_with_private_page();
    expect(tdx_x86_ops.gmem_max_mapping_level!(kvm, pfn, true)).toBe(1);
    expect(tdx_x86_ops.gmem_max_mapping_level!(kvm, pfn, false)).toBe(0);
    expect(kvm_tdp_mmu_spte(kvm, Number(X >> 12n), true)!.level).toBe(1);
    const store = h.kernel.store;
    const pinned = page_count(store, pfn);
    expect(__alloc_contig_migrate_range(h.kernel, pfn, pfn + 1, GFP_KERNEL)).toBe(-Errno.EBUSY);
    // Reclaim leaves it alone: guest_memfd's mapping is unevictable.
    reclaim(h.kernel, 1 << 16);
    expect(page_count(store, pfn)).toBe(pinned);
    const r = guest_read(td, X, 16);
    expect(r.data).toEqual(new Uint8Array(16).fill(0x5a));
    // Converting it to shared drops KVM's pin.
    td_set_program(td, function* () {
      yield* tdx_enc_status_changed(X, 1, false, td.shared);
      yield* sync(1);
    });
    expect(checkpoint(td)).toBe(1);
    expect(page_count(store, pfn)).toBe(pinned - 1);
  });

  test('the module maps 2 MiB (AUG, ACCEPT) and splits it (BLOCK, TRACK, DEMOTE) with the contents kept', () => {
    const { h, td } = running_td();
    const module = tdx_module_of(h.kernel);
    const t = tdx_td(td.kvm)!;
    const Z = td.base + 0x40_0000n;
    const big = h.kernel.page_alloc.alloc_pages(GFP_KERNEL, 9);
    expect(module.tdh_mem_page_aug(t, Z, TDX_PS_2M, big)).toBe(TDX_SUCCESS);
    expect(module.tdg_mem_page_accept(t, Z, TDX_PS_2M)).toEqual({ err: TDX_SUCCESS, violation: false });
    h.kernel.phys.write((big + 3) as Pfn, 0, new Uint8Array([1, 2, 3]), t.hkid);
    const sept = h.kernel.page_alloc.alloc_page(GFP_KERNEL);
    expect(module.tdh_mem_page_demote(t, Z, TDX_PS_2M, sept) & 0xffff_ffff_0000_0000n).toBe(0xc000_0b06_0000_0000n);
    expect(module.tdh_mem_range_block(t, Z, TDX_PS_2M)).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_track(t)).toBe(TDX_SUCCESS);
    expect(module.tdh_mem_page_demote(t, Z, TDX_PS_2M, sept)).toBe(TDX_SUCCESS);
    const gfn = Number(Z >> 12n);
    expect(module.sept_leaf(t, gfn + 3)).toMatchObject({ level: 0, entry: { pfn: big + 3 } });
    expect(module.sept_state(t, gfn + 511)).toBe('MAPPED');
    expect(h.kernel.phys.read((big + 3) as Pfn, 0, 3, t.hkid)).toEqual(new Uint8Array([1, 2, 3]));
    expect(module.pamt_get(sept).pt).toBe('PT_EPT');
  });
});

describe('teardown', () => {
  test('closing the TD\'s files reclaims every page the module held for it and frees its HKID', () => {
    const { h, td } = td_with_private_page();
    const module = tdx_module_of(h.kernel);
    const t = tdx_td(td.kvm)!;
    const owned = module.pages_owned(t);
    expect(new Set(owned.values())).toEqual(new Set(['PT_TDR', 'PT_TDCX', 'PT_TDVPR', 'PT_EPT', 'PT_REG']));
    const hkid = to_kvm_tdx(td.kvm).hkid;
    for (const fd of [td.vcpu_fd, td.gmem_fd, td.vm_fd]) expect(td.p.close(fd)).toBe(0);
    expect(module.pages_owned(t).size).toBe(0);
    expect(module.hkid_owner(hkid)).toBeUndefined();
    expect(t.lifecycle).toBe('TD_TEARDOWN');
    for (const pfn of owned.keys()) expect(h.kernel.phys.isPoisoned(pfn as Pfn)).toBe(false);
  });
});
