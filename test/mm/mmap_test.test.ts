/**
 * mmap(2) and munmap(2) as a C program sees them. Every errno and address below was checked on
 * the oracle machine (Linux 6.18.44, x86-64, running as root, randomize_va_space set aside with
 * `setarch -R`); the programs are in test/mm/c, their output (.out) is quoted next to each case.
 */
import { describe, expect } from 'vitest';
import { Errno } from '@cocosim/core';
import {
  F_ADD_SEALS,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_WRITE,
  MAP_32BIT,
  MAP_ABOVE4G,
  MAP_ANONYMOUS,
  MAP_FIXED,
  vm_sysctl,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_HUGETLB,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  MFD_ALLOW_SEALING,
  MM_ANONPAGES,
  MM_SHMEMPAGES,
  O_RDONLY,
  O_WRONLY,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  folio_mapcount,
  folio_ref_count,
  proc_fd_reopen,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, maps, maps_in, mm_snapshot, mmap_fails, mmap_ok, pagemap, store_ok } from './mm_util.js';

const { EINVAL, ENOMEM, EBADF, EEXIST, EACCES, ENODEV, EOPNOTSUPP, EOVERFLOW, EPERM } = Errno;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const H = 0x3000_0000_0000n;
const MiB = 1n << 20n;

/** A memfd of `size` bytes, and fds reopened read-only and write-only through /proc/self/fd. */
function memfd(p: Process, size: number, flags = 0): { fd: number; rdonly: number; wronly: number } {
  const fd = p.memfd_create('t', flags);
  TEST_ASSERT(fd >= 0 && p.ftruncate(fd, size) === 0);
  const reopen = (mode: number): number => {
    const f = proc_fd_reopen(p.task, fd, mode);
    TEST_ASSERT(typeof f !== 'number');
    return p.task.files.install(f, false);
  };
  return { fd, rdonly: reopen(O_RDONLY), wronly: reopen(O_WRONLY) };
}

