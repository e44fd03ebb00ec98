/**
 * gmem_inplace's VMM (vmm.ts) on vendor sw_protected through cvm_create/cvm_run: one guest_memfd
 * (MMAP | INIT_SHARED) mapped as the memslot's userspace_addr, conversions by
 * KVM_SET_MEMORY_ATTRIBUTES2 on it with the one copy's contents checked from guest and VMM, S1's
 * store through the VMM's mapping (SIGBUS), the EAGAIN of a to-private conversion while the VMM
 * holds a FOLL_LONGTERM pin (reported by cvm_run, error_offset kept), and the host's options:
 * RFC content modes, and gmem_in_place_conversion=0 (the 6.18 VMM).
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { FOLL_LONGTERM, FOLL_WRITE, Kernel, Process, mmRegistrar, pin_user_pages, unpin_user_pages } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmDesign, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { KVM_EXIT_HLT } from '../../uapi.js';
import { gmem_vmm_state } from '../upstream/vmm.js';
import { gmem_inplace, type GmemInplaceOptions } from './index.js';
import { KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE } from './uapi.js';
import { gmem_inplace_vmm, gmem_inplace_vmm_state, gmem_inplace_vmm_with_modes } from './vmm.js';

const PG = 4096n;

function vm(opts: GmemInplaceOptions = {}, vmm: CvmDesign = gmem_inplace_vmm): CvmVm {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    gmem_inplace.registrar(opts)).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, vmm, { size: 16n * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

describe('gmem_inplace VMM on sw_protected', () => {
  test('one copy: the VMM\'s mapping is the guest_memfd; to private hides it (S1: SIGBUS), to shared shows the guest\'s bytes', () => {
    const v = vm();
    expect(gmem_inplace.vmm).toBe(gmem_inplace_vmm);
    const s = gmem_inplace_vmm_state(v);
    const gpa = v.base + 3n * PG;
    const hva = gmem_inplace_vmm.hva(v, gpa)!;
    expect(hva).toBe(s.hva + 3n * PG);
    expect(v.p.store(hva, fill(0xaa))).toBe(0);
    let shared: Uint8Array | undefined;
    let priv: Uint8Array | undefined;
    let ret: bigint | undefined;
    const r = cvm_run(v, function* () {
      shared = yield* guestLoad(gpa, 8);
      ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
      priv = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(ret).toBe(0n);
    expect(shared).toEqual(fill(0xaa));
    // In place, and v8 does not touch the contents: the private page holds the VMM's bytes.
    expect(priv).toEqual(fill(0xaa));
    expect(v.p.load(hva, 8)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    expect(v.p.store(hva, fill(0xee))).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    // The neighbours stay shared and mapped.
    expect(v.p.load(hva - PG, 1)).toEqual(Uint8Array.of(0));

    let back: Uint8Array | undefined;
    const r2 = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      back = yield* guestLoad(gpa, 8);
    });
    expect(r2.conversions).toEqual([{ gpa, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(back).toEqual(fill(0x5e));
    expect(v.p.load(hva, 8)).toEqual(fill(0x5e));
    expect(s.error_offset).toBeNull();
  });

  test('EAGAIN while the VMM holds a FOLL_LONGTERM pin: cvm_run reports it, error_offset names the page, nothing converts; unpinned, the retry works', () => {
    const v = vm();
    const gpa = v.base;
    const hva = gmem_inplace_vmm.hva(v, gpa)!;
    expect(v.p.store(hva + 2n * PG, fill(0x22))).toBe(0);
    const pages: number[] = [];
    expect(pin_user_pages(v.p.mm, Number((hva + 2n * PG) / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(1);
    let ret: bigint | undefined;
    let seen: Uint8Array | undefined;
    const r = cvm_run(v, function* () {
      ret = yield* v.vendor.guest_convert(v, gpa, 4n, true);
      seen = yield* guestLoad(gpa + 2n * PG, 8);
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 4n, to_private: true, ret: -1, errno: Errno.EAGAIN }]);
    expect(ret).not.toBe(0n);
    expect(gmem_inplace_vmm_state(v).error_offset).toBe(2n * PG);
    // Still shared everywhere: the guest reads the shared bytes, the VMM its mapping.
    expect(seen).toEqual(fill(0x22));
    expect(v.p.load(hva, 1)).toEqual(Uint8Array.of(0));
    expect(v.p.load(hva + 2n * PG, 8)).toEqual(fill(0x22));

    unpin_user_pages(v.p.kernel.store, pages, 1);
    const r2 = cvm_run(v, function* () {
      ret = yield* v.vendor.guest_convert(v, gpa, 4n, true);
    });
    expect(r2.conversions).toEqual([{ gpa, npages: 4n, to_private: true, ret: 0, errno: 0 }]);
    expect(ret).toBe(0n);
    expect(gmem_inplace_vmm_state(v).error_offset).toBeNull();
    expect(v.p.load(hva + 2n * PG, 1)).toMatchObject({ signo: 'SIGBUS' });
  });

  test('RFC content modes on the host: flags 0 is UNSPECIFIED (scrambled on SW_PROTECTED); a VMM asking PRESERVE keeps the bytes', () => {
    const v = vm({ content_modes: 'rfc-v4' });
    const gpa = v.base;
    expect(v.p.store(gmem_inplace_vmm.hva(v, gpa)!, fill(0x5a))).toBe(0);
    let priv: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      priv = yield* guestLoad(gpa, 8);
    });
    expect(priv).not.toEqual(fill(0x5a));

    const preserve = gmem_inplace_vmm_with_modes({ to_private: KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE, to_shared: KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE });
    const w = vm({ content_modes: 'rfc-v4' }, preserve);
    const hva = preserve.hva(w, gpa)!;
    expect(w.p.store(hva, fill(0x5a))).toBe(0);
    let kept: Uint8Array | undefined;
    cvm_run(w, function* () {
      yield* w.vendor.guest_convert(w, gpa, 1n, true);
      kept = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, fill(0x5e));
      yield* w.vendor.guest_convert(w, gpa, 1n, false);
    });
    expect(kept).toEqual(fill(0x5a));
    expect(w.p.load(hva, 8)).toEqual(fill(0x5e));
    // On a v8 host the same VMM passes flags 0 (v6+ refuses any flag): the conversion works.
    const x = vm({}, preserve);
    const rx = cvm_run(x, function* () {
      yield* x.vendor.guest_convert(x, gpa, 1n, true);
    });
    expect(rx.conversions[0]).toMatchObject({ ret: 0 });
  });

  test('gmem_in_place_conversion=0: the host is the 6.18 base and the VMM backs memory as upstream does (S1 misses)', () => {
    const v = vm({ vm_memory_attributes: true, gmem_in_place_conversion: false });
    expect(v.state.has('gmem_inplace')).toBe(false);
    const gpa = v.base;
    const hva = gmem_inplace_vmm.hva(v, gpa)!;
    expect(hva).toBe(gmem_vmm_state(v).hva);
    let secret: Uint8Array | undefined;
    const r = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(v.p.store(hva, fill(0xee))).toBe(0);
    cvm_run(v, function* () {
      secret = yield* guestLoad(gpa, 8);
    });
    expect(secret).toEqual(fill(0x5e));
  });
});
