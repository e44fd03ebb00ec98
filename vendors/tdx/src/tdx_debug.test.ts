/**
 * tdx_debug.ts: the "tdx.module" / "tdx.vms" digest parts follow the module's state (a launch
 * page, a conversion) and stay put across failed ioctls; the "tdx:" DEBUG_VM rules catch a
 * corrupted S-EPT or PAMT and are quiet over a whole launch + conversion flow checked call by call.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, stateDigestDiff } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, check_vm, debug_vm_process, mm_state_digest, type DebugVmFinding } from '@cocosim/mm';
import { cvm_create, cvm_launch, cvm_run, guestFill, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import { tdx_cvm } from './cvm.js';
import { tdx_td, to_kvm_tdx } from './tdx.js';
import { SEPT_PENDING, tdx_module_of, type PamtEntry } from './tdx_module.js';
import { tdx_host, vm_tdx_finalize, type TdxHost } from './tdx_util.js';

const PAGE = 4096;
const PG = 4096n;
const hosts: TdxHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(): TdxHost {
  const h = tdx_host({ seed: 7, registrars: [upstream.registrar()] });
  hosts.push(h);
  return h;
}

/** A TD through cvm_create() with `p` (a DEBUG_VM process or a plain one). */
function create(p: Process): CvmVm {
  const vm = cvm_create(p, tdx_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

const img = new Uint8Array(PAGE).fill(0x3c);

/** The violations of the "tdx:" rules on the host. */
function tdx_violations(h: TdxHost): string[] {
  return check_vm(h.kernel).filter((v) => v.rule.startsWith('tdx:')).map((v) => `${v.rule} ${v.message}`);
}

describe('tdx state digest', () => {
  test('a launch page and a conversion change tdx.module; failed ioctls change nothing', () => {
    const h = host();
    const vm = create(new Process(h.kernel));
    const src = vm.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(vm.p.store(src, img)).toBe(0);
    const d0 = mm_state_digest(h.kernel);
    expect(Object.keys(d0.parts)).toEqual(expect.arrayContaining(['tdx.module', 'tdx.vms']));

    // KVM_TDX_INIT_MEM_REGION over a range the design left shared: kvm_gmem_populate() refuses it
    // after __kvm_gmem_get_pfn() put the guest_memfd folio in the file's page cache, where Linux
    // leaves it: mm's parts move, the module and KVM do not.
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    const d0b = mm_state_digest(h.kernel);
    expect(stateDigestDiff(d0, d0b).filter((x) => !x.startsWith('mm.'))).toEqual([]);
    // Again, with the folio cached: nothing at all moves.
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    expect(stateDigestDiff(d0b, mm_state_digest(h.kernel))).toEqual([]);

    expect(vm.design.convert(vm, vm.base, PG, true)).toBe(0);
    const d1 = mm_state_digest(h.kernel);
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(0);
    const d2 = mm_state_digest(h.kernel);
    // TDH.MEM.PAGE.ADD: the S-EPT leaf, the PAMT entry and the measurement moved.
    expect(stateDigestDiff(d1, d2)).toEqual(expect.arrayContaining(['tdx.module']));

    // The same page again: TDH.MEM.PAGE.ADD finds the S-EPT leaf taken (-EIO), and nothing moves.
    const before = mm_state_digest(h.kernel);
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(-1);
    expect(stateDigestDiff(before, mm_state_digest(h.kernel))).toEqual([]);

    expect(tdx_cvm.launch_finish!(vm)).toBe(0);
    // KVM_TDX_FINALIZE_VM a second time: -EINVAL (the TD is runnable), nothing moves.
    const d3 = mm_state_digest(h.kernel);
    expect(vm_tdx_finalize(vm.p, vm.vm_fd)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    expect(stateDigestDiff(d3, mm_state_digest(h.kernel))).toEqual([]);

    // A conversion to private: TDH.MEM.PAGE.AUG and the guest's ACCEPT.
    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* tdx_cvm.guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, PAGE);
    });
    expect(r.ret).toBe(0);
    const d4 = mm_state_digest(h.kernel);
    expect(stateDigestDiff(d3, d4)).toEqual(expect.arrayContaining(['tdx.module', 'kvm.vms']));
    // A digest is a pure function of the state.
    expect(mm_state_digest(h.kernel).digest).toBe(d4.digest);
  });
});

