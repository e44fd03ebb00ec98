import { describe, expect, test } from 'vitest';
import { Errno, MT_MAX, PAGE_SIZE, PgOff, RingSink, createRootContainer, setWarnObserver, type Pfn, type Warning } from '@cocosim/core';
import {
  AS_INACCESSIBLE, AS_UNEVICTABLE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, F_ADD_SEALS, F_GETFL,
  F_SEAL_WRITE, Kernel, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, O_LARGEFILE, O_RDWR, PROT_EXEC, PROT_READ, PROT_WRITE,
  MF_SW_SIMULATED, Process, S_IFREG, folio_set_hwpoison, memory_failure, folio_test_uptodate, folio_test_unevictable, mmRegistrar,
  type Stat,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_none_x86_ops, kvm_sw_protected_x86_ops } from './kvm.js';
import { KVM_MEMSLOT_GMEM_ONLY, KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, type Kvm, type KvmMemorySlot } from './kvm_host.js';
import type { KvmX86Ops } from './kvm_x86_ops.js';
import { id_to_memslot } from './kvm_memslots.js';
import { GMEM_I, file_is_kvm_gmem, kvm_gmem_get_pfn, kvm_gmem_populate, type GmemFile } from './guest_memfd.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';

const MMAP_SHARED = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;

interface Vm {
  kernel: Kernel;
  p: Process;
  vm: number;
  kvm: Kvm;
}

/** A host (this machine's KVM unless `ops`), a process, and a VM of `type` on it. */
function setup(opts: { ops?: KvmX86Ops; type?: number; nr_pages?: number } = {}): Vm {
  const container = createRootContainer({}, mmRegistrar({ nr_pages: opts.nr_pages ?? 8192 }), kvmRegistrar({ x86_ops: opts.ops }));
  const kernel = container.resolve(Kernel);
  const p = new Process(kernel);
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, opts.type ?? KVM_X86_DEFAULT_VM);
  expect(vm).toBeGreaterThan(0);
  return { kernel, p, vm, kvm: p.task.files.lookup(vm)!.private_data as Kvm };
}

function gmem(v: Vm, size: number | bigint, flags = 0): number {
  const fd = v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size, flags });
  expect(fd, `KVM_CREATE_GUEST_MEMFD errno ${v.p.errno}`).toBeGreaterThan(0);
  return fd;
}

/** The call failed (-1 or MAP_FAILED) with `errno`. */
function fail(v: Vm, ret: number | bigint, errno: number): void {
  expect(ret === -1 || ret === MAP_FAILED, `expected failure, got ${ret}`).toBe(true);
  expect(v.p.errno).toBe(errno);
}

/** `got` is `len` bytes of `byte` (toEqual on large typed arrays is slow). */
function filled(got: unknown, byte: number, len: number): boolean {
  return got instanceof Uint8Array && got.length === len && got.every((b) => b === byte);
}

function fstat(v: Vm, fd: number): Stat {
  const st = {} as Stat;
  expect(v.p.fstat(fd, st)).toBe(0);
  return st;
}

/** KVM_SET_USER_MEMORY_REGION2 of a guest_memfd slot (userspace_addr 0, as the selftests). */
function setSlot(v: Vm, slot: number, gpa: bigint, size: number, fd: number, offset: number | bigint = 0): number {
  return v.p.ioctl(v.vm, KVM_SET_USER_MEMORY_REGION2, {
    slot, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: gpa, memory_size: size, userspace_addr: 0,
    guest_memfd: fd, guest_memfd_offset: offset,
  });
}

function slotOf(v: Vm, id: number): KvmMemorySlot {
  return id_to_memslot(v.kvm.memslots[0]!, id)!;
}

function gmemFile(v: Vm, fd: number): GmemFile {
  return v.p.task.files.lookup(fd)!.private_data as GmemFile;
}

