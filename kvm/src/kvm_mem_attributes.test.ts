import { describe, expect, test } from 'vitest';
import { CostModel, Errno, RingSink, Tracer, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import type { Kvm } from './kvm_host.js';
import {
  kvm_get_memory_attributes, kvm_mem_is_private, kvm_range_has_memory_attributes, kvm_supported_mem_attributes,
  kvm_vm_set_mem_attributes,
} from './kvm_mem_attributes.js';
import {
  KVM_CAP_MEMORY_ATTRIBUTES, KVM_CHECK_EXTENSION, KVM_CREATE_VM, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';

const PRIVATE = KVM_MEMORY_ATTRIBUTE_PRIVATE;
const GPA = 0x100000000;
const G = GPA / 4096;

interface Vm {
  p: Process;
  vm: number;
  kvm: Kvm;
  trace: RingSink;
  cost: CostModel;
}

function setup(type = KVM_X86_SW_PROTECTED_VM, sw = true): Vm {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar(sw ? { x86_ops: kvm_sw_protected_x86_ops } : {}));
  const trace = new RingSink();
  root.resolve(Tracer).addSink(trace);
  const p = new Process(root.resolve(Kernel));
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, type);
  expect(vm).toBeGreaterThan(0);
  return { p, vm, kvm: p.task.files.lookup(vm)!.private_data as Kvm, trace, cost: root.resolve(CostModel) };
}

/** KVM_SET_MEMORY_ATTRIBUTES as C sees it: 0, or the errno. */
function setattr(t: Vm, arg: unknown): number {
  const r = t.p.ioctl(t.vm, KVM_SET_MEMORY_ATTRIBUTES, arg);
  return r === 0 ? 0 : t.p.errno;
}

function ranges(kvm: Kvm): [number, number, number][] {
  return [...kvm.mem_attr_array.ranges()].map((r) => [r.first, r.last, r.entry]);
}

