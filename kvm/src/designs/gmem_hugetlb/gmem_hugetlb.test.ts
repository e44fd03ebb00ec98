/**
 * Design gmem_hugetlb (D11): KVM_CREATE_GUEST_MEMFD with GUEST_MEMFD_FLAG_HUGETLB in the series'
 * order of checks, a 1 GiB VM on one HugeTLB folio: a 1 GiB SPTE while all of it is private, the
 * split into 4 KiB folios when a page becomes shared (contents kept, charged per page), the host's
 * access and GUP on private and shared pages, a pin blocking the way back, the merge when all of
 * it is private again, and the punch returning the whole folio to the pool.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, RingSink, Tracer, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FOLL_LONGTERM, FOLL_WRITE, Kernel, Process, folio_order, get_user_pages, hugetlb_pool, mmRegistrar,
  pin_user_pages, unpin_user_pages,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_EXIT_HLT, KVM_X86_SW_PROTECTED_VM,
} from '../../uapi.js';
import { gmem_hugetlb, gmem_hugetlb_vmm, gmem_hugetlb_vmm_state, type GmemHugetlbOptions } from './index.js';
import { GUESTMEM_HUGETLB_FLAG_1GB, GUESTMEM_HUGETLB_FLAG_2MB, GUEST_MEMFD_FLAG_HUGETLB } from './uapi.js';

const G1 = 1n << 30n;
const HUGETLB = BigInt(GUEST_MEMFD_FLAG_HUGETLB);
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

/** A 2 GiB host: a 1 GiB page needs a free, aligned 1 GiB block above the low reserved pages. */
function host(opts: GmemHugetlbOptions = {}, nr_pages = 2 ** 19): { kernel: Kernel; p: Process; trace: RingSink } {
  const c = createRootContainer({}, mmRegistrar({ nr_pages }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }), gmem_hugetlb.registrar(opts));
  const trace = new RingSink();
  c.resolve(Tracer).addSink(trace);
  const kernel = c.resolve(Kernel);
  return { kernel, p: new Process(kernel), trace };
}

const secret = new TextEncoder().encode('private 1G');

describe('gmem_hugetlb: KVM_CREATE_GUEST_MEMFD with GUEST_MEMFD_FLAG_HUGETLB', () => {
  test('errors in the series\' order; the file\'s huge pages are reserved at creation', () => {
    const { p, kernel } = host({ hugepages_1g: 1 });
    const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const create = (size: bigint, flags: bigint): number => p.ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size, flags });
    const fails = (size: bigint, flags: bigint, errno: number): void => {
      expect(create(size, flags)).toBe(-1);
      expect(p.errno).toBe(errno);
    };
    // The allocator bits are valid only with HUGETLB.
    fails(G1, GUESTMEM_HUGETLB_FLAG_1GB, Errno.EINVAL);
    // A shared page must be a 4 KiB folio: no INIT_SHARED HugeTLB file.
    fails(G1, HUGETLB | GUESTMEM_HUGETLB_FLAG_1GB | BigInt(GUEST_MEMFD_FLAG_INIT_SHARED), Errno.EINVAL);
    fails(0n, HUGETLB | GUESTMEM_HUGETLB_FLAG_1GB, Errno.EINVAL);
    // No hstate of 32 MiB; a file size that is not a whole number of 1 GiB pages.
    fails(G1, HUGETLB | (25n << 58n), Errno.EINVAL);
    fails(G1 / 2n, HUGETLB | GUESTMEM_HUGETLB_FLAG_1GB, Errno.EINVAL);
    // The 2 MiB pool is empty: the reservation fails.
    fails(G1, HUGETLB | GUESTMEM_HUGETLB_FLAG_2MB, Errno.ENOMEM);
    const h1g = hugetlb_pool(kernel).hstates[1]!;
    expect(h1g.resv_huge_pages).toBe(0);

    const fd = create(G1, HUGETLB | GUESTMEM_HUGETLB_FLAG_1GB | BigInt(GUEST_MEMFD_FLAG_MMAP));
    expect(fd, `errno ${p.errno}`).toBeGreaterThanOrEqual(0);
    expect(h1g.resv_huge_pages).toBe(1);
    // The only 1 GiB page is promised to the first file.
    fails(G1, HUGETLB | GUESTMEM_HUGETLB_FLAG_1GB, Errno.ENOMEM);
    // fallocate() works in whole huge pages.
    expect(p.fallocate(fd, PUNCH, 0, PAGE_SIZE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fallocate(fd, PUNCH, 0, G1)).toBe(0);
    // Closing the file gives the reservation back.
    expect(p.close(fd)).toBe(0);
    expect(h1g.resv_huge_pages).toBe(0);
    expect(kernel.warn.warnings).toEqual([]);
  });
});