describe('KVM_CREATE_GUEST_MEMFD (kvm_gmem_create)', () => {
  test('an argument that is no struct is EFAULT; flags, then size, are EINVAL; no fd is used up', () => {
    const v = setup();
    for (const arg of [undefined, null, 0, 4096, 'x']) fail(v, v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, arg), Errno.EFAULT);
    const bad: object[] = [
      { size: 4096, flags: 4 }, { size: 4096, flags: 1n << 63n }, { size: 4096, flags: 0.5 }, { size: 4096, flags: 2n ** 64n },
      { size: 0 }, {}, { size: 1 }, { size: 4095 }, { size: 4097 }, { size: 2n ** 63n }, { size: 2n ** 64n - 4096n },
      { size: -4096 }, { size: 4096.5 }, { size: Number.NaN }, { size: 2n ** 64n }, { size: '4096' },
    ];
    for (const arg of bad) fail(v, v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, arg), Errno.EINVAL);
    expect(v.kvm.users_count).toBe(1);
    const fd = gmem(v, 4096);
    expect(fd).toBe(v.vm + 1);
  });

  test('reserved[] is not checked; the largest page-aligned loff_t allocates nothing up front', () => {
    const v = setup();
    const free = v.kernel.page_alloc.nr_free_pages();
    expect(v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size: 4096, reserved: [1, 2, 3, 4, 5, 6] })).toBeGreaterThan(0);
    const big = gmem(v, 2n ** 63n - 4096n);
    expect(fstat(v, big)).toMatchObject({ st_size: 2n ** 63n - 4096n, st_blocks: 0n });
    expect(v.kernel.page_alloc.nr_free_pages()).toBe(free);
  });

  test('the fd: no O_CLOEXEC, O_RDWR | O_LARGEFILE, a new S_IFREG 0600 inode each time, blksize PAGE_SIZE', () => {
    const v = setup();
    const g1 = gmem(v, 4096);
    const g2 = gmem(v, 8192, MMAP_SHARED);
    expect(v.p.task.files.get_close_on_exec(g1)).toBe(false);
    expect(v.p.fcntl(g1, F_GETFL)).toBe(O_RDWR | O_LARGEFILE);
    const s1 = fstat(v, g1);
    const s2 = fstat(v, g2);
    expect(s1).toMatchObject({ st_size: 4096n, st_blksize: PAGE_SIZE, st_blocks: 0n, st_mode: S_IFREG | 0o600 });
    expect(s2.st_size).toBe(8192n);
    expect(s1.st_ino).not.toBe(s2.st_ino);
    expect(file_is_kvm_gmem(v.p.task.files.lookup(g1)!)).toBe(true);
    expect(file_is_kvm_gmem(v.p.task.files.lookup(v.vm)!)).toBe(false);
    expect(GMEM_I(v.p.task.files.lookup(g2)!.f_inode).flags).toBe(MMAP_SHARED);
  });

  test('INIT_SHARED only where the VM has no private memory (SW_PROTECTED: MMAP alone)', () => {
    const v = setup({ ops: kvm_sw_protected_x86_ops, type: KVM_X86_SW_PROTECTED_VM });
    fail(v, v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size: 4096, flags: GUEST_MEMFD_FLAG_INIT_SHARED }), Errno.EINVAL);
    fail(v, v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size: 4096, flags: MMAP_SHARED }), Errno.EINVAL);
    gmem(v, 4096, GUEST_MEMFD_FLAG_MMAP);
  });

  test('EMFILE when the fd table is full, and nothing else happens', () => {
    const v = setup();
    v.p.task.files.rlimit_nofile = v.vm + 1;
    fail(v, v.p.ioctl(v.vm, KVM_CREATE_GUEST_MEMFD, { size: 4096 }), Errno.EMFILE);
    expect(v.kvm.users_count).toBe(1);
  });

  test('the file keeps the VM alive: closing the VM fd first leaves it working', () => {
    const v = setup();
    const g = gmem(v, 16384, MMAP_SHARED);
    expect(v.kvm.users_count).toBe(2);
    expect(v.p.close(v.vm)).toBe(0);
    expect(v.kvm.vm_dead).toBe(false);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 16384)).toBe(0);
    expect(v.p.close(g)).toBe(0);
    expect(v.kvm.users_count).toBe(0);
    expect(v.kvm.vm_dead).toBe(true);
  });
});

