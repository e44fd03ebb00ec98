/**
 * Design page_guest (D3) on SW_PROTECTED: PROT_GUEST's uAPI in the patch's order, the hiding
 * (PAGE_NONE entries: SIGBUS; file syscalls -EIO; uaccess and GUP -EFAULT without FOLL_GUEST),
 * conversions each way through the VMM's remapping with the contents each side sees (S21: a
 * fresh zeroed anonymous page), and the fault-around path the patch leaves open.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FOLL_LONGTERM, FOLL_WRITE, Kernel, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE,
  Process, find_vma, get_user_pages, isSigInfo, mmRegistrar, pagemap_pfn, pin_user_pages, put_page, unpin_user_pages, vm_flags_test,
  type SigInfo,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_guest_convert, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore, type GuestCode } from '../../guest.js';
import { kvm_tdp_mmu_spte } from '../../mmu/tdp_mmu.js';
import { KVM_EXIT_HLT } from '../../uapi.js';
import { PageGuest, page_guest, page_guest_vmm, page_guest_vmm_state } from './index.js';
import { FOLL_GUEST, PROT_GUEST, VM_GUEST } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const SECRET = new Uint8Array(8).fill(0x5e);

function host(design = true): { kernel: Kernel; p: Process } {
  const regs = [mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })];
  if (design) regs.push(page_guest.registrar());
  const kernel = createRootContainer({}, ...regs).resolve(Kernel);
  return { kernel, p: new Process(kernel) };
}

function vm(discard = true): CvmVm {
  const v = cvm_create(host().p, sw_protected_cvm, page_guest_vmm, { size: 16n * PG, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

/** Run guest code; the run must end with the guest's hlt. */
function guest<T>(v: CvmVm, body: () => GuestCode<T>): T {
  let out: T | undefined;
  const r = cvm_run(v, function* () {
    out = yield* body();
  });
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
  return out!;
}

/** The guest converts one page and writes `data` there. */
function make_private(v: CvmVm, gpa: bigint, data = SECRET): void {
  guest(v, function* () {
    const ret = yield* cvm_guest_convert(v, gpa, 1n, true);
    expect(ret).toBe(0n);
    yield* guestStore(gpa, data);
  });
}

function sigbus(r: Uint8Array | SigInfo | 0): string | undefined {
  return isSigInfo(r) ? `${r.signo} ${r.si_code}` : undefined;
}

describe('page_guest: mprotect(PROT_GUEST)', () => {
  test('the base rejects the bit (EINVAL); the design takes it on shared shmem only (EINVAL otherwise), and a refusal changes nothing', () => {
    const base = host(false).p;
    const b = base.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(base.mprotect(b, PG, PROT_GUEST | RW)).toBe(-1);
    expect(base.errno).toBe(Errno.EINVAL);

    const { p } = host();
    const priv = p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(priv, new Uint8Array([7]))).toBe(0);
    expect(p.mprotect(priv, PG, PROT_GUEST | RW)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(vm_flags_test(find_vma(p.mm, Number(priv / PG))!.vm_flags, VM_GUEST)).toBe(false);
    expect(p.load(priv, 1)).toEqual(new Uint8Array([7]));
    // A bit the design does not add is still EINVAL.
    const shm = p.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.mprotect(shm, PG, 0x08000000 | RW)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    // MAP_SHARED | MAP_ANONYMOUS is shmem: accepted (Kirill: it "also fits").
    expect(p.mprotect(shm, PG, PROT_GUEST | RW)).toBe(0);
    expect(vm_flags_test(find_vma(p.mm, Number(shm / PG))!.vm_flags, VM_GUEST)).toBe(true);
  });
});

