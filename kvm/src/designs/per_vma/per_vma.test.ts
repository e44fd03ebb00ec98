/**
 * Design per_vma (D2, David Hildenbrand's alternative): KVM_PROTECT_MEMORY's checks, the denial
 * (mprotect(PROT_WRITE) -EACCES, user store SIGSEGV SEGV_ACCERR, reads allowed), GUP writes only
 * with FOLL_DENYUSERWRITE, kernel access (process_vm_writev -EFAULT, readv allowed), the guest's
 * writes through KVM, and a conversion each way with the VMM's bounced writes (KVM_WRITE_GUEST).
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import {
  FOLL_FORCE, FOLL_WRITE, Kernel, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Process, VM_WRITE, find_vma,
  check_vm, get_user_pages, get_user_pages_remote, mmRegistrar, put_page, vm_flags_test,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_guest_convert, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore, type GuestCode } from '../../guest.js';
import { KVM_CREATE_VM, KVM_EXIT_HLT, KVM_SET_USER_MEMORY_REGION, KVM_X86_SW_PROTECTED_VM } from '../../uapi.js';
import { design_of } from '../design.js';
import {
  FOLL_DENYUSERWRITE, KVM_PROTECT_MEMORY, KVM_WRITE_GUEST, VM_DENYUSERWRITE, per_vma, per_vma_hva, per_vma_protected, per_vma_vmm,
  per_vma_write_guest,
} from './index.js';

const PG = 4096n;

function host(): { kernel: Kernel; p: Process } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    per_vma.registrar()).resolve(Kernel);
  return { kernel, p: new Process(kernel) };
}

function vm(p: Process): CvmVm {
  const v = cvm_create(p, sw_protected_cvm, per_vma_vmm, { size: 16n * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

function guest<T>(v: CvmVm, body: () => GuestCode<T>): T {
  let out: T | undefined;
  const r = cvm_run(v, function* () {
    out = yield* body();
  });
  expect(r.ret, `KVM_RUN errno ${r.errno}`).toBe(0);
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
  return out as T;
}

const fill = (b: number, n = 8): Uint8Array => new Uint8Array(n).fill(b);

/** A bare VM with one slot over `hva` (pages) for the ioctl's checks. */
function bareVm(p: Process, hva: bigint, pages: bigint): number {
  const fd = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
  expect(p.ioctl(fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, flags: 0, guest_phys_addr: 0x100000n, memory_size: pages * PG, userspace_addr: hva })).toBe(0);
  return fd;
}

describe('per_vma: KVM_PROTECT_MEMORY', () => {
  test('-EINVAL while the memory is writable or shared, -EFAULT for a hole; a refusal changes nothing', () => {
    const { kernel, p } = host();
    expect(design_of(kernel)?.design.name).toBe('per_vma');
    const rw = p.mmap(0, 4n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const fd = bareVm(p, rw, 4n);
    expect(p.ioctl(fd, KVM_PROTECT_MEMORY)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.mprotect(rw, 2n * PG, PROT_READ)).toBe(0);
    // Half read-only: still refused, and the read-only half got no VM_DENYUSERWRITE.
    expect(p.ioctl(fd, KVM_PROTECT_MEMORY)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(vm_flags_test(find_vma(p.mm, Number(rw / PG))!.vm_flags, VM_DENYUSERWRITE)).toBe(false);
    const sh = p.mmap(0, 2n * PG, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(bareVm(p, sh, 2n), KVM_PROTECT_MEMORY)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const ro = p.mmap(0, 2n * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const hole = bareVm(p, ro, 2n);
    expect(p.munmap(ro + PG, PG)).toBe(0);
    expect(p.ioctl(hole, KVM_PROTECT_MEMORY)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
  });

  test('after it the VMA denies user writes: mprotect(PROT_WRITE) -EACCES, store SIGSEGV, load allowed', () => {
    const { p } = host();
    const v = vm(p);
    const hva = per_vma_hva(v);
    expect(p.store(hva, fill(0x11))).toBe(0);
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, true))).toBe(0n);
    expect(per_vma_protected(v.kvm)).toBe(true);
    const vma = find_vma(p.mm, Number(hva / PG))!;
    expect(vm_flags_test(vma.vm_flags, VM_DENYUSERWRITE)).toBe(true);
    expect(vm_flags_test(vma.vm_flags, VM_WRITE)).toBe(false);
    expect(p.mprotect(hva, PG, PROT_READ | PROT_WRITE)).toBe(-1);
    expect(p.errno).toBe(Errno.EACCES);
    // Dropping permissions is still allowed.
    expect(p.mprotect(hva + 15n * PG, PG, PROT_READ)).toBe(0);
    guest(v, () => guestStore(v.base, fill(0x5e)));
    expect(p.store(hva, fill(0xee))).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR', si_addr: hva });
    // Reads are not denied: on sw_protected the VMM reads the guest's data in the clear (S2 differs from D2's SIGBUS).
    expect(p.load(hva, 8)).toEqual(fill(0x5e));
    expect([...guest(v, () => guestLoad(v.base, 8))]).toEqual([...fill(0x5e)]);
  });
});

describe('per_vma: kernel and GUP access', () => {
  test('GUP writes need FOLL_DENYUSERWRITE (FOLL_FORCE alone is -EFAULT); reads and kernel reads work', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = per_vma_hva(v);
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, true))).toBe(0n);
    guest(v, () => guestStore(v.base, fill(0x5e)));
    const vpn = Number(hva / PG);
    const pages: number[] = [];
    expect(get_user_pages(p.mm, vpn, 1, FOLL_WRITE, pages)).toBe(-Errno.EFAULT);
    expect(get_user_pages_remote(p.mm, vpn, 1, FOLL_WRITE | FOLL_FORCE, pages)).toBe(-Errno.EFAULT);
    expect(get_user_pages(p.mm, vpn, 1, 0, pages)).toBe(1);
    put_page(kernel.store, pages[0]!);
    expect(get_user_pages_remote(p.mm, vpn, 1, FOLL_WRITE | FOLL_FORCE | FOLL_DENYUSERWRITE, pages)).toBe(1);
    put_page(kernel.store, pages[0]!);
    expect(p.process_vm_writev(p, [fill(0xee)], 1, [{ iov_base: hva, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    const buf = new Uint8Array(8);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: hva, iov_len: 8 }], 1)).toBe(8);
    expect(buf).toEqual(fill(0x5e));
    // kvm_debug.ts's spte_private rule reads the PRIVATE attribute as "mapped from guest_memfd";
    // this design keeps private pages in the hva (mem_is_private 0) and uses the attribute only
    // to refuse bounced writes, so that one rule does not apply here.
    expect(check_vm(kernel).filter((v) => v.rule !== 'kvm:spte_private')).toEqual([]);
  });
});