describe('tdx DEBUG_VM rules', () => {
  /** A launched TD with its image page at base and page 4 converted to private by the guest. */
  function launched(h: TdxHost): CvmVm {
    const vm = create(new Process(h.kernel));
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const r = cvm_run(vm, function* () {
      yield* tdx_cvm.guest_convert(vm, vm.base + 4n * PG, 1n, true);
    });
    expect(r.ret).toBe(0);
    return vm;
  }

  test('quiet on a launched and converted TD', () => {
    const h = host();
    launched(h);
    expect(tdx_violations(h)).toEqual([]);
  });

  test('sept_map: an S-EPT leaf moved to another pfn, or back to PENDING state, is caught', () => {
    const h = host();
    const vm = launched(h);
    const td = tdx_td(vm.kvm)!;
    const gfn = Number(vm.base / PG);
    const leaf = td.sept[0].get(gfn)!;
    const pfn = leaf.pfn;
    leaf.pfn = pfn + 1;
    const v = tdx_violations(h);
    expect(v.some((m) => m.startsWith('tdx:sept_map') && m.includes(`maps pfn 0x${pfn.toString(16)}`))).toBe(true);
    // The leaf at the mirror's pfn + 1 has no mirror SPTE of its own.
    expect(v.some((m) => m.startsWith('tdx:sept_orphan'))).toBe(true);
    leaf.pfn = pfn;
    // PENDING (AUGed, not accepted) is a state KVM's leaf may be in.
    const state = leaf.state;
    leaf.state = SEPT_PENDING;
    expect(tdx_violations(h)).toEqual([]);
    leaf.state = state;
  });

  test('sept_map: a PAMT entry given to another owner; pamt_free: a free page in the PAMT', () => {
    const h = host();
    const vm = launched(h);
    const module = tdx_module_of(h.kernel);
    const pamt = module.debug_tables().pamt as Map<number, PamtEntry>;
    const td = tdx_td(vm.kvm)!;
    const pfn = td.sept[0].get(Number(vm.base / PG))!.pfn;
    pamt.set(pfn, { pt: 'PT_REG', owner: null, bepoch: 0 });
    expect(tdx_violations(h).some((m) => m.startsWith('tdx:sept_map') && m.includes('PAMT PT_REG'))).toBe(true);
    pamt.set(pfn, { pt: 'PT_REG', owner: td, bepoch: 0 });
    expect(tdx_violations(h)).toEqual([]);

    const free = h.kernel.page_alloc.alloc_page(0);
    h.kernel.page_alloc.__free_page(free);
    pamt.set(free, { pt: 'PT_EPT', owner: td, bepoch: 0 });
    expect(tdx_violations(h).some((m) => m.startsWith('tdx:pamt_free') && m.includes(`pfn 0x${free.toString(16)}`))).toBe(true);
    pamt.delete(free);
  });

  test('sept_map: a mirror SPTE before finalize not counted in nr_premapped', () => {
    const h = host();
    const vm = create(new Process(h.kernel));
    expect(vm.design.convert(vm, vm.base, PG, true)).toBe(0);
    const src = vm.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(tdx_cvm.launch_update!(vm, vm.base, src, PG)).toBe(0);
    expect(tdx_violations(h)).toEqual([]);
    to_kvm_tdx(vm.kvm).nr_premapped++;
    expect(tdx_violations(h).some((m) => m.startsWith('tdx:sept_map') && m.includes('nr_premapped is 1'))).toBe(true);
    to_kvm_tdx(vm.kvm).nr_premapped--;
  });

  test('debug_vm_process: create, launch, a failed finalize and conversions both ways pass every check', () => {
    const h = host();
    const findings: DebugVmFinding[] = [];
    const p = debug_vm_process(new Process(h.kernel), { onFinding: (f) => findings.push(f) });
    const vm = create(p);
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    // KVM_TDX_FINALIZE_VM of a runnable TD: -EINVAL, checked to change nothing.
    expect(vm_tdx_finalize(p, vm.vm_fd)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* tdx_cvm.guest_convert(vm, X, 2n, true);
      yield* guestFill(X, 0x77, 2 * PAGE);
      yield* tdx_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(r.ret).toBe(0);
    expect(r.conversions.length).toBe(2);
    expect(findings).toEqual([]);
  });
});