describe('mmap validation order', () => {
  test('anonymous mappings', ({ host }) => {
    const p = host.process();
    const before = mm_snapshot(p);
    /* mmap len 0                                 ret=MAP_FAILED errno=EINVAL */
    mmap_fails(p, EINVAL, 0, 0, PROT_READ, ANON);
    /* mmap anon SHARED|PRIVATE (validate)        ret=MAP_FAILED errno=EINVAL */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS);
    /* mmap anon type 0 / 0xf / 4                 EINVAL */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_ANONYMOUS);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, 0xf | MAP_ANONYMOUS);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, 4 | MAP_ANONYMOUS);
    /* mmap non-anon fd -1 off 1                  EINVAL (the offset is checked first) */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_PRIVATE, -1, 1);
    /* mmap non-anon fd -1 len0                   EBADF (the fd before the length) */
    mmap_fails(p, EBADF, 0, 0, PROT_READ, MAP_PRIVATE, -1, 0);
    mmap_fails(p, EBADF, 0, 4096, PROT_READ, MAP_PRIVATE, -1, 0);
    mmap_fails(p, EBADF, 0, 4096, PROT_READ, MAP_SHARED, 100, 0);
    mmap_fails(p, EBADF, 0, 4096, PROT_READ, 0, 100, 0);
    /* mmap anon off 1                            EINVAL; off 4096 is accepted and ignored */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, ANON, -1, 1);
    mmap_fails(p, EINVAL, 0, 0, PROT_READ, ANON, -1, 1);
    /* mmap anon len -1, 1<<63, 1<<47             ENOMEM */
    mmap_fails(p, ENOMEM, 0, -1, PROT_READ, ANON);
    mmap_fails(p, ENOMEM, 0, 1n << 63n, PROT_READ, ANON);
    mmap_fails(p, ENOMEM, 0, 1n << 47n, PROT_READ, ANON);
    /* MAP_FIXED: unaligned EINVAL; unaligned with len -1 or > TASK_SIZE ENOMEM first;
     * 0x7ffffffff001 + 8192 ENOMEM; at 1<<47 ENOMEM; at 0x7ffffffff000 ENOMEM */
    mmap_fails(p, EINVAL, 0x1000_0001, 4096, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 0x1000_0001, -1, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 0x1000_0001, 1n << 48n, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 0x7fff_ffff_f001n, 8192, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 1n << 47n, 4096, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 0x7fff_ffff_f000n, 4096, PROT_READ, ANON | MAP_FIXED);
    mmap_fails(p, ENOMEM, 0x7fff_ffff_e000n, 8192, PROT_READ, ANON | MAP_FIXED);
    /* mmap GROWSDOWN anon shared                 EINVAL */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN);
    /* mmap HUGETLB anon                          ENOMEM (no pages in the pool) */
    mmap_fails(p, ENOMEM, 0, 2n * MiB, PROT_READ, ANON | MAP_HUGETLB);
    /* values no C program can pass */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, ANON, -1, 0.5);
    mmap_fails(p, EINVAL, 0, 'x', PROT_READ, ANON);
    mmap_fails(p, EINVAL, 0, 4096, NaN, ANON);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, 1n << 64n);
    TEST_ASSERT_EQ(mm_snapshot(p), before, 'a failed mmap changes nothing');
  });

  test('unknown prot and flag bits are ignored; MAP_FIXED at 0 works for root', ({ host }) => {
    const p = host.process();
    /* mmap prot 0x100, prot -1, flags 0x800000: ok */
    for (const [prot, flags] of [[0x100, ANON], [-1, ANON], [PROT_READ, ANON | 0x800000]]) {
      const a = mmap_ok(p, 0, 4096, prot, flags);
      TEST_ASSERT_EQ(p.munmap(a, 4096), 0);
    }
    /* mmap FIXED at 0 / 0x1000: ok (root has CAP_SYS_RAWIO) */
    TEST_ASSERT_EQ(mmap_ok(p, 0, 4096, PROT_READ, ANON | MAP_FIXED), 0n);
    TEST_ASSERT_EQ(mmap_ok(p, 0x1000, 4096, PROT_READ, ANON | MAP_FIXED), 0x1000n);
  });

  test('file mappings', ({ host }) => {
    const p = host.process();
    const { fd, rdonly, wronly } = memfd(p, 8192, MFD_ALLOW_SEALING);
    const before = mm_snapshot(p);
    /* memfd off unaligned EINVAL; pgoff overflow EOVERFLOW; offset 2^63 EOVERFLOW */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_SHARED, fd, 1);
    mmap_fails(p, EOVERFLOW, 0, 8192, PROT_READ, MAP_SHARED, fd, 0xffff_ffff_ffff_f000n);
    mmap_fails(p, EOVERFLOW, 0, 4096, PROT_READ, MAP_SHARED, fd, 1n << 63n);
    /* SHARED_VALIDATE with unknown flags, MAP_FIXED_NOREPLACE or MAP_SYNC: EOPNOTSUPP */
    mmap_fails(p, EOPNOTSUPP, 0, 4096, PROT_READ, MAP_SHARED_VALIDATE | 0x800000, fd);
    mmap_fails(p, EOPNOTSUPP, H, 4096, PROT_READ, MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE, fd);
    mmap_fails(p, EOPNOTSUPP, 0, 4096, PROT_READ, MAP_SHARED_VALIDATE | MAP_SYNC, fd);
    /* memfd type 0, 0xf: EINVAL; GROWSDOWN shared: EINVAL; HUGETLB on a shmem file: EINVAL */
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, 0, fd);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, 0xf, fd);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_SHARED | MAP_GROWSDOWN, fd);
    mmap_fails(p, EINVAL, 0, 4096, PROT_READ, MAP_SHARED | MAP_HUGETLB, fd);
    /* O_RDONLY shared RW: EACCES; O_WRONLY shared RW, private R, shared NONE: EACCES; len 0 first */
    mmap_fails(p, EACCES, 0, 4096, RW, MAP_SHARED, rdonly);
    mmap_fails(p, EACCES, 0, 4096, RW, MAP_SHARED, wronly);
    mmap_fails(p, EACCES, 0, 4096, PROT_READ, MAP_PRIVATE, wronly);
    mmap_fails(p, EACCES, 0, 4096, PROT_NONE, MAP_SHARED, wronly);
    mmap_fails(p, EINVAL, 0, 0, PROT_NONE, MAP_SHARED, wronly);
    /* /dev/null has no ->mmap: ENODEV */
    const nul = p.open('/dev/null');
    mmap_fails(p, ENODEV, 0, 4096, PROT_READ, MAP_SHARED, nul);
    mmap_fails(p, ENODEV, 0, 4096, PROT_READ, MAP_PRIVATE, nul);
    TEST_ASSERT_EQ(mm_snapshot(p), before, 'a failed mmap changes nothing');
    /* accepted: SHARED_VALIDATE, SHARED with unknown flags, SHARED_VALIDATE|MAP_32BIT,
     * O_RDONLY shared R, O_RDONLY private RW */
    for (const [prot, flags, f] of [
      [PROT_READ, MAP_SHARED_VALIDATE, fd],
      [PROT_READ, MAP_SHARED | 0x800000, fd],
      [PROT_READ, MAP_SHARED_VALIDATE | MAP_32BIT, fd],
      [PROT_READ, MAP_SHARED, rdonly],
      [RW, MAP_PRIVATE, rdonly],
    ]) {
      const a = mmap_ok(p, 0, 4096, prot, flags, f);
      TEST_ASSERT_EQ(p.munmap(a, 4096), 0);
    }
  });

  test('write seals: shared writable EPERM, shared read-only loses VM_MAYWRITE, private allowed', ({ host }) => {
    const p = host.process();
    const { fd } = memfd(p, 8192, MFD_ALLOW_SEALING);
    /* A read-only shared mapping of a writable memfd counts as writable: F_SEAL_WRITE is EBUSY */
    const ro = mmap_ok(p, 0, 4096, PROT_READ, MAP_SHARED, fd);
    TEST_ASSERT_EQ(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    TEST_ASSERT_EQ(p.errno, Errno.EBUSY);
    TEST_ASSERT_EQ(p.munmap(ro, 4096), 0);
    const priv = mmap_ok(p, 0, 4096, RW, MAP_PRIVATE, fd);
    TEST_ASSERT_EQ(p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0, 'a private mapping does not block F_SEAL_WRITE');
    mmap_fails(p, EPERM, 0, 4096, RW, MAP_SHARED, fd);
    const sr = mmap_ok(p, 0, 4096, PROT_READ, MAP_SHARED, fd);
    TEST_ASSERT_EQ(p.mprotect(sr, 4096, RW), -1);
    TEST_ASSERT_EQ(p.errno, EACCES);
    store_ok(p, priv, [1]);
    /* F_SEAL_FUTURE_WRITE: RO shared ok, mprotect(W) EACCES, RW shared EPERM */
    const f2 = memfd(p, 4096, MFD_ALLOW_SEALING).fd;
    TEST_ASSERT_EQ(p.fcntl(f2, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
    const m3 = mmap_ok(p, 0, 4096, PROT_READ, MAP_SHARED, f2);
    TEST_ASSERT_EQ(p.mprotect(m3, 4096, RW), -1);
    TEST_ASSERT_EQ(p.errno, EACCES);
    mmap_fails(p, EPERM, 0, 4096, RW, MAP_SHARED, f2);
  });

  test('overcommit: private writable memory beyond RAM is ENOMEM unless MAP_NORESERVE', ({ host }) => {
    const p = host.process();
    /* 1TiB RW private anon: ENOMEM; R: ok; mprotect R->RW: ENOMEM; NORESERVE: ok */
    mmap_fails(p, ENOMEM, 0, 1n << 40n, RW, ANON);
    const r = mmap_ok(p, 0, 1n << 40n, PROT_READ, ANON);
    const before = mm_snapshot(p);
    TEST_ASSERT_EQ(p.mprotect(r, 1n << 40n, RW), -1);
    TEST_ASSERT_EQ(p.errno, ENOMEM);
    TEST_ASSERT_EQ(mm_snapshot(p), before);
    mmap_ok(p, 0, 1n << 40n, RW, ANON | MAP_NORESERVE);
  });
});

describe('where mappings go', () => {
  test('top-down from mmap_base, hints rounded down, THP alignment for 2 MiB multiples', ({ host }) => {
    const p = host.process();
    /* With randomization off, mmap_base is TASK_SIZE - 128 MiB = 0x7ffff7fff000. */
    const a = mmap_ok(p, 0, 4096, PROT_READ, ANON);
    TEST_ASSERT_EQ(a, 0x7fff_f7ff_e000n);
    const b = mmap_ok(p, 0, 4096, PROT_WRITE, ANON);
    TEST_ASSERT_EQ(a - b, 4096n, 'the next one right below');
    /* hint 0x10000123 -> 0x10000000 */
    TEST_ASSERT_EQ(mmap_ok(p, 0x1000_0123, 4096, PROT_READ, ANON), 0x1000_0000n);
    /* hint 0x10 (below mmap_min_addr, rounds to 0: no hint) -> top-down */
    TEST_ASSERT_EQ(mmap_ok(p, 0x10, 4096, PROT_READ, ANON), b - 4096n);
    /* 2 MiB and 4 MiB anonymous: 2 MiB aligned; a 4 MiB one right below a 2 MiB-aligned one
     * lands at its start minus 4 MiB (p3 - p4 in the C run: 0x7ffff7a00000 - 0x7ffff7600000) */
    const c = mmap_ok(p, 0, 2n * MiB, PROT_READ, ANON);
    TEST_ASSERT_EQ(c % (2n * MiB), 0n);
    const d = mmap_ok(p, 0, 4n * MiB, PROT_READ, ANON);
    TEST_ASSERT_EQ(c - d, 4n * MiB);
    const e = mmap_ok(p, 0, 4n * MiB + 4096n, PROT_READ, ANON);
    TEST_ASSERT_EQ(d - e, 4n * MiB + 4096n, 'not a multiple of 2 MiB: no alignment');
    /* a used hint is not honoured: the allocator picks */
    TEST_ASSERT(mmap_ok(p, a, 4096, PROT_READ, ANON) !== a);
  });

  test('a hint below mmap_min_addr becomes mmap_min_addr: the larger of the sysctl and CONFIG_LSM_MMAP_MIN_ADDR', ({ host }) => {
    const p = host.process();
    /* the oracle's kernel: sysctl 4096, CONFIG_LSM_MMAP_MIN_ADDR 65536 (trace mmap-min-addr) */
    TEST_ASSERT_EQ(mmap_ok(p, 0x8000, 4096, PROT_READ, ANON), 0x10000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0x1000, 4096, PROT_READ, ANON | MAP_FIXED), 0x1000n, 'MAP_FIXED below it: root may');
    const sc = vm_sysctl(host.kernel);
    sc.lsm_mmap_min_addr = 0n;
    TEST_ASSERT_EQ(mmap_ok(p, 0x8000, 4096, PROT_READ, ANON), 0x8000n, 'without an LSM floor the sysctl is the floor');
    sc.mmap_min_addr = 0x20000n;
    TEST_ASSERT_EQ(mmap_ok(p, 0x9000, 4096, PROT_READ, ANON), 0x20000n);
  });

  test('MAP_32BIT goes bottom-up from 1 GiB, MAP_ABOVE4G stays above 4 GiB (x86)', ({ host }) => {
    const p = host.process();
    /* placement_flags.out: "32bit 0x40000000, 32bit 0x40002000, 32bit|above4g 0x40003000, above4g hint
     * 0x10000000 0x10000000, above4g 0x7ffff7fbf000, 32bit hint 0x50000000 0x50000000, 32bit hint
     * 0x7fff0000 len 0x20000 0x40004000" (the C program's libraries took the pages above e) */
    TEST_ASSERT_EQ(mmap_ok(p, 0, 8192, RW, ANON | MAP_32BIT), 0x4000_0000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0, 4096, RW, ANON | MAP_32BIT), 0x4000_2000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0, 4096, RW, ANON | MAP_32BIT | MAP_ABOVE4G), 0x4000_3000n, 'MAP_32BIT wins');
    TEST_ASSERT_EQ(mmap_ok(p, 0x1000_0000, 4096, RW, ANON | MAP_ABOVE4G), 0x1000_0000n, 'a free hint comes first');
    TEST_ASSERT_EQ(mmap_ok(p, 0, 4096, RW, ANON | MAP_ABOVE4G), 0x7fff_f7ff_e000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0x5000_0000, 4096, RW, ANON | MAP_32BIT), 0x5000_0000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0x7fff_0000, 0x20000, RW, ANON | MAP_32BIT), 0x4000_4000n, 'a hint past 2 GiB - len is not taken');
    /*
     * With everything from 4 GiB to mmap_base taken, the top-down search of a MAP_ABOVE4G mapping
     * fails (arch_get_unmapped_area_topdown(): info.low_limit = SZ_4G) and falls back bottom-up
     * from TASK_UNMAPPED_BASE, which finds room above mmap_base; without the flag it lands right
     * below 4 GiB.
     */
    const G4 = 1n << 32n;
    mmap_ok(p, G4, 0x7fff_f7ff_e000n - G4, PROT_NONE, ANON | MAP_FIXED | MAP_NORESERVE);
    TEST_ASSERT(mmap_ok(p, 0, 4096, RW, ANON | MAP_ABOVE4G) >= 0x7fff_f7ff_f000n);
    TEST_ASSERT_EQ(mmap_ok(p, 0, 4096, RW, ANON), G4 - 4096n);
  });

  test('MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses with EEXIST and changes nothing', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 3 * 4096, RW, ANON | MAP_FIXED);
    store_ok(p, a, [1]);
    store_ok(p, a + 4096n, [2]);
    const pfn = pagemap(p, a + 4096n)!;
    const before = mm_snapshot(p);
    mmap_fails(p, EEXIST, a + 4096n, 4096, PROT_READ, ANON | MAP_FIXED_NOREPLACE);
    mmap_fails(p, EINVAL, a + 1n, 4096, PROT_READ, ANON | MAP_FIXED_NOREPLACE);
    TEST_ASSERT_EQ(mm_snapshot(p), before);
    TEST_ASSERT_EQ(mmap_ok(p, a + 4096n, 4096, PROT_READ, ANON | MAP_FIXED), a + 4096n);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 rw-p', '1000-2000 r--p', '2000-3000 rw-p']);
    TEST_ASSERT_EQ(load_ok(p, a + 4096n, 1), Uint8Array.of(0), 'the new mapping is fresh memory');
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(1));
    TEST_ASSERT_EQ(folio_ref_count(host.kernel.store, pfn), 0, 'the replaced page was freed');
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 1);
  });

  test('adjacent compatible mappings merge, as /proc/self/maps shows on Linux', ({ host }) => {
    const p = host.process();
    /* two adjacent anon (unfaulted): one VMA */
    mmap_ok(p, H, 4096, RW, ANON | MAP_FIXED);
    mmap_ok(p, H + 4096n, 4096, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-2000 rw-p']);
    /* third after faulting: still one */
    store_ok(p, H, [1]);
    store_ok(p, H + 4096n, [1]);
    mmap_ok(p, H + 8192n, 4096, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-3000 rw-p']);
    TEST_ASSERT_EQ(p.munmap(H, 3 * 4096), 0);
    /* fill the middle between two faulted mappings: merges with the left one only */
    mmap_ok(p, H, 4096, RW, ANON | MAP_FIXED);
    store_ok(p, H, [1]);
    mmap_ok(p, H + 8192n, 4096, RW, ANON | MAP_FIXED);
    store_ok(p, H + 8192n, [1]);
    mmap_ok(p, H + 4096n, 4096, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-2000 rw-p', '2000-3000 rw-p']);
    TEST_ASSERT_EQ(p.munmap(H, 3 * 4096), 0);
    /* R then RW: two */
    mmap_ok(p, H, 4096, PROT_READ, ANON | MAP_FIXED);
    mmap_ok(p, H + 4096n, 4096, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 r--p', '1000-2000 rw-p']);
    TEST_ASSERT_EQ(p.munmap(H, 2 * 4096), 0);
    /* file pages 0, 1, 3 at consecutive addresses: 0-1 merge */
    const { fd } = memfd(p, 64 * 4096);
    mmap_ok(p, H, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    mmap_ok(p, H + 4096n, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 4096);
    mmap_ok(p, H + 8192n, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 3 * 4096);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-2000 r--s', '2000-3000 r--s']);
    TEST_ASSERT_EQ(p.mm.map_count, maps(p).length);
  });
});

describe('munmap', () => {
  test('errnos: unaligned, len 0, len -1, beyond TASK_SIZE EINVAL; nothing mapped 0', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, 4096, RW, ANON);
    const before = mm_snapshot(p);
    for (const [addr, len] of [[a + 1n, 4096], [a, 0], [a, -1], [1n << 47n, 4096], [0x7fff_ffff_f000n, 4096], [0x7fff_ffff_f000n, 8192]]) {
      TEST_ASSERT_EQ(p.munmap(addr, len), -1);
      TEST_ASSERT_EQ(p.errno, EINVAL);
    }
    TEST_ASSERT_EQ(mm_snapshot(p), before);
    TEST_ASSERT_EQ(p.munmap(0x2000_0000_0000n, 4096), 0);
    TEST_ASSERT_EQ(p.munmap(0, 4096), 0);
  });

  test('a partial munmap splits the VMA and frees only the pages unmapped', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 4 * 4096, RW, ANON | MAP_FIXED);
    for (let i = 0n; i < 4n; i++) store_ok(p, a + i * 4096n, [Number(i) + 1]);
    const pfns = [0n, 1n, 2n, 3n].map((i) => pagemap(p, a + i * 4096n)!);
    TEST_ASSERT_EQ(p.munmap(a + 4096n, 8192), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 rw-p', '3000-4000 rw-p']);
    TEST_ASSERT_EQ(pfns.map((f) => folio_ref_count(store, f)), [1, 0, 0, 1]);
    TEST_ASSERT_EQ(folio_mapcount(store, pfns[3]), 1);
    TEST_ASSERT_EQ(load_ok(p, a + 3n * 4096n, 1), Uint8Array.of(4));
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 2);
    TEST_ASSERT_EQ(p.mm.total_vm, 2);
    /* munmap of a range that spans a hole */
    TEST_ASSERT_EQ(p.munmap(a, 4 * 4096), 0);
    TEST_ASSERT_EQ(p.mm.map_count, 0);
    TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0);
  });

  test('unmapping a shared file mapping drops its file reference and mapcounts, not the data', ({ host }) => {
    const p = host.process();
    const { fd } = memfd(p, 8192);
    const a = mmap_ok(p, 0, 8192, RW, MAP_SHARED, fd);
    store_ok(p, a, [7]);
    const file = p.task.files.lookup(fd)!;
    const refs = file.f_count;
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_SHMEMPAGES), 1, 'a write fault maps one page (no fault-around)');
    TEST_ASSERT_EQ(folio_ref_count(host.kernel.store, pfn), 2, 'page cache + mapping');
    TEST_ASSERT_EQ(p.munmap(a, 8192), 0);
    TEST_ASSERT_EQ(file.f_count, refs - 1);
    TEST_ASSERT_EQ(folio_ref_count(host.kernel.store, pfn), 1);
    const buf = new Uint8Array(1);
    TEST_ASSERT_EQ(p.pread(fd, buf, 0), 1);
    TEST_ASSERT_EQ(buf[0], 7);
    TEST_ASSERT_EQ(file.f_mapping.i_mmap_writable, 0);
  });
});

