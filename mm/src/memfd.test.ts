/**
 * memfd_create() and F_ADD_SEALS / F_GET_SEALS, with the answers Linux 6.18 gave on the oracle
 * machine.
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { O_CLOEXEC, O_RDONLY, O_RDWR } from './fs.js';
import {
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_HUGE_1GB,
  MFD_HUGE_SHIFT,
  MFD_NOEXEC_SEAL,
} from './uapi/memfd.js';
import {
  F_ADD_SEALS,
  F_GETFD,
  F_GETFL,
  F_GET_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
} from './uapi/fcntl.js';
import { memfd_check_seals_mmap, memfd_noexec, MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED, MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL } from './memfd.js';
import { VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE } from './mm_types.js';
import { proc_fd_reopen } from './open.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './mman.js';
import type { Stat } from './stat.js';
import { try_grab_folio, FOLL_PIN, unpin_folio } from './folio.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
}

function mode(p: Process, fd: number): number {
  const st = {} as Stat;
  expect(p.fstat(fd, st)).toBe(0);
  return st.st_mode & 0o7777;
}

/** open("/proc/self/fd/N", flags) */
function reopen(p: Process, fd: number, flags: number): number {
  const f = proc_fd_reopen(p.task, fd, flags);
  if (typeof f === 'number') return f;
  return p.task.files.install(f, false);
}

