/**
 * tdx_cvm through kvm/src/cvm.ts on a TDX host with the upstream design (QEMU's guest_memfd VMM):
 * the launch and MRTD, the guest's MapGPA + ACCEPT conversions answered by the VMM loop with
 * their contents and costs, MapGPA's chunks and a failed chunk, and the guest touching a private
 * page it never accepted.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, RingSink } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process } from '@cocosim/mm';
import {
  KVM_EXIT_HLT, KVM_RUN, KVM_X86_TDX_VM, cvm_create, cvm_launch, cvm_run, guestFill, guestLoad, kvm_vcpu_set_guest_program, upstream,
  upstream_vmm, type CvmConversion, type CvmVm,
} from '@cocosim/kvm';
import { tdx_cvm, tdx_cvm_shared_mask } from './cvm.js';
import { tdxVendorPlugin } from './index.js';
import { tdx_module_of } from './tdx_module.js';
import { tdx_mrtd, tdx_td, to_kvm_tdx } from './tdx.js';
import { td_create, td_finalize, td_init_mem_region, td_vcpu_add, tdx_host, type TdxHost } from './tdx_util.js';

const PAGE = 4096;
const PG = 4096n;
const hosts: TdxHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(): TdxHost {
  const h = tdx_host({ seed: 3, registrars: [upstream.registrar()] });
  hosts.push(h);
  return h;
}

/** A TD of `size` bytes of upstream (memfd + guest_memfd) memory, created through cvm_create(). */
function create(h: TdxHost = host(), size = 16n * PG): CvmVm {
  const vm = cvm_create(new Process(h.kernel), tdx_cvm, upstream_vmm, { size });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

/** Two pages, page i filled with `seed + i` and its index at byte 0. */
function image(seed: number): Uint8Array {
  const img = new Uint8Array(2 * PAGE);
  for (let i = 0; i < 2; i++) {
    img.fill(seed + i, i * PAGE, (i + 1) * PAGE);
    img[i * PAGE] = i;
  }
  return img;
}

/** A TD launched with `img` at its base: the VM. */
function launched(img: Uint8Array, h?: TdxHost): CvmVm {
  const vm = create(h);
  expect(cvm_launch(vm, vm.base, img)).toBe(0);
  return vm;
}

function filled(data: Uint8Array | undefined, byte: number, len = PAGE): boolean {
  return data !== undefined && data.length === len && data.every((b) => b === byte);
}

describe('tdx_cvm: create and launch', () => {
  test('cvm_create makes an initialized TD with MapGPA exits; the plugin carries the cvm', () => {
    const h = host();
    const vm = create(h);
    expect(vm.kvm.arch.vm_type).toBe(KVM_X86_TDX_VM);
    expect(tdxVendorPlugin.cvm).toBe(tdx_cvm);
    // GPAW 48: the shared bit is GPA bit 47.
    expect(tdx_cvm_shared_mask(vm)).toBe(1n << 47n);
    expect(tdx_cvm.shared_gpa(vm, vm.base + PG)).toBe(vm.base + PG + (1n << 47n));
    // KVM_TDX_INIT_VM ran: the TD holds its HKID.
    expect(tdx_module_of(h.kernel).hkid_owner(to_kvm_tdx(vm.kvm).hkid)).toBe(tdx_td(vm.kvm));
    // Not finalized: no MRTD yet, and KVM_RUN is refused (tdx_vcpu_pre_run()).
    expect(tdx_cvm.measurement!(vm)).toBe('');
    expect(vm.p.ioctl(vm.vcpu_fd, KVM_RUN, 0)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
  });

  test('MRTD is stable for one image, changes with a byte or the page order, and matches the selftest-style launch', () => {
    const a = launched(image(0x40));
    const mrtd = tdx_cvm.measurement!(a);
    expect(mrtd).toMatch(/^[0-9a-f]{96}$/);
    expect(tdx_cvm.measurement!(launched(image(0x40)))).toBe(mrtd);
    const changed = image(0x40);
    changed[PAGE + 100]! ^= 1;
    expect(tdx_cvm.measurement!(launched(changed))).not.toBe(mrtd);

    // The same pages added in the other order.
    const vm = create();
    const img = image(0x40);
    expect(vm.design.convert(vm, vm.base, 2n * PG, true)).toBe(0);
    const src = vm.p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(vm.p.store(src, img)).toBe(0);
    expect(tdx_cvm.launch_update!(vm, vm.base + PG, src + PG, PG)).toBe(0);
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(0);
    expect(tdx_cvm.launch_finish!(vm)).toBe(0);
    expect(tdx_cvm.measurement!(vm)).not.toBe(mrtd);

    // td_create()/td_init_mem_region() at the same base: the same MRTD.
    const td = td_create(host(), { base: 1n << 32n, size: 16n * PG });
    td_vcpu_add(td);
    td_init_mem_region(td, [img.slice(0, PAGE), img.slice(PAGE)]);
    td_finalize(td);
    expect(Buffer.from(tdx_mrtd(td.kvm)!).toString('hex')).toBe(mrtd);
  });

  test('launch_update refuses a length that is not whole pages and a range the design left shared', () => {
    const vm = create();
    const src = vm.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(tdx_cvm.launch_update!(vm, vm.base, src, 100n)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    // Shared gfn: kvm_gmem_populate() refuses it.
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
  });

  test('the guest reads its image in private memory; the VMM\'s mapping of it holds nothing of it', () => {
    const img = image(0x10);
    const vm = launched(img);
    let seen: Uint8Array | undefined;
    const r = cvm_run(vm, function* () {
      seen = yield* guestLoad(vm.base, 2 * PAGE);
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect(Buffer.from(seen!).equals(Buffer.from(img))).toBe(true);
    // The design discarded the shared copy when it converted the image range.
    expect(filled(vm.p.load(upstream_vmm.hva(vm, vm.base)!, 64) as Uint8Array, 0, 64)).toBe(true);
  });
});

describe('tdx_cvm: conversions through cvm_run', () => {
  test('shared -> private -> shared -> private: requests, contents from both sides, and costs', () => {
    const h = host();
    const trace = new RingSink();
    h.kernel.tracer.addSink(trace);
    const vm = launched(image(1), h);
    const X = vm.base + 4n * PG;
    const XS = tdx_cvm.shared_gpa(vm, X);
    const hva = upstream_vmm.hva(vm, X)!;
    expect(vm.p.store(hva, new Uint8Array(PAGE).fill(0xaa))).toBe(0);
    const cost = h.kernel.cost;
    const count = (b: ReturnType<typeof cost.end>, name: string): number => b.items.find((i) => i.name === name)?.count ?? 0;
    const rec: Record<string, Uint8Array | bigint> = {};

    // Shared: the guest's shared alias is the VMM's memory.
    const t0 = trace.events('cocosim_tdx_seamcall').length;
    cost.begin('to_private');
    const r1 = cvm_run(vm, function* () {
      rec.shared0 = yield* guestLoad(XS, PAGE);
      rec.rc1 = yield* tdx_cvm.guest_convert(vm, X, 1n, true);
      rec.priv = yield* guestLoad(X, PAGE);
      yield* guestFill(X, 0x5a, PAGE);
    });
    const to_private = cost.end('to_private');
    expect(r1).toEqual({ ret: 0, errno: 0, exit_reason: KVM_EXIT_HLT, conversions: [{ gpa: X, npages: 1n, to_private: true, ret: 0, errno: 0 }] });
    expect(filled(rec.shared0 as Uint8Array, 0xaa)).toBe(true);
    expect(rec.rc1).toBe(0n);
    // To private: TDG.MEM.PAGE.ACCEPT zeroes the page with the TD's key.
    expect(filled(rec.priv as Uint8Array, 0)).toBe(true);
    const calls = trace.events('cocosim_tdx_seamcall').slice(t0).map((e) => String(e.args.fn));
    // ACCEPT of a FREE page: EPT violation, AUG (the launch's SEPT page already covers X), ACCEPT again.
    expect(calls).toEqual(['TDG.VP.VMCALL', 'TDG.MEM.PAGE.ACCEPT', 'TDH.MEM.PAGE.AUG', 'TDG.MEM.PAGE.ACCEPT']);
    expect(count(to_private, 'tdx_tdh_mem_page_aug')).toBe(1);
    expect(count(to_private, 'tdx_tdg_mem_page_accept_4k')).toBe(1);
    expect(count(to_private, 'kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(1);
    expect(to_private.depends_on).toContain('tdx_tdh_mem_page_aug');
    const gfn = Number(X >> 12n);
    expect(tdx_module_of(h.kernel).sept_state(tdx_td(vm.kvm)!, gfn)).toBe('MAPPED');
    // The VMM's mapping: the shared page was discarded; the guest's 0x5a is nowhere in it.
    expect(filled(vm.p.load(hva, PAGE) as Uint8Array, 0)).toBe(true);

    cost.begin('to_shared');
    const r2 = cvm_run(vm, function* () {
      rec.rc2 = yield* tdx_cvm.guest_convert(vm, X, 1n, false);
      rec.shared1 = yield* guestLoad(XS, PAGE);
    });
    const to_shared = cost.end('to_shared');
    expect(r2.conversions).toEqual([{ gpa: X, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(rec.rc2).toBe(0n);
    // To shared: the private page is destroyed; the shared page is the (discarded, so zero) memfd page.
    expect(filled(rec.shared1 as Uint8Array, 0)).toBe(true);
    expect(count(to_shared, 'tdx_tdh_phymem_page_wbinvd')).toBe(1);
    expect(count(to_shared, 'tdx_clear_page_4k')).toBe(1);
    expect(tdx_module_of(h.kernel).sept_state(tdx_td(vm.kvm)!, gfn)).toBe('FREE');
    // The VMM writes the shared page and the guest sees it.
    expect(vm.p.store(hva, new Uint8Array(8).fill(0xbb))).toBe(0);

    const r3 = cvm_run(vm, function* () {
      rec.shared2 = yield* guestLoad(XS, 8);
      rec.rc3 = yield* tdx_cvm.guest_convert(vm, X, 1n, true);
      rec.priv2 = yield* guestLoad(X, PAGE);
    });
    expect(r3.conversions).toHaveLength(1);
    expect(rec.shared2).toEqual(new Uint8Array(8).fill(0xbb));
    // Private again: zeros once more, neither the 0x5a of before nor the VMM's 0xbb.
    expect(filled(rec.priv2 as Uint8Array, 0)).toBe(true);
  });

  test('MapGPA exits in 2 MiB chunks without the shared bit; a chunk the VMM fails fails the conversion (-EIO)', () => {
    const vm = create(host(), 4n << 20n);
    expect(cvm_launch(vm, vm.base, new Uint8Array(0))).toBe(0);
    const X = vm.base;
    const rc: bigint[] = [];
    kvm_vcpu_set_guest_program(vm.vcpu!, function* () {
      rc.push(yield* tdx_cvm.guest_convert(vm, X + (1n << 20n), 16n, false));
      rc.push(yield* tdx_cvm.guest_convert(vm, X, 768n, true));
    }, { page_tables: tdx_cvm.page_tables! });
    const reqs: CvmConversion[] = [];
    const run = vm.vcpu!.run;
    for (;;) {
      expect(vm.p.ioctl(vm.vcpu_fd, KVM_RUN, 0)).toBe(0);
      const req = tdx_cvm.conversion_exit(vm, run);
      if (req === undefined) break;
      reqs.push(req);
      // The VMM grants all but the second chunk of the 3 MiB request.
      tdx_cvm.complete_conversion(vm, run, reqs.length !== 3);
      if (reqs.length === 3) expect(run.hypercall.ret).toBe(BigInt(Errno.EINVAL));
    }
    expect(run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(reqs).toEqual([
      { gpa: X + (1n << 20n), npages: 16n, to_private: false },
      { gpa: X, npages: 512n, to_private: true },
      { gpa: X + (2n << 20n), npages: 256n, to_private: true },
    ]);
    expect(rc).toEqual([0n, -BigInt(Errno.EIO)]);
  });
});

describe('tdx_cvm: the guest and pages it did not accept', () => {
  test('the VMM makes a page private behind the guest\'s back; the guest\'s load kills the TD (SEPT_VE_DISABLE): KVM_RUN -EIO', () => {
    const h = host();
    const trace = new RingSink();
    h.kernel.tracer.addSink(trace);
    const vm = launched(image(2), h);
    const X = vm.base + 8n * PG;
    expect(vm.design.convert(vm, X, PG, true)).toBe(0);
    let done = false;
    const r = cvm_run(vm, function* () {
      yield* guestLoad(X, 8);
      done = true;
    });
    expect(done).toBe(false);
    expect(r.ret).toBe(-1);
    expect(r.errno).toBe(Errno.EIO);
    expect(r.conversions).toEqual([]);
    expect(vm.kvm.vm_dead).toBe(true);
    // The EPT violation AUGed the page; the guest's access to it PENDING is what KVM refuses.
    expect(tdx_module_of(h.kernel).sept_state(tdx_td(vm.kvm)!, Number(X >> 12n))).toBe('PENDING');
    expect(trace.events('console').map((e) => e.args.msg)).toContain(`kvm_intel: Guest access before accepting 0x${X.toString(16)} on vCPU 0`);
  });
});
