/**
 * Design fd_rfc (D4): F_SEAL_GUEST's uAPI, the private address space's memslot ioctl in the RFC's
 * order, conversions by memslot surgery with the contents each side sees, the host's access to a
 * private gpa (there is no host address: its hva is the shared page), GUP and VFIO's pin, and
 * the memslot churn of ping-pong and scattered conversions (S14/S15).
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FOLL_LONGTERM, FOLL_WRITE, F_ADD_SEALS, F_GET_SEALS, Kernel, MAP_FAILED, MAP_SHARED,
  MFD_ALLOW_SEALING, PROT_READ, PROT_WRITE, Process, get_user_pages, mmRegistrar, mm_state_digest, pin_user_pages, unpin_user_pages,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVendor, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { kvm_mmu_translate } from '../../mmu/mmu.js';
import {
  KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_MULTI_ADDRESS_SPACE, KVM_CHECK_EXTENSION, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_EXIT_HLT,
  KVM_MEM_GUEST_MEMFD,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
} from '../../uapi.js';
import { fd_rfc, fd_rfc_vmm, fd_rfc_vmm_state, kvm_nr_memslots } from './index.js';
import { F_SEAL_GUEST, KVM_PRIVATE_ADDRESS_SPACE, KVM_SET_USER_MEMORY_REGION_RFC } from './uapi.js';

const PG = PAGE_SIZE;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const GPA = 0x200000n;
const PRIV = KVM_PRIVATE_ADDRESS_SPACE << 16;

function host(): { kernel: Kernel; p: Process } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    fd_rfc.registrar()).resolve(Kernel);
  return { kernel, p: new Process(kernel) };
}

/** A sized F_SEAL_GUEST store. */
function store(p: Process, pages = 16): number {
  const fd = p.memfd_create('store', MFD_ALLOW_SEALING);
  expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_GUEST)).toBe(0);
  expect(p.ftruncate(fd, pages * PG)).toBe(0);
  return fd;
}