describe('KVM_SET_MEMORY_ATTRIBUTES: validation (virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes)', () => {
  test('supported attributes: PRIVATE for /dev/kvm and VMs with private memory, none for the default VM', () => {
    const sw = setup();
    const def = setup(KVM_X86_DEFAULT_VM);
    expect(kvm_supported_mem_attributes(undefined)).toBe(PRIVATE);
    expect(kvm_supported_mem_attributes(sw.kvm)).toBe(PRIVATE);
    expect(kvm_supported_mem_attributes(def.kvm)).toBe(0);
    expect(sw.p.ioctl(sw.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(PRIVATE);
    expect(def.p.ioctl(def.vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(0);
    // The default VM takes attributes 0 (a no-op) and refuses PRIVATE.
    expect(setattr(def, { address: GPA, size: 4096, attributes: 0 })).toBe(0);
    expect(setattr(def, { address: GPA, size: 4096, attributes: PRIVATE })).toBe(Errno.EINVAL);
    expect(ranges(def.kvm)).toEqual([]);
  });

  test('no struct, or a field no C program can write, is EFAULT; each bad field is EINVAL', () => {
    const t = setup();
    for (const arg of [undefined, null, 5, 'x']) expect(setattr(t, arg), String(arg)).toBe(Errno.EFAULT);
    for (const bad of [0.5, NaN, 'x', 2n ** 64n, {}]) {
      expect(setattr(t, { address: GPA, size: 4096, attributes: PRIVATE, flags: bad }), String(bad)).toBe(Errno.EFAULT);
    }
    const bad: Record<string, unknown>[] = [
      { flags: 1 }, { flags: 2n ** 63n },
      { attributes: 1 }, { attributes: PRIVATE | 16 }, { attributes: 2n ** 63n },
      { size: 0 }, { address: -4096, size: 8192 }, { address: 0xfffffffffffff000n, size: 4096n * 2n },
      { address: GPA + 1 }, { size: 4095 }, { size: 4097 },
    ];
    for (const f of bad) {
      expect(setattr(t, { address: GPA, size: 4096, attributes: PRIVATE, flags: 0, ...f }), Object.keys(f).join()).toBe(Errno.EINVAL);
    }
    expect(ranges(t.kvm)).toEqual([]);
    // The last page of the address space: address + size is 2^64, which wraps to 0.
    expect(setattr(t, { address: 0xfffffffffffff000n, size: 4096, attributes: PRIVATE })).toBe(Errno.EINVAL);
    // Missing fields are zero (size 0: EINVAL); the largest range ends one page short of 2^64.
    expect(setattr(t, { address: GPA })).toBe(Errno.EINVAL);
    expect(setattr(t, { address: 0, size: 0xfffffffffffff000n, attributes: PRIVATE })).toBe(0);
    expect(ranges(t.kvm)).toEqual([[0, 2 ** 52 - 2, PRIVATE]]);
  });
});

describe('kvm_vm_set_mem_attributes(): ranges, no-ops, invalidation', () => {
  test('a set replaces the attributes of the range; neighbours merge; 0 erases', () => {
    const t = setup();
    expect(setattr(t, { address: GPA, size: 16 * 4096, attributes: PRIVATE })).toBe(0);
    expect(ranges(t.kvm)).toEqual([[G, G + 15, PRIVATE]]);
    expect(setattr(t, { address: GPA + 4 * 4096, size: 4 * 4096, attributes: 0 })).toBe(0);
    expect(ranges(t.kvm)).toEqual([[G, G + 3, PRIVATE], [G + 8, G + 15, PRIVATE]]);
    expect(kvm_get_memory_attributes(t.kvm, G + 3)).toBe(PRIVATE);
    expect(kvm_get_memory_attributes(t.kvm, G + 4)).toBe(0);
    expect(kvm_mem_is_private(t.kvm, G + 8)).toBe(true);
    expect(kvm_mem_is_private(t.kvm, G + 16)).toBe(false);
    expect(setattr(t, { address: GPA + 4 * 4096, size: 4 * 4096, attributes: PRIVATE })).toBe(0);
    expect(ranges(t.kvm)).toEqual([[G, G + 15, PRIVATE]]);
    expect(setattr(t, { address: 0, size: 2 * GPA, attributes: 0 })).toBe(0);
    expect(ranges(t.kvm)).toEqual([]);
  });

  test('attributes need no memslot and outlive one', () => {
    const t = setup();
    const mem = t.p.mmap(0, 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(t.p.ioctl(t.vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: GPA, memory_size: 0x200000, userspace_addr: mem })).toBe(0);
    expect(setattr(t, { address: GPA, size: 0x400000, attributes: PRIVATE })).toBe(0);
    expect(t.p.ioctl(t.vm, KVM_SET_USER_MEMORY_REGION, { slot: 0 })).toBe(0);
    expect(ranges(t.kvm)).toEqual([[G, G + 1023, PRIVATE]]);
  });

  test('an invalidation runs only when something changes and a memslot covers the range', () => {
    const t = setup();
    const mem = t.p.mmap(0, 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(t.p.ioctl(t.vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: GPA, memory_size: 0x200000, userspace_addr: mem })).toBe(0);
    const seq = (): number => t.kvm.mmu_invalidate_seq;
    const s0 = seq();
    expect(setattr(t, { address: GPA, size: 4096, attributes: PRIVATE })).toBe(0);
    expect(seq()).toBe(s0 + 1);
    expect(t.kvm.mmu_invalidate_in_progress).toBe(0);
    // Already private: nothing to do.
    expect(setattr(t, { address: GPA, size: 4096, attributes: PRIVATE })).toBe(0);
    expect(seq()).toBe(s0 + 1);
    // No memslot there: the attributes change, nothing is invalidated.
    expect(setattr(t, { address: 2 * GPA, size: 4096, attributes: PRIVATE })).toBe(0);
    expect(seq()).toBe(s0 + 1);
    expect(kvm_mem_is_private(t.kvm, 2 * G)).toBe(true);
    // Shared again over a range partly covered by the slot: one invalidation.
    expect(setattr(t, { address: 0, size: 4 * GPA, attributes: 0 })).toBe(0);
    expect(seq()).toBe(s0 + 2);
    expect(ranges(t.kvm)).toEqual([]);
  });

  test('every call is traced (kvm_vm_set_mem_attributes), no-ops included', () => {
    const t = setup();
    expect(kvm_vm_set_mem_attributes(t.kvm, G, G + 2, PRIVATE)).toBe(0);
    expect(kvm_vm_set_mem_attributes(t.kvm, G, G + 2, PRIVATE)).toBe(0);
    expect(setattr(t, { address: GPA, size: 4096, attributes: 0 })).toBe(0);
    expect(setattr(t, { address: GPA, size: 4096, attributes: 1 })).toBe(Errno.EINVAL);
    expect(t.trace.find('kvm_vm_set_mem_attributes').map((r) => r.args)).toEqual([
      { start: G, end: G + 2, attr: PRIVATE }, { start: G, end: G + 2, attr: PRIVATE }, { start: G, end: G + 1, attr: 0 },
    ]);
  });

  test('converting 64 GiB with nothing mapped costs what 4 KiB does, and stores one range', () => {
    const t = setup();
    // Memslots over both ranges, so that both conversions invalidate (no host memory needed).
    for (const [slot, address, size] of [[0, GPA, 4096], [1, 2 * GPA, 64 * 2 ** 30]]) {
      expect(t.p.ioctl(t.vm, KVM_SET_USER_MEMORY_REGION, { slot, guest_phys_addr: address, memory_size: size, userspace_addr: 0 })).toBe(0);
    }
    const ns = (address: number, size: number, attributes: number): number => {
      const before = t.cost.clock.now();
      expect(setattr(t, { address, size, attributes })).toBe(0);
      return t.cost.clock.now() - before;
    };
    const small = ns(GPA, 4096, PRIVATE);
    const big = ns(2 * GPA, 64 * 2 ** 30, PRIVATE);
    expect(big).toBe(small);
    expect(t.kvm.mem_attr_array.size).toBe(2);
    // Back and forth, the 16M gfns stay one range each way (wall time: `npm run bench -- conversion`).
    for (let i = 0; i < 20; i++) expect(ns(2 * GPA, 64 * 2 ** 30, i % 2 === 0 ? 0 : PRIVATE)).toBe(small);
    expect(t.kvm.mem_attr_array.size).toBe(2);
  });
});

describe('kvm_range_has_memory_attributes() (virt/kvm/kvm_main.c)', () => {
  test('all gfns of [start, end) must match under the mask; 0 means nothing stored', () => {
    const t = setup();
    kvm_vm_set_mem_attributes(t.kvm, G, G + 8, PRIVATE);
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 8, ~0, PRIVATE)).toBe(true);
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 9, ~0, PRIVATE)).toBe(false);
    expect(kvm_range_has_memory_attributes(t.kvm, G - 1, G + 8, ~0, PRIVATE)).toBe(false);
    expect(kvm_range_has_memory_attributes(t.kvm, G + 7, G + 8, ~0, PRIVATE)).toBe(true);
    expect(kvm_range_has_memory_attributes(t.kvm, G + 8, G + 9, ~0, PRIVATE)).toBe(false);
    expect(kvm_range_has_memory_attributes(t.kvm, G + 8, G + 100, ~0, 0)).toBe(true);
    expect(kvm_range_has_memory_attributes(t.kvm, G + 7, G + 100, ~0, 0)).toBe(false);
    // Attributes outside the mask (or not supported) can never match.
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 8, 0, PRIVATE)).toBe(false);
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 8, ~0, PRIVATE | 1)).toBe(false);
    // With the PRIVATE bit masked out, only 0 matches, and only where nothing is stored.
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 1, 0, 0)).toBe(true);
    expect(kvm_range_has_memory_attributes(t.kvm, G, G + 2, 0, 0)).toBe(false);
  });

  test('on a VM without private memory nothing is supported: only 0 matches', () => {
    const t = setup(KVM_X86_DEFAULT_VM);
    expect(kvm_range_has_memory_attributes(t.kvm, 0, 10, ~0, 0)).toBe(true);
    expect(kvm_range_has_memory_attributes(t.kvm, 0, 10, ~0, PRIVATE)).toBe(false);
  });
});
