/**
 * Design kvm_protected (D1) on SW_PROTECTED: the guest's hypercalls handled in KVM (results in
 * the order kvm_protect_memory() checks), the hiding (VM_KVM_PROTECTED, PROT_NONE: SIGBUS; uaccess
 * and GUP -EFAULT without FOLL_KVM), the direct-map removal a kernel access sees, and conversions
 * each way on the same page (S21: no zeroing).
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer, setWarnObserver, type Warning } from '@cocosim/core';
import {
  FOLL_LONGTERM, FOLL_WRITE, Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, find_vma, get_user_pages, isSigInfo,
  mmRegistrar, pagemap_pfn, pin_user_pages, pte_protnone, put_page, uaccess_host_access, unpin_user_pages, vm_flags_test,
  type SigInfo,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_guest_convert, cvm_launch, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore, vmcall, type GuestCode } from '../../guest.js';
import { kvm_tdp_mmu_spte } from '../../mmu/tdp_mmu.js';
import { KVM_EXIT_HLT, KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { KVM_ENOSYS } from '../../x86.js';
import { CPA_DIRECT_MAP_4K, kvm_mem_protected, kvm_page_unmapped, kvm_protected, kvm_protected_vmm } from './index.js';
import { FOLL_KVM, KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE, VM_KVM_PROTECTED } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const SECRET = new Uint8Array(8).fill(0x5e);
const ret = (errno: number): bigint => BigInt.asUintN(64, BigInt(-errno));

function host(design = true): Kernel {
  const regs = [mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })];
  if (design) regs.push(kvm_protected.registrar());
  return createRootContainer({}, ...regs).resolve(Kernel);
}

function vm(design = true): CvmVm {
  const v = cvm_create(new Process(host(design)), sw_protected_cvm, kvm_protected_vmm, { size: 16n * PG });
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

/** The guest makes one page private (its first request enables protection) and writes `data`. */
function make_private(v: CvmVm, gpa: bigint, data = SECRET): void {
  guest(v, function* () {
    expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
    yield* guestStore(gpa, data);
  });
}

function sig(r: Uint8Array | SigInfo | 0): string | undefined {
  return isSigInfo(r) ? `${r.signo} ${r.si_code}` : undefined;
}

function pte_flags(v: CvmVm, hva: bigint): number {
  const vpn = Number(hva / PG);
  return v.p.mm.pgd.ptes.get(Math.floor(vpn / 512))!.flags[vpn % 512]!;
}

describe('kvm_protected: the hypercalls', () => {
  test('the base has none of them (-KVM_ENOSYS); the design handles them in KVM without an exit', () => {
    const base = vm(false);
    expect(guest(base, () => vmcall(KVM_HC_MEM_SHARE, base.base / PG, 1n))).toBe(ret(KVM_ENOSYS));
    expect(guest(base, () => vmcall(KVM_HC_MEM_UNSHARE, base.base / PG, 1n))).toBe(ret(KVM_ENOSYS));

    const v = vm();
    const hva = kvm_protected_vmm.hva(v, v.base)!;
    expect(kvm_mem_protected(v.kvm)).toBe(false);
    const r = cvm_run(v, function* () {
      expect(yield* vmcall(KVM_HC_ENABLE_MEM_PROTECTED)).toBe(0n);
    });
    expect(r.conversions).toEqual([]);
    expect(kvm_mem_protected(v.kvm)).toBe(true);
    // Every page of the memslot is protected now, whatever the VMM wrote before.
    expect(vm_flags_test(find_vma(v.p.mm, Number(hva / PG))!.vm_flags, VM_KVM_PROTECTED)).toBe(true);
    expect(sig(v.p.load(hva, 1))).toBe('SIGBUS BUS_ADRERR');
  });

  test('kvm_protect_memory()\'s order: npages 0 and a gfn without a memslot do nothing; a range past the memslot is -EINVAL with a warning', () => {
    const v = vm();
    const gfn = v.base / PG;
    guest(v, () => vmcall(KVM_HC_ENABLE_MEM_PROTECTED));
    const hva = kvm_protected_vmm.hva(v, v.base)!;
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, gfn, 0n))).toBe(0n);
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, 0x10n, 1n))).toBe(0n);
    const warned: Warning[] = [];
    const prev = setWarnObserver((w) => warned.push(w));
    let past: bigint;
    try {
      past = guest(v, () => vmcall(KVM_HC_MEM_SHARE, gfn + 15n, 2n));
    } finally {
      setWarnObserver(prev);
    }
    expect(past).toBe(ret(Errno.EINVAL));
    expect(warned.map((w) => w.message)).toEqual(['kvm_protect_memory: range past its memslot']);
    // None of them shared anything.
    expect(sig(v.p.load(hva, 1))).toBe('SIGBUS BUS_ADRERR');
    expect(sig(v.p.load(hva + 15n * PG, 1))).toBe('SIGBUS BUS_ADRERR');
    // An unknown hypercall is still the base's.
    expect(guest(v, () => vmcall(15, 0n, 0n))).toBe(ret(KVM_ENOSYS));
  });

  test('the VMM has no conversion of its own (EOPNOTSUPP): a launch cannot convert', () => {
    const v = vm();
    expect(cvm_launch(v, v.base, new Uint8Array(16))).toBe(-1);
    expect(v.p.errno).toBe(Errno.EOPNOTSUPP);
  });

  test('a memslot added once the VM is protected is protected as it is created', () => {
    const v = vm();
    guest(v, () => vmcall(KVM_HC_ENABLE_MEM_PROTECTED));
    const p = v.p;
    const more = p.mmap(0, 4n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(v.vm_fd, KVM_SET_USER_MEMORY_REGION, {
      slot: 1, flags: 0, guest_phys_addr: 1n << 33n, memory_size: 4n * PG, userspace_addr: more,
    })).toBe(0);
    expect(vm_flags_test(find_vma(p.mm, Number(more / PG))!.vm_flags, VM_KVM_PROTECTED)).toBe(true);
    expect(sig(p.load(more, 1))).toBe('SIGBUS BUS_ADRERR');
  });
});