function cvm(discard = true, pages = 16n): CvmVm {
  const { p } = host();
  const v = cvm_create(p, sw_protected_cvm, fd_rfc_vmm, { size: pages * 4096n, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const secret = new TextEncoder().encode('guest secret');

describe('fd_rfc: the F_SEAL_GUEST store', () => {
  test('the seal only on an empty, unmapped file (EBUSY, nothing sealed); the sealed file has no read, write or mmap', () => {
    const { p } = host();
    const sized = p.memfd_create('sized', MFD_ALLOW_SEALING);
    expect(p.ftruncate(sized, PG)).toBe(0);
    expect(p.fcntl(sized, F_ADD_SEALS, F_SEAL_GUEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(p.fcntl(sized, F_GET_SEALS)).toBe(0);
    const mapped = p.memfd_create('mapped', MFD_ALLOW_SEALING);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, mapped, 0)).not.toBe(MAP_FAILED);
    expect(p.fcntl(mapped, F_ADD_SEALS, F_SEAL_GUEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);

    const fd = p.memfd_create('store', MFD_ALLOW_SEALING);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_GUEST)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_GUEST);
    expect(p.ftruncate(fd, PG + 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ftruncate(fd, 4 * PG)).toBe(0);
    // Unlike F_SEAL_INACCESSIBLE the size may change again.
    expect(p.ftruncate(fd, 8 * PG)).toBe(0);
    // shmem_file_read_iter() refuses before looking at the position, even past i_size.
    expect(p.pread(fd, new Uint8Array(8), 100 * PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pwrite(fd, Uint8Array.of(1), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.fallocate(fd, PUNCH, 1, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fallocate(fd, PUNCH, 0, PG)).toBe(0);
  });
});

describe('fd_rfc: the private address space', () => {
  test('capabilities and the RFC kernel\'s ioctls', () => {
    const { p } = host();
    const kvm = p.open('/dev/kvm');
    const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    expect(p.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MULTI_ADDRESS_SPACE)).toBe(3);
    expect(p.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(0);
    expect(KVM_SET_USER_MEMORY_REGION_RFC).toBe(0x4028ae46);
    // The 32-byte struct's number is no ioctl of a kernel whose struct grew `fd`.
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: GPA, memory_size: PG, userspace_addr: 0x10000000 })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    expect(p.ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: 8 })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
  });

  test('the three memslot sets exist from KVM_CREATE_VM: a first VM ioctl that fails changes no state', () => {
    const { p, kernel } = host();
    const kvm = p.open('/dev/kvm');
    const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const k = p.task.files.lookup(vm)!.private_data as CvmVm['kvm'];
    expect(k.memslots.length).toBe(3);
    const before = mm_state_digest(kernel).digest;
    expect(p.ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size: 8 * PG, flags: 4 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, { address: GPA, size: PG, attributes: 8 })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    expect(mm_state_digest(kernel).digest).toBe(before);
    expect(k.memslots.length).toBe(3);
  });

  test('private memslot errors in the RFC\'s order; a failed call creates nothing', () => {
    const { p, kernel } = host();
    const fd = store(p);
    const kvm = p.open('/dev/kvm');
    const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const region = { slot: PRIV | 1, flags: 0, guest_phys_addr: GPA, memory_size: 4 * PG, userspace_addr: 0, fd };
    const fails = (arg: object, errno: number, cmd = KVM_SET_USER_MEMORY_REGION_RFC): void => {
      expect(p.ioctl(vm, cmd, arg)).toBe(-1);
      expect(p.errno).toBe(errno);
    };
    fails({ ...region, fd: 'x' }, Errno.EFAULT);
    fails({ ...region, slot: PRIV | 40000 }, Errno.EINVAL);
    // No KVM_MEM_PRIVATE: the address space is what makes the slot private; an unknown flag is EINVAL.
    fails({ ...region, flags: KVM_MEM_GUEST_MEMFD }, Errno.EINVAL);
    fails({ ...region, userspace_addr: 1 }, Errno.EINVAL);
    fails({ ...region, memory_size: PG + 1 }, Errno.EINVAL);
    fails({ ...region, fd: 99 }, Errno.EINVAL);
    fails({ ...region, fd: p.memfd_create('plain', 0) }, Errno.EINVAL);
    fails(region, Errno.EINVAL, KVM_SET_USER_MEMORY_REGION2);
    const def = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(p.ioctl(def, KVM_SET_USER_MEMORY_REGION_RFC, region)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const k = p.task.files.lookup(vm)!.private_data as CvmVm['kvm'];
    expect(kvm_nr_memslots(k)).toEqual({ shared: 0, private: 0 });

    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION_RFC, region)).toBe(0);
    expect(kvm_nr_memslots(k)).toEqual({ shared: 0, private: 1 });
    // Private slots are immutable; another one over the same gfns of the address space overlaps.
    fails({ ...region, guest_phys_addr: GPA + 4n * BigInt(PG) }, Errno.EINVAL);
    fails({ ...region, slot: PRIV | 2, memory_size: PG }, Errno.EEXIST);
    // A shared slot over the same gfns lives in another address space.
    const hva = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, p.memfd_create('ram', 0), 0);
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION_RFC, { slot: 1, guest_phys_addr: GPA, memory_size: 4 * PG, userspace_addr: hva })).toBe(0);
    // 1:1 between the store and a VM: a second VM cannot pair with it.
    const vm2 = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    expect(p.ioctl(vm2, KVM_SET_USER_MEMORY_REGION_RFC, region)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    // Deleting is the only change a private slot takes; then the store is free again.
    expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION_RFC, { slot: PRIV | 1, memory_size: 0 })).toBe(0);
    expect(p.ioctl(vm2, KVM_SET_USER_MEMORY_REGION_RFC, region)).toBe(0);
    expect(kernel.warn.warnings).toEqual([]);
  });
});

