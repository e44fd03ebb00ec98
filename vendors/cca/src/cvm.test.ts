/**
 * cca_cvm (cvm.ts) on the upstream design: a realm created, populated, measured and activated
 * through cvm_create / cvm_launch, conversions through RSI_IPA_STATE_SET answered by the VMM loop
 * (KVM_EXIT_MEMORY_FAULT), with what each side reads (vendor-models.md §3.6), and the realm
 * touching memory in the wrong state (§3.3, §3.7).
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import {
  KVM_EXIT_HLT, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_SHUTDOWN, cvm_create, cvm_launch, cvm_run, guestLoad, guestStore, kvmRegistrar,
  upstream, upstream_vmm, type CvmVm, type GuestProgram,
} from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import {
  KVM_VM_REALM_INDEX, RIPAS_DESTROYED, RIPAS_EMPTY, RIPAS_RAM, ccaVendorPlugin, cca_cvm, kvm_realm, rmm_of, rtt_leaf,
} from './index.js';
import { image } from './cca_host.test-helpers.js';

const PG = BigInt(PAGE_SIZE);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

/** A CCA host with the upstream design, and a realm of 16 pages at 4 GiB on it. */
function realm(): CvmVm {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: ccaVendorPlugin.x86_ops }),
    ccaVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  const vm = cvm_create(new Process(c.resolve(Kernel)), cca_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  return vm;
}

/** The RMM's RTT entry of a protected IPA. */
function entry(vm: CvmVm, ipa: bigint): { hipas: string; ripas: number } {
  return rtt_leaf(rmm_of(vm.kvm.kernel).realms.get(kvm_realm(vm.kvm).rd)!, ipa).entry;
}

/** cvm_launch of `img` at the start of RAM; the measurement. */
function launched(img: Uint8Array): { vm: CvmVm; rim: string } {
  const vm = realm();
  expect(cvm_launch(vm, vm.base, img)).toBe(0);
  return { vm, rim: cca_cvm.measurement!(vm) };
}

/** The launch done page by page in `order` (what a VMM populating regions one at a time does). */
function rim_in_order(img: Uint8Array, order: readonly number[]): string {
  const vm = realm();
  const { p } = vm;
  expect(upstream_vmm.convert(vm, vm.base, BigInt(img.length), true)).toBe(0);
  const src = p.mmap(0, BigInt(img.length), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(p.store(src, img)).toBe(0);
  for (const i of order) expect(cca_cvm.launch_update!(vm, vm.base + BigInt(i) * PG, src + BigInt(i) * PG, PG)).toBe(0);
  expect(cca_cvm.launch_finish!(vm)).toBe(0);
  return cca_cvm.measurement!(vm);
}

describe('cvm_create + cvm_launch: CREATE_REALM, INIT_RIPAS + POPULATE (measured), ACTIVATE', () => {
  test('a realm VM whose 2-page image reads back in the realm; the RIM is stable and follows content and order', () => {
    const img = image(2, 1);
    const a = launched(img);
    expect(a.vm.kvm.arch.vm_type).toBe(KVM_VM_REALM_INDEX);
    expect(a.rim).toMatch(/^[0-9a-f]{64}$/);
    expect(launched(image(2, 1)).rim).toBe(a.rim);
    const changed = img.slice();
    changed[PAGE_SIZE + 100] ^= 1;
    expect(launched(changed).rim).not.toBe(a.rim);
    const swapped = new Uint8Array(img.length);
    swapped.set(img.subarray(PAGE_SIZE), 0);
    swapped.set(img.subarray(0, PAGE_SIZE), PAGE_SIZE);
    expect(launched(swapped).rim).not.toBe(a.rim);
    const forward = rim_in_order(img, [0, 1]);
    expect(rim_in_order(img, [0, 1])).toBe(forward);
    expect(rim_in_order(img, [1, 0])).not.toBe(forward);

    let seen: Uint8Array | undefined;
    const r = cvm_run(a.vm, function* () {
      seen = yield* guestLoad(a.vm.base, img.length);
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_HLT, conversions: [] });
    expect(Buffer.from(seen!).equals(Buffer.from(img))).toBe(true);
    expect(entry(a.vm, a.vm.base)).toMatchObject({ hipas: 'ASSIGNED', ripas: RIPAS_RAM });
  });

  test('a realm that was not activated cannot run: KVM_RUN -1 EINVAL; activation is once', () => {
    const vm = realm();
    const r = cvm_run(vm, function* () {});
    expect(r).toMatchObject({ ret: -1, errno: Errno.EINVAL, conversions: [] });
    expect(cvm_launch(vm, vm.base, new Uint8Array(0))).toBe(0);
    expect(cvm_launch(vm, vm.base, new Uint8Array(0))).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EINVAL);
    // An image after activation: the RMM refuses DATA_CREATE, KVM says EPERM.
    expect(cvm_launch(vm, vm.base, image(1, 2))).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EPERM);
  });
});

