/**
 * A port of tools/testing/selftests/memfd/memfd_test.c (Linux 6.18): the same helpers
 * (mfd_assert_*, mfd_fail_*) and the same test functions, run on a simulated host, once on shmem
 * and once on hugetlbfs (the C test's "hugetlbfs" mode, with 2 MiB pages in the pool).
 *
 * What the C test does that cocosim cannot (yet), and how it is handled here:
 * - fork() (test_share_fork, mfd_assert_fork_private_write) and clone(CLONE_NEWPID)
 *   (test_sysctl_*: per-pid-namespace vm.memfd_noexec, its inheritance and ratcheting): there is
 *   no fork; the sysctl cases run in one namespace by setting the host's vm.memfd_noexec.
 * - fd2name() (readlink of /proc/self/fd/N) is only used in messages; open("/proc/self/fd/N")
 *   goes through proc_fd_reopen().
 * - A store through a mapping that raises a signal fails the test (the C test would crash).
 */
import { describe } from 'vitest';
import { Errno } from '@cocosim/core';
import {
  F_ADD_SEALS,
  F_DUPFD,
  F_GET_SEALS,
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MAP_FAILED,
  MAP_PRIVATE,
  MAP_SHARED,
  MEMFD_NOEXEC_SCOPE_EXEC,
  MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED,
  MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_NOEXEC_SEAL,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  PROT_READ,
  PROT_WRITE,
  hugetlb_pool,
  memfd_noexec,
  proc_fd_reopen,
  set_max_huge_pages,
  type Process,
  type Stat,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_FAIL } from '../lib/test_util.js';

const MFD_DEF_SIZE = 8192;
const F_WX_SEALS = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/** The test's globals: the process, the file system under test and its default size. */
class MemfdTest {
  readonly mfd_def_size: number;
  readonly memfd_str: string;

  constructor(
    readonly p: Process,
    readonly hugetlbfs_test: boolean,
  ) {
    /* main(): in hugetlbfs mode, two huge pages */
    this.mfd_def_size = hugetlbfs_test ? 2 * (2 << 20) : MFD_DEF_SIZE;
    this.memfd_str = hugetlbfs_test ? 'memfd-hugetlb:' : 'memfd:';
    if (hugetlbfs_test) set_max_huge_pages(p.kernel, hugetlb_pool(p.kernel).default_hstate, 64);
  }

  flags(flags: number): number {
    return this.hugetlbfs_test ? flags | MFD_HUGETLB : flags;
  }

  mfd_assert_new(name: string, sz: number, flags: number): number {
    const fd = this.p.memfd_create(name, this.flags(flags));
    TEST_ASSERT(fd >= 0, `memfd_create("${name}", ${flags}) failed: errno ${this.p.errno}`);
    TEST_ASSERT(this.p.ftruncate(fd, sz) === 0, `ftruncate(${sz}) failed: errno ${this.p.errno}`);
    return fd;
  }

  mfd_fail_new(name: unknown, flags: number): void {
    const r = this.p.memfd_create(name, this.flags(flags));
    TEST_ASSERT(r < 0, `memfd_create("${String(name)}", ${flags}) succeeded, but failure expected`);
  }

  mfd_assert_get_seals(fd: number): number {
    const r = this.p.fcntl(fd, F_GET_SEALS);
    TEST_ASSERT(r >= 0, `GET_SEALS(${fd}) failed: errno ${this.p.errno}`);
    return r;
  }

  mfd_assert_has_seals(fd: number, seals: number): void {
    const s = this.mfd_assert_get_seals(fd);
    TEST_ASSERT(s === seals, `${seals} != ${s} = GET_SEALS(${fd})`);
  }

  mfd_assert_add_seals(fd: number, seals: number): void {
    const s = this.mfd_assert_get_seals(fd);
    TEST_ASSERT(this.p.fcntl(fd, F_ADD_SEALS, seals) >= 0, `ADD_SEALS(${fd}, ${s} -> ${seals}) failed: errno ${this.p.errno}`);
  }