describe('guest_memfd file operations', () => {
  test('no read, write, llseek, ioctl; the size and mode never change; no seals', () => {
    const v = setup();
    const g = gmem(v, 16384);
    const buf = new Uint8Array(64);
    fail(v, v.p.read(g, buf), Errno.EINVAL);
    fail(v, v.p.write(g, buf), Errno.EINVAL);
    fail(v, v.p.pread(g, buf, 0), Errno.ESPIPE);
    fail(v, v.p.pwrite(g, buf, 0), Errno.ESPIPE);
    expect(v.p.lseek(g, 0, 0)).toBe(-1n);
    expect(v.p.errno).toBe(Errno.ESPIPE);
    fail(v, v.p.ioctl(g, KVM_CREATE_GUEST_MEMFD, { size: 4096 }), Errno.ENOTTY);
    fail(v, v.p.ftruncate(g, 32768), Errno.EINVAL);
    fail(v, v.p.ftruncate(g, 16384), Errno.EINVAL);
    fail(v, v.p.fchmod(g, 0o644), Errno.EINVAL);
    fail(v, v.p.fcntl(g, F_ADD_SEALS, F_SEAL_WRITE), Errno.EINVAL);
    expect(fstat(v, g)).toMatchObject({ st_size: 16384n, st_mode: S_IFREG | 0o600 });
  });

  test('mmap: PROT_EXEC is EPERM (noexec mount) before ENODEV without MMAP; MAP_PRIVATE is EINVAL', () => {
    const v = setup();
    const plain = gmem(v, 16384);
    fail(v, v.p.mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, plain, 0), Errno.EPERM);
    fail(v, v.p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, plain, 0), Errno.ENODEV);
    const g = gmem(v, 16384, MMAP_SHARED);
    fail(v, v.p.mmap(0, 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE, g, 0), Errno.EINVAL);
    const m = v.p.mmap(0, 16384, PROT_READ, MAP_SHARED, g, 0);
    expect(m).not.toBe(MAP_FAILED);
    /* VM_MAYEXEC was cleared: mprotect cannot add PROT_EXEC */
    fail(v, v.p.mprotect(m, 16384, PROT_READ | PROT_EXEC), Errno.EACCES);
    expect(v.p.mprotect(m, 16384, PROT_READ | PROT_WRITE)).toBe(0);
  });

  test('host faults: SIGBUS without INIT_SHARED and beyond i_size; first touch reads zeros over stale memory', () => {
    const v = setup();
    const priv = gmem(v, 16384, GUEST_MEMFD_FLAG_MMAP);
    const mp = v.p.mmap(0, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, priv, 0);
    expect(v.p.load(mp, 1)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    expect(v.p.store(mp, new Uint8Array([1]))).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });

    const g = gmem(v, 16384, MMAP_SHARED);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 16384)).toBe(0);
    const mapping = v.p.task.files.lookup(g)!.f_mapping;
    /* fallocate() does not zero: scribble on the allocated pages as a previous owner would have */
    for (let i = 0; i < 4; i++) v.kernel.phys.write(mapping.folio_at(PgOff(i))! as Pfn, 0, new Uint8Array(PAGE_SIZE).fill(0x5a));
    const m = v.p.mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
    v.kernel.cost.begin('touch');
    expect(filled(v.p.load(m, 16384), 0, 16384)).toBe(true);
    expect(v.kernel.cost.end('touch').items.find((i) => i.name === 'page_zero_4k')?.count).toBe(4);
    expect(v.p.load(m + 16384n, 1)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    expect(v.p.store(m + 8192n, new Uint8Array([7, 8]))).toBe(0);
    expect(v.p.load(m + 8192n, 2)).toEqual(new Uint8Array([7, 8]));
  });

  test('fallocate: KEEP_SIZE required, then the mode, then alignment; allocating past i_size fails and allocates nothing', () => {
    const v = setup();
    const g = gmem(v, 16384);
    const mapping = v.p.task.files.lookup(g)!.f_mapping;
    fail(v, v.p.fallocate(g, 0, 1, 4096), Errno.EOPNOTSUPP);
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE, 1, 4096), Errno.EOPNOTSUPP);
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 4095, 4096), Errno.EINVAL);
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 4096, 4097), Errno.EINVAL);
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 12288, 8192), Errno.EINVAL);
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 16384, 4096), Errno.EINVAL);
    expect(mapping.nrpages).toBe(0);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 4096, 8192)).toBe(0);
    expect(mapping.nrpages).toBe(2);
    const folio = mapping.folio_at(PgOff(1))!;
    expect(folio_test_uptodate(v.kernel.store, folio)).toBe(false);
    expect(fstat(v, g)).toMatchObject({ st_size: 16384n, st_blocks: 0n });
    /* punching at or past i_size succeeds and does nothing */
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 16384, 4096)).toBe(0);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 2n ** 62n, 4096)).toBe(0);
    expect(mapping.nrpages).toBe(2);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 8192)).toBe(0);
    expect(mapping.nrpages).toBe(1);
    expect(mapping.folio_at(PgOff(2))).toBeDefined();
  });

  test('pages are unevictable and inaccessible; an allocation failure keeps what was allocated', () => {
    const v = setup({ nr_pages: 2048 });
    const g = gmem(v, 2n ** 30n);
    const mapping = v.p.task.files.lookup(g)!.f_mapping;
    expect(mapping.flags & ((1 << AS_UNEVICTABLE) | (1 << AS_INACCESSIBLE))).toBe((1 << AS_UNEVICTABLE) | (1 << AS_INACCESSIBLE));
    fail(v, v.p.fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 2n ** 30n), Errno.ENOMEM);
    expect(mapping.nrpages).toBeGreaterThan(0);
    expect(folio_test_unevictable(v.kernel.store, mapping.folio_at(PgOff(0))!)).toBe(true);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 2n ** 30n)).toBe(0);
    expect(mapping.nrpages).toBe(0);
  });

  test('punching a hole zaps the host mapping: the page reads zero again, its neighbours keep their data', () => {
    const v = setup();
    const g = gmem(v, 16384, MMAP_SHARED);
    const m = v.p.mmap(0, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
    expect(v.p.store(m, new Uint8Array(16384).fill(0xaa))).toBe(0);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4096)).toBe(0);
    expect(filled(v.p.load(m, 4096), 0, 4096)).toBe(true);
    expect(filled(v.p.load(m + 4096n, 12288), 0xaa, 12288)).toBe(true);
  });

  test('memory lives with the inode: a mapping outlives the fd; the last reference frees the pages through free_folio', () => {
    const freed: [number, number][] = [];
    const v = setup({ ops: { ...kvm_none_x86_ops, gmem_invalidate: (_kvm, start, end) => void freed.push([start, end]) } });
    const free = v.kernel.page_alloc.nr_free_pages();
    const g = gmem(v, 8192, MMAP_SHARED);
    const m = v.p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
    expect(v.p.store(m, new Uint8Array([1, 2, 3]))).toBe(0);
    const pfn = v.p.task.files.lookup(g)!.f_mapping.folio_at(PgOff(0))!;
    expect(v.p.close(g)).toBe(0);
    expect(v.p.load(m, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(freed).toEqual([]);
    expect(v.p.munmap(m, 8192)).toBe(0);
    expect(freed).toEqual([[pfn, pfn + 1]]);
    expect(v.kernel.page_alloc.nr_free_pages()).toBe(free);
  });
});

