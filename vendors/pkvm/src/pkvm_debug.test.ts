/**
 * pkvm_debug.ts: the "pkvm.hyp" / "pkvm.vms" digest parts follow the hypervisor's page ownership
 * (a donation at first touch, a share) and stay put across failed calls; the "pkvm:" DEBUG_VM
 * rules catch a corrupted stage-2 or host state and are quiet over a whole load + run + share
 * flow checked call by call.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer, stateDigestDiff } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, check_vm, debug_vm_process, mm_state_digest, mmRegistrar, type DebugVmFinding } from '@cocosim/mm';
import { KVM_ENABLE_CAP, cvm_create, cvm_launch, cvm_run, guestFill, kvmRegistrar, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import { pkvm_cvm } from './cvm.js';
import { PKVM_PAGE_SHARED_OWNED, pkvm_hyp, type GuestS2Entry, type PkvmPageState } from './hyp.js';
import { pkvmVendorPlugin } from './index.js';
import { pkvm_vm } from './pkvm.js';
import { KVM_CAP_ARM_PROTECTED_VM, KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const img = new Uint8Array(PAGE_SIZE).fill(0x3c);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function host(): Kernel {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: pkvmVendorPlugin.x86_ops }),
    pkvmVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  return c.resolve(Kernel);
}

function create(p: Process): CvmVm {
  const vm = cvm_create(p, pkvm_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

function pkvm_violations(kernel: Kernel): string[] {
  return check_vm(kernel).filter((v) => v.rule.startsWith('pkvm:')).map((v) => `${v.rule} ${v.message}`);
}

/** KVM_ENABLE_CAP(KVM_CAP_ARM_PROTECTED_VM, SET_FW_IPA): -EINVAL on a host without pvmfw. */
function set_fw_ipa(vm: CvmVm): number {
  return vm.p.ioctl(vm.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_ARM_PROTECTED_VM, flags: KVM_CAP_ARM_PROTECTED_VM_FLAGS_SET_FW_IPA, args: [0x1000n, 0, 0, 0] });
}

describe('pkvm state digest', () => {
  test('donations at first touch and a share change pkvm.hyp; failed calls change nothing', () => {
    const kernel = host();
    const vm = create(new Process(kernel));
    const d0 = mm_state_digest(kernel);
    expect(Object.keys(d0.parts)).toEqual(expect.arrayContaining(['pkvm.hyp', 'pkvm.vms']));
    expect(set_fw_ipa(vm)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    expect(stateDigestDiff(d0, mm_state_digest(kernel))).toEqual([]);

    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const X = vm.base + 4n * PG;
    let r = cvm_run(vm, function* () {
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    });
    expect(r.ret).toBe(0);
    const d1 = mm_state_digest(kernel);
    // The first touch donated the page to the guest: the host's state and the guest stage-2 moved.
    expect(stateDigestDiff(d0, d1)).toEqual(expect.arrayContaining(['pkvm.hyp', 'pkvm.vms']));
    expect(set_fw_ipa(vm)).toBe(-1);
    expect(stateDigestDiff(d1, mm_state_digest(kernel))).toEqual([]);

    r = cvm_run(vm, function* () {
      yield* pkvm_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(r.ret).toBe(0);
    const d2 = mm_state_digest(kernel);
    expect(stateDigestDiff(d1, d2)).toContain('pkvm.hyp');
    // Sharing it again: the hypervisor refuses (the guest no longer owns it alone); nothing of the
    // hypervisor's moves (the vCPU's registers, in kvm.vms, do: the guest ran).
    let rc = 0n;
    r = cvm_run(vm, function* () {
      rc = yield* pkvm_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(r.ret).toBe(0);
    expect(rc).not.toBe(0n);
    expect(stateDigestDiff(d2, mm_state_digest(kernel))).toEqual(['kvm.vms']);
  });
});

describe('pkvm DEBUG_VM rules', () => {
  function running(kernel: Kernel): CvmVm {
    const vm = create(new Process(kernel));
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    const r = cvm_run(vm, function* () {
      yield* guestFill(vm.base + 4n * PG, 0x11, 2 * PAGE_SIZE);
      yield* pkvm_cvm.guest_convert(vm, vm.base + 5n * PG, 1n, false);
    });
    expect(r.ret).toBe(0);
    return vm;
  }

  test('quiet on a loaded VM that touched and shared pages', () => {
    const kernel = host();
    running(kernel);
    expect(pkvm_violations(kernel)).toEqual([]);
  });

  test('s2_map: a guest stage-2 entry moved to another pfn, or shared without the host borrowing it', () => {
    const kernel = host();
    const vm = running(kernel);
    const pgt = pkvm_vm(vm.kvm)!.hyp!.pgt as Map<number, GuestS2Entry>;
    const gfn = Number((vm.base + 4n * PG) / PG);
    const e = pgt.get(gfn)!;
    pgt.set(gfn, { ...e, pfn: e.pfn + 1 });
    expect(pkvm_violations(kernel).some((m) => m.startsWith('pkvm:s2_map') && m.includes(`maps pfn 0x${e.pfn.toString(16)}`))).toBe(true);
    pgt.set(gfn, { ...e, state: PKVM_PAGE_SHARED_OWNED });
    expect(pkvm_violations(kernel).some((m) => m.startsWith('pkvm:s2_map') && m.includes('host NOPAGE'))).toBe(true);
    pgt.set(gfn, e);
    expect(pkvm_violations(kernel)).toEqual([]);
  });

  test('page_free: a page donated to a guest and free in the page allocator', () => {
    const kernel = host();
    running(kernel);
    const free = kernel.page_alloc.alloc_page(0);
    kernel.page_alloc.__free_page(free);
    const states = pkvm_hyp(kernel).debug_tables().host_states as Map<number, { state: PkvmPageState; owner: number }>;
    states.set(free, { state: 3, owner: 3 });
    expect(pkvm_violations(kernel).some((m) => m.startsWith('pkvm:page_free') && m.includes(`0x${free.toString(16)}`))).toBe(true);
    states.delete(free);
  });

  test('debug_vm_process: create, load, a failed ioctl, touches and shares pass every check', () => {
    const kernel = host();
    const findings: DebugVmFinding[] = [];
    const p = debug_vm_process(new Process(kernel), { onFinding: (f) => findings.push(f) });
    const vm = create(p);
    const src = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.store(src, img)).toBe(0);
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    expect(set_fw_ipa(vm)).toBe(-1);
    const X = vm.base + 4n * PG;
    const r = cvm_run(vm, function* () {
      yield* guestFill(X, 0x77, 2 * PAGE_SIZE);
      yield* pkvm_cvm.guest_convert(vm, X, 2n, false);
      yield* pkvm_cvm.guest_convert(vm, X, 1n, true);
    });
    expect(r.ret).toBe(0);
    expect(findings).toEqual([]);
  });
});
