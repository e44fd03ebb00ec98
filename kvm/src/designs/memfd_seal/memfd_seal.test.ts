/**
 * Design memfd_seal (D5): F_SEAL_INACCESSIBLE's uAPI in the series' order (the seal only on an
 * empty, unmapped file; the sealed file's read/write/mmap/ftruncate/fallocate), the
 * KVM_MEM_PRIVATE memslot, conversions by fallocate()/punch with the contents each side sees,
 * the host's (impossible) access to a private page, and Arm's populate-then-seal option.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, RingSink, Tracer, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FOLL_LONGTERM, FOLL_WRITE, F_ADD_SEALS, F_GET_SEALS, F_SEAL_SEAL, Kernel, MAP_ANONYMOUS,
  MAP_FAILED, MAP_PRIVATE, MAP_SHARED, MFD_ALLOW_SEALING, PROT_READ, PROT_WRITE, Process, get_user_pages, mmRegistrar, pin_user_pages,
  unpin_user_pages,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM } from '../../uapi.js';
import { memfd_seal, type MemfdSealOptions } from './index.js';
import { F_SEAL_INACCESSIBLE, KVM_MEM_PRIVATE, MFD_INACCESSIBLE } from './uapi.js';

const PG = PAGE_SIZE;
const GPA = 0x200000n;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

function host(design: MemfdSealOptions | false = {}): { kernel: Kernel; p: Process; trace: RingSink } {
  const regs = [mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })];
  if (design !== false) regs.push(memfd_seal.registrar(design));
  const c = createRootContainer({}, ...regs);
  const trace = new RingSink();
  c.resolve(Tracer).addSink(trace);
  const kernel = c.resolve(Kernel);
  return { kernel, p: new Process(kernel), trace };
}

/** A sealed, sized private memfd. */
function private_memfd(p: Process, pages = 16): number {
  const fd = p.memfd_create('private', MFD_ALLOW_SEALING);
  expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(0);
  expect(p.ftruncate(fd, pages * PG)).toBe(0);
  return fd;
}

interface Vm {
  p: Process;
  vm: number;
  vcpu: number;
  shared: bigint;
}

/** A SW_PROTECTED VM whose slot 1 at GPA has its shared half at `shared` and its private half in `memfd`. */
function vm_with_private_slot(p: Process, memfd: number, pages = 16): Vm {
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
  const shared = p.mmap(0, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, {
    slot: 1, flags: KVM_MEM_PRIVATE, guest_phys_addr: GPA, memory_size: pages * PG, userspace_addr: shared, private_offset: 0, private_fd: memfd,
  }), `memslot errno ${p.errno}`).toBe(0);
  return { p, vm, vcpu: p.ioctl(vm, KVM_CREATE_VCPU, 0), shared };
}

const page = (i: number): bigint => GPA + BigInt(i * PG);