  mfd_fail_add_seals(fd: number, seals: number): void {
    const r = this.p.fcntl(fd, F_ADD_SEALS, seals);
    TEST_ASSERT(r < 0, `ADD_SEALS(${fd}, ${seals}) didn't fail as expected`);
  }

  mfd_assert_size(fd: number, size: number): void {
    const st = {} as Stat;
    TEST_ASSERT(this.p.fstat(fd, st) === 0, `fstat(${fd}) failed`);
    TEST_ASSERT(st.st_size === BigInt(size), `wrong file size ${st.st_size}, but expected ${size}`);
  }

  mfd_assert_dup(fd: number): number {
    const r = this.p.fcntl(fd, F_DUPFD, 0);
    TEST_ASSERT(r >= 0, `dup(${fd}) failed`);
    return r;
  }

  mfd_assert_open(fd: number, flags: number): number {
    const f = proc_fd_reopen(this.p.task, fd, flags);
    TEST_ASSERT(typeof f !== 'number', `open(/proc/self/fd/${fd}) failed: errno ${String(f)}`);
    const r = this.p.task.files.install(f, false);
    TEST_ASSERT(r >= 0, 'open: no free fd');
    return r;
  }

  mfd_fail_open(fd: number, flags: number): void {
    const f = proc_fd_reopen(this.p.task, fd, flags);
    TEST_ASSERT(typeof f === 'number', `open(/proc/self/fd/${fd}) didn't fail as expected`);
  }

  /** mmap(NULL, len, prot, flags, fd, 0): the address, or null for MAP_FAILED (errno set). */
  mmap(len: number, prot: number, flags: number, fd: number): bigint | null {
    const p = this.p.mmap(0, len, prot, flags, fd, 0);
    return p === MAP_FAILED ? null : p;
  }

  munmap(addr: bigint, len: number): void {
    TEST_ASSERT(this.p.munmap(addr, len) === 0, `munmap() failed: errno ${this.p.errno}`);
  }

  mprotect(addr: bigint, len: number, prot: number): number {
    return this.p.mprotect(addr, len, prot);
  }

