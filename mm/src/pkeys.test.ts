import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { FIONREAD } from './ioctl.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_SEM, PROT_WRITE } from './mman.js';
import { MFD_CLOEXEC } from './uapi/memfd.js';
import { Process } from './process.js';
import { find_vma } from './vma.js';
import { vma_pkey } from './pkeys.js';
import { pte_flags_pkey } from './pgtable.js';

const PAGE = 4096n;

function proc(pku: boolean): Process {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 4096, pku }));
  return new Process(root.resolve(Kernel));
}

function anon(p: Process, pages: number, prot: number): bigint {
  return p.mmap(0, pages * 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

const pkuerr = (si_addr: bigint) => ({ signo: 'SIGSEGV', si_code: 'SEGV_PKUERR', si_addr, si_pkey: 1 });

describe('execute-only memory through protection keys (arch/x86/mm/pkeys.c)', () => {
  test('without OSPKE, PROT_EXEC-only memory reads (x86 cannot express execute-only) and no key is allocated', () => {
    const p = proc(false);
    const a = anon(p, 1, PROT_READ | PROT_WRITE);
    expect(p.store(a, new Uint8Array([9]))).toBe(0);
    expect(p.mprotect(a, 4096, PROT_EXEC)).toBe(0);
    expect(p.load(a, 1)).toEqual(new Uint8Array([9]));
    expect(p.store(a, new Uint8Array([1]))).toMatchObject({ si_code: 'SEGV_ACCERR' });
    expect(p.mm.execute_only_pkey).toBe(-1);
    expect(vma_pkey(find_vma(p.mm, Number(a / PAGE))!)).toBe(0);
  });

  test('with OSPKE, mmap(PROT_EXEC) takes the execute-only key: loads and stores are SEGV_PKUERR, present page or not', () => {
    const p = proc(true);
    const x = anon(p, 2, PROT_EXEC);
    expect(p.load(x, 1)).toEqual(pkuerr(x));
    expect(p.store(x + PAGE, new Uint8Array([1]))).toEqual(pkuerr(x + PAGE));
    expect(p.mm.execute_only_pkey).toBe(1);
    expect(p.mm.pkey_allocation_map).toBe(0b11);
    // a second execute-only mapping shares the key
    const y = anon(p, 1, PROT_EXEC);
    expect(vma_pkey(find_vma(p.mm, Number(y / PAGE))!)).toBe(1);
    expect(p.mm.pkey_allocation_map).toBe(0b11);
    // PROT_EXEC | PROT_READ is not execute-only
    const r = anon(p, 1, PROT_EXEC | PROT_READ);
    expect(p.load(r, 1)).toEqual(new Uint8Array([0]));
  });

  test('mprotect(PROT_EXEC) of mapped pages puts the key in their PTEs; leaving execute-only goes back to key 0', () => {
    const p = proc(true);
    const a = anon(p, 3, PROT_READ | PROT_WRITE);
    expect(p.store(a, new Uint8Array(3 * 4096).fill(0x41))).toBe(0);
    expect(p.mprotect(a + PAGE, 4096, PROT_EXEC)).toBe(0);
    expect(p.mm.map_count).toBe(3);
    const t = p.mm.pgd.ptes.lookup(Math.floor(Number(a / PAGE) / 512))!;
    const i = Number(a / PAGE) % 512;
    expect(pte_flags_pkey(t.flags[i + 1])).toBe(1);
    expect(pte_flags_pkey(t.flags[i])).toBe(0);
    // an access crossing into the page faults there, after the bytes before it
    expect(p.load(a + PAGE - 1n, 2)).toEqual(pkuerr(a + PAGE));
    expect(p.mprotect(a + PAGE, 4096, PROT_READ)).toBe(0);
    expect(p.load(a + PAGE, 1)).toEqual(new Uint8Array([0x41]));
    expect(pte_flags_pkey(t.flags[i + 1])).toBe(0);
    // PROT_EXEC | PROT_SEM is not exactly PROT_EXEC: from execute-only, back to key 0
    expect(p.mprotect(a + PAGE, 4096, PROT_EXEC)).toBe(0);
    expect(p.mprotect(a + PAGE, 4096, PROT_EXEC | PROT_SEM)).toBe(0);
    expect(p.load(a + PAGE, 1)).toEqual(new Uint8Array([0x41]));
  });

  test('the kernel\'s own copies to the memory fail (EFAULT), and so does GUP, which needs VM_READ anyway', () => {
    const p = proc(true);
    const fd = p.memfd_create('x', MFD_CLOEXEC);
    expect(p.ftruncate(fd, 4096)).toBe(0);
    const x = anon(p, 1, PROT_EXEC);
    expect(p.ioctl(fd, FIONREAD, x)).toBe(-1);
    expect(p.errno).toBe(14);
    const buf = new Uint8Array(8);
    expect(p.process_vm_readv(p.task.pid, [buf], 1, [{ iov_base: x, iov_len: 8 }], 1, 0)).toBe(-1);
    expect(p.errno).toBe(14);
    // a shared file mapping too
    const s = p.mmap(0, 4096, PROT_EXEC, MAP_SHARED, fd, 0);
    expect(p.load(s, 1)).toEqual(pkuerr(s));
  });

  test('a forked child inherits the execute-only key (arch_dup_pkeys())', () => {
    const p = proc(true);
    const x = anon(p, 1, PROT_EXEC);
    const c = p.fork();
    if (typeof c === 'number') throw new Error(`fork: ${c}`);
    expect(c.mm.execute_only_pkey).toBe(1);
    expect(c.load(x, 1)).toEqual(pkuerr(x));
  });
});
