/**
 * pkvm_cvm (cvm.ts) on the upstream design: a protected VM created through cvm_create, the
 * payload loaded and measured by pvmfw in the guest, MEM_SHARE / MEM_UNSHARE through cvm_run with
 * no VMM exit and what each side reads (vendor-models.md §5.2), and accesses to pages the
 * accessor does not own (§5.4).
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar, pagemap_pfn } from '@cocosim/mm';
import {
  KVM_EXIT_HLT, cvm_create, cvm_launch, cvm_run, guestLoad, guestStore, kvmRegistrar, upstream, upstream_vmm, type CvmVm,
} from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import {
  KVM_VM_PROTECTED_INDEX, PKVM_NOPAGE, PKVM_PAGE_SHARED_BORROWED, pkvmVendorPlugin, pkvm_cvm, pkvm_hyp, pvmfw_measure,
} from './index.js';

const PG = BigInt(PAGE_SIZE);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A pKVM host with the upstream design, and a protected VM of 16 pages at 4 GiB on it. */
function protected_vm(): CvmVm {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: pkvmVendorPlugin.x86_ops }),
    pkvmVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  const vm = cvm_create(new Process(c.resolve(Kernel)), pkvm_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

/** The payload loaded page by page in `order` (pKVM's launch: the VMM writes its memory), then pvmfw's measurement in the guest. */
function load(img: Uint8Array, order: readonly number[]): { vm: CvmVm; expected: string; measured: string } {
  const vm = protected_vm();
  const { p } = vm;
  const src = p.mmap(0, BigInt(img.length), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(p.store(src, img)).toBe(0);
  for (const i of order) expect(pkvm_cvm.launch_update!(vm, vm.base + BigInt(i) * PG, src + BigInt(i) * PG, PG)).toBe(0);
  let measured = '';
  const r = cvm_run(vm, function* () {
    measured = yield* pvmfw_measure(vm.base, img.length);
  });
  expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
  return { vm, expected: pkvm_cvm.measurement!(vm), measured };
}

describe('cvm_create and the launch: the payload in the VMM\'s memory, measured by pvmfw', () => {
  test('a protected VM; cvm_launch loads the image where the guest will own it, with no conversion (no memory attributes)', () => {
    const vm = protected_vm();
    expect(vm.kvm.arch.vm_type).toBe(KVM_VM_PROTECTED_INDEX);
    const img = bytes(2 * PAGE_SIZE, 1);
    expect(cvm_launch(vm, vm.base, img)).toBe(0);
    let first: Uint8Array | undefined;
    const r = cvm_run(vm, function* () {
      first = yield* guestLoad(vm.base + PG, 8);
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect([...first!]).toEqual([...img.subarray(PAGE_SIZE, PAGE_SIZE + 8)]);
    // upstream's conversion itself is still refused: a pKVM VM has no memory attributes.
    expect(upstream_vmm.convert(vm, vm.base, PG, true)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
  });

  test('the measurement pvmfw takes is the expected one, stable, and follows content and page order but not load order', () => {
    const img = bytes(2 * PAGE_SIZE, 1);
    const a = load(img, [0, 1]);
    expect(a.measured).toBe(a.expected);
    expect(a.expected).toMatch(/^[0-9a-f]{128}$/);
    expect(load(bytes(2 * PAGE_SIZE, 1), [0, 1]).measured).toBe(a.measured);
    const changed = img.slice();
    changed[PAGE_SIZE + 7] ^= 0x40;
    const c = load(changed, [0, 1]);
    expect(c.measured).toBe(c.expected);
    expect(c.measured).not.toBe(a.measured);
    const swapped = new Uint8Array(img.length);
    swapped.set(img.subarray(PAGE_SIZE), 0);
    swapped.set(img.subarray(0, PAGE_SIZE), PAGE_SIZE);
    expect(load(swapped, [0, 1]).measured).not.toBe(a.measured);
    // pvmfw hashes memory: the order the VMM wrote the pages in does not show.
    const reversed = load(img, [1, 0]);
    expect(reversed.measured).toBe(a.measured);
    expect(reversed.expected).toBe(a.expected);
  });
});

describe('MEM_SHARE / MEM_UNSHARE through cvm_run: handled at EL2, contents preserved', () => {
  test('shared -> private -> shared with the VMM reading and writing its mapping; no exit reaches the VMM', () => {
    const vm = protected_vm();
    const gpa = vm.base + 3n * PG;
    const hva = upstream_vmm.hva(vm, gpa)!;
    expect(pkvm_cvm.shared_gpa(vm, gpa)).toBe(gpa);
    expect(vm.p.store(hva, new Uint8Array(8).fill(0x5a))).toBe(0);
    const out: { first?: Uint8Array; to_shared?: bigint } = {};
    const { result: r1, cost } = vm.p.kernel.cost.measure('share', () => cvm_run(vm, function* () {
      // The first touch donates the VMM's page: the guest reads the VMM's bytes, then owns it.
      out.first = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, new Uint8Array(8).fill(0x5e));
      out.to_shared = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, false);
    }));
    expect(r1).toEqual({ ret: 0, errno: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect([...out.first!]).toEqual(new Array(8).fill(0x5a));
    expect(out.to_shared).toBe(0n);
    const pfn = pagemap_pfn(vm.p.mm, hva)!;
    expect(pkvm_hyp(vm.kvm.kernel).host_state(pfn)).toBe(PKVM_PAGE_SHARED_BORROWED);
    // Shared: the VMM reads the guest's bytes in place and writes its own.
    expect(vm.p.load(hva, 8)).toEqual(new Uint8Array(8).fill(0x5e));
    expect(vm.p.store(hva, new Uint8Array(8).fill(0xab))).toBe(0);
    const n = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    expect(n('pkvm_hvc')).toBeGreaterThanOrEqual(3);
    expect(n('pkvm_stage2_update')).toBeGreaterThanOrEqual(2);

    const out2: { to_private?: bigint; priv?: Uint8Array; to_shared?: bigint } = {};
    const r2 = cvm_run(vm, function* () {
      out2.to_private = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, true);
      out2.priv = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, new Uint8Array(8).fill(0xc3));
    });
    expect(r2.conversions).toEqual([]);
    expect(out2.to_private).toBe(0n);
    // Private again: the same page with the VMM's last bytes; the host has lost it.
    expect([...out2.priv!]).toEqual(new Array(8).fill(0xab));
    expect(pkvm_hyp(vm.kvm.kernel).host_state(pfn)).toBe(PKVM_NOPAGE);
    expect(vm.p.load(hva, 8)).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });

    let to_shared: bigint | undefined;
    cvm_run(vm, function* () {
      to_shared = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, false);
    });
    expect(to_shared).toBe(0n);
    expect(vm.p.load(hva, 8)).toEqual(new Uint8Array(8).fill(0xc3));
  });
});