describe('memfd_create: validation order (Linux 6.18)', () => {
  test('name: NULL and non-strings -EFAULT; 249 bytes fine, 250 -EINVAL; "" fine', () => {
    const p = proc();
    for (const name of [null, undefined, 1, {}, 1n]) {
      expect(p.memfd_create(name, 0)).toBe(-1);
      expect(p.errno).toBe(Errno.EFAULT);
    }
    expect(p.memfd_create('a'.repeat(249), 0)).toBeGreaterThanOrEqual(3);
    expect(p.memfd_create('a'.repeat(250), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.memfd_create('', 0)).toBeGreaterThanOrEqual(3);
    /* the name is counted in UTF-8 bytes */
    expect(p.memfd_create('é'.repeat(125), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    /* a byte buffer: stops at NUL; without a NUL it runs off its end (-EFAULT) unless over-long */
    expect(p.memfd_create(new Uint8Array(2048).fill(0xff), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.memfd_create(new Uint8Array([0x61, 0x62]), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.memfd_create(new Uint8Array([0x61, 0]), 0)).toBeGreaterThanOrEqual(3);
  });

  test('a NULL name is the string at address 0 when something is mapped there (memfd-name-null-page.kernel.jsonl)', () => {
    const p = proc();
    expect(p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)).toBe(0n);
    expect(p.store(0, new Uint8Array([0x61, 0x62, 0]))).toBe(0);
    expect(p.memfd_create(null, 0)).toBeGreaterThanOrEqual(3);
    expect(p.store(0, new Uint8Array(250).fill(0x61))).toBe(0);
    expect(p.memfd_create(null, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.mprotect(0, 4096, 0)).toBe(0);
    expect(p.memfd_create(null, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
  });

  test('flags are checked before the name', () => {
    const p = proc();
    expect(p.memfd_create(null, 0x100)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('unknown flags, MFD_EXEC|MFD_NOEXEC_SEAL, size bits without MFD_HUGETLB: -EINVAL', () => {
    const p = proc();
    for (const flags of [0x100, ~MFD_CLOEXEC, ~MFD_ALLOW_SEALING, ~0, 0x80000000, MFD_EXEC | MFD_NOEXEC_SEAL, MFD_HUGETLB | 0x100, 63 * 2 ** 26, 1.5, 'x', 2 ** 64]) {
      expect(p.memfd_create('x', flags)).toBe(-1);
      expect(p.errno).toBe(Errno.EINVAL);
    }
  });

  test('MFD_HUGETLB: default and 1 GiB sizes exist; 4 MiB and 2^63 have no hstate (-ENODEV)', () => {
    const p = proc();
    expect(p.memfd_create('h', MFD_HUGETLB)).toBeGreaterThanOrEqual(3);
    expect(p.memfd_create('h', MFD_HUGETLB | MFD_HUGE_1GB)).toBeGreaterThanOrEqual(3);
    expect(p.memfd_create('h', MFD_HUGETLB | (22 * 2 ** MFD_HUGE_SHIFT))).toBe(-1);
    expect(p.errno).toBe(Errno.ENODEV);
    expect(p.memfd_create('h', MFD_HUGETLB | (63 * 2 ** MFD_HUGE_SHIFT))).toBe(-1);
    expect(p.errno).toBe(Errno.ENODEV);
  });

  test('the new file: O_RDWR|O_LARGEFILE, mode 0777, nlink 0, MFD_CLOEXEC sets FD_CLOEXEC', () => {
    const p = proc();
    const fd = p.memfd_create('x', MFD_CLOEXEC);
    expect(p.fcntl(fd, F_GETFL)).toBe(0o100002);
    expect(p.fcntl(fd, F_GETFD)).toBe(1);
    expect(mode(p, fd)).toBe(0o777);
    const st = {} as Stat;
    p.fstat(fd, st);
    expect(st.st_nlink).toBe(0);
    const fd2 = p.memfd_create('y', 0);
    expect(p.fcntl(fd2, F_GETFD)).toBe(0);
    expect(st.st_ino).not.toBe((() => { const s = {} as Stat; p.fstat(fd2, s); return s.st_ino; })());
  });

  test('EMFILE when the fd table is full, before anything is allocated', () => {
    const p = proc();
    p.task.files.rlimit_nofile = 3;
    expect(p.memfd_create('x', 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EMFILE);
  });
});

describe('memfd seals', () => {
  test('default F_SEAL_SEAL; MFD_ALLOW_SEALING clears it; F_SEAL_SEAL blocks even adding 0', () => {
    const p = proc();
    const sealed = p.memfd_create('c', MFD_CLOEXEC);
    expect(p.fcntl(sealed, F_GET_SEALS)).toBe(F_SEAL_SEAL);
    expect(p.fcntl(sealed, F_ADD_SEALS, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    const fd = p.memfd_create('s', MFD_ALLOW_SEALING);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    /* unknown bits are checked before F_SEAL_SEAL */
    expect(p.fcntl(fd, F_ADD_SEALS, 0x1000)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('F_ADD_SEALS order: not open for writing -EPERM before unknown bits', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    const ro = reopen(p, fd, O_RDONLY);
    expect(p.fcntl(ro, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.fcntl(ro, F_ADD_SEALS, 0x1000)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.fcntl(ro, F_GET_SEALS)).toBe(0);
  });

  test('the argument is truncated to 32 bits: 0x100000000 adds nothing, 0x100000001 adds F_SEAL_SEAL', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, 0x40)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fcntl(fd, F_ADD_SEALS, 0x100000000n)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(6);
    expect(p.fcntl(fd, F_ADD_SEALS, 0x100000001)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(7);
  });

  test('seals on anything but shmem or hugetlbfs: -EINVAL', () => {
    const p = proc();
    const dn = p.open('/dev/null', O_RDWR);
    expect(p.fcntl(dn, F_GET_SEALS)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fcntl(dn, F_ADD_SEALS, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('F_SEAL_WRITE is -EBUSY while a writable shared mapping exists (mapping_deny_writable)', () => {
    const p = proc();
    const fd = p.memfd_create('w', MFD_ALLOW_SEALING);
    const file = p.task.files.lookup(fd)!;
    expect(file.f_mapping.mapping_map_writable()).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    /* F_SEAL_FUTURE_WRITE does not care */
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE)).toBe(0);
    file.f_mapping.mapping_unmap_writable();
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
    /* and new writable shared mappings are refused from now on */
    expect(file.f_mapping.mapping_map_writable()).toBe(-Errno.EPERM);
  });

  test('F_SEAL_WRITE is -EBUSY while a page is pinned, after the kernel\'s ~150 ms of rescans', () => {
    const p = proc();
    const fd = p.memfd_create('pin', MFD_ALLOW_SEALING);
    expect(p.fallocate(fd, 0, 0, 4096)).toBe(0);
    const file = p.task.files.lookup(fd)!;
    const folio = file.f_mapping.i_pages.xa_load(0)!;
    expect(try_grab_folio(p.kernel.store, folio, 1, FOLL_PIN)).toBe(0);
    const t0 = p.kernel.clock.now();
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(p.kernel.clock.now() - t0).toBeGreaterThanOrEqual(150e6);
    /* the write denial was rolled back */
    expect(file.f_mapping.i_mmap_writable).toBe(0);
    unpin_folio(p.kernel.store, folio);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
  });

  test('F_SEAL_EXEC on an executable file adds the W^X seals; on 0666 it adds only itself', () => {
    const p = proc();
    const ex = p.memfd_create('ex', MFD_EXEC | MFD_ALLOW_SEALING);
    expect(p.fcntl(ex, F_ADD_SEALS, F_SEAL_EXEC)).toBe(0);
    expect(p.fcntl(ex, F_GET_SEALS)).toBe(62);
    const ex3 = p.memfd_create('ex3', MFD_ALLOW_SEALING);
    expect(p.fchmod(ex3, 0o666)).toBe(0);
    expect(p.fcntl(ex3, F_ADD_SEALS, F_SEAL_EXEC)).toBe(0);
    expect(p.fcntl(ex3, F_GET_SEALS)).toBe(F_SEAL_EXEC);
  });

  test('MFD_NOEXEC_SEAL: mode 0666, F_SEAL_EXEC (sealing allowed); chmod of x bits -EPERM, others fine', () => {
    const p = proc();
    const nx = p.memfd_create('nx', MFD_NOEXEC_SEAL);
    expect(mode(p, nx)).toBe(0o666);
    expect(p.fcntl(nx, F_GET_SEALS)).toBe(F_SEAL_EXEC);
    expect(p.fcntl(nx, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(0);
    expect(p.fchmod(nx, 0o755)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(mode(p, nx)).toBe(0o666);
    expect(p.fchmod(nx, 0o644)).toBe(0);
    expect(mode(p, nx)).toBe(0o644);
  });

  test('vm.memfd_noexec: 1 makes MFD_NOEXEC_SEAL the default, 2 requires it (-EACCES)', () => {
    const p = proc();
    memfd_noexec(p.kernel).scope = MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL;
    const fd = p.memfd_create('d', MFD_ALLOW_SEALING);
    expect(mode(p, fd)).toBe(0o666);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_EXEC);
    const ex = p.memfd_create('e', MFD_EXEC | MFD_ALLOW_SEALING);
    expect(mode(p, ex)).toBe(0o777);
    memfd_noexec(p.kernel).scope = MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED;
    expect(p.memfd_create('e', MFD_EXEC)).toBe(-1);
    expect(p.errno).toBe(Errno.EACCES);
    expect(p.memfd_create('d', 0)).toBeGreaterThanOrEqual(3);
  });

  test('seals are shared by every open of the file', () => {
    const p = proc();
    const fd = p.memfd_create('share', MFD_ALLOW_SEALING);
    const fd2 = reopen(p, fd, O_RDWR | O_CLOEXEC);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
    expect(p.fcntl(fd2, F_GET_SEALS)).toBe(F_SEAL_WRITE);
    expect(p.fcntl(fd2, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_WRITE | F_SEAL_SHRINK);
  });
});

describe('memfd_check_seals_mmap()', () => {
  test('write-sealed: shared writable -EPERM, shared read-only loses VM_MAYWRITE, private untouched', () => {
    const p = proc();
    const fd = p.memfd_create('m', MFD_ALLOW_SEALING);
    const file = p.task.files.lookup(fd)!;
    const rw = { vm_flags: VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE };
    expect(memfd_check_seals_mmap(file, rw)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE)).toBe(0);
    expect(memfd_check_seals_mmap(file, rw)).toBe(-Errno.EPERM);
    const ro = { vm_flags: VM_READ | VM_SHARED | VM_MAYREAD | VM_MAYWRITE };
    expect(memfd_check_seals_mmap(file, ro)).toBe(0);
    expect(ro.vm_flags).toBe(VM_READ | VM_SHARED | VM_MAYREAD);
    const priv = { vm_flags: VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE };
    expect(memfd_check_seals_mmap(file, priv)).toBe(0);
    expect(priv.vm_flags).toBe(VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE);
  });
});