describe('gmem_hugetlb: a 1 GiB VM on one HugeTLB folio (sw_protected)', () => {
  function vm1g(): { v: CvmVm; kernel: Kernel; trace: RingSink } {
    const { p, kernel, trace } = host({ hugepages_1g: 1 });
    const v = cvm_create(p, sw_protected_cvm, gmem_hugetlb_vmm, { size: G1, page_size: 1 << 30 });
    if (typeof v === 'number') throw new Error(`cvm_create: ${v} errno ${p.errno}`);
    return { v, kernel, trace };
  }

  test('1G SPTE while private, split on a shared page (contents kept, costs charged), pin blocks the way back, merge, punch', () => {
    const { v, kernel, trace } = vm1g();
    const { p } = v;
    const store = kernel.store;
    const h1g = hugetlb_pool(kernel).hstates[1]!;
    const mapping = p.task.files.lookup(gmem_hugetlb_vmm_state(v).gmem_fd)!.f_inode.i_mapping;
    const priv = v.base + 4096n;
    const shared = v.base + 8192n;

    // Boot: the whole 1 GiB becomes private; the guest's first access maps it with one 1 GiB SPTE.
    const boot = cvm_run(v, function* () {
      expect(yield* v.vendor.guest_convert(v, v.base, G1 / 4096n, true)).toBe(0n);
      yield* guestStore(priv, secret);
    });
    expect(boot.exit_reason).toBe(KVM_EXIT_HLT);
    expect(trace.events('kvm_mmu_set_spte').map((e) => e.args.level)).toEqual([3]);
    const folio = mapping.i_pages.xa_load(0)!;
    expect(folio_order(store, folio)).toBe(18);
    expect(h1g.free_huge_pages).toBe(0);

    // The host cannot touch a private page: SIGBUS, GUP and the kernel's copy fail.
    expect(p.load(gmem_hugetlb_vmm.hva(v, priv)!, 1)).toMatchObject({ signo: 'SIGBUS' });
    expect(get_user_pages(p.mm, Number(gmem_hugetlb_vmm.hva(v, priv)! / 4096n), 1, 0, null)).toBe(-Errno.EFAULT);
    const buf = new Uint8Array(8);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: gmem_hugetlb_vmm.hva(v, priv)!, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);

    // One page to shared: the folio is split into 4 KiB folios, each charged.
    const split = kernel.cost.measure('to_shared', () => cvm_run(v, function* () {
      expect(yield* v.vendor.guest_convert(v, shared, 1n, false)).toBe(0n);
      yield* guestStore(shared, Uint8Array.of(0xab));
    }));
    expect(split.cost.items.find((i) => i.name === 'gmem_hugetlb_split_page')).toMatchObject({ count: 262144, provenance: 'estimate' });
    expect(folio_order(store, mapping.i_pages.xa_load(0)!)).toBe(0);
    expect(mapping.i_pages.xa_load(2)).toBe(folio + 2);
    expect(trace.events('cocosim_gmem_hugetlb_restructure').map((e) => e.args.to_order)).toEqual([0]);
    // The host reads and writes the shared page in place; GUP pins it.
    const shva = gmem_hugetlb_vmm.hva(v, shared)!;
    expect(p.load(shva, 1)).toEqual(Uint8Array.of(0xab));
    const pins: number[] = [];
    expect(pin_user_pages(p.mm, Number(shva / 4096n), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    expect(pins[0]).toBe(folio + 2);

    // The private data survived the split; the guest now maps 4 KiB pages.
    let seen: Uint8Array | undefined;
    const before = trace.events('kvm_mmu_set_spte').length;
    cvm_run(v, function* () {
      seen = yield* guestLoad(priv, secret.length);
    });
    expect(seen).toEqual(secret);
    expect(trace.events('kvm_mmu_set_spte').slice(before).map((e) => e.args.level)).toEqual([1]);

    // Back to private while pinned: EAGAIN at the pinned page, still split.
    const pinned = cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, shared, 1n, true);
    });
    expect(pinned.conversions[0]).toMatchObject({ ret: -1, errno: Errno.EAGAIN });
    expect(gmem_hugetlb_vmm_state(v).error_offset).toBe(8192n);
    expect(folio_order(store, mapping.i_pages.xa_load(0)!)).toBe(0);
    unpin_user_pages(store, pins, 1);

    // Unpinned: the conversion succeeds and the whole 1 GiB is one folio again.
    const merge = kernel.cost.measure('to_private', () => cvm_run(v, function* () {
      expect(yield* v.vendor.guest_convert(v, shared, 1n, true)).toBe(0n);
    }));
    expect(merge.cost.items.find((i) => i.name === 'gmem_hugetlb_merge_page')).toMatchObject({ count: 262144 });
    expect(mapping.i_pages.xa_load(2)).toBe(folio);
    expect(folio_order(store, folio)).toBe(18);
    let again: Uint8Array | undefined;
    cvm_run(v, function* () {
      again = yield* guestLoad(priv, secret.length);
    });
    expect(again).toEqual(secret);

    // A punch of the whole huge page returns it to the pool.
    expect(p.fallocate(gmem_hugetlb_vmm_state(v).gmem_fd, PUNCH, 0, G1)).toBe(0);
    expect(mapping.i_pages.xa_load(0)).toBeUndefined();
    expect(h1g.free_huge_pages).toBe(1);
    expect(kernel.warn.warnings).toEqual([]);
  });

  test('a punch is EAGAIN while a shared piece is pinned, and frees nothing', () => {
    const { v, kernel } = vm1g();
    const { p } = v;
    const hva = gmem_hugetlb_vmm.hva(v, v.base)!;
    // All shared: the first host touch allocates the huge folio and splits it at once.
    expect(p.store(hva, Uint8Array.of(7))).toBe(0);
    const pins: number[] = [];
    expect(pin_user_pages(p.mm, Number(hva / 4096n), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    const fd = gmem_hugetlb_vmm_state(v).gmem_fd;
    expect(p.fallocate(fd, PUNCH, 0, G1)).toBe(-1);
    expect(p.errno).toBe(Errno.EAGAIN);
    expect(p.load(hva + 4096n, 1)).toEqual(Uint8Array.of(0));
    unpin_user_pages(kernel.store, pins, 1);
    expect(p.fallocate(fd, PUNCH, 0, G1)).toBe(0);
    expect(hugetlb_pool(kernel).hstates[1]!.free_huge_pages).toBe(1);
  });
});

describe('gmem_hugetlb: 2 MiB pages', () => {
  test('a 2 MiB VM: one 2 MiB SPTE while private; a shared page splits it', () => {
    const { p, kernel, trace } = host({ hugepages_2m: 1 }, 8192);
    const v = cvm_create(p, sw_protected_cvm, gmem_hugetlb_vmm, { size: 2n << 20n, page_size: 2 << 20 });
    if (typeof v === 'number') throw new Error(`cvm_create: ${v} errno ${p.errno}`);
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, v.base, 512n, true);
      yield* guestStore(v.base, secret);
      yield* v.vendor.guest_convert(v, v.base + 4096n, 1n, false);
      yield* guestLoad(v.base, 1);
    });
    expect(trace.events('kvm_mmu_set_spte').map((e) => e.args.level)).toEqual([2, 1]);
    expect(trace.events('cocosim_gmem_hugetlb_restructure').map((e) => [e.args.from_order, e.args.to_order])).toEqual([[9, 0]]);
    expect(kernel.warn.warnings).toEqual([]);
  });
});