describe('memslot bindings (kvm_gmem_bind / kvm_gmem_unbind)', () => {
  test('errors in the kernel order, and a failed bind creates no slot', () => {
    const v = setup();
    const other = setup();
    const g = gmem(v, 16384);
    const memfd = v.p.memfd_create('x', 0);
    const foreign = v.p.ioctl(v.p.open('/dev/kvm'), KVM_CREATE_VM, 0);
    const theirs = v.p.ioctl(foreign, KVM_CREATE_GUEST_MEMFD, { size: 16384 });
    fail(v, setSlot(v, 0, 0x100000n, 4096, 99), Errno.EBADF);
    fail(v, setSlot(v, 0, 0x100000n, 4096, -1), Errno.EBADF);
    fail(v, setSlot(v, 0, 0x100000n, 4096, memfd), Errno.EINVAL);
    fail(v, setSlot(v, 0, 0x100000n, 4096, v.vm), Errno.EINVAL);
    fail(v, setSlot(v, 0, 0x100000n, 4096, theirs), Errno.EINVAL);
    fail(v, setSlot(v, 0, 0x100000n, 16384, g, 4096), Errno.EINVAL);
    fail(v, setSlot(v, 0, 0x100000n, 4096, g, 2n ** 63n), Errno.EINVAL);
    fail(v, setSlot(v, 0, 0x100000n, 4096, g, 16384), Errno.EINVAL);
    expect(v.kvm.memslots[0]!.id_hash.size).toBe(0);
    expect(gmemFile(v, g).bindings.size).toBe(0);
    expect(other.kvm.users_count).toBe(1);
  });

  test('bound ranges of one file must not overlap, even at disjoint gpas; deleting a slot frees its range', () => {
    const v = setup();
    const g = gmem(v, 16384, MMAP_SHARED);
    expect(setSlot(v, 0, 0x100000n, 8192, g, 0)).toBe(0);
    const slot = slotOf(v, 0);
    expect(slot.gmem.pgoff).toBe(0);
    expect(slot.flags & KVM_MEMSLOT_GMEM_ONLY).toBe(KVM_MEMSLOT_GMEM_ONLY);
    expect(slot.gmem.file).toBe(v.p.task.files.lookup(g));
    fail(v, setSlot(v, 1, 0x200000n, 8192, g, 4096), Errno.EINVAL);
    expect(setSlot(v, 1, 0x200000n, 8192, g, 8192)).toBe(0);
    expect(slotOf(v, 1).gmem.pgoff).toBe(2);
    expect(setSlot(v, 0, 0x100000n, 0, -1)).toBe(0);
    expect(slot.gmem.file).toBe(null);
    expect(setSlot(v, 2, 0x300000n, 8192, g, 0)).toBe(0);
    const plain = gmem(v, 4096);
    expect(setSlot(v, 3, 0x400000n, 4096, plain)).toBe(0);
    expect(slotOf(v, 3).flags & KVM_MEMSLOT_GMEM_ONLY).toBe(0);
  });

  test('the slot does not keep the file: closing it leaves the slot without backing (-EFAULT)', () => {
    const v = setup();
    const g = gmem(v, 8192);
    expect(setSlot(v, 0, 0x100000n, 8192, g)).toBe(0);
    const slot = slotOf(v, 0);
    expect(kvm_gmem_get_pfn(v.kvm, slot, 0x100)).toMatchObject({ max_order: 0 });
    expect(v.p.close(g)).toBe(0);
    expect(slot.gmem.file).toBe(null);
    expect(kvm_gmem_get_pfn(v.kvm, slot, 0x100)).toBe(-Errno.EFAULT);
    expect(setSlot(v, 0, 0x100000n, 0, -1)).toBe(0);
  });
});