describe('conversions after activation: RSI_IPA_STATE_SET -> KVM_EXIT_MEMORY_FAULT -> the design', () => {
  test('shared -> private -> shared: zeros in the new private page, the secret never reaches the shared side', () => {
    const { vm } = launched(image(2, 3));
    const gpa = vm.base + 4n * PG;
    const hva = upstream_vmm.hva(vm, gpa)!;
    const alias = cca_cvm.shared_gpa(vm, gpa);
    expect(alias).toBe(gpa | (1n << 39n));
    expect(vm.p.store(hva, new Uint8Array(8).fill(0x5a))).toBe(0);
    const out: { shared?: Uint8Array; to_private?: bigint; priv?: Uint8Array; to_shared?: bigint; shared_again?: Uint8Array } = {};
    const program: GuestProgram = function* () {
      out.shared = yield* guestLoad(alias, 8);
      out.to_private = yield* cca_cvm.guest_convert(vm, gpa, 1n, true);
      out.priv = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, new Uint8Array(8).fill(0x5e));
      out.to_shared = yield* cca_cvm.guest_convert(vm, gpa, 1n, false);
      out.shared_again = yield* guestLoad(alias, 8);
    };
    const { result: r, cost } = vm.p.kernel.cost.measure('convert', () => cvm_run(vm, program));
    expect(r).toEqual({
      ret: 0, errno: 0, exit_reason: KVM_EXIT_HLT,
      conversions: [{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }, { gpa, npages: 1n, to_private: false, ret: 0, errno: 0 }],
    });
    expect([...out.shared!]).toEqual(new Array(8).fill(0x5a));
    expect(out.to_private).toBe(0n);
    // EMPTY -> RAM: the granule KVM delegates is zeroed by the RMM (DATA_CREATE_UNKNOWN).
    expect([...out.priv!]).toEqual(new Array(8).fill(0));
    expect(out.to_shared).toBe(0n);
    // QEMU discarded the shared page at to-private: it comes back zero-filled, without the secret.
    expect([...out.shared_again!]).toEqual(new Array(8).fill(0));
    expect(vm.p.load(hva, 8)).toEqual(new Uint8Array(8));
    expect(entry(vm, gpa)).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_EMPTY });
    const n = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    expect(n('kvm_userspace_exit_roundtrip')).toBeGreaterThanOrEqual(2);
    expect(n('cca_rsi_call')).toBeGreaterThanOrEqual(2);
    expect(n('cca_rmi_call')).toBeGreaterThanOrEqual(4);
    expect(n('cca_gpt_transition')).toBeGreaterThanOrEqual(2);
  });

  test('private -> shared of an image page: the realm\'s data is destroyed (zeroed), the alias shows the VMM\'s copy', () => {
    const img = image(2, 4);
    const { vm } = launched(img);
    const gpa = vm.base + PG;
    const hva = upstream_vmm.hva(vm, gpa)!;
    const out: { to_shared?: bigint; alias?: Uint8Array } = {};
    const r = cvm_run(vm, function* () {
      yield* guestStore(gpa, new Uint8Array(8).fill(0x5e));
      out.to_shared = yield* cca_cvm.guest_convert(vm, gpa, 1n, false);
      yield* guestStore(cca_cvm.shared_gpa(vm, gpa) + 8n, new Uint8Array(8).fill(0xab));
      out.alias = yield* guestLoad(cca_cvm.shared_gpa(vm, gpa), 16);
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(out.to_shared).toBe(0n);
    // The VMM's shared memory still holds the image it populated from; the realm's store of 0x5e
    // stayed in the destroyed granule, and its store through the alias is the VMM's to read.
    const want = Uint8Array.from([...img.subarray(PAGE_SIZE, PAGE_SIZE + 8), ...new Array(8).fill(0xab)]);
    expect(out.alias).toEqual(want);
    expect(vm.p.load(hva, 16)).toEqual(want);
  });
});

describe('the realm touching memory in the wrong state', () => {
  test('protected IPA in RIPAS EMPTY: an SEA in the realm (the run ends in KVM_EXIT_SHUTDOWN), no exit to the VMM', () => {
    const { vm } = launched(image(2, 5));
    const gpa = vm.base + 8n * PG;
    expect(entry(vm, gpa).ripas).toBe(RIPAS_EMPTY);
    let after = false;
    const r = cvm_run(vm, function* () {
      yield* guestLoad(gpa, 8);
      after = true;
    });
    expect(r).toMatchObject({ ret: 0, exit_reason: KVM_EXIT_SHUTDOWN, conversions: [] });
    expect(after).toBe(false);
    expect(kvm_realm(vm.kvm).recs.get(vm.vcpu!)!.seas).toBe(1);
  });

  test('the unprotected alias of a private page: the VMM converts it on the memory fault; the page is then DESTROYED for the realm', () => {
    const img = image(2, 6);
    const { vm } = launched(img);
    const gpa = vm.base;
    expect(entry(vm, gpa)).toMatchObject({ hipas: 'ASSIGNED', ripas: RIPAS_RAM });
    let alias: Uint8Array | undefined;
    let reached = false;
    const r = cvm_run(vm, function* () {
      alias = yield* guestLoad(cca_cvm.shared_gpa(vm, gpa), 8);
      yield* guestLoad(gpa, 8);
      reached = true;
    });
    // KVM: a shared access to a private gfn is KVM_EXIT_MEMORY_FAULT (shared); QEMU converts.
    expect(r.conversions[0]).toEqual({ gpa, npages: 1n, to_private: false, ret: 0, errno: 0 });
    expect([...alias!]).toEqual([...img.subarray(0, 8)]);
    // Converting without the realm asking destroyed its granule (RMI_DATA_DESTROY: RIPAS
    // DESTROYED); its next protected access exits, the VMM's conversion back to private cannot
    // repair it, and the VMM stops on the repeated fault.
    expect(entry(vm, gpa)).toMatchObject({ hipas: 'UNASSIGNED', ripas: RIPAS_DESTROYED });
    expect(r.conversions.slice(1)).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(r).toMatchObject({ ret: -1, errno: Errno.EFAULT, exit_reason: KVM_EXIT_MEMORY_FAULT });
    expect(reached).toBe(false);
  });
});
