/**
 * Guest RAM in a sealed memfd: how a VMM backs guest memory with shmem before guest_memfd, and
 * the protections seals give it (mm/memfd.c memfd_add_seals, mm/shmem.c). Touches every page
 * through a shared mapping, then shows which seals refuse which calls, and what punching half of
 * the memory out costs (zap of the mapped PTEs, TLB flush, freeing the pages).
 */
import {
  F_ADD_SEALS, F_GET_SEALS, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_WRITE, FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE, MAP_FAILED, MAP_SHARED, MFD_ALLOW_SEALING, MFD_CLOEXEC, PROT_READ, PROT_WRITE,
} from '@cocosim/mm';
import { PAGE_SIZE } from '@cocosim/core';
import { sysOutcome, type Scenario, type ScenarioContext, type ScenarioOptions } from './scenario.js';

function pattern(i: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(i) * 0x9e3779b97f4a7c15n % (1n << 64n), true);
  return b;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export const memfdGuestRam: Scenario = {
  name: 'memfd-guest-ram',
  description: 'guest RAM in a sealed memfd: fault in, seal, punch a hole, read back',
  default_size: 2 * 1024 * 1024,
  nr_pages: (opts) => Math.ceil((opts.size * 2) / PAGE_SIZE) + 65536,
  applies: (opts) => (opts.page_size === PAGE_SIZE ? undefined : 'maps 4 KiB shmem pages: shmem THP is not part of this scenario'),
  run(ctx: ScenarioContext, opts: ScenarioOptions): void {
    const { p } = ctx;
    const size = opts.size;
    const npages = size / PAGE_SIZE;
    const half = size / 2;
    const isFd = (o: string) => /^\d+$/.test(o);

    const fd = ctx.step('memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING)', isFd, 'a shmem file; sealing allowed',
      () => { const r = p.memfd_create('guest-ram', MFD_CLOEXEC | MFD_ALLOW_SEALING); return [sysOutcome(p, r), r]; });
    ctx.step(`ftruncate(fd, ${size})`, '0', 'shmem_setattr: the size, no pages yet',
      () => [sysOutcome(p, p.ftruncate(fd, size)), undefined]);
    const addr = ctx.step(`mmap(NULL, ${size}, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`, (o) => o !== sysOutcome(p, -1n) && !o.startsWith('-1'),
      'a shared writable mapping: counts in i_mmap_writable',
      () => {
        const a = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        return [a === MAP_FAILED ? sysOutcome(p, -1) : `0x${a.toString(16)}`, a];
      });
    ctx.step(`store 8 bytes to each of the ${npages} pages`, '0', 'shmem_fault: allocate, zero and map every page',
      () => {
        for (let i = 0; i < npages; i++) {
          const r = p.store(addr + BigInt(i * PAGE_SIZE), pattern(i));
          if (r !== 0) return [`${r.signo} ${r.si_code} at page ${i}`, undefined];
        }
        return ['0', undefined];
      });
    ctx.step('fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)', '-1 EBUSY', 'mapping_deny_writable: a writable shared mapping exists',
      () => [sysOutcome(p, p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)), undefined]);
    ctx.step('fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)', '0', 'the size is now fixed',
      () => [sysOutcome(p, p.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)), undefined]);
    ctx.step(`ftruncate(fd, ${half})`, '-1 EPERM', 'shmem_setattr: F_SEAL_SHRINK',
      () => [sysOutcome(p, p.ftruncate(fd, half)), undefined]);
    ctx.step(`fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, ${half})`, '0', 'shmem_fallocate: unmap_mapping_range, then free the pages',
      () => [sysOutcome(p, p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, half)), undefined]);
    ctx.step('load 8 bytes at the start (punched)', '0000000000000000', 'the hole refaults as a zeroed page',
      () => { const r = p.load(addr, 8); return [r instanceof Uint8Array ? hex(r) : `${r.signo} ${r.si_code}`, undefined]; });
    const mid = npages / 2;
    ctx.step(`load 8 bytes at page ${mid} (kept)`, hex(pattern(mid)), 'pages outside the hole keep their data',
      () => { const r = p.load(addr + BigInt(half), 8); return [r instanceof Uint8Array ? hex(r) : `${r.signo} ${r.si_code}`, undefined]; });
    ctx.step(`munmap(addr, ${size})`, '0', 'zap the PTEs; i_mmap_writable drops to 0',
      () => [sysOutcome(p, p.munmap(addr, size)), undefined]);
    ctx.step('fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)', '0', 'no writable mapping left: contents frozen',
      () => [sysOutcome(p, p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)), undefined]);
    ctx.step('fcntl(fd, F_GET_SEALS)', String(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 'seals are only ever added',
      () => [sysOutcome(p, p.fcntl(fd, F_GET_SEALS)), undefined]);
    ctx.step('pwrite(fd, 8 bytes, 0)', '-1 EPERM', 'shmem_file_write_iter: F_SEAL_WRITE',
      () => [sysOutcome(p, p.pwrite(fd, new Uint8Array(8), 0)), undefined]);
    ctx.step(`fallocate(fd, PUNCH_HOLE | KEEP_SIZE, ${half}, ${PAGE_SIZE})`, '-1 EPERM', 'shmem_fallocate: F_SEAL_WRITE forbids punching',
      () => [sysOutcome(p, p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, half, PAGE_SIZE)), undefined]);
    ctx.step(`mmap(NULL, ${size}, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`, '-1 EPERM', 'memfd_check_seals_mmap: no new writable mapping',
      () => { const a = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); return [a === MAP_FAILED ? sysOutcome(p, -1) : `0x${a.toString(16)}`, undefined]; });
    ctx.step(`pread(fd, 8 bytes, ${half})`, `8 ${hex(pattern(mid))}`, 'the sealed contents read back',
      () => { const b = new Uint8Array(8); const r = p.pread(fd, b, half); return [`${sysOutcome(p, r)} ${hex(b)}`, undefined]; });
    ctx.step('close(fd)', '0', 'the last reference frees the file and its pages',
      () => [sysOutcome(p, p.close(fd)), undefined]);
  },
};