describe('kvm_gmem_get_pfn', () => {
  test('first use allocates, zeroes and prepares once; host data written through mmap is neither zeroed nor prepared', () => {
    const prepared: number[][] = [];
    const v = setup({ ops: { ...kvm_none_x86_ops, gmem_prepare: (_k, pfn, gfn, order) => (prepared.push([pfn, gfn, order]), 0) } });
    const g = gmem(v, 16384, MMAP_SHARED);
    expect(setSlot(v, 0, 0x100000n, 16384, g)).toBe(0);
    const slot = slotOf(v, 0);
    const got = kvm_gmem_get_pfn(v.kvm, slot, 0x101);
    if (typeof got === 'number') throw new Error(`errno ${got}`);
    const mapping = v.p.task.files.lookup(g)!.f_mapping;
    expect(got.pfn).toBe(mapping.folio_at(PgOff(1)));
    expect(prepared).toEqual([[got.pfn, 0x101, 0]]);
    expect(v.kernel.phys.read(got.pfn as Pfn, 0, 16)).toEqual(new Uint8Array(16));
    expect(kvm_gmem_get_pfn(v.kvm, slot, 0x101)).toEqual(got);
    expect(prepared).toHaveLength(1);

    const m = v.p.mmap(0, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, g, 0);
    expect(v.p.store(m + 8192n, new Uint8Array([0xaa, 0xbb]))).toBe(0);
    const host = kvm_gmem_get_pfn(v.kvm, slot, 0x102) as { pfn: number };
    expect(v.kernel.phys.read(host.pfn as Pfn, 0, 2)).toEqual(new Uint8Array([0xaa, 0xbb]));
    expect(prepared).toHaveLength(1);
  });

  test('a vendor prepare error is returned and the page stays unprepared', () => {
    let fail_prepare = true;
    const v = setup({ ops: { ...kvm_none_x86_ops, gmem_prepare: () => (fail_prepare ? -Errno.EIO : 0) } });
    const g = gmem(v, 4096);
    expect(setSlot(v, 0, 0x100000n, 4096, g)).toBe(0);
    expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x100)).toBe(-Errno.EIO);
    const folio = v.p.task.files.lookup(g)!.f_mapping.folio_at(PgOff(0))!;
    expect(folio_test_uptodate(v.kernel.store, folio)).toBe(false);
    fail_prepare = false;
    expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x100)).toEqual({ pfn: folio, max_order: 0 });
    expect(folio_test_uptodate(v.kernel.store, folio)).toBe(true);
  });

  test('-EHWPOISON for a poisoned folio; -EIO when the index is bound to another slot (with a WARN)', () => {
    const v = setup();
    const g = gmem(v, 8192);
    expect(setSlot(v, 0, 0x100000n, 8192, g)).toBe(0);
    const slot = slotOf(v, 0);
    const got = kvm_gmem_get_pfn(v.kvm, slot, 0x100) as { pfn: number };
    folio_set_hwpoison(v.kernel.store, got.pfn);
    expect(kvm_gmem_get_pfn(v.kvm, slot, 0x100)).toBe(-Errno.EHWPOISON);
    /* a gfn whose index lies outside the slot's binding: the slot is not the one bound there */
    expect(kvm_gmem_get_pfn(v.kvm, slot, 0x102)).toBe(-Errno.EIO);
    /* gfn 0x2ff of slot 2 would be file page 0 of g2, which slot 3 holds */
    const g2 = gmem(v, 16384);
    expect(setSlot(v, 2, 0x300000n, 4096, g2, 4096)).toBe(0);
    expect(setSlot(v, 3, 0x400000n, 4096, g2, 0)).toBe(0);
    // The test package's expectWarning() is out of kvm's reach: catch the WARN here.
    const warned: Warning[] = [];
    const prev = setWarnObserver((w) => warned.push(w));
    try {
      expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 2), 0x2ff)).toBe(-Errno.EIO);
    } finally {
      setWarnObserver(prev);
    }
    expect(warned.map((w) => w.message)).toEqual([expect.stringContaining('__kvm_gmem_get_pfn: binding')]);
    expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 3), 0x400)).toMatchObject({ max_order: 0 });
  });
});

