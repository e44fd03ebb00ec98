/**
 * sev_debug.ts: the "sev.firmware" / "sev.vms" digest parts follow the RMP and the firmware (a
 * launch page, a conversion) and stay put across failed ioctls; the "sev:" DEBUG_VM rules catch
 * a corrupted RMP and are quiet over a whole launch + conversion flow checked call by call.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, stateDigestDiff } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, check_vm, debug_vm_process, mm_state_digest, type DebugVmFinding } from '@cocosim/mm';
import { cvm_create, cvm_launch, cvm_run, guestFill, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import { sevHost, type SimHost } from './snp_env.test-util.js';
import { snp_cvm, snp_cvm_state } from './cvm.js';
import { sev_host } from './host.js';
import type { RmpEntry } from './rmp.js';
import { to_kvm_sev_info } from './sev.js';

const PG = BigInt(PAGE_SIZE);
const img = new Uint8Array(PAGE_SIZE).fill(0x3c);

function host(): SimHost {
  return sevHost({}, 5, 1 << 15, [upstream.registrar()]);
}

function create(p: Process): CvmVm {
  const vm = cvm_create(p, snp_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

function sev_violations(h: SimHost): string[] {
  return check_vm(h.kernel).filter((v) => v.rule.startsWith('sev:')).map((v) => `${v.rule} ${v.message}`);
}

/** The RMP's entries, writable, for the tests that corrupt them. */
function rmp_entries(h: SimHost): Map<number, RmpEntry> {
  return sev_host(h.kernel).rmp.debug_entries() as Map<number, RmpEntry>;
}

describe('sev state digest', () => {
  test('a launch page and a conversion change sev.firmware; failed ioctls change nothing', () => {
    const h = host();
    const vm = create(h.process());
    const { sev_fd } = snp_cvm_state(vm);
    const src = vm.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(vm.p.store(src, img)).toBe(0);
    const d0 = mm_state_digest(h.kernel);
    expect(Object.keys(d0.parts)).toEqual(expect.arrayContaining(['sev.firmware', 'sev.vms']));

    // SNP_LAUNCH_UPDATE over a range the design left shared: kvm_gmem_populate() refuses it
    // (-EIO, as snp_launch_update() turns every populate failure) after __kvm_gmem_get_pfn() put
    // the guest_memfd folio in the page cache, where Linux leaves it: mm's parts move, the RMP,
    // the firmware and KVM do not.
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EIO);
    const d0b = mm_state_digest(h.kernel);
    expect(stateDigestDiff(d0, d0b).filter((x) => !x.startsWith('mm.'))).toEqual([]);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(stateDigestDiff(d0b, mm_state_digest(h.kernel))).toEqual([]);

    expect(vm.design.convert(vm, vm.base, PG, true)).toBe(0);
    const d1 = mm_state_digest(h.kernel);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(0);
    // SNP_LAUNCH_UPDATE: the page assigned in the RMP, the launch digest extended.
    expect(stateDigestDiff(d1, mm_state_digest(h.kernel))).toEqual(expect.arrayContaining(['sev.firmware']));

    // The same page again: it is prepared in guest_memfd, so kvm_gmem_populate() refuses it; nothing moves.
    const d1b = mm_state_digest(h.kernel);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EIO);
    expect(stateDigestDiff(d1b, mm_state_digest(h.kernel))).toEqual([]);

    expect(snp_cvm.launch_finish!(vm)).toBe(0);
    const d2 = mm_state_digest(h.kernel);
    expect(sev_fd).toBeGreaterThanOrEqual(0);

    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* snp_cvm.guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    });
    expect(r.ret).toBe(0);
    const d3 = mm_state_digest(h.kernel);
    expect(stateDigestDiff(d2, d3)).toEqual(expect.arrayContaining(['sev.firmware', 'kvm.vms']));
    expect(mm_state_digest(h.kernel).digest).toBe(d3.digest);
  });
});

describe('sev DEBUG_VM rules', () => {
  /** A launched SNP VM with page 4 converted to private by the guest and written. */
  function launched(h: SimHost): CvmVm {
    const vm = create(h.process());
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const r = cvm_run(vm, function* () {
      yield* snp_cvm.guest_convert(vm, vm.base + 4n * PG, 1n, true);
      yield* guestFill(vm.base + 4n * PG, 0x11, PAGE_SIZE);
    });
    expect(r.ret).toBe(0);
    return vm;
  }

  /** The pfn the RMP assigns at `gpa`, by a search of its entries. */
  function assigned_at(h: SimHost, gpa: bigint): number {
    for (const [pfn, e] of rmp_entries(h)) if (e.assigned && e.gpa === gpa) return pfn;
    throw new Error('not assigned');
  }

  test('quiet on a launched and converted VM', () => {
    const h = host();
    launched(h);
    expect(sev_violations(h)).toEqual([]);
  });

  test('rmp_map: a private page given another GPA or ASID is caught; not validated is allowed', () => {
    const h = host();
    const vm = launched(h);
    const X = vm.base + 4n * PG;
    const pfn = assigned_at(h, X);
    const entries = rmp_entries(h);
    const e = entries.get(pfn)!;
    entries.set(pfn, { ...e, gpa: X + PG });
    expect(sev_violations(h).some((m) => m.startsWith('sev:rmp_map') && m.includes(`pfn 0x${pfn.toString(16)}`) && m.includes('another GPA'))).toBe(true);
    // A page no live VM's ASID holds.
    entries.set(pfn, { ...e, asid: to_kvm_sev_info(vm.kvm).asid + 1 });
    const v = sev_violations(h);
    expect(v.some((m) => m.startsWith('sev:rmp_map'))).toBe(true);
    expect(v.some((m) => m.startsWith('sev:rmp_owner') && m.includes(`pfn 0x${pfn.toString(16)}`))).toBe(true);
    entries.set(pfn, { ...e, validated: false });
    expect(sev_violations(h)).toEqual([]);
    entries.set(pfn, e);
  });

  test('rmp_free: a free page with an RMP entry is caught', () => {
    const h = host();
    const vm = launched(h);
    const free = h.kernel.page_alloc.alloc_page(0);
    h.kernel.page_alloc.__free_page(free);
    rmp_entries(h).set(free, { ...rmp_entries(h).get(assigned_at(h, vm.base))!, gpa: vm.base + 8n * PG });
    expect(sev_violations(h).some((m) => m.startsWith('sev:rmp_free') && m.includes(`pfn 0x${free.toString(16)}`))).toBe(true);
    rmp_entries(h).delete(free);
  });

  test('debug_vm_process: create, launch, a failed launch update and conversions both ways pass every check', () => {
    const h = host();
    const findings: DebugVmFinding[] = [];
    const p = debug_vm_process(new Process(h.kernel), { onFinding: (f) => findings.push(f) });
    const vm = create(p);
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    // SNP_LAUNCH_UPDATE of the launched page again: -EIO, checked to change nothing.
    const src = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.store(src, img)).toBe(0);
    expect(snp_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(p.errno).toBe(Errno.EIO);
    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* snp_cvm.guest_convert(vm, X, 2n, true);
      yield* guestFill(X, 0x77, 2 * PAGE_SIZE);
      yield* snp_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(r.ret).toBe(0);
    expect(r.conversions.length).toBe(2);
    expect(findings).toEqual([]);
  });
});
