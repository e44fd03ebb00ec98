/**
 * Design hwpoison (D2): the guest's hypercalls (handled in KVM, no VMM exit) and their checks,
 * the lazy poisoning at the guest's first private fault (SIGBUS BUS_MCEERR_AR for the VMM, GUP
 * -EFAULT unless FOLL_ALLOW_POISONED, kernel access -EFAULT, shmem read/write -EIO), sharing
 * (same page, old contents, VMM access restored), the owner xarray refusing a second VM (S12), the
 * 32-range limit (S15), and the weakness of S17: a real memory error on a private page is
 * indistinguishable and sharing clears it.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer, setWarnObserver, type Warning } from '@cocosim/core';
import {
  FOLL_HWPOISON, FOLL_LONGTERM, FOLL_WRITE, Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, PageHWPoison, Process, get_user_pages,
  check_vm, get_user_pages_remote, hw_memory_error, mmRegistrar, num_poisoned_pages, pagemap_pfn, pin_user_pages, put_page, unpin_user_pages,
  type SigInfo,
} from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_guest_convert, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore, vmcall, type GuestCode } from '../../guest.js';
import { KVM_EXIT_HLT, KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { KVM_E2BIG, KVM_EINVAL, KVM_ENOSYS } from '../../x86.js';
import { kvm_tdp_mmu_spte } from '../../mmu/tdp_mmu.js';
import { design_of } from '../design.js';
import {
  FOLL_ALLOW_POISONED, KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_NR_SHARED_RANGES, hwpoison, hwpoison_host, hwpoison_vmm,
  hwpoison_vmm_state, kvm_mem_protected,
} from './index.js';

const PG = 4096n;

function host(): { kernel: Kernel; p: Process } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    hwpoison.registrar()).resolve(Kernel);
  return { kernel, p: new Process(kernel) };
}

function vm(p: Process, pages = 16n): CvmVm {
  const v = cvm_create(p, sw_protected_cvm, hwpoison_vmm, { size: pages * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

/** Run guest code to its end; its result. */
function guest<T>(v: CvmVm, body: () => GuestCode<T>): T {
  let out: T | undefined;
  let done = false;
  const r = cvm_run(v, function* () {
    out = yield* body();
    done = true;
  });
  expect(r.ret, `KVM_RUN errno ${r.errno}`).toBe(0);
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
  expect(r.conversions).toEqual([]); // KVM handled the hypercalls: the VMM saw none
  expect(done).toBe(true);
  return out as T;
}

const neg = (e: number): bigint => BigInt.asUintN(64, -BigInt(e));
const fill = (b: number, n = 8): Uint8Array => new Uint8Array(n).fill(b);

/** The guest enables protection and writes `byte` at gpa: the page is poisoned at that fault. */
function makePrivate(v: CvmVm, gpa: bigint, byte: number): void {
  expect(guest(v, () => cvm_guest_convert(v, gpa, 1n, true))).toBe(0n);
  guest(v, () => guestStore(gpa, fill(byte)));
}

function spte_pfn(v: CvmVm, gpa: bigint): number | undefined {
  return kvm_tdp_mmu_spte(v.kvm, Number(gpa / PG), false)?.pfn;
}