describe('per_vma: conversion and the bounced writes', () => {
  test('shared pages take the VMM\'s writes through KVM_WRITE_GUEST; private pages refuse them (-EPERM)', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = per_vma_hva(v);
    expect(guest(v, () => cvm_guest_convert(v, v.base, 2n, true))).toBe(0n);
    guest(v, () => guestStore(v.base + PG, fill(0x5e)));
    // Private page: refused, unchanged.
    expect(per_vma_write_guest(v, v.base + PG, fill(0xee))).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    // A write spanning a shared and a private page changes neither.
    expect(per_vma_write_guest(v, v.base + 2n * PG - 4n, fill(0xee))).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect([...guest(v, () => guestLoad(v.base + PG, 8))]).toEqual([...fill(0x5e)]);
    // private -> shared: same page, the guest's data is what both sides read.
    expect(guest(v, () => cvm_guest_convert(v, v.base + PG, 1n, false))).toBe(0n);
    expect(p.load(hva + PG, 8)).toEqual(fill(0x5e));
    expect(p.store(hva + PG, fill(0xee))).toMatchObject({ signo: 'SIGSEGV' });
    expect(per_vma_write_guest(v, v.base + PG + 8n, fill(0x77))).toBe(0);
    expect([...guest(v, () => guestLoad(v.base + PG, 16))]).toEqual([...fill(0x5e), ...fill(0x77)]);
    expect(p.load(hva + PG + 8n, 8)).toEqual(fill(0x77));
    expect(check_vm(kernel)).toEqual([]);
    // shared -> private: the bounce path closes again.
    expect(guest(v, () => cvm_guest_convert(v, v.base + PG, 1n, true))).toBe(0n);
    expect(per_vma_write_guest(v, v.base + PG, fill(0x99))).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
  });

  test('KVM_WRITE_GUEST checks its struct: -EFAULT for a bad struct, a short buffer, or a gpa outside the memslots', () => {
    const { p } = host();
    const v = vm(p);
    expect(p.ioctl(v.vm_fd, KVM_WRITE_GUEST, null)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.ioctl(v.vm_fd, KVM_WRITE_GUEST, { gpa: v.base, size: 16, data: fill(1) })).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.ioctl(v.vm_fd, KVM_WRITE_GUEST, { gpa: v.base + 16n * PG, size: 8, data: fill(1) })).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.ioctl(v.vm_fd, KVM_WRITE_GUEST, { gpa: v.base, size: 0, data: fill(1) })).toBe(0);
  });

  test('runs on sw_protected only; other vendors get the reason', () => {
    expect(per_vma_vmm.applies(sw_protected_cvm)).toBeUndefined();
    expect(per_vma_vmm.applies({ ...sw_protected_cvm, name: 'tdx' })).toMatch(/guest_memfd/);
  });
});
