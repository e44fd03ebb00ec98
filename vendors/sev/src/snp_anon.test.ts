/*
 * Design D14 "snp_anon" (kvm/src/designs/snp_anon) on the SEV vendor: an SNP guest on pinned
 * anonymous VMM memory. The page state change assigns the VMM's own page in the RMP; the VMM's
 * mapping stays, its reads return ciphertext, its writes take an RMP #PF (SIGBUS BUS_ADRERR to
 * user space, -EFAULT to a kernel uaccess copy); GUP still works (designs.md §2 S1-S4 "SNPA").
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import {
  FOLL_LONGTERM, FOLL_WRITE, Kernel, Process, get_user_pages, isSigInfo, mmRegistrar, pagemap_pfn, pin_user_pages,
  put_page, unpin_user_pages_dirty_lock,
} from '@cocosim/mm';
import {
  DESIGNS, KVM_EXIT_HLT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, cvm_create, cvm_guest_convert,
  cvm_launch, cvm_run, guestLoad, guestStore, gfn_to_memslot, kvmRegistrar, snp_anon, snp_anon_cvm, snp_anon_pfn_owner, snp_anon_slot,
  snp_anon_state, snp_anon_vendor_cvm, snp_anon_vmm, sw_protected_cvm, kvm_tdp_mmu_spte, type CvmVm, type GuestProgram,
} from '@cocosim/kvm';
import { KVM_X86_SNP_VM, PG_LEVEL_2M, PG_LEVEL_4K, sevVendorPlugin, sev_host, snp_cvm, to_kvm_sev_info } from './index.js';

const PG = BigInt(PAGE_SIZE);
const NPAGES = 8n;

function host(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 1 << 15 }), kvmRegistrar({ x86_ops: sevVendorPlugin.x86_ops }),
    sevVendorPlugin.registrar(), snp_anon.registrar()).resolve(Kernel);
}

function vm(): CvmVm {
  const v = cvm_create(new Process(host()), snp_anon_cvm, snp_anon_vmm, { size: NPAGES * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number, n = 16): Uint8Array => new Uint8Array(n).fill(b);

function guest(v: CvmVm, body: GuestProgram): void {
  const r = cvm_run(v, body);
  expect(r.ret).toBe(0);
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
}

function guest_reads(v: CvmVm, gpa: bigint): Uint8Array {
  let b: Uint8Array | undefined;
  guest(v, function* () {
    b = yield* guestLoad(gpa, 16);
  });
  return b!;
}

/** The RMP entry of the page behind the VMM's mapping of `gpa`. */
function rmp_of(v: CvmVm, gpa: bigint): { pfn: number; assigned: boolean; gpa: bigint; asid: number } {
  const pfn = pagemap_pfn(v.p.mm, snp_anon_vmm.hva(v, gpa)!)!;
  const e = sev_host(v.kvm.kernel).rmp.authoritative(pfn).e;
  return { pfn, assigned: e.assigned, gpa: e.gpa, asid: e.asid };
}

/** A VM whose page at base + 1 page the guest made private and wrote 0x5e into. */
function private_page(): { v: CvmVm; gpa: bigint; hva: bigint } {
  const v = vm();
  const gpa = v.base + PG;
  guest(v, function* () {
    expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
    yield* guestStore(gpa, fill(0x5e));
  });
  return { v, gpa, hva: snp_anon_vmm.hva(v, gpa)! };
}

describe('D14 snp_anon: platform and memory', () => {
  test('runs on vendor sev only, as a KVM_X86_SNP_VM; guest RAM is one ordinary memslot over pinned anonymous memory', () => {
    expect(snp_anon_vmm.vendor_cvm!('sev', undefined)).toBe(snp_anon_cvm);
    expect(snp_anon_vmm.vendor_cvm!('cca', undefined)).toBeUndefined();
    expect(snp_anon_vmm.applies(sw_protected_cvm)).toMatch(/D14 runs on SEV-SNP only/);
    expect(DESIGNS.get('snp_anon')).toBe(snp_anon);
    const v = vm();
    expect(v.kvm.arch.vm_type).toBe(KVM_X86_SNP_VM);
    expect(snp_anon_slot(gfn_to_memslot(v.kvm, Number(v.base >> 12n))!)).toBe(true);
    expect(to_kvm_sev_info(v.kvm).pages_locked).toBe(Number(NPAGES));
    expect(cvm_launch(v, v.base, new Uint8Array(0))).toBe(0);
  });

  test('KVM_SET_USER_MEMORY_REGION with KVM_MEM_GUEST_MEMFD on the SNP VM is EINVAL (the region2 flag)', () => {
    const v = vm();
    const r = v.p.ioctl(v.vm_fd, KVM_SET_USER_MEMORY_REGION, {
      slot: 1, flags: 1 << 2, guest_phys_addr: 0n, memory_size: PG, userspace_addr: snp_anon_state(v).hva,
    });
    expect(r).toBe(-1);
    expect(v.p.errno).toBe(Errno.EINVAL);
  });
});

