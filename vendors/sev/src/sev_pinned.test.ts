/*
 * Design D13 "sev_pinned" (kvm/src/designs/sev_pinned) on the SEV vendor: legacy SEV guest RAM
 * is the VMM's anonymous memory, pinned by KVM_MEMORY_ENCRYPT_REG_REGION, encrypted in place by
 * LAUNCH_UPDATE_DATA, converted by the guest's C-bit alone. Nothing hides it: the host reads
 * ciphertext, its writes (user stores, read() into guest memory) land and the guest reads garbage
 * (designs.md §2 S1-S4 "SEV"); GUP works on every page.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FOLL_LONGTERM, FOLL_WRITE, Kernel, Process, get_user_pages, mmRegistrar, page_maybe_dma_pinned, pagemap_pfn,
  pin_user_pages, unpin_user_pages_dirty_lock,
} from '@cocosim/mm';
import {
  DESIGNS, KVM_EXIT_HLT, cvm_create, cvm_guest_convert, cvm_launch, cvm_run, guestLoad, guestStore, kvmRegistrar, sev_legacy_cvm,
  sev_pinned, sev_pinned_state, sev_pinned_vmm, sw_protected_cvm, type CvmVm, type GuestProgram,
} from '@cocosim/kvm';
import { KVM_X86_SEV_VM, sevVendorPlugin, to_kvm_sev_info } from './index.js';

const PG = BigInt(PAGE_SIZE);
const NPAGES = 8n;

function host(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 1 << 14 }), kvmRegistrar({ x86_ops: sevVendorPlugin.x86_ops }),
    sevVendorPlugin.registrar(), sev_pinned.registrar()).resolve(Kernel);
}

function vm(p = new Process(host())): CvmVm {
  const v = cvm_create(p, sev_legacy_cvm, sev_pinned_vmm, { size: NPAGES * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number, n = 16): Uint8Array => new Uint8Array(n).fill(b);

/** Run `body` on the guest to its end (KVM_EXIT_HLT), answering its hypercalls with the design. */
function guest(v: CvmVm, body: GuestProgram): void {
  const r = cvm_run(v, body);
  expect(r.ret).toBe(0);
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
}

describe('D13 sev_pinned: platform and memory', () => {
  test('runs on vendor sev only, as a KVM_X86_SEV_VM with the legacy launch', () => {
    expect(sev_pinned_vmm.vendor_cvm!('sev', undefined)).toBe(sev_legacy_cvm);
    expect(sev_pinned_vmm.vendor_cvm!('tdx', undefined)).toBeUndefined();
    expect(sev_pinned_vmm.applies(sev_legacy_cvm)).toBeUndefined();
    expect(sev_pinned_vmm.applies(sw_protected_cvm)).toMatch(/D13 runs on SEV only/);
    expect(DESIGNS.get('sev_pinned')).toBe(sev_pinned);
    const v = vm();
    expect(v.kvm.arch.vm_type).toBe(KVM_X86_SEV_VM);
    expect(v.kvm.arch.has_private_mem).toBe(false);
  });

  test('REG_REGION pins all guest RAM up front (memlock accounted); over RLIMIT_MEMLOCK without CAP_IPC_LOCK: ENOMEM, nothing pinned', () => {
    const v = vm();
    const s = sev_pinned_state(v);
    expect(to_kvm_sev_info(v.kvm).pages_locked).toBe(Number(NPAGES));
    for (let i = 0n; i < NPAGES; i++) expect(page_maybe_dma_pinned(v.kvm.kernel.store, pagemap_pfn(v.p.mm, s.hva + i * PG)!)).toBe(true);

    const p = new Process(host());
    p.task.cap_ipc_lock = false;
    p.task.rlimit_memlock = (NPAGES - 1n) * PG;
    const r = cvm_create(p, sev_legacy_cvm, sev_pinned_vmm, { size: NPAGES * PG });
    expect(r).toBe(-Errno.ENOMEM);
    expect(p.errno).toBe(Errno.ENOMEM);
    p.task.rlimit_memlock = NPAGES * PG;
    expect(typeof cvm_create(p, sev_legacy_cvm, sev_pinned_vmm, { size: NPAGES * PG })).toBe('object');
  });

  test('launch encrypts the image in place: the guest reads it, the VMM mapping shows ciphertext; a measurement exists', () => {
    const v = vm();
    const img = new Uint8Array(PAGE_SIZE).map((_, i) => (i * 7 + 1) & 0xff);
    expect(cvm_launch(v, v.base, img)).toBe(0);
    expect(v.vendor.measurement!(v)).toMatch(/^[0-9a-f]{96}$/);
    const hva = sev_pinned_vmm.hva(v, v.base)!;
    const host_view = v.p.load(hva, 64) as Uint8Array;
    expect(host_view).not.toEqual(img.subarray(0, 64));
    let seen: Uint8Array | undefined;
    guest(v, function* () {
      seen = yield* guestLoad(v.base, 64);
    });
    expect(seen).toEqual(img.subarray(0, 64));
  });
});