  /** `*(char *)p = 0`: a store that must not raise a signal. */
  store(addr: bigint): void {
    const r = this.p.store(addr, new Uint8Array(1));
    TEST_ASSERT(r === 0, `store to 0x${addr.toString(16)} raised ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
  }

  mfd_assert_mmap_shared(fd: number): bigint {
    const p = this.mmap(this.mfd_def_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    return p;
  }

  mfd_assert_mmap_private(fd: number): bigint {
    const p = this.mmap(this.mfd_def_size, PROT_READ, MAP_PRIVATE, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    return p;
  }

  mfd_assert_read(fd: number): void {
    const buf = new Uint8Array(16);
    const l = this.p.read(fd, buf);
    TEST_ASSERT(l === 16, `read() failed: errno ${this.p.errno}`);
    /* verify PROT_READ *is* allowed */
    let p = this.mmap(this.mfd_def_size, PROT_READ, MAP_PRIVATE, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    this.munmap(p, this.mfd_def_size);
    /* verify MAP_PRIVATE is *always* allowed (even writable) */
    p = this.mmap(this.mfd_def_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    this.munmap(p, this.mfd_def_size);
  }

  /** Test that PROT_READ + MAP_SHARED mappings work. */
  mfd_assert_read_shared(fd: number): void {
    const p = this.mmap(this.mfd_def_size, PROT_READ, MAP_SHARED, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    this.munmap(p, this.mfd_def_size);
  }

  mfd_assert_write(fd: number): void {
    /* hugetlbfs does not support write, but we want to verify everything else here */
    if (!this.hugetlbfs_test) TEST_ASSERT(this.p.write(fd, new Uint8Array(4)) === 4, `write() failed: errno ${this.p.errno}`);
    /* verify PROT_READ | PROT_WRITE is allowed */
    let p = this.mmap(this.mfd_def_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    this.store(p);
    this.munmap(p, this.mfd_def_size);
    /* verify PROT_WRITE is allowed */
    p = this.mmap(this.mfd_def_size, PROT_WRITE, MAP_SHARED, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    this.store(p);
    this.munmap(p, this.mfd_def_size);
    /* verify PROT_READ with MAP_SHARED is allowed and a following mprotect(PROT_WRITE) allows writing */
    p = this.mmap(this.mfd_def_size, PROT_READ, MAP_SHARED, fd);
    TEST_ASSERT(p !== null, `mmap() failed: errno ${this.p.errno}`);
    TEST_ASSERT(this.mprotect(p, this.mfd_def_size, PROT_READ | PROT_WRITE) === 0, `mprotect() failed: errno ${this.p.errno}`);
    this.store(p);
    this.munmap(p, this.mfd_def_size);
    /* verify PUNCH_HOLE works */
    const r = this.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, this.mfd_def_size);
    TEST_ASSERT(r === 0, `fallocate(PUNCH_HOLE) failed: errno ${this.p.errno}`);
  }

  mfd_fail_write(fd: number): void {
    /* verify write() fails */
    const l = this.p.write(fd, new TextEncoder().encode('data'));
    TEST_ASSERT(l === -1 && this.p.errno === (this.hugetlbfs_test ? Errno.EINVAL : Errno.EPERM), `expected EPERM on write(), but got ${l}: errno ${this.p.errno}`);
    /* verify PROT_READ | PROT_WRITE is not allowed */
    TEST_ASSERT(this.mmap(this.mfd_def_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd) === null, "mmap() didn't fail as expected");
    /* verify PROT_WRITE is not allowed */
    TEST_ASSERT(this.mmap(this.mfd_def_size, PROT_WRITE, MAP_SHARED, fd) === null, "mmap() didn't fail as expected");
    /* Verify PROT_READ with MAP_SHARED with a following mprotect is not allowed. */
    const p = this.mmap(this.mfd_def_size, PROT_READ, MAP_SHARED, fd);
    if (p !== null) {
      TEST_ASSERT(this.mprotect(p, this.mfd_def_size, PROT_READ | PROT_WRITE) < 0, "mmap()+mprotect() didn't fail as expected");
      this.munmap(p, this.mfd_def_size);
    }
    /* verify PUNCH_HOLE fails */
    const r = this.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, this.mfd_def_size);
    TEST_ASSERT(r < 0, "fallocate(PUNCH_HOLE) didn't fail as expected");
  }

  mfd_assert_shrink(fd: number): void {
    TEST_ASSERT(this.p.ftruncate(fd, this.mfd_def_size / 2) === 0, `ftruncate(SHRINK) failed: errno ${this.p.errno}`);
    this.mfd_assert_size(fd, this.mfd_def_size / 2);
    const fd2 = this.mfd_assert_open(fd, O_RDWR | O_CREAT | O_TRUNC);
    this.p.close(fd2);
    this.mfd_assert_size(fd, 0);
  }

  mfd_fail_shrink(fd: number): void {
    TEST_ASSERT(this.p.ftruncate(fd, this.mfd_def_size / 2) < 0, "ftruncate(SHRINK) didn't fail as expected");
    this.mfd_fail_open(fd, O_RDWR | O_CREAT | O_TRUNC);
  }

  mfd_assert_grow(fd: number): void {
    TEST_ASSERT(this.p.ftruncate(fd, this.mfd_def_size * 2) === 0, `ftruncate(GROW) failed: errno ${this.p.errno}`);
    this.mfd_assert_size(fd, this.mfd_def_size * 2);
    TEST_ASSERT(this.p.fallocate(fd, 0, 0, this.mfd_def_size * 4) === 0, `fallocate(ALLOC) failed: errno ${this.p.errno}`);
    this.mfd_assert_size(fd, this.mfd_def_size * 4);
  }

  mfd_fail_grow(fd: number): void {
    TEST_ASSERT(this.p.ftruncate(fd, this.mfd_def_size * 2) < 0, "ftruncate(GROW) didn't fail as expected");
    TEST_ASSERT(this.p.fallocate(fd, 0, 0, this.mfd_def_size * 4) < 0, "fallocate(ALLOC) didn't fail as expected");
  }

  mfd_assert_grow_write(fd: number): void {
    /* hugetlbfs does not support write */
    if (this.hugetlbfs_test) return;
    const l = this.p.pwrite(fd, new Uint8Array(this.mfd_def_size * 8), 0);
    TEST_ASSERT(l === this.mfd_def_size * 8, `pwrite() failed: errno ${this.p.errno}`);
    this.mfd_assert_size(fd, this.mfd_def_size * 8);
  }

  mfd_fail_grow_write(fd: number): void {
    if (this.hugetlbfs_test) return;
    const l = this.p.pwrite(fd, new Uint8Array(this.mfd_def_size * 8), 0);
    TEST_ASSERT(l !== this.mfd_def_size * 8, "pwrite() didn't fail as expected");
  }

  mfd_assert_mode(fd: number, mode: number): void {
    const st = {} as Stat;
    TEST_ASSERT(this.p.fstat(fd, st) === 0, 'fstat() failed');
    TEST_ASSERT((st.st_mode & 0o7777) === mode, `fstat(${fd}) wrong file mode 0${(st.st_mode & 0o7777).toString(8)}, but expected 0${mode.toString(8)}`);
  }

  mfd_assert_chmod(fd: number, mode: number): void {
    TEST_ASSERT(this.p.fchmod(fd, mode) === 0, `fchmod(${fd}, 0${mode.toString(8)}) failed: errno ${this.p.errno}`);
    this.mfd_assert_mode(fd, mode);
  }

  mfd_fail_chmod(fd: number, mode: number): void {
    const st = {} as Stat;
    TEST_ASSERT(this.p.fstat(fd, st) === 0, 'fstat() failed');
    TEST_ASSERT(this.p.fchmod(fd, mode) !== 0, `fchmod(${fd}, 0${mode.toString(8)}) didn't fail as expected`);
    /* verify that file mode bits did not change */
    this.mfd_assert_mode(fd, st.st_mode & 0o7777);
  }
}

/** Verify syscall-argument validation, including name checks, flag validation and more. */
function test_create(t: MemfdTest): void {
  /* test NULL name */
  t.mfd_fail_new(null, 0);
  /* test over-long name (not zero-terminated) */
  t.mfd_fail_new(new Uint8Array(2048).fill(0xff), 0);
  /* test over-long zero-terminated name */
  const buf = new Uint8Array(2048).fill(0xff);
  buf[buf.length - 1] = 0;
  t.mfd_fail_new(buf, 0);
  /* verify "" is a valid name */
  t.p.close(t.mfd_assert_new('', 0, 0));
  /* verify invalid O_* open flags */
  t.mfd_fail_new('', 0x0100);
  t.mfd_fail_new('', ~MFD_CLOEXEC);
  t.mfd_fail_new('', ~MFD_ALLOW_SEALING);
  t.mfd_fail_new('', ~0);
  t.mfd_fail_new('', 0x80000000);
  /* verify EXEC and NOEXEC_SEAL can't both be set */
  t.mfd_fail_new('', MFD_EXEC | MFD_NOEXEC_SEAL);
  /* verify MFD_CLOEXEC, MFD_ALLOW_SEALING and both are allowed */
  t.p.close(t.mfd_assert_new('', 0, MFD_CLOEXEC));
  t.p.close(t.mfd_assert_new('', 0, MFD_ALLOW_SEALING));
  t.p.close(t.mfd_assert_new('', 0, MFD_ALLOW_SEALING | MFD_CLOEXEC));
}

/** A very basic sealing test to see whether setting/retrieving seals works. */
function test_basic(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_basic', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  /* add basic seals */
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_SHRINK | F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK | F_SEAL_WRITE);
  /* add them again */
  t.mfd_assert_add_seals(fd, F_SEAL_SHRINK | F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK | F_SEAL_WRITE);
  /* add more seals and seal against sealing */
  t.mfd_assert_add_seals(fd, F_SEAL_GROW | F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  /* verify that sealing no longer works */
  t.mfd_fail_add_seals(fd, F_SEAL_GROW);
  t.mfd_fail_add_seals(fd, 0);
  t.p.close(fd);
  /* verify sealing does not work without MFD_ALLOW_SEALING */
  fd = t.mfd_assert_new('kern_memfd_basic', t.mfd_def_size, MFD_CLOEXEC);
  t.mfd_assert_has_seals(fd, F_SEAL_SEAL);
  t.mfd_fail_add_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_SEAL);
  t.p.close(fd);
}