describe('D14 snp_anon: the page state change is an RMPUPDATE of the VMM\'s own page', () => {
  test('to private assigns the hva\'s page to the guest at the gpa; to shared gives it back; contents stay (firmware-defined)', () => {
    const v = vm();
    const gpa = v.base + 3n * PG;
    const hva = snp_anon_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    expect(rmp_of(v, gpa).assigned).toBe(false);
    let shared: Uint8Array | undefined;
    let priv: Uint8Array | undefined;
    guest(v, function* () {
      shared = yield* guestLoad(gpa, 16);
      expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
      yield* guestStore(gpa, fill(0x5e));
      priv = yield* guestLoad(gpa, 16);
    });
    expect(shared).toEqual(fill(0x11));
    expect(priv).toEqual(fill(0x5e));
    const r = rmp_of(v, gpa);
    expect(r).toMatchObject({ assigned: true, gpa, asid: to_kvm_sev_info(v.kvm).asid });
    expect(snp_anon_pfn_owner(v.kvm.kernel, r.pfn)).toBe(v.kvm);

    let back: Uint8Array | undefined;
    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      back = yield* guestLoad(gpa, 16);
      yield* guestStore(gpa + 16n, fill(0x22));
    });
    expect(rmp_of(v, gpa).assigned).toBe(false);
    expect(rmp_of(v, gpa).pfn).toBe(r.pfn);
    // The same page, never rewritten: the guest's old ciphertext, seen by both sides alike.
    expect(back).not.toEqual(fill(0x5e));
    expect(v.p.load(hva, 16)).toEqual(back);
    expect(v.p.load(hva + 16n, 16)).toEqual(fill(0x22));
    expect(v.p.store(hva, fill(0x33))).toBe(0);
  });

  test('a refused KVM_SET_MEMORY_ATTRIBUTES changes nothing in the RMP', () => {
    const v = vm();
    const gpa = v.base;
    const args = { address: gpa, size: PG, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 1 };
    expect(v.p.ioctl(v.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, args)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EINVAL);
    expect(v.p.store(snp_anon_vmm.hva(v, gpa)!, fill(1))).toBe(0);
    expect(rmp_of(v, gpa).assigned).toBe(false);
    expect(v.p.ioctl(v.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, { ...args, flags: 0 })).toBe(0);
    expect(rmp_of(v, gpa).assigned).toBe(true);
  });

  test('deleting the memslot returns its assigned pages to the hypervisor: the VMM can write them again', () => {
    const { v, hva } = private_page();
    expect(v.p.ioctl(v.vm_fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, flags: 0, guest_phys_addr: v.base, memory_size: 0n, userspace_addr: hva - PG })).toBe(0);
    expect(sev_host(v.kvm.kernel).rmp.authoritative(pagemap_pfn(v.p.mm, hva)!).e.assigned).toBe(false);
    expect(v.p.store(hva, fill(0x44))).toBe(0);
  });
});

