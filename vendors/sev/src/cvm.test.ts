/*
 * snp_cvm through kvm/src/cvm.ts on an SNP host with the upstream design (QEMU's guest_memfd VMM):
 * the launch and its digest, the guest's PSC + PVALIDATE conversions answered by the VMM loop with
 * their contents and costs, a request the VMM fails, batches of PSC entries, and the guest
 * touching a private page it never validated (#VC).
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import {
  KVM_EXIT_HLT, KVM_EXIT_SHUTDOWN, KVM_HC_MAP_GPA_RANGE, KVM_RUN, KVM_X86_SNP_VM, cvm_create, cvm_launch, cvm_run, guestFill, guestLoad, kvm_vcpu_set_guest_program,
  upstream, upstream_vmm, type CvmConversion, type CvmVm,
} from '@cocosim/kvm';
import { gmem_pfn, image, sevHost, type SimHost } from './snp_env.test-util.js';
import { SNP_CVM_GHCB_SLOT, snp_cvm, snp_cvm_state } from './cvm.js';
import {
  SVM_EXIT_NOT_VALIDATED, VMGEXIT_PSC_ERROR_GENERIC, X86_TRAP_VC, sevVendorPlugin, sev_host, snp_launch_digest, to_kvm_sev_info,
} from './index.js';

const PG = BigInt(PAGE_SIZE);

function host(seed = 0): SimHost {
  return sevHost({}, seed, 1 << 15, [upstream.registrar()]);
}

/** An SNP VM of `size` bytes of upstream (memfd + guest_memfd) memory, created through cvm_create(). */
function create(h: SimHost = host(), size = 16n * PG): CvmVm {
  const vm = cvm_create(h.process(), snp_cvm, upstream_vmm, { size });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

/** An SNP VM launched with `img` at its base. */
function launched(img: Uint8Array, h?: SimHost): CvmVm {
  const vm = create(h);
  expect(cvm_launch(vm, vm.base, img)).toBe(0);
  return vm;
}

function filled(data: Uint8Array | undefined, byte: number, len = PAGE_SIZE): boolean {
  return data !== undefined && data.length === len && data.every((b) => b === byte);
}

describe('snp_cvm: create and launch', () => {
  test('cvm_create makes an SNP VM with a launch context, MapGPA exits and the GHCB slot above guest RAM', () => {
    const vm = create();
    expect(vm.kvm.arch.vm_type).toBe(KVM_X86_SNP_VM);
    expect(sevVendorPlugin.cvm).toBe(snp_cvm);
    expect(to_kvm_sev_info(vm.kvm).snp_context).toBeGreaterThanOrEqual(0);
    expect(vm.kvm.arch.hypercall_exit_enabled & (1 << KVM_HC_MAP_GPA_RANGE)).not.toBe(0);
    // 4 GiB + 64 KiB of RAM: the GHCB at the next 2 MiB boundary, in the last user slot.
    const s = snp_cvm_state(vm);
    expect(s.ghcb_gpa).toBe(vm.base + (2n << 20n));
    expect(SNP_CVM_GHCB_SLOT).toBe(32763);
    expect(snp_cvm.shared_gpa(vm, vm.base)).toBe(vm.base);
  });

  test('the launch digest is stable for one image and changes with a byte or the page order', () => {
    const img = image(2, 0x40);
    const d = snp_cvm.measurement!(launched(img));
    expect(d).toMatch(/^[0-9a-f]{96}$/);
    expect(snp_cvm.measurement!(launched(image(2, 0x40), host(7)))).toBe(d);
    const changed = image(2, 0x40);
    changed[PAGE_SIZE + 100]! ^= 1;
    expect(snp_cvm.measurement!(launched(changed))).not.toBe(d);

    const vm = create();
    expect(vm.design.convert(vm, vm.base, 2n * PG, true)).toBe(0);
    const src = vm.p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(vm.p.store(src, img)).toBe(0);
    expect(snp_cvm.launch_update!(vm, vm.base + PG, src + PG, PG)).toBe(0);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(0);
    expect(snp_cvm.launch_finish!(vm)).toBe(0);
    expect(snp_cvm.measurement!(vm)).not.toBe(d);
    expect(snp_launch_digest(vm.kvm)!.toString('hex')).toBe(snp_cvm.measurement!(vm));
  });

  test('launch_update of a range the design left shared is -EIO (snp_launch_update() over a failed kvm_gmem_populate()) and changes nothing', () => {
    const vm = create();
    const src = vm.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const before = snp_cvm.measurement!(vm);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EIO);
    expect(snp_cvm.measurement!(vm)).toBe(before);
  });

  test('the guest reads its image; the VMM\'s mapping holds none of it', () => {
    const img = image(2, 0x10);
    const vm = launched(img);
    let seen: Uint8Array | undefined;
    const r = cvm_run(vm, function* () {
      seen = yield* guestLoad(vm.base, 2 * PAGE_SIZE);
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect(Buffer.from(seen!).equals(Buffer.from(img))).toBe(true);
    expect(filled(vm.p.load(upstream_vmm.hva(vm, vm.base)!, 64) as Uint8Array, 0, 64)).toBe(true);
  });
});

describe('snp_cvm: conversions through cvm_run', () => {
  test('shared -> private -> shared -> private: requests, contents from both sides, and costs', () => {
    const h = host();
    const vm = launched(image(1, 1), h);
    const X = vm.base + 4n * PG;
    const hva = upstream_vmm.hva(vm, X)!;
    expect(vm.p.store(hva, new Uint8Array(PAGE_SIZE).fill(0xaa))).toBe(0);
    const count = (b: ReturnType<typeof h.cost.end>, name: string): number => b.items.find((i) => i.name === name)?.count ?? 0;
    const rec: Record<string, Uint8Array | bigint> = {};
    const rmp = sev_host(h.kernel).rmp;

    h.cost.begin('to_private');
    const r1 = cvm_run(vm, function* () {
      rec.shared0 = yield* guestLoad(X, PAGE_SIZE);
      rec.rc1 = yield* snp_cvm.guest_convert(vm, X, 1n, true);
      rec.priv = yield* guestLoad(X, PAGE_SIZE);
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    });
    const to_private = h.cost.end('to_private');
    expect(r1).toEqual({ ret: 0, errno: 0, exit_reason: KVM_EXIT_HLT, conversions: [{ gpa: X, npages: 1n, to_private: true, ret: 0, errno: 0 }] });
    expect(filled(rec.shared0 as Uint8Array, 0xaa)).toBe(true);
    expect(rec.rc1).toBe(0n);
    // After PVALIDATE the guest reads what the gmem page holds: the host's zeroes through the guest's key, neither zeros nor the shared data.
    expect(filled(rec.priv as Uint8Array, 0)).toBe(false);
    expect(filled(rec.priv as Uint8Array, 0xaa)).toBe(false);
    const pfn = gmem_pfn(vm.kvm, X);
    expect(rmp.authoritative(pfn).e).toMatchObject({ assigned: true, validated: true, gpa: X, asid: to_kvm_sev_info(vm.kvm).asid });
    expect(count(to_private, 'sev_rmpupdate')).toBe(1);
    expect(count(to_private, 'sev_pvalidate_4k')).toBe(1);
    expect(count(to_private, 'kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(1);
    expect(to_private.depends_on).toContain('sev_pvalidate_4k');
    expect(h.trace.events('cocosim_snp_rmpupdate').some((e) => e.args.pfn === pfn && e.args.assigned)).toBe(true);
    // The VMM's mapping: the shared page was discarded; the guest's 0x5a is nowhere in it.
    expect(filled(vm.p.load(hva, PAGE_SIZE) as Uint8Array, 0)).toBe(true);

    h.cost.begin('to_shared');
    const r2 = cvm_run(vm, function* () {
      rec.rc2 = yield* snp_cvm.guest_convert(vm, X, 1n, false);
      rec.shared1 = yield* guestLoad(X, PAGE_SIZE);
    });
    const to_shared = h.cost.end('to_shared');
    expect(r2.conversions).toEqual([{ gpa: X, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(rec.rc2).toBe(0n);
    // The shared page is the memfd page the design discarded at to-private: zeros.
    expect(filled(rec.shared1 as Uint8Array, 0)).toBe(true);
    // Rescinded by the guest, then given back to the hypervisor when the design punched guest_memfd.
    expect(count(to_shared, 'sev_pvalidate_4k')).toBe(1);
    expect(count(to_shared, 'sev_rmpupdate')).toBe(1);
    expect(count(to_shared, 'clflush_4k')).toBe(1);
    expect(rmp.authoritative(pfn).e.assigned).toBe(false);
    expect(vm.p.store(hva, new Uint8Array(8).fill(0xbb))).toBe(0);

    const r3 = cvm_run(vm, function* () {
      rec.shared2 = yield* guestLoad(X, 8);
      rec.rc3 = yield* snp_cvm.guest_convert(vm, X, 1n, true);
      rec.priv2 = yield* guestLoad(X, PAGE_SIZE);
    });
    expect(r3.conversions).toHaveLength(1);
    expect(rec.shared2).toEqual(new Uint8Array(8).fill(0xbb));
    // A new gmem page: not the 0x5a of before, nor the VMM's data.
    const priv2 = rec.priv2 as Uint8Array;
    expect(priv2.some((b) => b !== 0x5a) && priv2.some((b) => b !== 0xbb)).toBe(true);
  });

  test('more than VMGEXIT_PSC_MAX_ENTRY pages go in several requests; a request the VMM fails returns PSC_ERROR_GENERIC', () => {
    const vm = create(host(), 4n << 20n);
    expect(cvm_launch(vm, vm.base, new Uint8Array(0))).toBe(0);
    // 300 4 KiB pages starting off a 2 MiB boundary: 253 entries, then 47.
    const X = vm.base + PG;
    const rc: bigint[] = [];
    kvm_vcpu_set_guest_program(vm.vcpu!, function* () {
      rc.push(yield* snp_cvm.guest_convert(vm, X, 300n, true));
      rc.push(yield* snp_cvm.guest_convert(vm, X, 2n, false));
    });
    const reqs: CvmConversion[] = [];
    const run = vm.vcpu!.run;
    for (;;) {
      expect(vm.p.ioctl(vm.vcpu_fd, KVM_RUN, 0)).toBe(0);
      const req = snp_cvm.conversion_exit(vm, run);
      if (req === undefined) break;
      reqs.push(req);
      const ok = reqs.length !== 3;
      if (ok) expect(vm.design.convert(vm, req.gpa, req.npages * PG, req.to_private)).toBe(0);
      snp_cvm.complete_conversion(vm, run, ok);
    }
    expect(run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(reqs).toEqual([
      { gpa: X, npages: 253n, to_private: true },
      { gpa: X + 253n * PG, npages: 47n, to_private: true },
      { gpa: X, npages: 2n, to_private: false },
    ]);
    expect(rc).toEqual([0n, VMGEXIT_PSC_ERROR_GENERIC]);
    // The failed to-shared rescinded the pages first (snp_set_memory_shared()): they stay private, unvalidated.
    expect(sev_host(vm.kvm.kernel).rmp.authoritative(gmem_pfn(vm.kvm, X)).e).toMatchObject({ assigned: true, validated: false });
  });
});

describe('snp_cvm: the guest and pages it did not validate', () => {
  test('the VMM makes a page private behind the guest\'s back; the guest\'s load takes #VC (page not validated)', () => {
    const h = host();
    const vm = launched(image(1, 2), h);
    const X = vm.base + 8n * PG;
    expect(vm.design.convert(vm, X, PG, true)).toBe(0);
    let done = false;
    const r = cvm_run(vm, function* () {
      yield* guestLoad(X, 8);
      done = true;
    });
    expect(done).toBe(false);
    expect(r).toEqual({ ret: 0, errno: 0, exit_reason: KVM_EXIT_SHUTDOWN, conversions: [] });
    expect(h.trace.events('cocosim_sev_guest_exception').map((e) => e.args)).toEqual([
      { vcpu_id: 0, vector: X86_TRAP_VC, error_code: BigInt(SVM_EXIT_NOT_VALIDATED), gpa: X },
    ]);
    // KVM gave the page to the guest (assigned, Guest-Invalid) on the access's fault.
    expect(sev_host(h.kernel).rmp.authoritative(gmem_pfn(vm.kvm, X)).e).toMatchObject({ assigned: true, validated: false });
  });
});