/** Test whether SEAL_WRITE actually prevents modifications. */
function test_seal_write(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_seal_write', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_read(fd);
  t.mfd_fail_write(fd);
  t.mfd_assert_shrink(fd);
  t.mfd_assert_grow(fd);
  t.mfd_fail_grow_write(fd);
  t.p.close(fd);
}

/** Test whether SEAL_FUTURE_WRITE actually prevents modifications (the fork part is not ported). */
function test_seal_future_write(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_seal_future_write', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  const p = t.mfd_assert_mmap_shared(fd);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_FUTURE_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_FUTURE_WRITE);
  /* read should pass, writes should fail */
  t.mfd_assert_read(fd);
  t.mfd_assert_read_shared(fd);
  t.mfd_fail_write(fd);
  const fd2 = t.mfd_assert_open(fd, O_RDWR);
  /* read should pass, writes should still fail */
  t.mfd_assert_read(fd2);
  t.mfd_assert_read_shared(fd2);
  t.mfd_fail_write(fd2);
  /* the mapping made before the seal keeps working */
  t.store(p);
  t.munmap(p, t.mfd_def_size);
  t.p.close(fd2);
  t.p.close(fd);
}

/** Test whether SEAL_SHRINK actually prevents shrinking. */
function test_seal_shrink(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_seal_shrink', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK);
  t.mfd_assert_read(fd);
  t.mfd_assert_write(fd);
  t.mfd_fail_shrink(fd);
  t.mfd_assert_grow(fd);
  t.mfd_assert_grow_write(fd);
  t.p.close(fd);
}