describe('D13 sev_pinned: conversion is the guest C-bit; the host is unaware', () => {
  test('each way: the VMM only updates its shared-regions list; memory is never changed, so each side reads the other key\'s ciphertext', () => {
    const v = vm();
    const gpa = v.base + 2n * PG;
    const hva = sev_pinned_vmm.hva(v, gpa)!;
    const s = sev_pinned_state(v);
    let after_private: Uint8Array | undefined;
    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      yield* guestStore(gpa, fill(0x5e));
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      // C=0 now: the guest reads the page through the host key, i.e. its old ciphertext.
      after_private = yield* guestLoad(gpa, 16);
    });
    expect(after_private).not.toEqual(fill(0x5e));
    expect(v.p.load(hva, 16)).toEqual(after_private);
    expect(s.shared).toEqual([[gpa >> 12n, (gpa >> 12n) + 1n]]);

    // Shared: the host and the guest see the same plaintext, both ways.
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    let shared: Uint8Array | undefined;
    guest(v, function* () {
      shared = yield* guestLoad(gpa, 16);
      yield* guestStore(gpa + 16n, fill(0x22));
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
    });
    expect(shared).toEqual(fill(0x11));
    expect((v.p.load(hva + 16n, 16) as Uint8Array)).toEqual(fill(0x22));
    expect(s.shared).toEqual([]);
    // Back to private without any copy: the guest's plaintext reads as garbage through C=1.
    let reencrypted: Uint8Array | undefined;
    guest(v, function* () {
      reencrypted = yield* guestLoad(gpa, 16);
    });
    expect(reencrypted).not.toEqual(fill(0x11));
  });

  test('the conversion hypercall is a report: a range outside guest RAM is still accepted (QEMU keeps the list)', () => {
    const v = vm();
    const r = cvm_run(v, function* () {
      expect(yield* cvm_guest_convert(v, v.base + 4n * PG, 3n, false)).toBe(0n);
    });
    expect(r.conversions).toEqual([{ gpa: v.base + 4n * PG, npages: 3n, to_private: false, ret: 0, errno: 0 }]);
    expect(sev_pinned_state(v).shared).toEqual([[(v.base >> 12n) + 4n, (v.base >> 12n) + 7n]]);
  });
});

describe('D13 sev_pinned: host accesses to a private (C=1) page', () => {
  function private_page(): { v: CvmVm; gpa: bigint; hva: bigint } {
    const v = vm();
    const gpa = v.base + PG;
    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      yield* guestStore(gpa, fill(0x5e));
    });
    return { v, gpa, hva: sev_pinned_vmm.hva(v, gpa)! };
  }

  function guest_reads(v: CvmVm, gpa: bigint): Uint8Array {
    let b: Uint8Array | undefined;
    guest(v, function* () {
      b = yield* guestLoad(gpa, 16);
    });
    return b!;
  }

  test('S1/S2: a VMM load returns ciphertext; a VMM store lands and the guest reads garbage (no integrity)', () => {
    const { v, gpa, hva } = private_page();
    const seen = v.p.load(hva, 16);
    expect(seen).toBeInstanceOf(Uint8Array);
    expect(seen).not.toEqual(fill(0x5e));
    expect(v.p.store(hva, fill(0xee))).toBe(0);
    const g = guest_reads(v, gpa);
    expect(g).not.toEqual(fill(0x5e));
    expect(g).not.toEqual(fill(0xee));
  });

  test('S3: the kernel\'s copy from the page (write(fd, ptr)) gets ciphertext; its copy into it (read(fd, ptr)) lands: the guest reads garbage', () => {
    // cocosim's read()/write() take a buffer, not a user pointer: the kernel's copy_from_user /
    // copy_to_user of the VMM's pointer is process_vm_readv/writev on the VMM itself (as S3 does).
    const { v, gpa, hva } = private_page();
    const remote = [{ iov_base: hva, iov_len: 16 }];
    const got = new Uint8Array(16);
    expect(v.p.process_vm_readv(v.p, [got], 1, remote, 1)).toBe(16);
    expect(got).not.toEqual(fill(0x5e));
    expect(got).toEqual(v.p.load(hva, 16));
    expect(v.p.process_vm_writev(v.p, [fill(0x33)], 1, remote, 1)).toBe(16);
    const g = guest_reads(v, gpa);
    expect(g).not.toEqual(fill(0x5e));
    expect(g).not.toEqual(fill(0x33));
  });

  test('S4: GUP works on a private page (get_user_pages, pin_user_pages FOLL_LONGTERM): it is ordinary pinned memory', () => {
    const { v, hva } = private_page();
    const pfn = pagemap_pfn(v.p.mm, hva)!;
    const got: number[] = [];
    expect(get_user_pages(v.p.mm, Number(hva / PG), 1, FOLL_WRITE, got)).toBe(1);
    expect(got).toEqual([pfn]);
    const pinned: number[] = [];
    expect(pin_user_pages(v.p.mm, Number(hva / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pinned)).toBe(1);
    expect(pinned).toEqual([pfn]);
    unpin_user_pages_dirty_lock(v.kvm.kernel, pinned, 1, false);
  });
});
