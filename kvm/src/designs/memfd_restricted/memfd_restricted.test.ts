/**
 * Design memfd_restricted (D7): the system call (ENOSYS without the design), the restricted
 * file's uAPI (no read/write/mmap, size once), the exclusive binding to KVM_MEM_PRIVATE memslots,
 * conversions through the per-VM KVM_SET_MEMORY_ATTRIBUTES with the contents checked, and the
 * SGP_WRITE page that restrictedmem_get_page() does not clear.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, F_GETFD, Kernel, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, PROT_READ,
  PROT_WRITE, Process, mmRegistrar, type Stat,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import {
  KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION,
  KVM_X86_SW_PROTECTED_VM,
} from '../../uapi.js';
import { memfd_restricted, memfd_restricted_design, restrictedmem } from './index.js';
import { KVM_MEM_PRIVATE } from './uapi.js';

const PG = PAGE_SIZE;
const GPA = 0x200000n;

function proc(design = true): Process {
  const regs = [mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })];
  if (design) regs.push(memfd_restricted_design.registrar());
  return new Process(createRootContainer({}, ...regs).resolve(Kernel));
}

describe('memfd_restricted: the system call and its file', () => {
  test('ENOSYS without the design; flags must be 0; the fd is not close-on-exec', () => {
    const base = proc(false);
    expect(memfd_restricted(base, 0)).toBe(-1);
    expect(base.errno).toBe(Errno.ENOSYS);
    const p = proc();
    expect(memfd_restricted(p, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const fd = memfd_restricted(p, 0);
    expect(fd).toBeGreaterThan(2);
    expect(p.fcntl(fd, F_GETFD)).toBe(0);
  });

  test('no read, write or mmap; the size is set once, page aligned; a punch is page aligned', () => {
    const p = proc();
    const fd = memfd_restricted(p, 0);
    expect(p.read(fd, new Uint8Array(4))).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.write(fd, Uint8Array.of(1))).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.pread(fd, new Uint8Array(4), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.ESPIPE);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.ENODEV);
    expect(p.ftruncate(fd, PG + 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    expect(p.ftruncate(fd, 8 * PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    const st = {} as Stat;
    expect(p.fstat(fd, st)).toBe(0);
    expect(st.st_size).toBe(BigInt(4 * PG));
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });
});

describe('memfd_restricted: KVM', () => {
  function setup(p: Process): { rfd: number; vm: number; vcpu: number; shared: bigint; region: Record<string, unknown> } {
    const rfd = memfd_restricted(p, 0);
    expect(p.ftruncate(rfd, 4 * PG)).toBe(0);
    const shared = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const region = { slot: 0, flags: KVM_MEM_PRIVATE, guest_phys_addr: GPA, memory_size: 4 * PG, userspace_addr: shared, restricted_offset: 0, restricted_fd: rfd };
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region), `errno ${p.errno}`).toBe(0);
    return { rfd, vm, vcpu: p.ioctl(vm, KVM_CREATE_VCPU, 0), shared, region };
  }

  test('the binding is exclusive: another slot on the same range is EINVAL; a memfd is no restricted fd', () => {
    const p = proc();
    const s = setup(p);
    expect(p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { ...s.region, slot: 1, guest_phys_addr: GPA + 0x100000n })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { ...s.region, slot: 1, guest_phys_addr: GPA + 0x100000n, restricted_fd: p.memfd_create('m', 0) })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    // Deleting the slot releases the range.
    expect(p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, memory_size: 0 })).toBe(0);
    expect(p.ioctl(s.vm, KVM_SET_USER_MEMORY_REGION, { ...s.region, slot: 1, guest_phys_addr: GPA + 0x100000n })).toBe(0);
  });

  test('conversions by KVM_SET_MEMORY_ATTRIBUTES: private and shared are different pages; a punch frees the private one', () => {
    const p = proc();
    const s = setup(p);
    expect(p.store(s.shared, new Uint8Array(4).fill(0x11))).toBe(0);
    expect(p.guest_load(s.vcpu, GPA, 4)).toEqual(new Uint8Array(4).fill(0x11));
    expect(p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    expect(p.guest_store(s.vcpu, GPA, new Uint8Array(4).fill(0x22))).toBe(0);
    expect(p.load(s.shared, 4)).toEqual(new Uint8Array(4).fill(0x11));
    expect(p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: 0 })).toBe(0);
    expect(p.guest_load(s.vcpu, GPA, 4)).toEqual(new Uint8Array(4).fill(0x11));
    expect(p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    expect(p.guest_load(s.vcpu, GPA, 4)).toEqual(new Uint8Array(4).fill(0x22));
    const shmem = restrictedmem(p.task.files.lookup(s.rfd)!)!.memfd.f_mapping;
    expect(shmem.nrpages).toBe(1);
    expect(p.fallocate(s.rfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG)).toBe(0);
    expect(shmem.nrpages).toBe(0);
    // The guest's next private access faults a new page in (its SPTE was zapped by the notifier).
    expect(p.guest_load(s.vcpu, GPA, 4)).toBeInstanceOf(Uint8Array);
    expect(shmem.nrpages).toBe(1);
  });

  test('restrictedmem_get_page() asks shmem with SGP_WRITE: a new private page is not cleared', () => {
    const p = proc();
    const s = setup(p);
    // Another file leaves its bytes in a page that goes back to the allocator, the next one it hands out.
    const other = p.memfd_create('other', 0);
    expect(p.pwrite(other, new Uint8Array(PG).fill(0x5e), 0)).toBe(PG);
    expect(p.close(other)).toBe(0);
    expect(p.ioctl(s.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    expect(p.guest_load(s.vcpu, GPA, 4)).toEqual(new Uint8Array(4).fill(0x5e));
  });
});