describe('hwpoison: the guest\'s hypercalls', () => {
  test('ENABLE_MEM_PROTECTED zaps every SPTE; MEM_SHARE checks its range; the VMM is never asked', () => {
    const { kernel, p } = host();
    expect(design_of(kernel)?.design.name).toBe('hwpoison');
    const v = vm(p);
    guest(v, () => guestStore(v.base, fill(1)));
    expect(spte_pfn(v, v.base)).toBeDefined();
    expect(guest(v, () => vmcall(KVM_HC_ENABLE_MEM_PROTECTED))).toBe(0n);
    expect(kvm_mem_protected(v.kvm).mem_protected).toBe(true);
    expect(spte_pfn(v, v.base)).toBeUndefined();
    // npages 0 and a wrapping range: -KVM_EINVAL, nothing recorded.
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, v.base / PG, 0n))).toBe(neg(KVM_EINVAL));
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, 2n ** 64n - 1n, 2n))).toBe(neg(KVM_EINVAL));
    expect(kvm_mem_protected(v.kvm).nr_shared_ranges).toBe(0);
    // Adjacent and overlapping ranges merge (add_range_with_merge()).
    const g = v.base / PG;
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, g, 2n))).toBe(0n);
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, g + 2n, 1n))).toBe(0n);
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, g + 1n, 4n))).toBe(0n);
    const s = kvm_mem_protected(v.kvm);
    expect(s.nr_shared_ranges).toBe(1);
    expect(s.shared_ranges.slice(0, 1)).toEqual([{ start: Number(g), end: Number(g) + 5 }]);
  });

  test('S14: there is no way back to private; S15: a 33rd unmerged range WARNs and is refused', () => {
    const { p } = host();
    const v = vm(p, 128n);
    const g = v.base / PG;
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, false))).toBe(0n);
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, true))).toBe(neg(KVM_ENOSYS));
    for (let i = 1n; i < BigInt(KVM_NR_SHARED_RANGES); i++) expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, g + 2n * i, 1n))).toBe(0n);
    expect(kvm_mem_protected(v.kvm).nr_shared_ranges).toBe(KVM_NR_SHARED_RANGES);
    const warned: Warning[] = [];
    const prev = setWarnObserver((w) => warned.push(w));
    let r: bigint;
    try {
      r = guest(v, () => vmcall(KVM_HC_MEM_SHARE, g + 100n, 1n));
    } finally {
      setWarnObserver(prev);
    }
    expect(r).toBe(neg(KVM_E2BIG));
    expect(warned.map((w) => w.message)).toEqual([expect.stringContaining('shared_ranges full')]);
    expect(kvm_mem_protected(v.kvm).nr_shared_ranges).toBe(KVM_NR_SHARED_RANGES);
    // A range that merges with an existing one still fits.
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, g + 1n, 1n))).toBe(0n);
    expect(kvm_mem_protected(v.kvm).nr_shared_ranges).toBe(KVM_NR_SHARED_RANGES - 1);
  });
});