describe('D14 snp_anon: host accesses to a private (assigned) page', () => {
  test('S1: a VMM store takes an RMP #PF: SIGBUS BUS_ADRERR, and the guest\'s data is intact', () => {
    const { v, gpa, hva } = private_page();
    const r = v.p.store(hva, fill(0xee));
    expect(isSigInfo(r)).toBe(true);
    expect(r).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    expect(guest_reads(v, gpa)).toEqual(fill(0x5e));
  });

  test('S2: a VMM load is not RMP-checked: it returns ciphertext', () => {
    const { v, hva } = private_page();
    const r = v.p.load(hva, 16);
    expect(r).toBeInstanceOf(Uint8Array);
    expect(r).not.toEqual(fill(0x5e));
  });

  test('S3: the kernel\'s copy from the page gets ciphertext; its copy into the page faults: -EFAULT, nothing written', () => {
    // cocosim's read()/write() take a buffer: the kernel's uaccess of the VMM's pointer is
    // process_vm_readv/writev on the VMM itself (as scenario S3 does).
    const { v, gpa, hva } = private_page();
    const remote = [{ iov_base: hva, iov_len: 16 }];
    const got = new Uint8Array(16);
    expect(v.p.process_vm_readv(v.p, [got], 1, remote, 1)).toBe(16);
    expect(got).not.toEqual(fill(0x5e));
    expect(v.p.process_vm_writev(v.p, [fill(0x33)], 1, remote, 1)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EFAULT);
    expect(guest_reads(v, gpa)).toEqual(fill(0x5e));
  });

  test('S4: GUP of a private page works (get_user_pages, pin_user_pages FOLL_LONGTERM): no design flag guards it', () => {
    const { v, hva } = private_page();
    const pfn = pagemap_pfn(v.p.mm, hva)!;
    const got: number[] = [];
    expect(get_user_pages(v.p.mm, Number(hva / PG), 1, FOLL_WRITE, got)).toBe(1);
    expect(got).toEqual([pfn]);
    put_page(v.kvm.kernel.store, pfn);
    const pinned: number[] = [];
    expect(pin_user_pages(v.p.mm, Number(hva / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pinned)).toBe(1);
    expect(pinned).toEqual([pfn]);
    unpin_user_pages_dirty_lock(v.kvm.kernel, pinned, 1, false);
  });
});

describe('D14 snp_anon: 2 MiB pages (S6)', () => {
  const HUGE = 512n;

  test('a THP-backed 2 MiB run made private is one 2 MiB RMP entry and NPT mapping; sharing 4 KiB PSMASHes it, and the VMM\'s write to that page splits its PMD', () => {
    const vendor = snp_anon_vmm.vendor_cvm!('sev', snp_cvm)!;
    expect(vendor).toBe(snp_anon_vendor_cvm(snp_cvm));
    expect(vendor.launch_update).toBeUndefined();
    const v = cvm_create(new Process(host()), vendor, snp_anon_vmm, { size: 2n * HUGE * PG, page_size: 2 << 20 });
    if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
    const gpa = v.base;
    const neighbour = gpa + 7n * PG;
    const hva = snp_anon_vmm.hva(v, gpa)!;
    const pmd = Number(hva / PG / HUGE);
    expect(v.p.mm.pgd.pmds.has(pmd)).toBe(true);
    const rmp = sev_host(v.kvm.kernel).rmp;
    const pfn = pagemap_pfn(v.p.mm, hva)!;
    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, HUGE, true)).toBe(0n);
      yield* guestStore(neighbour, fill(0x5e));
    });
    expect(rmp.authoritative(pfn)).toMatchObject({ level: PG_LEVEL_2M, e: { assigned: true } });
    expect(kvm_tdp_mmu_spte(v.kvm, Number(neighbour >> 12n), true)?.level).toBe(2);

    guest(v, function* () {
      expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      yield* guestStore(neighbour, fill(0x5f));
    });
    expect(rmp.authoritative(pfn)).toMatchObject({ level: PG_LEVEL_4K, e: { assigned: false } });
    expect(rmp.authoritative(pfn + 7)).toMatchObject({ level: PG_LEVEL_4K, e: { assigned: true } });
    expect(kvm_tdp_mmu_spte(v.kvm, Number(neighbour >> 12n), true)?.level).toBe(1);
    // The VMM writes its now shared page through the 2 MiB PMD: RMP page-size fault, PMD split, retried.
    expect(v.p.mm.pgd.pmds.has(pmd)).toBe(true);
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    expect(v.p.mm.pgd.pmds.has(pmd)).toBe(false);
    expect(pagemap_pfn(v.p.mm, hva)).toBe(pfn);
    expect(v.p.store(hva + 7n * PG, fill(0xee))).toMatchObject({ signo: 'SIGBUS', si_code: 'BUS_ADRERR' });
    expect(guest_reads(v, neighbour)).toEqual(fill(0x5f));
  });
});