/** Test whether SEAL_GROW actually prevents growing. */
function test_seal_grow(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_seal_grow', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_GROW);
  t.mfd_assert_has_seals(fd, F_SEAL_GROW);
  t.mfd_assert_read(fd);
  t.mfd_assert_write(fd);
  t.mfd_assert_shrink(fd);
  t.mfd_fail_grow(fd);
  t.mfd_fail_grow_write(fd);
  t.p.close(fd);
}

/** Test whether SEAL_SHRINK | SEAL_GROW actually prevents resizing. */
function test_seal_resize(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_seal_resize', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW);
  t.mfd_assert_read(fd);
  t.mfd_assert_write(fd);
  t.mfd_fail_shrink(fd);
  t.mfd_fail_grow(fd);
  t.mfd_fail_grow_write(fd);
  t.p.close(fd);
}

/** Test fd is created with exec and allow sealing; chmod() cannot change x bits after sealing. */
function test_exec_seal(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_seal_exec', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  t.mfd_assert_mode(fd, 0o777);
  t.mfd_assert_chmod(fd, 0o644);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_EXEC);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_assert_chmod(fd, 0o600);
  t.mfd_fail_chmod(fd, 0o777);
  t.mfd_fail_chmod(fd, 0o670);
  t.mfd_fail_chmod(fd, 0o605);
  t.mfd_fail_chmod(fd, 0o700);
  t.mfd_fail_chmod(fd, 0o100);
  t.mfd_assert_chmod(fd, 0o666);
  t.mfd_assert_write(fd);
  t.p.close(fd);

  fd = t.mfd_assert_new('kern_memfd_seal_exec', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  t.mfd_assert_mode(fd, 0o777);
  t.mfd_assert_chmod(fd, 0o700);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_EXEC);
  t.mfd_assert_has_seals(fd, F_WX_SEALS);
  t.mfd_fail_chmod(fd, 0o711);
  t.mfd_fail_chmod(fd, 0o600);
  t.mfd_fail_write(fd);
  t.p.close(fd);
}