describe('MAP_POPULATE', () => {
  test('read-only anonymous memory gets the zero page, writable memory its own pages', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    /* MAP_POPULATE RO present=1, RW present=1 */
    const ro = mmap_ok(p, 0, 2 * 4096, PROT_READ, ANON | MAP_POPULATE);
    TEST_ASSERT_EQ(pagemap(p, ro), store.zero_pfn);
    TEST_ASSERT_EQ(pagemap(p, ro + 4096n), store.zero_pfn);
    const rw = mmap_ok(p, 0, 2 * 4096, RW, ANON | MAP_POPULATE);
    TEST_ASSERT(pagemap(p, rw) !== undefined && pagemap(p, rw) !== store.zero_pfn);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 2);
    /* PROT_NONE populate is skipped, the mapping stands */
    const none = mmap_ok(p, 0, 4096, PROT_NONE, ANON | MAP_POPULATE);
    TEST_ASSERT_EQ(pagemap(p, none), undefined);
    /* past EOF of a memfd: the error is ignored, the mapping stands */
    const { fd } = memfd(p, 4096);
    const f = mmap_ok(p, 0, 3 * 4096, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_POPULATE, fd);
    TEST_ASSERT(pagemap(p, f) !== undefined);
    TEST_ASSERT_EQ(pagemap(p, f + 4096n), undefined);
  });
});

describe('syscall costs', () => {
  test('mmap charges a syscall entry, a fault charges page_fault_user and the zeroing', ({ host }) => {
    const p = host.process();
    const a = host.cost.measure('mmap', () => mmap_ok(p, 0, 4096, RW, ANON));
    expect(a.cost.items.map((i) => i.name)).toEqual(['syscall_entry']);
    const f = host.cost.measure('fault', () => store_ok(p, a.result, [1]));
    expect(f.cost.items.map((i) => [i.name, i.count])).toEqual([['page_alloc', 1], ['page_fault_user', 1], ['page_zero_4k', 1]]);
    const b = mmap_ok(p, 0, 4096, RW, ANON);
    const r = host.cost.measure('read fault', () => load_ok(p, b, 1));
    expect(r.cost.items.map((i) => [i.name, i.count])).toEqual([['page_fault_user', 1]]);
  });
});
