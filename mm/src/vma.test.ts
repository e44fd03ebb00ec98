import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { File, Inode, O_RDWR, S_IFCHR, open_fmode, type FileOperations } from './fs.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import type { VmAreaStruct } from './mm_types.js';
import { Process } from './process.js';
import { mapping_mapped } from './rmap.js';
import { find_vma, find_vma_intersection, vma_lookup } from './vma.js';
import './memory.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
}

/** A character device whose mappings count ->close calls and refuse splits off a 2-page boundary. */
function device(p: Process, fail_mmap = false): { fd: number; closed: VmAreaStruct[]; file: File } {
  const closed: VmAreaStruct[] = [];
  const fops: FileOperations = {
    mmap: (_file, v) => {
      if (fail_mmap) return -Errno.ENOMEM;
      (v as VmAreaStruct).vm_ops = {
        close: (vma) => void closed.push(vma),
        may_split: (_vma, addr) => ((addr / PG) % 2n === 0n ? 0 : -Errno.EINVAL),
      };
      return 0;
    },
  };
  const inode = new Inode(p.kernel.get_next_ino(), S_IFCHR | 0o666, {}, fops, p.kernel.next_mapping_id());
  const file = new File(inode, fops, O_RDWR, open_fmode(O_RDWR));
  return { fd: p.task.files.install(file, false), closed, file };
}

describe('VMAs', () => {
  test('lookups by page number', () => {
    const p = proc();
    const a = p.mmap(H, 2n * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    const vpn = Number(a / PG);
    expect(vma_lookup(p.mm, vpn + 1)?.vm_start).toBe(a);
    expect(vma_lookup(p.mm, vpn + 2)).toBeUndefined();
    expect(find_vma(p.mm, vpn - 100)?.vm_start).toBe(a);
    expect(find_vma_intersection(p.mm, vpn - 100, vpn)).toBeUndefined();
  });

  test('->may_split can refuse a munmap or mprotect, which then changes nothing', () => {
    const p = proc();
    const { fd, closed, file } = device(p);
    const a = p.mmap(H, 4n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(a).toBe(H);
    expect(p.munmap(a + PG, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.mprotect(a + PG, PG, PROT_READ)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.mm.map_count).toBe(1);
    expect(p.munmap(a + 2n * PG, 2n * PG)).toBe(0);
    expect(closed.length).toBe(1);
    expect(p.mm.map_count).toBe(1);
    expect(mapping_mapped(file.f_mapping)).toBe(true);
    expect(p.munmap(a, 2n * PG)).toBe(0);
    expect(mapping_mapped(file.f_mapping)).toBe(false);
    expect(closed.length).toBe(2);
    expect(file.f_count).toBe(1);
  });

  test('a VMA with ->close is not deleted by a merge', () => {
    const p = proc();
    const { fd } = device(p);
    const a = p.mmap(H, 4n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.mprotect(a + 2n * PG, 2n * PG, PROT_READ)).toBe(0);
    expect(p.mm.map_count).toBe(2);
    expect(p.mprotect(a + 2n * PG, 2n * PG, PROT_READ | PROT_WRITE)).toBe(0);
    expect(p.mm.map_count).toBe(2);
  });

  test('->mmap failing under MAP_FIXED leaves a hole where the old mapping was, as Linux does', () => {
    const p = proc();
    const { fd, file } = device(p, true);
    const a = p.mmap(H, 2n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    expect(p.mmap(a, 2n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.ENOMEM);
    expect(p.mm.map_count).toBe(0);
    expect(p.mm.get_mm_rss()).toBe(0);
    expect(file.f_count).toBe(1);
  });
});
