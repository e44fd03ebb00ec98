/**
 * Truncation's one pass over the common folios (mm/src/truncate.ts truncate_small_folios()) ends
 * as the kernel's find_lock_entries() batches do: the same file on two hosts, punched the same
 * way, one of them with a listener of mm_filemap_delete_from_page_cache (which sends every folio
 * through the general loop). Page cache, pages, free lists, costs and the events the punch makes
 * (host unmaps, the vendor's free_folio invalidations, in order) must all be equal.
 */
import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, Kernel, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, Process, SGP_CACHE,
  folio_put, folio_unlock, mmRegistrar, shmem_get_folio, type FolioRef, type Inode, type Stat,
} from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_X86_DEFAULT_VM, kvmRegistrar,
  kvm_none_x86_ops, type KvmX86Ops,
} from '@cocosim/kvm';

const PS = PAGE_SIZE;

/** Punch pages [5, 285) of the file at `fd` and take what the punch leaves and cost. */
function punch_state(p: Process, fd: number) {
  const kernel = p.kernel;
  const store = kernel.store;
  const before = kernel.cost.clock.now();
  const { cost } = kernel.cost.measure('punch', () => expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * PS, 280 * PS)).toBe(0));
  const inode: Inode = p.task.files.lookup(fd)!.f_inode;
  const state = {
    ns: kernel.cost.clock.now() - before,
    items: cost.items.map((it) => [it.name, it.count]),
    free: kernel.page_alloc.buddyinfo(),
    flags: Array.from(store.flags),
    ref: Array.from(store._refcount),
    map: Array.from(store._mapcount),
    mapping: Array.from(store.mapping),
    nrpages: inode.i_mapping.nrpages,
    cached: [] as number[],
  };
  inode.i_mapping.i_pages.xa_for_each((index) => void state.cached.push(index));
  expect(kernel.page_alloc.checkConsistency()).toEqual([]);
  return state;
}

function fstat(p: Process, fd: number): Stat {
  const st = {} as Stat;
  expect(p.fstat(fd, st)).toBe(0);
  return st;
}

describe('shmem: punching a hole through the one-pass loop', () => {
  function punched(general: boolean) {
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
    const store = p.kernel.store;
    if (general) p.kernel.tracer.on('mm_filemap_delete_from_page_cache', () => undefined);
    const fd = p.memfd_create('h', 0);
    const N = 300;
    expect(p.fallocate(fd, 0, 0, N * PS)).toBe(0);
    /* written (dirty) and merely fallocated pages, and one mapped, one with an extra reference */
    expect(p.pwrite(fd, new Uint8Array(40 * PS).fill(1), 10 * PS)).toBe(40 * PS);
    const a = p.mmap(0, N * PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.load(a + 200n * BigInt(PS), 1)).toEqual(new Uint8Array(1));
    const ref: FolioRef = { folio: null };
    expect(shmem_get_folio(p.task.files.lookup(fd)!.f_inode, 250, 0n, ref, SGP_CACHE)).toBe(0);
    const held = ref.folio!;
    folio_unlock(store, held);
    const state = { ...punch_state(p, fd), st: fstat(p, fd) };
    folio_put(store, held);
    return state;
  }

  test('ends as the general loop does: page cache, pages, free lists, i_blocks and costs', () => {
    const one = punched(false);
    const general = punched(true);
    expect(one).toEqual(general);
    /* what is left: pages 0-4 and 285-299, and the one with an extra reference, punched out of the cache but not freed */
    expect(one.cached).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 15 }, (_, k) => 285 + k)]);
    expect(one.st).toMatchObject({ st_blocks: 20n * 8n });
    expect(one.items).toContainEqual(['page_free', 279]);
  });
});

describe('guest_memfd: punching a mapped hole through the one-pass loop', () => {
  function punched(general: boolean) {
    const events: string[] = [];
    const ops: KvmX86Ops = { ...kvm_none_x86_ops, gmem_invalidate: (_kvm, start, end) => void events.push(`invalidate ${start - base} ${end - start}`) };
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: ops })).resolve(Kernel));
    const base = p.kernel.store.base_pfn;
    if (general) p.kernel.tracer.on('mm_filemap_delete_from_page_cache', () => undefined);
    p.kernel.tracer.on('kvm_unmap_hva_range', (f) => void events.push(`unmap ${f.start}`));
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    const N = 300;
    const fd = p.ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size: N * PS, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    const a = p.mmap(0, N * PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(a).not.toBe(MAP_FAILED);
    const addr = BigInt(a);
    /* every page faulted in; some written (dirty PTEs); a stretch unmapped again; one mapped twice */
    for (let i = 0; i < N; i++) expect(p.load(addr + BigInt(i * PS), 1)).toEqual(new Uint8Array(1));
    for (const i of [...Array.from({ length: 40 }, (_, k) => 20 + k), 290]) expect(p.store(addr + BigInt(i * PS), new Uint8Array([7]))).toBe(0);
    expect(p.munmap(addr + 100n * BigInt(PS), 50 * PS)).toBe(0);
    const b = p.mmap(0, PS, PROT_READ, MAP_SHARED, fd, 200 * PS);
    expect(p.load(BigInt(b), 1)).toEqual(new Uint8Array(1));
    const state = punch_state(p, fd);
    /* a punched page reads as a new zeroed one, a kept one keeps its data */
    return { ...state, events, punched: p.load(addr + 30n * BigInt(PS), 1), kept: p.load(addr + 290n * BigInt(PS), 1) };
  }

  test('ends as the general loop does: page cache, pages, free lists, costs, unmaps and invalidations in order', () => {
    const one = punched(false);
    const general = punched(true);
    expect(one).toEqual(general);
    expect(one.cached).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 15 }, (_, k) => 285 + k)]);
    expect(one.items).toContainEqual(['page_free', 280]);
    /* the munmap, then one host unmap per VMA mapping each punched folio (230 mapped once, page 200 twice) */
    expect(one.events.filter((e) => e.startsWith('unmap'))).toHaveLength(1 + 230 + 1);
    expect(one.events.filter((e) => e.startsWith('invalidate'))).toHaveLength(280);
    expect(one.punched).toEqual(new Uint8Array(1));
    expect(one.kept).toEqual(new Uint8Array([7]));
  });
});
