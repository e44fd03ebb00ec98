/*
 * Each hook of mm_hooks.ts is consulted at its base call site. The providers here are small test
 * doubles of the designs (designs.md D1-D7), not the designs themselves.
 */
import { describe, expect, test } from 'vitest';
import { Errno, KernelBug, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { VM_FAULT_SIGBUS, VM_WRITE, type VmAreaStruct } from './mm_types.js';
import { isSigInfo } from './fault.js';
import { find_vma } from './vma.js';
import { get_user_pages } from './gup.js';
import { F_ADD_SEALS, F_GET_SEALS, F_SEAL_SEAL } from './uapi/fcntl.js';
import { MFD_ALLOW_SEALING } from './uapi/memfd.js';
import { FOLL_WRITE, type Folio } from './folio.js';
import { folio_make_private, mapping_make_private, mm_hook_present, register_mm_hooks, type MmHooks } from './mm_hooks.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
/** D3's PROT_GUEST and VM_GUEST (VM_HIGH_ARCH_4). */
const PROT_GUEST = 0x04000000;
const VM_GUEST = 2 ** 36;
/** A design seal bit above F_SEAL_EXEC (D5's F_SEAL_INACCESSIBLE was 0x0020 before F_SEAL_EXEC took it). */
const F_SEAL_TEST = 0x0040;
/** A design MFD_* bit above MFD_EXEC (D6's MFD_INACCESSIBLE). */
const MFD_TEST = 0x0020;

function setup(hooks?: MmHooks): { k: Kernel; p: Process } {
  const k = createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel);
  if (hooks) register_mm_hooks(k, hooks);
  return { k, p: new Process(k) };
}

function anon(p: Process, nr: number, prot = RW): bigint {
  const a = p.mmap(0n, BigInt(nr) * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(a).not.toBe(MAP_FAILED);
  return a;
}

describe('handle_mm_fault hook', () => {
  test('VM_FAULT_SIGBUS from the hook makes a load SIGBUS; other VMAs fault normally', () => {
    const guest: { vma?: VmAreaStruct } = {};
    const { p } = setup({ name: 'D3 double', handle_mm_fault: (vma) => (vma === guest.vma ? VM_FAULT_SIGBUS : 0) });
    const a = anon(p, 1);
    const b = anon(p, 1, PROT_READ);
    guest.vma = find_vma(p.mm, Number(a / PG));
    const r = p.load(a, 1);
    expect(isSigInfo(r) && r.signo).toBe('SIGBUS');
    expect(p.load(b, 1)).toEqual(new Uint8Array(1));
  });
});

describe('gup_check hook', () => {
  test('-EFAULT from the hook makes process_vm_readv fail; the hook sees the gup flags', () => {
    const seen: number[] = [];
    const { p } = setup({ name: 'D1 double', gup_check: (_v, _vpn, _pte, _pfn, gup_flags) => (seen.push(gup_flags), -Errno.EFAULT) });
    const a = anon(p, 1);
    expect(p.store(a, new Uint8Array([7]))).toBe(0);
    const buf = new Uint8Array(4);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: a, iov_len: 4 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((f) => (f & FOLL_WRITE) === 0)).toBe(true);
  });

  test('-EPERM from the hook is GUP\'s answer, not a request to fault (FOLLOW_FAULT stays apart)', () => {
    const { p } = setup({ name: 'D2 double', gup_check: () => -Errno.EPERM });
    const a = anon(p, 1);
    expect(p.store(a, new Uint8Array([1]))).toBe(0);
    const pages: number[] = [];
    expect(get_user_pages(p.mm, Number(a / PG), 1, 0, pages)).toBe(-Errno.EPERM);
    expect(pages).toEqual([]);
  });

  test('a hook answering 0 changes nothing', () => {
    const { p } = setup({ name: 'pass', gup_check: () => 0 });
    const a = anon(p, 1);
    expect(p.store(a, new Uint8Array([9]))).toBe(0);
    const buf = new Uint8Array(1);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: a, iov_len: 1 }], 1)).toBe(1);
    expect(buf[0]).toBe(9);
  });
});

describe('file_rw hook', () => {
  test('-EPERM from the hook makes pread and pwrite fail; the file is unchanged', () => {
    let sealed = false;
    const { p } = setup({ name: 'D5 double', file_rw: () => (sealed ? -Errno.EPERM : 0) });
    const fd = p.memfd_create('x', 0);
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3]), 0)).toBe(3);
    sealed = true;
    expect(p.pread(fd, new Uint8Array(3), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pwrite(fd, new Uint8Array([9]), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.read(fd, new Uint8Array(3))).toBe(-1);
    sealed = false;
    const buf = new Uint8Array(3);
    expect(p.pread(fd, buf, 0)).toBe(3);
    expect([...buf]).toEqual([1, 2, 3]);
  });
});