describe('invalidation of the guest mappings', () => {
  test('a hole under a binding runs one MMU invalidation over the bound gfns; none without a binding', () => {
    const v = setup();
    const g = gmem(v, 16384, MMAP_SHARED);
    const seq0 = v.kvm.mmu_invalidate_seq;
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 16384)).toBe(0);
    expect(v.kvm.mmu_invalidate_seq).toBe(seq0);
    expect(setSlot(v, 0, 0x100000n, 8192, g, 4096)).toBe(0);
    const ring = new RingSink();
    v.kernel.tracer.addSink(ring);
    expect(v.p.fallocate(g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 8192, 8192)).toBe(0);
    expect(v.kvm.mmu_invalidate_in_progress).toBe(0);
    expect(v.kvm.mmu_invalidate_seq).toBeGreaterThan(seq0);
    /* file pages [2, 4) against the binding [1, 3) at gfn 0x100: gfn 0x101 only */
    expect(ring.events('cocosim_kvm_gmem_invalidate').map((r) => r.args)).toEqual([
      { ino: expect.any(Number), slot: 0, start: 0x101, end: 0x102, attr_filter: KVM_FILTER_SHARED },
    ]);
  });

  test('release zaps every binding of the file with the private filter for memory created private', () => {
    const v = setup();
    const g = gmem(v, 16384);
    expect(setSlot(v, 0, 0x100000n, 8192, g, 0)).toBe(0);
    expect(setSlot(v, 1, 0x200000n, 8192, g, 8192)).toBe(0);
    const seq0 = v.kvm.mmu_invalidate_seq;
    const f = gmemFile(v, g);
    expect(f.bindings.size).toBe(2);
    const ring = new RingSink();
    v.kernel.tracer.addSink(ring);
    expect(v.p.close(g)).toBe(0);
    expect(v.kvm.mmu_invalidate_seq).toBeGreaterThan(seq0);
    expect(v.kvm.mmu_invalidate_in_progress).toBe(0);
    expect(slotOf(v, 0).gmem.file).toBe(null);
    expect(slotOf(v, 1).gmem.file).toBe(null);
    expect(f.bindings.mt_find(0, MT_MAX)).toBeUndefined();
    expect(ring.events('cocosim_kvm_gmem_invalidate').map((r) => [r.args.start, r.args.end, r.args.attr_filter])).toEqual([
      [0x100, 0x102, KVM_FILTER_PRIVATE], [0x200, 0x202, KVM_FILTER_PRIVATE],
    ]);
  });
});