describe('accesses to a page the accessor does not own', () => {
  test('the VMM: SIGSEGV SEGV_ACCERR on the guest\'s page, for reads and writes; the guest\'s data survives', () => {
    const vm = protected_vm();
    const gpa = vm.base;
    const hva = upstream_vmm.hva(vm, gpa)!;
    cvm_run(vm, function* () {
      yield* guestStore(gpa, new Uint8Array(8).fill(0x11));
    });
    expect(vm.p.load(hva, 8)).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });
    expect(vm.p.store(hva + 4n, Uint8Array.of(0xee))).toMatchObject({ signo: 'SIGSEGV', si_code: 'SEGV_ACCERR' });
    let back: Uint8Array | undefined;
    cvm_run(vm, function* () {
      back = yield* guestLoad(gpa, 8);
    });
    expect([...back!]).toEqual(new Array(8).fill(0x11));
  });

  test('the guest: unsharing a page it never shared, or sharing one twice, is refused (-EPERM), nothing changes', () => {
    const vm = protected_vm();
    const gpa = vm.base + PG;
    const hva = upstream_vmm.hva(vm, gpa)!;
    const out: { unshare_untouched?: bigint; unshare_owned?: bigint; share?: bigint; share_twice?: bigint } = {};
    const r = cvm_run(vm, function* () {
      out.unshare_untouched = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, true);
      yield* guestStore(gpa, new Uint8Array(8).fill(0x22));
      out.unshare_owned = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, true);
      out.share = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, false);
      out.share_twice = yield* pkvm_cvm.guest_convert(vm, gpa, 1n, false);
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect(out).toEqual({ unshare_untouched: BigInt(-Errno.EPERM), unshare_owned: BigInt(-Errno.EPERM), share: 0n, share_twice: BigInt(-Errno.EPERM) });
    expect(vm.p.load(hva, 8)).toEqual(new Uint8Array(8).fill(0x22));
  });
});