describe('hwpoison: hiding a private page', () => {
  test('lazy: the page is poisoned at the guest\'s first fault, then the VMM gets SIGBUS BUS_MCEERR_AR', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = hwpoison_vmm_state(v).hva;
    expect(p.store(hva, fill(0x11))).toBe(0);
    const pfn = pagemap_pfn(p.mm, hva)!;
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, true))).toBe(0n);
    // Protection is on, but the guest has not touched the page: still mapped and writable (S1 inferred).
    expect(p.store(hva, fill(0x22))).toBe(0);
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    const seen = guest(v, () => guestLoad(v.base, 8));
    expect([...seen]).toEqual([...fill(0x22)]);
    expect(PageHWPoison(kernel.store, pfn)).toBe(true);
    expect(hwpoison_host(kernel).kvm_pfn_map.get(pfn)).toBe(v.kvm);
    expect(pagemap_pfn(p.mm, hva)).toBeUndefined();
    // KVM maps the very page (reached with FOLL_ALLOW_POISONED).
    expect(spte_pfn(v, v.base)).toBe(pfn);
    guest(v, () => guestStore(v.base, fill(0x5e)));
    const load = p.load(hva, 8) as SigInfo;
    expect(load).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR', si_addr: hva });
    expect(p.store(hva, fill(0xee))).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
    expect([...guest(v, () => guestLoad(v.base, 8))]).toEqual([...fill(0x5e)]);
    // Not a memory failure: the counter of poisoned pages does not move.
    expect(num_poisoned_pages(kernel)).toBe(0);
    expect(check_vm(kernel)).toEqual([]);
    // The neighbouring page, never touched by the guest, is still the VMM's.
    expect(p.store(hva + PG, fill(0x33))).toBe(0);
  });

  test('kernel access: process_vm_readv/writev -EFAULT; the shmem file read/write -EIO', () => {
    const { p } = host();
    const v = vm(p);
    const { hva, memfd } = hwpoison_vmm_state(v);
    makePrivate(v, v.base, 0x5e);
    const buf = new Uint8Array(8);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: hva, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.process_vm_writev(p, [fill(0xee)], 1, [{ iov_base: hva, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.pread(memfd, buf, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    expect(p.pwrite(memfd, fill(0xee), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    // The page next to it reads and writes normally.
    expect(p.pwrite(memfd, fill(0x44), Number(PG))).toBe(8);
    expect([...guest(v, () => guestLoad(v.base, 8))]).toEqual([...fill(0x5e)]);
  });

  test('GUP: -EFAULT (-EHWPOISON with FOLL_HWPOISON) unless FOLL_ALLOW_POISONED, which takes the page', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = hwpoison_vmm_state(v).hva;
    makePrivate(v, v.base, 0x5e);
    const vpn = Number(hva / PG);
    const pages: number[] = [];
    expect(get_user_pages(p.mm, vpn, 1, 0, pages)).toBe(-Errno.EFAULT);
    expect(pin_user_pages(p.mm, vpn, 1, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(-Errno.EFAULT);
    expect(get_user_pages(p.mm, vpn, 1, FOLL_HWPOISON, pages)).toBe(-Errno.EHWPOISON);
    const pfn = spte_pfn(v, v.base)!;
    const ref = kernel.store._refcount[kernel.store.idx(pfn)];
    expect(get_user_pages_remote(p.mm, vpn, 1, FOLL_ALLOW_POISONED, pages)).toBe(1);
    expect(pages[0]).toBe(pfn);
    expect(kernel.store._refcount[kernel.store.idx(pfn)]).toBe(ref + 1);
    put_page(kernel.store, pfn);
    expect(pin_user_pages(p.mm, vpn, 1, FOLL_ALLOW_POISONED, pages)).toBe(1);
    unpin_user_pages(kernel.store, pages, 1);
  });
});

describe('hwpoison: sharing', () => {
  test('private->shared keeps the page and its contents; the VMM maps it again', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const { hva, memfd } = hwpoison_vmm_state(v);
    makePrivate(v, v.base, 0x5e);
    const pfn = spte_pfn(v, v.base)!;
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, false))).toBe(0n);
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    expect(hwpoison_host(kernel).kvm_pfn_map.has(pfn)).toBe(false);
    // Same page, old contents (on TDX this would be ciphertext: S21 inferred).
    expect(p.load(hva, 8)).toEqual(fill(0x5e));
    expect(pagemap_pfn(p.mm, hva)).toBe(pfn);
    expect(p.store(hva, fill(0x77))).toBe(0);
    expect([...guest(v, () => guestLoad(v.base, 8))]).toEqual([...fill(0x77)]);
    const buf = new Uint8Array(8);
    expect(p.pread(memfd, buf, 0)).toBe(8);
    expect(buf).toEqual(fill(0x77));
    // A shared gfn is never poisoned again.
    guest(v, () => guestStore(v.base, fill(0x78)));
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    expect(check_vm(kernel)).toEqual([]);
  });

  test('anonymous memory: the page is poisoned the same way and mapped back, contents kept, once shared', () => {
    const { kernel, p } = host();
    const anon = cvm_create(p, sw_protected_cvm, {
      ...hwpoison_vmm,
      add_memory: (vm2) => {
        const hva = vm2.p.mmap(0, vm2.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        vm2.state.set('hwpoison', { memfd: -1, hva });
        return vm2.p.ioctl(vm2.vm_fd, KVM_SET_USER_MEMORY_REGION, {
          slot: 0, flags: 0, guest_phys_addr: vm2.base, memory_size: vm2.size, userspace_addr: hva,
        }) < 0 ? -1 : 0;
      },
    }, { size: 16n * PG });
    if (typeof anon === 'number') throw new Error(`cvm_create: ${anon}`);
    const hva = hwpoison_vmm_state(anon).hva;
    expect(p.store(hva, fill(0x11))).toBe(0);
    const pfn = pagemap_pfn(p.mm, hva)!;
    makePrivate(anon, anon.base, 0x5e);
    expect(spte_pfn(anon, anon.base)).toBe(pfn);
    expect(p.load(hva, 8)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
    expect(guest(anon, () => cvm_guest_convert(anon, anon.base, 1n, false))).toBe(0n);
    expect(p.load(hva, 8)).toEqual(fill(0x5e));
    expect(pagemap_pfn(p.mm, hva)).toBe(pfn);
    expect(p.store(hva, fill(0x66))).toBe(0);
    expect([...guest(anon, () => guestLoad(anon.base, 8))]).toEqual([...fill(0x66)]);
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    expect(check_vm(kernel)).toEqual([]);
  });

  test('VM teardown unpoisons the pages KVM still holds and drops its references', () => {
    const { kernel, p } = host();
    const v = vm(p);
    makePrivate(v, v.base, 0x5e);
    const pfn = spte_pfn(v, v.base)!;
    const ref = kernel.store._refcount[kernel.store.idx(pfn)];
    p.close(v.vcpu_fd);
    p.close(v.vm_fd);
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    expect(hwpoison_host(kernel).kvm_pfn_map.has(pfn)).toBe(false);
    expect(kernel.store._refcount[kernel.store.idx(pfn)]).toBe(ref - 1);
    expect(check_vm(kernel)).toEqual([]);
  });
});

describe('hwpoison: the owner xarray and real memory errors', () => {
  test('S12: a second VM faulting the same page gets the hwpoison signal, not the page', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = hwpoison_vmm_state(v).hva;
    makePrivate(v, v.base, 0x5e);
    const v2 = cvm_create(p, sw_protected_cvm, { ...hwpoison_vmm, add_memory: (vm2) => (vm2.p.ioctl(vm2.vm_fd, KVM_SET_USER_MEMORY_REGION, {
      slot: 0, flags: 0, guest_phys_addr: vm2.base, memory_size: vm2.size, userspace_addr: hva,
    }) < 0 ? -1 : 0) }, { size: 16n * PG });
    if (typeof v2 === 'number') throw new Error(`cvm_create: ${v2}`);
    expect(guest(v2, () => vmcall(KVM_HC_ENABLE_MEM_PROTECTED))).toBe(0n);
    const r = cvm_run(v2, function* () {
      yield* guestLoad(v2.base, 8);
    });
    expect(r.ret).toBe(-1);
    expect(r.errno).toBe(Errno.EINTR);
    expect(p.dequeue_signal()).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
    expect(hwpoison_host(kernel).kvm_pfn_map.get(spte_pfn(v, v.base)!)).toBe(v.kvm);
  });

  test('S17: a real memory error on a private page is "already poisoned", and sharing clears it', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = hwpoison_vmm_state(v).hva;
    makePrivate(v, v.base, 0x5e);
    const pfn = spte_pfn(v, v.base)!;
    // memory-failure finds PG_hwpoison already set: nothing is recorded, nobody is told.
    expect(hw_memory_error(kernel, pfn)).toBe(-Errno.EHWPOISON);
    expect(num_poisoned_pages(kernel)).toBe(0);
    expect(guest(v, () => cvm_guest_convert(v, v.base, 1n, false))).toBe(0n);
    // The bad page is back in service: PG_hwpoison is gone and the VMM maps it again.
    expect(PageHWPoison(kernel.store, pfn)).toBe(false);
    expect(p.store(hva + 8n, fill(1))).toBe(0);
    expect(pagemap_pfn(p.mm, hva)).toBe(pfn);
  });

  test('a real memory error on a page KVM never protected stays: the guest\'s access is refused', () => {
    const { kernel, p } = host();
    const v = vm(p);
    const hva = hwpoison_vmm_state(v).hva;
    expect(p.store(hva, fill(0x11))).toBe(0);
    const pfn = pagemap_pfn(p.mm, hva)!;
    expect(guest(v, () => vmcall(KVM_HC_ENABLE_MEM_PROTECTED))).toBe(0n);
    expect(hw_memory_error(kernel, pfn)).toBe(0);
    const r = cvm_run(v, function* () {
      yield* guestLoad(v.base, 8);
    });
    expect(r.ret).toBe(-1);
    expect(r.errno).toBe(Errno.EINTR);
    expect(p.dequeue_signal()).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
    expect(hwpoison_host(kernel).kvm_pfn_map.has(pfn)).toBe(false);
    // Sharing does not clear a poison KVM does not own.
    expect(guest(v, () => vmcall(KVM_HC_MEM_SHARE, v.base / PG, 1n))).toBe(0n);
    expect(PageHWPoison(kernel.store, pfn)).toBe(true);
    expect(p.load(hva, 8)).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR' });
  });
});

describe('hwpoison: platforms', () => {
  test('runs on sw_protected; on every other vendor applies() says why not', () => {
    expect(hwpoison_vmm.applies(sw_protected_cvm)).toBeUndefined();
    expect(hwpoison_vmm.applies({ ...sw_protected_cvm, name: 'tdx' })).toMatch(/targeted TDX.*guest_memfd/);
    expect(hwpoison_vmm.applies({ ...sw_protected_cvm, name: 'snp' })).toMatch(/guest_memfd/);
  });

});