describe('memfd_seal: F_SEAL_INACCESSIBLE', () => {
  test('the base kernel has no such seal (EINVAL); the design adds it on an empty, unmapped file only (EBUSY)', () => {
    const base = host(false).p;
    expect(base.fcntl(base.memfd_create('x', MFD_ALLOW_SEALING), F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(-1);
    expect(base.errno).toBe(Errno.EINVAL);

    const { p } = host();
    const sized = p.memfd_create('sized', MFD_ALLOW_SEALING);
    expect(p.ftruncate(sized, PG)).toBe(0);
    expect(p.fcntl(sized, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    const mapped = p.memfd_create('mapped', MFD_ALLOW_SEALING);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, mapped, 0)).not.toBe(MAP_FAILED);
    expect(p.fcntl(mapped, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    // Neither refusal added a seal.
    expect(p.fcntl(sized, F_GET_SEALS)).toBe(0);
    const fd = private_memfd(p);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_INACCESSIBLE);
    // v3: MFD_INACCESSIBLE creates the file sealed.
    expect(p.fcntl(p.memfd_create('v3', MFD_INACCESSIBLE), F_GET_SEALS)).toBe(F_SEAL_SEAL | F_SEAL_INACCESSIBLE);
  });

  test('the sealed file: read, write and mmap EPERM; size set once, page aligned; punch page aligned', () => {
    const { p } = host();
    const fd = p.memfd_create('private', MFD_ALLOW_SEALING);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(0);
    // Reading an empty file: the index (0) is not past i_size's last page (0): EPERM.
    expect(p.read(fd, new Uint8Array(8))).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.ftruncate(fd, PG + 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    expect(p.ftruncate(fd, 8 * PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pread(fd, new Uint8Array(8), PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    // Past the last page of i_size, the read ends (0) before the check.
    expect(p.pread(fd, new Uint8Array(8), 5 * PG)).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(1), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pwrite(fd, new Uint8Array(0), 0)).toBe(0);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EPERM);
    // mmap's own checks come first (len 0 is EINVAL before shmem_mmap).
    expect(p.mmap(0, 0, PROT_READ, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fallocate(fd, PUNCH, 1, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fallocate(fd, 0, 0, 2 * PG)).toBe(0);
    expect(p.fallocate(fd, PUNCH, 0, PG)).toBe(0);
  });
});

describe('memfd_seal: KVM_MEM_PRIVATE memslots and conversions', () => {
  test('memslot errors: EFAULT, a VM without private memory, an unsealed memfd, a closed fd', () => {
    const { p } = host();
    const memfd = private_memfd(p);
    const kvm = p.open('/dev/kvm');
    const region = { slot: 1, flags: KVM_MEM_PRIVATE, guest_phys_addr: GPA, memory_size: PG, userspace_addr: 0x10000000, private_offset: 0, private_fd: memfd };
    const sw = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    expect(p.ioctl(sw, KVM_SET_USER_MEMORY_REGION, { ...region, private_fd: 'x' })).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    const def = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(p.ioctl(def, KVM_SET_USER_MEMORY_REGION, region)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(sw, KVM_SET_USER_MEMORY_REGION, { ...region, private_fd: p.memfd_create('plain', 0) })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(sw, KVM_SET_USER_MEMORY_REGION, { ...region, private_fd: 99 })).toBe(-1);
    expect(p.errno).toBe(Errno.EBADF);
    expect(p.ioctl(sw, KVM_SET_USER_MEMORY_REGION, region)).toBe(0);
    // Without KVM_MEM_PRIVATE the base's v1 ioctl: the slot can be deleted.
    expect(p.ioctl(sw, KVM_SET_USER_MEMORY_REGION, { slot: 1, memory_size: 0 })).toBe(0);
  });

  test('private iff allocated: fallocate converts to private (zeroed page), a punch back to shared (the private data is gone)', () => {
    const { p } = host();
    const memfd = private_memfd(p);
    const v = vm_with_private_slot(p, memfd);
    expect(p.store(v.shared, new Uint8Array(8).fill(0x11))).toBe(0);
    expect(p.guest_load(v.vcpu, page(0), 8)).toEqual(new Uint8Array(8).fill(0x11));

    expect(p.fallocate(memfd, 0, 0, PG)).toBe(0);
    expect(p.guest_load(v.vcpu, page(0), 8)).toEqual(new Uint8Array(8));
    expect(p.guest_store(v.vcpu, page(0), new Uint8Array(8).fill(0x22))).toBe(0);
    expect(p.guest_load(v.vcpu, page(0), 8)).toEqual(new Uint8Array(8).fill(0x22));
    // The host sees its shared copy; the private page has no host access at all.
    expect(p.load(v.shared, 8)).toEqual(new Uint8Array(8).fill(0x11));
    expect(p.pread(memfd, new Uint8Array(8), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, memfd, 0)).toBe(MAP_FAILED);
    // GUP can only reach the shared copy, which is another page.
    const pages: number[] = [];
    expect(get_user_pages(p.mm, Number(v.shared / BigInt(PG)), 1, FOLL_WRITE, pages)).toBe(1);

    expect(p.fallocate(memfd, PUNCH, 0, PG)).toBe(0);
    expect(p.guest_load(v.vcpu, page(0), 8)).toEqual(new Uint8Array(8).fill(0x11));
    expect(p.fallocate(memfd, 0, 0, PG)).toBe(0);
    expect(p.guest_load(v.vcpu, page(0), 8)).toEqual(new Uint8Array(8));
  });
});

describe('memfd_seal: populate-then-seal (Arm, Feb 2022)', () => {
  function populated(p: Process): { fd: number; addr: bigint } {
    const fd = p.memfd_create('image', MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    const addr = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.store(addr, new TextEncoder().encode('kernel image'))).toBe(0);
    return { fd, addr };
  }

  test('without the option the populated file cannot be sealed', () => {
    const { p } = host();
    const { fd } = populated(p);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
  });

  test('with it: a pin refuses the seal; then every mapping is revoked and faults SIGBUS, and the guest boots the image privately', () => {
    const { p, kernel, trace } = host({ populate_then_seal: true });
    const { fd, addr } = populated(p);
    const p2 = new Process(kernel);
    const fd2 = p2.task.files.install(p.task.files.lookup(fd)!.get_file(), false);
    const addr2 = p2.mmap(0, 4 * PG, PROT_READ, MAP_SHARED, fd2, 0);
    expect(p2.load(addr2, 6)).toEqual(new TextEncoder().encode('kernel'));
    const pins: number[] = [];
    expect(pin_user_pages(p.mm, Number(addr / BigInt(PG)), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(p.load(addr, 6)).toEqual(new TextEncoder().encode('kernel'));
    unpin_user_pages(kernel.store, pins, 1);

    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_INACCESSIBLE)).toBe(0);
    expect(trace.events('cocosim_memfd_seal_revoke').map((e) => e.args)).toEqual([{ ino: p.task.files.lookup(fd)!.f_inode.i_ino, nr_pages: 1 }]);
    expect(p.load(addr, 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(p2.load(addr2, 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(p.store(addr, Uint8Array.of(0))).toMatchObject({ signo: 'SIGBUS' });
    expect(get_user_pages(p.mm, Number(addr / BigInt(PG)), 1, 0, null)).toBe(-Errno.EFAULT);
    const v = vm_with_private_slot(p, fd, 4);
    expect(p.guest_load(v.vcpu, page(0), 12)).toEqual(new TextEncoder().encode('kernel image'));
  });
});