describe('memory failure (kvm_gmem_error_folio)', () => {
  test('a poisoned page is unmapped from the guest but kept; the guest then gets -EHWPOISON', () => {
    const v = setup();
    const g = gmem(v, 8192);
    expect(setSlot(v, 0, 0x100000n, 8192, g)).toBe(0);
    const got = kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x101) as { pfn: number };
    const ring = new RingSink();
    v.kernel.tracer.addSink(ring);
    const seq0 = v.kvm.mmu_invalidate_seq;
    memory_failure(v.kernel, got.pfn, MF_SW_SIMULATED);
    expect(ring.events('cocosim_kvm_gmem_invalidate').map((r) => [r.args.start, r.args.end])).toEqual([[0x101, 0x102]]);
    expect(v.kvm.mmu_invalidate_seq).toBeGreaterThan(seq0);
    /* MF_DELAYED is no success for truncate_error_folio(), which says so */
    expect(ring.events('console').map((r) => r.args.msg)).toContain(`Memory failure: 0x${got.pfn.toString(16)}: Failed to punch page: 2`);
    const mapping = v.p.task.files.lookup(g)!.f_mapping;
    expect(mapping.folio_at(PgOff(1))).toBe(got.pfn);
    expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x101)).toBe(-Errno.EHWPOISON);
    expect(kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x100)).toMatchObject({ max_order: 0 });
  });
});

describe('kvm_gmem_populate', () => {
  function swVm(): Vm & { g: number } {
    const v = setup({ ops: kvm_sw_protected_x86_ops, type: KVM_X86_SW_PROTECTED_VM });
    const g = gmem(v, 16384);
    expect(setSlot(v, 0, 0x100000n, 16384, g)).toBe(0);
    return { ...v, g };
  }

  test('fills private pages through the callback, clipped to the slot; they are then prepared', () => {
    const v = swVm();
    expect(v.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0x100000, size: 16384, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    const src = new Uint8Array(4 * PAGE_SIZE).fill(0x11);
    const seen: [number, number, number][] = [];
    const cb = (_k: Kvm, gfn: number, pfn: number, s: Uint8Array | null, order: number): number => {
      seen.push([gfn, s!.length, order]);
      v.kernel.phys.write(pfn as Pfn, 0, s!);
      return 0;
    };
    expect(kvm_gmem_populate(v.kvm, 0x102, src, 8, cb)).toBe(2);
    expect(seen).toEqual([[0x102, PAGE_SIZE, 0], [0x103, PAGE_SIZE, 0]]);
    const got = kvm_gmem_get_pfn(v.kvm, slotOf(v, 0), 0x102) as { pfn: number };
    expect(v.kernel.phys.read(got.pfn as Pfn, 0, 4)).toEqual(new Uint8Array(4).fill(0x11));
    /* populating a prepared page again is -EEXIST */
    expect(kvm_gmem_populate(v.kvm, 0x102, null, 1, () => 0)).toBe(-Errno.EEXIST);
    /* partial success returns the count */
    expect(kvm_gmem_populate(v.kvm, 0x101, null, 2, () => 0)).toBe(1);
  });

  test('EINVAL for npages < 0, a gfn outside guest_memfd or shared; EFAULT once the file is closed; callback errors', () => {
    const v = swVm();
    expect(kvm_gmem_populate(v.kvm, 0x100, null, -1, () => 0)).toBe(-Errno.EINVAL);
    expect(kvm_gmem_populate(v.kvm, 0x100, null, 0, () => 0)).toBe(0);
    expect(kvm_gmem_populate(v.kvm, 0x500, null, 1, () => 0)).toBe(-Errno.EINVAL);
    expect(kvm_gmem_populate(v.kvm, 0x100, null, 1, () => 0)).toBe(-Errno.EINVAL);
    expect(v.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0x100000, size: 16384, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(0);
    expect(kvm_gmem_populate(v.kvm, 0x100, null, 1, () => -Errno.EFAULT)).toBe(-Errno.EFAULT);
    expect(folio_test_uptodate(v.kernel.store, v.p.task.files.lookup(v.g)!.f_mapping.folio_at(PgOff(0))!)).toBe(false);
    expect(v.p.close(v.g)).toBe(0);
    expect(kvm_gmem_populate(v.kvm, 0x100, null, 1, () => 0)).toBe(-Errno.EFAULT);
  });
});
