/**
 * Design mfd_inaccessible (D6): memfd_create(MFD_INACCESSIBLE)'s uAPI (no visible seal, no
 * sealing), the file's hiding, a conversion each way through the KVM_MEM_PRIVATE memslot with the
 * contents checked, and v7's F_SEAL_AUTO_ALLOCATE on the shared memfd.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, F_ADD_SEALS, F_GET_SEALS, F_SEAL_SEAL, F_SEAL_WRITE, Kernel, MAP_FAILED, MAP_SHARED,
  MFD_ALLOW_SEALING, PROT_READ, PROT_WRITE, Process, mmRegistrar,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, KVM_X86_SW_PROTECTED_VM } from '../../uapi.js';
import { mfd_inaccessible } from './index.js';
import { F_SEAL_AUTO_ALLOCATE, KVM_MEM_PRIVATE, MFD_INACCESSIBLE } from './uapi.js';

const PG = PAGE_SIZE;
const GPA = 0x200000n;

function proc(design = true): Process {
  const regs = [mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })];
  if (design) regs.push(mfd_inaccessible.registrar());
  return new Process(createRootContainer({}, ...regs).resolve(Kernel));
}

describe('mfd_inaccessible: memfd_create(MFD_INACCESSIBLE)', () => {
  test('an unknown flag without the design; with it no sealing (EINVAL with MFD_ALLOW_SEALING, F_SEAL_SEAL set)', () => {
    const base = proc(false);
    expect(base.memfd_create('x', MFD_INACCESSIBLE)).toBe(-1);
    expect(base.errno).toBe(Errno.EINVAL);
    const p = proc();
    expect(p.memfd_create('x', MFD_INACCESSIBLE | MFD_ALLOW_SEALING)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const fd = p.memfd_create('x', MFD_INACCESSIBLE);
    expect(fd).toBeGreaterThan(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_SEAL);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.task.files.lookup(fd)!.f_mapping.mapping_unevictable()).toBe(true);
  });

  test('no ordinary MMU access: read/write/mmap EPERM, the size set once', () => {
    const p = proc();
    const fd = p.memfd_create('x', MFD_INACCESSIBLE);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    expect(p.ftruncate(fd, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.fallocate(fd, 0, 0, PG)).toBe(0);
    expect(p.pread(fd, new Uint8Array(4), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pwrite(fd, Uint8Array.of(1), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EPERM);
  });

  test('a conversion each way: the shared memfd and the private one are different pages', () => {
    const p = proc();
    const priv = p.memfd_create('private', MFD_INACCESSIBLE);
    expect(p.ftruncate(priv, 4 * PG)).toBe(0);
    const shared_fd = p.memfd_create('shared', MFD_ALLOW_SEALING);
    expect(p.ftruncate(shared_fd, 4 * PG)).toBe(0);
    const shared = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, shared_fd, 0);
    expect(p.store(shared + BigInt(PG), new Uint8Array(4).fill(0x33))).toBe(0);
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, {
      slot: 0, flags: KVM_MEM_PRIVATE, guest_phys_addr: GPA, memory_size: 4 * PG, userspace_addr: shared, private_offset: 0, private_fd: priv,
    })).toBe(0);
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    const gpa = GPA + BigInt(PG);
    expect(p.guest_load(vcpu, gpa, 4)).toEqual(new Uint8Array(4).fill(0x33));
    // To private: allocate in the private fd, and free the shared copy (the VMM's job).
    expect(p.fallocate(priv, 0, PG, PG)).toBe(0);
    expect(p.fallocate(shared_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PG, PG)).toBe(0);
    expect(p.guest_load(vcpu, gpa, 4)).toEqual(new Uint8Array(4));
    expect(p.guest_store(vcpu, gpa, new Uint8Array(4).fill(0x44))).toBe(0);
    expect(p.load(shared + BigInt(PG), 4)).toEqual(new Uint8Array(4));
    // To shared: punch the private page; the guest's private bytes are gone.
    expect(p.fallocate(priv, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PG, PG)).toBe(0);
    expect(p.store(shared + BigInt(PG), Uint8Array.of(0x55))).toBe(0);
    expect(p.guest_load(vcpu, gpa, 2)).toEqual(Uint8Array.of(0x55, 0));
  });
});

describe('mfd_inaccessible: F_SEAL_AUTO_ALLOCATE (v7)', () => {
  test('no allocation by a fault (SIGBUS) or a write (ENOENT; EINVAL past EOF); fallocate still allocates', () => {
    const p = proc();
    const fd = p.memfd_create('shared', MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    const a = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.store(a, Uint8Array.of(9))).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_AUTO_ALLOCATE)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_AUTO_ALLOCATE);
    // Allocated pages stay usable.
    expect(p.store(a, Uint8Array.of(10))).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(11), 1)).toBe(1);
    expect(p.load(a + BigInt(PG), 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(p.pwrite(fd, Uint8Array.of(1), 2 * PG)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOENT);
    expect(p.pwrite(fd, Uint8Array.of(1), 4 * PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fallocate(fd, 0, PG, PG)).toBe(0);
    expect(p.load(a + BigInt(PG), 1)).toEqual(Uint8Array.of(0));
    expect(p.store(a + BigInt(PG), Uint8Array.of(12))).toBe(0);
  });
});