describe('mmap_file hook', () => {
  test('the hook refuses file mappings (D6: mmap of an inaccessible memfd) and sees anonymous ones', () => {
    const files: boolean[] = [];
    const { p } = setup({ name: 'D6 double', mmap_file: (file) => (files.push(file !== null), file !== null ? -Errno.EPERM : 0) });
    const fd = p.memfd_create('x', 0);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(0);
    expect(p.mmap(0n, PG, RW, MAP_SHARED, fd, 0)).toBe(MAP_FAILED);
    expect(p.errno).toBe(Errno.EPERM);
    anon(p, 1);
    expect(files).toEqual([true, false]);
  });
});

describe('mprotect hooks', () => {
  test('a design PROT_* bit is EINVAL without a provider', () => {
    const { p } = setup();
    const a = anon(p, 1);
    expect(p.mprotect(a, PG, RW | PROT_GUEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('mprotect_prot maps PROT_GUEST to VM_GUEST, or refuses the VMA', () => {
    const { p } = setup({
      name: 'D3 double',
      prot_flags: PROT_GUEST,
      mprotect_prot: (vma, prot) => (!(prot & PROT_GUEST) ? 0 : vma.vm_flags & VM_WRITE ? VM_GUEST : -Errno.EINVAL),
    });
    const a = anon(p, 1);
    const ro = anon(p, 1, PROT_READ);
    expect(p.mprotect(a, PG, RW | PROT_GUEST)).toBe(0);
    const vma = find_vma(p.mm, Number(a / PG));
    expect(vma !== undefined && Math.floor(vma.vm_flags / VM_GUEST) % 2).toBe(1);
    expect(p.mprotect(ro, PG, PROT_READ | PROT_GUEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const rvma = find_vma(p.mm, Number(ro / PG));
    expect(rvma !== undefined && Math.floor(rvma.vm_flags / VM_GUEST) % 2).toBe(0);
  });

  test('mprotect_fixup refusing PROT_WRITE gives its errno and leaves the VMA as it was (per-VMA write denial)', () => {
    const { p } = setup({
      name: 'D2 per-VMA double',
      mprotect_fixup: (vma, _s, _e, newflags) => (newflags & VM_WRITE && !(vma.vm_flags & VM_WRITE) ? -Errno.EACCES : 0),
    });
    const a = anon(p, 1, PROT_READ);
    expect(p.mprotect(a, PG, RW)).toBe(-1);
    expect(p.errno).toBe(Errno.EACCES);
    expect((find_vma(p.mm, Number(a / PG))?.vm_flags ?? VM_WRITE) & VM_WRITE).toBe(0);
    const r = p.store(a, new Uint8Array([1]));
    expect(isSigInfo(r) && r.signo).toBe('SIGSEGV');
    expect(p.mprotect(a, PG, PROT_READ)).toBe(0);
  });
});

describe('memfd hooks', () => {
  test('a design seal is EINVAL without a provider', () => {
    const { p } = setup();
    const fd = p.memfd_create('x', MFD_ALLOW_SEALING);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_TEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('memfd_add_seals accepting a new bit: F_ADD_SEALS succeeds and F_GET_SEALS reports it', () => {
    const { p } = setup({
      name: 'D5 double',
      seal_flags: F_SEAL_TEST,
      memfd_add_seals: (file, seals) => (seals & F_SEAL_TEST && file.f_inode.i_size !== 0n ? -Errno.EBUSY : 0),
    });
    const fd = p.memfd_create('x', MFD_ALLOW_SEALING);
    const full = p.memfd_create('y', MFD_ALLOW_SEALING);
    expect(p.ftruncate(full, PAGE_SIZE)).toBe(0);
    expect(p.fcntl(full, F_ADD_SEALS, F_SEAL_TEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EBUSY);
    expect(p.fcntl(full, F_GET_SEALS)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_TEST)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_TEST);
    /* The base's rules still come first: F_SEAL_SEAL is -EPERM before the hook is asked. */
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_TEST)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
  });

  test('memfd_create accepts a design MFD_* bit; the hook can refuse, and no fd is used', () => {
    const seen: number[] = [];
    let refuse = false;
    const { p } = setup({ name: 'D6 double', mfd_flags: MFD_TEST, memfd_create: (_f, flags) => (seen.push(flags), refuse ? -Errno.ENOMEM : 0) });
    const fd = p.memfd_create('x', MFD_TEST);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(seen[0] & MFD_TEST).toBe(MFD_TEST);
    refuse = true;
    expect(p.memfd_create('y', MFD_TEST)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOMEM);
    refuse = false;
    expect(p.memfd_create('z', 0)).toBe(fd + 1);
    expect(setup().p.memfd_create('x', MFD_TEST)).toBe(-1);
  });
});

describe('registry', () => {
  test('providers are asked in order and the first non-zero answer wins', () => {
    const asked: string[] = [];
    const { k, p } = setup({ name: 'first', file_rw: () => (asked.push('first'), 0) });
    register_mm_hooks(k, { name: 'second', file_rw: () => (asked.push('second'), -Errno.EIO) });
    register_mm_hooks(k, { name: 'third', file_rw: () => (asked.push('third'), -Errno.EPERM) });
    const fd = p.memfd_create('x', 0);
    expect(p.pread(fd, new Uint8Array(1), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    expect(asked).toEqual(['first', 'second']);
  });

  test('hooks belong to one Kernel', () => {
    setup({ name: 'other host', file_rw: () => -Errno.EPERM });
    const { p } = setup();
    const fd = p.memfd_create('x', 0);
    expect(p.pread(fd, new Uint8Array(1), 0)).toBe(0);
  });

  test('a declared bit that the base already defines is a simulator bug', () => {
    const { k } = setup();
    expect(() => register_mm_hooks(k, { name: 'bad', seal_flags: F_SEAL_SEAL })).toThrow(KernelBug);
    expect(() => register_mm_hooks(k, { name: 'bad', foll_flags: FOLL_WRITE })).toThrow(KernelBug);
  });
});

describe('folio_make_private()', () => {
  test('unmaps a file folio from every shared mapping; the next access faults it back in', () => {
    const { k, p } = setup();
    const fd = p.memfd_create('x', 0);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(0);
    const s1 = p.mmap(0n, PG, RW, MAP_SHARED, fd, 0);
    const s2 = p.mmap(0n, PG, RW, MAP_SHARED, fd, 0);
    expect(p.store(s1, new Uint8Array([5]))).toBe(0);
    expect(p.load(s2, 1)).toEqual(new Uint8Array([5]));
    const folio = page_at(p, s1);
    expect(folio).toBeGreaterThanOrEqual(0);
    expect(page_at(p, s2)).toBe(folio);
    folio_make_private(k, folio as Folio);
    expect(page_at(p, s1)).toBe(-1);
    expect(page_at(p, s2)).toBe(-1);
    /* The page cache keeps the folio: the next fault maps it again. */
    expect(p.load(s2, 1)).toEqual(new Uint8Array([5]));
    expect(page_at(p, s2)).toBe(folio);
  });

  test('mapping_make_private() unmaps a file range; an anonymous folio is a simulator bug', () => {
    const { k, p } = setup();
    const fd = p.memfd_create('x', 0);
    expect(p.ftruncate(fd, 2 * PAGE_SIZE)).toBe(0);
    const s = p.mmap(0n, 2n * PG, RW, MAP_SHARED, fd, 0);
    expect(p.store(s, new Uint8Array([1]))).toBe(0);
    expect(p.store(s + PG, new Uint8Array([2]))).toBe(0);
    const vma = find_vma(p.mm, Number(s / PG));
    const mapping = vma?.vm_file?.f_mapping;
    expect(mapping).toBeDefined();
    if (mapping) mapping_make_private(k, mapping, 1, 1);
    expect(page_at(p, s)).toBeGreaterThanOrEqual(0);
    expect(page_at(p, s + PG)).toBe(-1);
    const a = anon(p, 1);
    expect(p.store(a, new Uint8Array([6]))).toBe(0);
    expect(() => folio_make_private(k, page_at(p, a) as Folio)).toThrow(KernelBug);
  });
});

/** The pfn mapped at `addr` by a present PTE, or -1. */
function page_at(p: Process, addr: bigint): number {
  const vpn = Number(addr / PG);
  const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512));
  if (t === undefined) return -1;
  const i = vpn % 512;
  return t.flags[i] & 1 ? t.val[i] : -1;
}

describe('mm_hook_present()', () => {
  test('says which hooks some provider of the host has, methods of a class included; the fault path skips the others', () => {
    class Provider {
      readonly name = 'class';
      handle_mm_fault(): number {
        return VM_FAULT_SIGBUS;
      }
    }
    const { k, p } = setup();
    const other = setup().k;
    expect(mm_hook_present(k, 'handle_mm_fault')).toBe(false);
    register_mm_hooks(k, { name: 'literal', file_rw: () => 0 });
    expect([mm_hook_present(k, 'file_rw'), mm_hook_present(k, 'handle_mm_fault')]).toEqual([true, false]);
    const a = anon(p, 1);
    expect(p.load(a, 1)).toEqual(new Uint8Array(1));
    register_mm_hooks(k, new Provider() as unknown as MmHooks);
    expect(mm_hook_present(k, 'handle_mm_fault')).toBe(true);
    /* a mapped page takes no fault; a new one goes to the provider's handle_mm_fault */
    expect(p.load(a, 1)).toEqual(new Uint8Array(1));
    const b = anon(p, 1);
    expect(p.load(b, 1)).toMatchObject({ signo: 'SIGBUS' });
    expect([mm_hook_present(other, 'handle_mm_fault'), mm_hook_present(other, 'file_rw')]).toEqual([false, false]);
  });
});