describe('page_guest: a private page on SW_PROTECTED', () => {
  test('PageGuest at KVM\'s fault, PAGE_NONE to the VMM: loads and stores get SIGBUS', () => {
    const v = vm();
    const gpa = v.base + PG;
    const hva = page_guest_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, new Uint8Array(8).fill(0x11))).toBe(0);
    make_private(v, gpa);
    const pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    expect(PageGuest(v.p.mm.kernel.store, pfn)).toBe(true);
    expect(sigbus(v.p.load(hva, 8))).toBe('SIGBUS BUS_ADRERR');
    expect(sigbus(v.p.store(hva, new Uint8Array(8).fill(0xee)))).toBe('SIGBUS BUS_ADRERR');
    // The VMM's failed store changed nothing: the guest reads its secret.
    expect(guest(v, () => guestLoad(gpa, 8))).toEqual(SECRET);
    // Pages the guest did not convert stay the VMM's.
    expect(v.p.load(page_guest_vmm.hva(v, v.base)!, 1)).toEqual(new Uint8Array(1));
  });

  test('read(2)/write(2)/fallocate(2) of the memfd at a guest page: -EIO; elsewhere they work', () => {
    const v = vm();
    const gpa = v.base + 2n * PG;
    make_private(v, gpa);
    const { memfd } = page_guest_vmm_state(v);
    const p = v.p;
    const off = gpa - v.base;
    expect(p.pread(memfd, new Uint8Array(8), off)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    expect(p.pwrite(memfd, new Uint8Array(8).fill(0xee), off)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    expect(p.fallocate(memfd, FALLOC_FL_KEEP_SIZE, off, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    expect(guest(v, () => guestLoad(gpa, 8))).toEqual(SECRET);
    expect(p.pwrite(memfd, new Uint8Array([3]), 0n)).toBe(1);
    expect(p.pread(memfd, new Uint8Array(1), 0n)).toBe(1);
  });

  test('kernel uaccess through the VMM pointer (process_vm_readv/writev) and GUP: -EFAULT without FOLL_GUEST', () => {
    const v = vm();
    const gpa = v.base + 3n * PG;
    make_private(v, gpa);
    const p = v.p;
    const hva = page_guest_vmm.hva(v, gpa)!;
    const remote = [{ iov_base: hva, iov_len: 8 }];
    expect(p.process_vm_readv(p, [new Uint8Array(8)], 1, remote, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.process_vm_writev(p, [new Uint8Array(8)], 1, remote, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    const vpn = Number(hva / PG);
    const pages: number[] = [];
    expect(get_user_pages(p.mm, vpn, 1, 0, pages)).toBe(-Errno.EFAULT);
    expect(pin_user_pages(p.mm, vpn, 1, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(-Errno.EFAULT);
    expect(pages).toEqual([]);
    // KVM's flag takes it, for writing too in a shared writable VMA: the guest's own page.
    const guest_pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    expect(get_user_pages(p.mm, vpn, 1, FOLL_GUEST, pages)).toBe(1);
    expect(pages[0]).toBe(guest_pfn);
    put_page(p.mm.kernel.store, pages[0]!);
    const pinned: number[] = [];
    expect(pin_user_pages(p.mm, vpn, 1, FOLL_GUEST | FOLL_WRITE, pinned)).toBe(1);
    expect(pinned[0]).toBe(guest_pfn);
    unpin_user_pages(p.mm.kernel.store, pinned, 1);
    // The user mapping still refuses the VMM after the kernel's GUPs.
    expect(sigbus(p.load(hva, 1))).toBe('SIGBUS BUS_ADRERR');
  });

  test('a FOLL_GUEST write through a read-only mapping of the page is refused (can_follow_write_pte())', () => {
    const v = vm();
    const gpa = v.base + 4n * PG;
    make_private(v, gpa);
    const p = v.p;
    const { memfd } = page_guest_vmm_state(v);
    const ro = p.mmap(0, PG, PROT_READ, MAP_SHARED, memfd, gpa - v.base);
    expect(ro).not.toBe(MAP_FAILED);
    expect(sigbus(p.load(ro, 1))).toBe('SIGBUS BUS_ADRERR');
    const pages: number[] = [];
    expect(get_user_pages(p.mm, Number(ro / PG), 1, FOLL_GUEST | FOLL_WRITE, pages)).toBe(-Errno.EFAULT);
    expect(get_user_pages(p.mm, Number(ro / PG), 1, FOLL_GUEST, pages)).toBe(1);
    put_page(p.mm.kernel.store, pages[0]!);
  });
});

describe('page_guest: conversions (the VMM remaps)', () => {
  test('to shared: a fresh zeroed anonymous page for both sides (S21); to private again: the shmem page, kept without discard', () => {
    const v = vm(false);
    const gpa = v.base + 5n * PG;
    const hva = page_guest_vmm.hva(v, gpa)!;
    make_private(v, gpa);
    const priv_pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    const shared = guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      return yield* guestLoad(gpa, 8);
    });
    expect(shared).toEqual(new Uint8Array(8));
    expect(v.p.load(hva, 8)).toEqual(new Uint8Array(8));
    expect(v.p.store(hva, new Uint8Array(8).fill(0xaa))).toBe(0);
    expect(guest(v, () => guestLoad(gpa, 8))).toEqual(new Uint8Array(8).fill(0xaa));
    // S16: the private page is still in the memfd (double allocation)...
    const anon_pfn = pagemap_pfn(v.p.mm, hva)!;
    expect(anon_pfn).not.toBe(priv_pfn);
    expect(PageGuest(v.p.mm.kernel.store, priv_pfn)).toBe(true);
    // ...and comes back on to-private, with the secret; the VMM's data is gone with its anon page.
    const back = guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      return yield* guestLoad(gpa, 8);
    });
    expect(back).toEqual(SECRET);
    expect(kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn).toBe(priv_pfn);
    expect(sigbus(v.p.load(hva, 8))).toBe('SIGBUS BUS_ADRERR');
  });

  test('with the VMM\'s discard, the private page is punched out on to-shared: a round trip reads zeros', () => {
    const v = vm(true);
    const gpa = v.base + 6n * PG;
    make_private(v, gpa);
    const back = guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      return yield* guestLoad(gpa, 8);
    });
    expect(back).toEqual(new Uint8Array(8));
    expect(v.p.mm.kernel.warn.warnings).toEqual([]);
  });

  test('fault-around maps a not-yet-guest page of a VM_GUEST VMA with the VMA\'s protection, as the patch does', () => {
    // PageGuest is set in shmem_fault() only; filemap_map_pages() (do_read_fault's fault-around)
    // maps a cached page without it (inferred from the patch on 5.12's do_read_fault()).
    const v = vm();
    const gpa = v.base + 7n * PG;
    const hva = page_guest_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, new Uint8Array(8).fill(0x42))).toBe(0);
    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
    });
    expect(v.p.load(hva, 8)).toEqual(new Uint8Array(8).fill(0x42));
    guest(v, () => guestStore(gpa, SECRET));
    expect(v.p.load(hva, 8)).toEqual(SECRET);
  });
});