describe('fd_rfc: conversions by memslot surgery (sw_protected)', () => {
  test('to private: a different page the host cannot reach; its hva, uaccess and GUP all see the shared page', () => {
    const v = cvm();
    const { p } = v;
    const gpa = v.base + 4096n;
    const hva = fd_rfc_vmm.hva(v, gpa)!;
    expect(p.store(hva, new Uint8Array(12).fill(0xee))).toBe(0);
    let before: Uint8Array | undefined;
    let priv_pfn: number | undefined;
    const r = cvm_run(v, function* () {
      before = yield* guestLoad(gpa, 12);
      expect(yield* v.vendor.guest_convert(v, gpa, 1n, true)).toBe(0n);
      yield* guestStore(gpa, secret);
      priv_pfn = kvm_mmu_translate(v.vcpu!, Number(gpa >> 12n), false, true);
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect([...before!]).toEqual(new Array(12).fill(0xee));
    expect(priv_pfn).toBeDefined();
    // The shared slot got a hole: two slots remain around the page, one private slot covers it.
    expect(kvm_nr_memslots(v.kvm)).toEqual({ shared: 2, private: 1 });

    // User load/store through the VMM's mapping: the shared page, discarded on conversion.
    expect(p.load(hva, 12)).toEqual(new Uint8Array(12));
    expect(p.store(hva, Uint8Array.of(1))).toBe(0);
    // Kernel uaccess from the VMM's pointer (write(disk, hva): process_vm_readv on itself, as
    // cocosim's write() takes a buffer): the shared page, never the secret.
    const got = new Uint8Array(12);
    expect(p.process_vm_readv(p, [got], 1, [{ iov_base: hva, iov_len: 12 }], 1)).toBe(12);
    expect(got).toEqual(Uint8Array.of(1, ...new Array(11).fill(0)));
    // GUP and pin (what vfio_dma_do_map() does to the VMM's vaddr) reach the shared page only.
    const pages: number[] = [];
    expect(get_user_pages(p.mm, Number(hva / BigInt(PG)), 1, FOLL_WRITE, pages)).toBe(1);
    expect(pages[0]).not.toBe(priv_pfn);
    const pins: number[] = [];
    expect(pin_user_pages(p.mm, Number(hva / BigInt(PG)), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    expect(pins[0]).not.toBe(priv_pfn);
    unpin_user_pages(v.kvm.kernel.store, pins, 1);
    // The private page has no address to give VFIO: the store cannot be mapped (Yu Zhang's objection).
    expect(p.mmap(0, PG, PROT_READ, MAP_SHARED, fd_rfc_vmm_state(v).store_fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EPERM);
    let seen: Uint8Array | undefined;
    cvm_run(v, function* () {
      seen = yield* guestLoad(gpa, 12);
    });
    expect(seen).toEqual(secret);
  });

  test('to shared and back: the private data does not survive (the store is punched), the slots merge back', () => {
    const v = cvm();
    const gpa = v.base + 4096n;
    let shared: Uint8Array | undefined;
    let again: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, secret);
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      shared = yield* guestLoad(gpa, 12);
    });
    // The shared page was discarded at the first conversion: zeroes, not the secret.
    expect(shared).toEqual(new Uint8Array(12));
    expect(kvm_nr_memslots(v.kvm)).toEqual({ shared: 1, private: 0 });
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      again = yield* guestLoad(gpa, 12);
    });
    expect(again).not.toEqual(secret);
  });

  test('without discard the store keeps the page: the secret comes back on a second to-private (unlike TDX/SNP, where unmapping destroys it)', () => {
    const v = cvm(false);
    const gpa = v.base;
    let again: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, secret);
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      again = yield* guestLoad(gpa, 12);
    });
    expect(again).toEqual(secret);
  });

  test('S14 ping-pong: the slot count stays bounded, the memslot updates grow with every toggle', () => {
    const v = cvm();
    const gpa = v.base + 8n * 4096n;
    const s = fd_rfc_vmm_state(v);
    cvm_run(v, function* () {
      for (let i = 0; i < 5; i++) {
        yield* v.vendor.guest_convert(v, gpa, 1n, true);
        yield* v.vendor.guest_convert(v, gpa, 1n, false);
      }
    });
    expect(kvm_nr_memslots(v.kvm)).toEqual({ shared: 1, private: 0 });
    // to-private: delete the shared slot, recreate both sides, create the private one (4);
    // to-shared: delete the private slot, delete both shared sides, create the merged one (4).
    expect(s.nr_slot_updates).toBe(40);
  });

  test('S15 scattered shared pages: one memslot per run in each address space', () => {
    const v = cvm();
    const r = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, v.base, 16n, true);
      for (let i = 0; i < 16; i += 2) yield* v.vendor.guest_convert(v, v.base + BigInt(i) * 4096n, 1n, false);
    });
    expect(r.conversions.every((c) => c.ret === 0)).toBe(true);
    expect(kvm_nr_memslots(v.kvm)).toEqual({ shared: 8, private: 8 });
  });

  test('applies: vendors with a launch flow are refused', () => {
    expect(fd_rfc_vmm.applies(sw_protected_cvm)).toBeUndefined();
    const tdx_like: CvmVendor = { ...sw_protected_cvm, name: 'tdx', launch_update: () => 0 };
    expect(fd_rfc_vmm.applies(tdx_like)).toMatch(/launch flow/);
  });
});