/** Test fd is created with exec and not allow sealing. */
function test_exec_no_seal(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_exec_no_sealing', t.mfd_def_size, MFD_CLOEXEC | MFD_EXEC);
  t.mfd_assert_mode(fd, 0o777);
  t.mfd_assert_has_seals(fd, F_SEAL_SEAL);
  t.mfd_assert_chmod(fd, 0o666);
  t.p.close(fd);
}

/** Test memfd_create with MFD_NOEXEC flag. */
function test_noexec_seal(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_noexec', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
  fd = t.mfd_assert_new('kern_memfd_noexec', t.mfd_def_size, MFD_CLOEXEC | MFD_NOEXEC_SEAL);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
}

function test_sysctl_sysctl0(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_sysctl_0_dfl', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o777);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_chmod(fd, 0o644);
  t.p.close(fd);
}

function test_sysctl_sysctl1(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_sysctl_1_dfl', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
  fd = t.mfd_assert_new('kern_memfd_sysctl_1_exec', t.mfd_def_size, MFD_CLOEXEC | MFD_EXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o777);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_chmod(fd, 0o644);
  t.p.close(fd);
  fd = t.mfd_assert_new('kern_memfd_sysctl_1_noexec', t.mfd_def_size, MFD_CLOEXEC | MFD_NOEXEC_SEAL | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
}

function test_sysctl_sysctl2(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_sysctl_2_dfl', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
  t.mfd_fail_new('kern_memfd_sysctl_2_exec', MFD_CLOEXEC | MFD_EXEC | MFD_ALLOW_SEALING);
  fd = t.mfd_assert_new('kern_memfd_sysctl_2_noexec', t.mfd_def_size, MFD_CLOEXEC | MFD_NOEXEC_SEAL | MFD_ALLOW_SEALING);
  t.mfd_assert_mode(fd, 0o666);
  t.mfd_assert_has_seals(fd, F_SEAL_EXEC);
  t.mfd_fail_chmod(fd, 0o777);
  t.p.close(fd);
}

/** sysctl_simple_child() in one pid namespace: 0, 1, 0, 2, 1, 0. */
function test_sysctl_simple(t: MemfdTest): void {
  const sysctl = memfd_noexec(t.p.kernel);
  const run = [
    [MEMFD_NOEXEC_SCOPE_EXEC, test_sysctl_sysctl0],
    [MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL, test_sysctl_sysctl1],
    [MEMFD_NOEXEC_SCOPE_EXEC, test_sysctl_sysctl0],
    [MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED, test_sysctl_sysctl2],
    [MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL, test_sysctl_sysctl1],
    [MEMFD_NOEXEC_SCOPE_EXEC, test_sysctl_sysctl0],
  ] as const;
  for (const [scope, fn] of run) {
    sysctl.scope = scope;
    fn(t);
  }
  sysctl.scope = MEMFD_NOEXEC_SCOPE_EXEC;
}

/** Test that seals are shared between dupped FDs and they're all equal. */
function test_share_dup(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_share_dup', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  const fd2 = t.mfd_assert_dup(fd);
  t.mfd_assert_has_seals(fd2, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE);
  t.mfd_assert_add_seals(fd2, F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.mfd_assert_add_seals(fd, F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_SEAL);
  t.mfd_fail_add_seals(fd, F_SEAL_GROW);
  t.mfd_fail_add_seals(fd2, F_SEAL_GROW);
  t.mfd_fail_add_seals(fd, F_SEAL_SEAL);
  t.mfd_fail_add_seals(fd2, F_SEAL_SEAL);
  t.p.close(fd2);
  t.mfd_fail_add_seals(fd, F_SEAL_GROW);
  t.p.close(fd);
}

/** Modifying seals is only allowed if no other mmap() refs exist. */
function test_share_mmap(t: MemfdTest): void {
  const fd = t.mfd_assert_new('kern_memfd_share_mmap', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  /* shared/writable ref prevents sealing WRITE, but allows others */
  let p = t.mfd_assert_mmap_shared(fd);
  t.mfd_fail_add_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, 0);
  t.mfd_assert_add_seals(fd, F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd, F_SEAL_SHRINK);
  t.munmap(p, t.mfd_def_size);
  /* readable ref allows sealing */
  p = t.mfd_assert_mmap_private(fd);
  t.mfd_assert_add_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.munmap(p, t.mfd_def_size);
  t.p.close(fd);
}

/** open(/proc/self/fd/%d) gives a separate file context for the same memfd: not like dup(). */
function test_share_open(t: MemfdTest): void {
  let fd = t.mfd_assert_new('kern_memfd_share_open', t.mfd_def_size, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  t.mfd_assert_has_seals(fd, 0);
  let fd2 = t.mfd_assert_open(fd, O_RDWR);
  t.mfd_assert_add_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE);
  t.mfd_assert_add_seals(fd2, F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.p.close(fd);
  fd = t.mfd_assert_open(fd2, O_RDONLY);
  t.mfd_fail_add_seals(fd, F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE | F_SEAL_SHRINK);
  t.p.close(fd2);
  fd2 = t.mfd_assert_open(fd, O_RDWR);
  t.mfd_assert_add_seals(fd2, F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_SEAL);
  t.mfd_assert_has_seals(fd2, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_SEAL);
  t.p.close(fd2);
  t.p.close(fd);
}

const TESTS: readonly [string, (t: MemfdTest) => void][] = [
  ['CREATE', test_create],
  ['BASIC', test_basic],
  ['SEAL-EXEC', test_exec_seal],
  ['EXEC_NO_SEAL', test_exec_no_seal],
  ['NOEXEC_SEAL', test_noexec_seal],
  ['SEAL-WRITE', test_seal_write],
  ['SEAL-FUTURE-WRITE', test_seal_future_write],
  ['SEAL-SHRINK', test_seal_shrink],
  ['SEAL-GROW', test_seal_grow],
  ['SEAL-RESIZE', test_seal_resize],
  ['sysctl (one pid namespace)', test_sysctl_simple],
  ['SHARE-DUP', test_share_dup],
  ['SHARE-MMAP', test_share_mmap],
  ['SHARE-OPEN', test_share_open],
];

/*
 * hugetlbfs_setattr() has no F_SEAL_EXEC check (checked on 6.18: fchmod(0777) of an
 * MFD_HUGETLB | MFD_NOEXEC_SEAL memfd succeeds), so the chmod cases of these fail in hugetlbfs
 * mode on the real kernel too; hugetlbfs.test.ts records that behaviour.
 */
const SHMEM_ONLY = new Set(['SEAL-EXEC', 'NOEXEC_SEAL', 'sysctl (one pid namespace)']);

for (const hugetlbfs of [false, true]) {
  describe(hugetlbfs ? 'memfd_test hugetlbfs' : 'memfd_test', () => {
    for (const [name, fn] of TESTS) {
      if (hugetlbfs && SHMEM_ONLY.has(name)) continue;
      test(name, ({ host }) => {
        const t = new MemfdTest(host.process(), hugetlbfs);
        try {
          fn(t);
        } catch (e) {
          if (e instanceof Error) TEST_FAIL(`${t.memfd_str} ${name}: ${e.message}`);
          throw e;
        }
      });
    }
  });
}