describe('kvm_protected: a private page', () => {
  test('PROT_NONE in a VM_KVM_PROTECTED VMA: the VMM\'s loads and stores get SIGBUS; its other pages stay shared', () => {
    const v = vm();
    const gpa = v.base + 2n * PG;
    const hva = kvm_protected_vmm.hva(v, gpa)!;
    make_private(v, gpa);
    expect(pte_protnone(pte_flags(v, hva))).toBe(true);
    expect(sig(v.p.load(hva, 8))).toBe('SIGBUS BUS_ADRERR');
    expect(sig(v.p.store(hva, new Uint8Array(8).fill(0xee)))).toBe('SIGBUS BUS_ADRERR');
    expect(guest(v, () => guestLoad(gpa, 8))).toEqual(SECRET);
    const other = kvm_protected_vmm.hva(v, v.base + 3n * PG)!;
    expect(v.p.store(other, new Uint8Array([1]))).toBe(0);
    expect(v.p.load(other, 1)).toEqual(new Uint8Array([1]));
    // mprotect() by the VMM cannot make it accessible: vm_page_prot stays PAGE_NONE.
    expect(v.p.mprotect(hva, PG, PROT_READ | PROT_WRITE)).toBe(0);
    expect(sig(v.p.load(hva, 8))).toBe('SIGBUS BUS_ADRERR');
  });

  test('uaccess through the VMM pointer (process_vm_readv/writev) and GUP: -EFAULT without FOLL_KVM; KVM\'s flag gets the guest\'s page', () => {
    const v = vm();
    const gpa = v.base + 4n * PG;
    make_private(v, gpa);
    const p = v.p;
    const hva = kvm_protected_vmm.hva(v, gpa)!;
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
    const guest_pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    expect(get_user_pages(p.mm, vpn, 1, FOLL_KVM, pages)).toBe(1);
    expect(pages[0]).toBe(guest_pfn);
    put_page(p.mm.kernel.store, pages[0]!);
    const pinned: number[] = [];
    expect(pin_user_pages(p.mm, vpn, 1, FOLL_KVM | FOLL_WRITE, pinned)).toBe(1);
    expect(pinned[0]).toBe(guest_pfn);
    unpin_user_pages(p.mm.kernel.store, pinned, 1);
  });

  test('an anonymous page first touched in a protected VMA leaves the direct map (a kernel access faults); one touched before does not', () => {
    const v = vm();
    const kernel = v.p.mm.kernel;
    const before = kvm_protected_vmm.hva(v, v.base + 5n * PG)!;
    expect(v.p.store(before, new Uint8Array([9]))).toBe(0);
    const before_pfn = pagemap_pfn(v.p.mm, before)!;
    const gpa = v.base + 6n * PG;
    // The guest reads its fresh private page first: no zero page, so its later write works.
    const { result: read, cost } = kernel.cost.measure('first touch', () => guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      const r = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, SECRET);
      return r;
    }));
    // One page left the direct map: kernel_map_pages() of one page and its local TLB flush.
    expect(cost.items.find((i) => i.name === CPA_DIRECT_MAP_4K)?.count).toBe(1);
    expect(read).toEqual(new Uint8Array(8));
    const pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    expect(pfn).not.toBe(kernel.store.zero_pfn);
    expect(kvm_page_unmapped(kernel, pfn)).toBe(true);
    expect(uaccess_host_access(kernel, pfn, false, 0, 8)).toBe(-Errno.EFAULT);
    expect(kvm_page_unmapped(kernel, before_pfn)).toBe(false);
    expect(uaccess_host_access(kernel, before_pfn, false, 0, 8)).toBe(0);
    expect(guest(v, () => guestLoad(gpa, 8))).toEqual(SECRET);
    // Once the VMM unmaps the memory, the page is freed and back in the direct map.
    expect(v.p.munmap(kvm_protected_vmm.hva(v, v.base)!, 16n * PG)).toBe(0);
    expect(kvm_page_unmapped(kernel, pfn)).toBe(false);
  });
});

describe('kvm_protected: conversions (hypercalls in KVM)', () => {
  test('to shared: the same page with its contents (no zeroing, S21); to private again: hidden again, the VMM\'s data kept', () => {
    const v = vm();
    const gpa = v.base + 7n * PG;
    const hva = kvm_protected_vmm.hva(v, gpa)!;
    make_private(v, gpa);
    const pfn = kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn;
    const shared = guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      return yield* guestLoad(gpa, 8);
    });
    expect(shared).toEqual(SECRET);
    expect(v.p.load(hva, 8)).toEqual(SECRET);
    expect(pagemap_pfn(v.p.mm, hva)).toBe(pfn);
    expect(vm_flags_test(find_vma(v.p.mm, Number(hva / PG))!.vm_flags, VM_KVM_PROTECTED)).toBe(false);
    expect(v.p.store(hva, new Uint8Array(8).fill(0xaa))).toBe(0);
    const back = guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      return yield* guestLoad(gpa, 8);
    });
    expect(back).toEqual(new Uint8Array(8).fill(0xaa));
    expect(sig(v.p.load(hva, 8))).toBe('SIGBUS BUS_ADRERR');
    expect(kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)!.pfn).toBe(pfn);
  });
});
