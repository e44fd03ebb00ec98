/**
 * cca_debug.ts: the "cca.rmm" / "cca.vms" digest parts follow the RMM (a populated page, a
 * conversion) and stay put across failed ioctls; the "cca:" DEBUG_VM rules catch a corrupted RTT
 * or granule table and are quiet over a whole launch + conversion flow checked call by call.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, stateDigestDiff } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, check_vm, debug_vm_process, mm_state_digest, mmRegistrar, type DebugVmFinding } from '@cocosim/mm';
import { cvm_create, cvm_launch, cvm_run, guestFill, kvmRegistrar, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import { cca_cvm, rme_enable_cap } from './cvm.js';
import { ccaVendorPlugin } from './index.js';
import { GRANULE_STATE_DATA, GRANULE_STATE_DELEGATED, type GranuleState } from './rmi.js';
import { rmm_of, type RmmRealm, type RmmRec, type Rtte } from './rmm.js';
import { kvm_realm } from './rme.js';
import { KVM_CAP_ARM_RME_ACTIVATE_REALM, KVM_CAP_ARM_RME_POPULATE_REALM, KVM_ARM_RME_POPULATE_FLAGS_MEASURE } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const img = new Uint8Array(PAGE_SIZE).fill(0x3c);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function host(): Kernel {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: ccaVendorPlugin.x86_ops }),
    ccaVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  return c.resolve(Kernel);
}

function create(p: Process): CvmVm {
  const vm = cvm_create(p, cca_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

function cca_violations(kernel: Kernel): string[] {
  return check_vm(kernel).filter((v) => v.rule.startsWith('cca:')).map((v) => `${v.rule} ${v.message}`);
}

function rd_of(vm: CvmVm): RmmRealm {
  return rmm_of(vm.kvm.kernel).realms.get(kvm_realm(vm.kvm).rd)!;
}

type Granules = Map<number, { state: GranuleState; realm: RmmRealm | null; rec: RmmRec | null }>;

describe('cca state digest', () => {
  test('a populated page and a conversion change cca.rmm; failed ioctls change nothing', () => {
    const kernel = host();
    const vm = create(new Process(kernel));
    const populate = (gpa: bigint): number => rme_enable_cap(vm, KVM_CAP_ARM_RME_POPULATE_REALM, { base: gpa, size: PG, flags: KVM_ARM_RME_POPULATE_FLAGS_MEASURE });
    const d0 = mm_state_digest(kernel);
    expect(Object.keys(d0.parts)).toEqual(expect.arrayContaining(['cca.rmm', 'cca.vms']));
    // POPULATE over a range the design left shared: refused, nothing moves in the RMM or KVM.
    expect(populate(vm.base)).toBe(-1);
    expect(stateDigestDiff(d0, mm_state_digest(kernel)).filter((x) => !x.startsWith('mm.'))).toEqual([]);

    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const d1 = mm_state_digest(kernel);
    expect(stateDigestDiff(d0, d1)).toEqual(expect.arrayContaining(['cca.rmm', 'cca.vms']));
    // ACTIVATE of an active realm, POPULATE of an active realm: refused, nothing moves.
    expect(rme_enable_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM)).toBe(-1);
    expect(populate(vm.base + PG)).toBe(-1);
    expect(stateDigestDiff(d1, mm_state_digest(kernel))).toEqual([]);

    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* cca_cvm.guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    });
    expect(r.ret).toBe(0);
    const d2 = mm_state_digest(kernel);
    expect(stateDigestDiff(d1, d2)).toEqual(expect.arrayContaining(['cca.rmm', 'kvm.vms']));
    expect(mm_state_digest(kernel).digest).toBe(d2.digest);
  });
});

describe('cca DEBUG_VM rules', () => {
  function launched(kernel: Kernel): CvmVm {
    const vm = create(new Process(kernel));
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const r = cvm_run(vm, function* () {
      yield* cca_cvm.guest_convert(vm, vm.base + 4n * PG, 1n, true);
      yield* guestFill(vm.base + 4n * PG, 0x11, PAGE_SIZE);
    });
    expect(r.ret).toBe(0);
    return vm;
  }

  /** The (key, entry) of the RTT entry ASSIGNED to granule `pa`... of the first ASSIGNED one. */
  function assigned(vm: CvmVm): [number, Rtte] {
    for (const [k, e] of rd_of(vm).entries) if (e.hipas === 'ASSIGNED') return [k, e];
    throw new Error('none assigned');
  }

  test('quiet on a launched and converted realm', () => {
    const kernel = host();
    launched(kernel);
    expect(cca_violations(kernel)).toEqual([]);
  });

  test('rtt_map / rtt_orphan: an RTT entry moved to another granule; granule_owner: DATA without its realm', () => {
    const kernel = host();
    const vm = launched(kernel);
    const [key, e] = assigned(vm);
    const entries = rd_of(vm).entries as Map<number, Rtte>;
    entries.set(key, { ...e, pa: e.pa + 1 });
    const v = cca_violations(kernel);
    expect(v.some((m) => m.startsWith('cca:rtt_map') && m.includes(`maps pfn 0x${e.pa.toString(16)}`))).toBe(true);
    expect(v.some((m) => m.startsWith('cca:rtt_orphan'))).toBe(true);
    entries.set(key, e);
    expect(cca_violations(kernel)).toEqual([]);
    const granules = rmm_of(kernel).debug_tables().granules as Granules;
    const g = granules.get(e.pa)!;
    expect(g.state).toBe(GRANULE_STATE_DATA);
    granules.set(e.pa, { ...g, realm: null });
    expect(cca_violations(kernel).some((m) => m.startsWith('cca:granule_owner') && m.includes(`0x${e.pa.toString(16)}`))).toBe(true);
    granules.set(e.pa, g);
  });

  test('granule_free: a delegated granule free in the page allocator', () => {
    const kernel = host();
    launched(kernel);
    const free = kernel.page_alloc.alloc_page(0);
    kernel.page_alloc.__free_page(free);
    (rmm_of(kernel).debug_tables().granules as Granules).set(free, { state: GRANULE_STATE_DELEGATED, realm: null, rec: null });
    expect(cca_violations(kernel).some((m) => m.startsWith('cca:granule_free') && m.includes(`0x${free.toString(16)}`))).toBe(true);
    (rmm_of(kernel).debug_tables().granules as Granules).delete(free);
  });

  test('debug_vm_process: create, launch, a failed activate and conversions both ways pass every check', () => {
    const kernel = host();
    const findings: DebugVmFinding[] = [];
    const p = debug_vm_process(new Process(kernel), { onFinding: (f) => findings.push(f) });
    const vm = create(p);
    const src = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.store(src, img)).toBe(0);
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    expect(rme_enable_cap(vm, KVM_CAP_ARM_RME_ACTIVATE_REALM)).toBe(-1);
    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* cca_cvm.guest_convert(vm, X, 2n, true);
      yield* guestFill(X, 0x77, 2 * PAGE_SIZE);
      yield* cca_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(r.ret).toBe(0);
    expect(r.conversions.length).toBe(2);
    expect(findings).toEqual([]);
  });
});
