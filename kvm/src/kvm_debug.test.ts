import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, stateDigestDiff, stateDigestRegistry } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, check_vm, mm_state_digest, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import type { GmemFile } from './guest_memfd.js';
import { kvm_check_vms } from './kvm_debug.js';
import type { Kvm, KvmVcpu } from './kvm_host.js';
import { kvm_module } from './kvm_main.js';
import { RET_PF_FIXED, kvm_mmu_page_fault, kvm_mmu_translate, tdp_fault_error_code } from './mmu/mmu.js';
import { SPTE_S_PRESENT, PG_LEVEL_4K } from './mmu/spte.js';
import { tdp_mmu_set_leaf, tdp_mmu_walk_to_level, to_tdp_mmu } from './mmu/tdp_mmu.js';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2, KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';

const SLOT = 16 * PAGE_SIZE;
/** The second (plain) slot's first gfn. */
const G1 = 0x100;

interface Vm {
  kernel: Kernel;
  p: Process;
  vm: number;
  kvm: Kvm;
  vcpu: KvmVcpu;
  gmem: number;
  hva: bigint;
}

function access(v: Vm, gfn: number): number {
  const gpa = BigInt(gfn) * 4096n;
  return kvm_mmu_page_fault(v.vcpu, gpa, tdp_fault_error_code(v.vcpu, gpa, true));
}

function set_attr(v: Vm, gfn: number, npages: number, priv: boolean): number {
  return v.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: gfn * PAGE_SIZE, size: npages * PAGE_SIZE, attributes: priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0 });
}

/**
 * The normal run: a SW_PROTECTED VM with a guest_memfd slot (gfns 0-15) and a plain one (G1..),
 * gfns 0-7 converted to private and faulted from guest_memfd, 8-15 and the plain slot faulted
 * through the hva, then gfns 4-7 converted back and faulted shared.
 */
function normal_run(nr_pages = 8192, extra = 0): Vm {
  const root = createRootContainer({}, mmRegistrar({ nr_pages }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }));
  const kernel = root.resolve(Kernel);
  const p = new Process(kernel);
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
  expect(vm).toBeGreaterThan(0);
  const kvm = p.task.files.lookup(vm)!.private_data as Kvm;
  expect(p.ioctl(vm, KVM_CREATE_VCPU, 0)).toBeGreaterThan(0);
  const size = SLOT + 16 * PAGE_SIZE + extra * PAGE_SIZE;
  const hva = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const gmem = p.ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size: SLOT, flags: 0 });
  expect(gmem).toBeGreaterThan(0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: 0, memory_size: SLOT, userspace_addr: hva, guest_memfd: gmem, guest_memfd_offset: 0,
  })).toBe(0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, {
    slot: 1, flags: 0, guest_phys_addr: G1 * PAGE_SIZE, memory_size: size - SLOT, userspace_addr: hva + BigInt(SLOT),
  })).toBe(0);
  const v: Vm = { kernel, p, vm, kvm, vcpu: kvm.vcpus.get(0)!, gmem, hva };
  expect(set_attr(v, 0, 8, true)).toBe(0);
  for (let g = 0; g < 16; g++) expect(access(v, g)).toBe(RET_PF_FIXED);
  for (let g = 0; g < 16 + extra; g++) expect(access(v, G1 + g)).toBe(RET_PF_FIXED);
  expect(set_attr(v, 4, 4, false)).toBe(0);
  for (let g = 4; g < 8; g++) expect(access(v, g)).toBe(RET_PF_FIXED);
  return v;
}

function kvm_rules(v: Vm): string[] {
  return check_vm(v.kernel, { limit: 1000 }).filter((x) => x.rule.startsWith('kvm:')).map((x) => `${x.rule} ${x.message}`);
}

describe('KVM DEBUG_VM rules', () => {
  test('a VM with a guest_memfd slot, conversions both ways and shared faults breaks no rule', () => {
    const v = normal_run();
    expect(check_vm(v.kernel)).toEqual([]);
  });

  test('memslot: a slot missing from gfn_tree, and nr_memslot_pages that disagrees, are named', () => {
    const v = normal_run();
    const slots = v.kvm.memslots[0]!;
    slots.gfn_tree.mtree_store_range(G1, G1 + 15, null);
    v.kvm.nr_memslot_pages += 1;
    const r = kvm_rules(v);
    expect(r.some((m) => m.startsWith('kvm:memslot') && m.includes('slot 1 [gfn 0x100, +16) is not in gfn_tree'))).toBe(true);
    expect(r.some((m) => m.startsWith('kvm:memslot') && m.includes('nr_memslot_pages 33, the slots hold 32'))).toBe(true);
  });

  test('memslot: overlapping slots are named', () => {
    const v = normal_run();
    const s1 = v.kvm.memslots[0]!.id_hash.get(1)!;
    v.kvm.memslots[0]!.id_hash.get(0)!.npages = G1 + 1;
    expect(kvm_rules(v).some((m) => m.includes(`slots 0 and ${s1.id} overlap at gfn 0x100`))).toBe(true);
  });

  test('gmem: a binding the file no longer holds, or one the slot does not know, is named', () => {
    const v = normal_run();
    const f = v.p.task.files.lookup(v.gmem)!.private_data as GmemFile;
    f.bindings.mtree_store_range(0, 15, null);
    expect(kvm_rules(v)).toEqual([expect.stringMatching(/^kvm:gmem .*slot 0 \(gfn 0x0\) at pgoff 0: the file's bindings do not hold it/)]);
    const w = normal_run();
    const g = w.p.task.files.lookup(w.gmem)!.private_data as GmemFile;
    w.kvm.memslots[0]!.id_hash.get(0)!.gmem.pgoff = 1;
    expect(kvm_rules(w).filter((m) => m.startsWith('kvm:gmem')).length).toBe(2);
    expect(g.bindings.mt_range_at(0)?.entry).toBe(w.kvm.memslots[0]!.id_hash.get(0));
  });

  test('spte_slot: a leaf outside every memslot is named with its gfn and pfn', () => {
    const v = normal_run();
    const pfn = kvm_mmu_translate(v.vcpu, G1, false)!;
    const t = tdp_mmu_walk_to_level(v.kvm, to_tdp_mmu(v.kvm).direct_root, 0x5000, PG_LEVEL_4K);
    expect(tdp_mmu_set_leaf(v.kvm, t, SPTE_S_PRESENT, pfn)).toBe(0);
    expect(kvm_rules(v)).toEqual([`kvm:spte_slot VM 0 (type 1): direct SPTE gfn 0x5000 level 1 (pfn 0x${pfn.toString(16)}) is outside every memslot`]);
  });

  test('spte_private: a private leaf on a gfn made shared without a zap, and a shared leaf on a private gfn', () => {
    const v = normal_run();
    const pfn = kvm_mmu_translate(v.vcpu, 2, false)!;
    v.kvm.mem_attr_array.mtree_store_range(2, 2, null);
    v.kvm.mem_attr_array.mtree_store_range(10, 10, KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const r = kvm_rules(v);
    expect(r).toContain(`kvm:spte_private VM 0 (type 1): SPTE gfn 0x2 level 1 pfn 0x${pfn.toString(16)} maps the guest_memfd page, the gfn is shared`);
    expect(r.some((m) => m.startsWith('kvm:spte_private') && m.includes('gfn 0xa level 1') && m.includes('maps no guest_memfd page'))).toBe(true);
    expect(r.length).toBe(2);
  });

  test('spte_ref: a mapped pfn whose refcount dropped to 0 is named', () => {
    const v = normal_run();
    const pfn = kvm_mmu_translate(v.vcpu, G1 + 3, false)!;
    const store = v.kernel.store;
    store._refcount[store.idx(pfn)] = 0;
    const hits = check_vm(v.kernel, { limit: 1000 }).filter((x) => x.rule === 'kvm:spte_ref');
    expect(hits).toEqual([{ rule: 'kvm:spte_ref', pfn, message: `VM 0 (type 1): SPTE gfn 0x103 level 1 maps pfn 0x${pfn.toString(16)} with refcount 0` }]);
  });
});

describe('KVM state digest (kvm.vms)', () => {
  test('two runs of the same calls digest alike; a conversion, a fault and a register write each change kvm.vms', () => {
    const a = normal_run();
    const b = normal_run();
    const da = mm_state_digest(a.kernel);
    expect(da.parts['kvm.vms']).toBeDefined();
    expect(mm_state_digest(b.kernel)).toEqual(da);
    expect(set_attr(a, 12, 1, true)).toBe(0);
    const d1 = mm_state_digest(a.kernel);
    expect(stateDigestDiff(da, d1)).toContain('kvm.vms');
    expect(access(a, 12)).toBe(RET_PF_FIXED);
    const d2 = mm_state_digest(a.kernel);
    expect(stateDigestDiff(d1, d2)).toContain('kvm.vms');
    a.vcpu.run.immediate_exit = 1;
    expect(stateDigestDiff(d2, mm_state_digest(a.kernel))).toEqual(['kvm.vms']);
  });

  test('a failed KVM_SET_MEMORY_ATTRIBUTES (unaligned) changes nothing', () => {
    const v = normal_run();
    const d = mm_state_digest(v.kernel);
    expect(v.p.ioctl(v.vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 1, size: PAGE_SIZE, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE })).toBe(-1);
    expect(stateDigestDiff(d, mm_state_digest(v.kernel))).toEqual([]);
  });

  test('a destroyed VM leaves the digest and the checks', () => {
    const v = normal_run();
    for (const fd of v.p.task.files.open_fds()) v.p.close(fd);
    expect(check_vm(v.kernel)).toEqual([]);
    const d = mm_state_digest(v.kernel);
    expect(d.parts['kvm.vms']).toBe(mm_state_digest(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })).resolve(Kernel)).parts['kvm.vms']);
  });
});

/**
 * The cost of the checks and the digest for a VM with 16k SPTEs (printed, not asserted: CPU
 * time depends on the machine). COCOSIM_KVM_DEBUG_COST=1 npx vitest run kvm/src/kvm_debug.test.ts
 */
test.runIf(process.env['COCOSIM_KVM_DEBUG_COST'] === '1')('cost with 16k SPTEs', () => {
  const v = normal_run(40000, 16384 - 32);
  const n = [...to_tdp_mmu(v.kvm).direct_pages].reduce((a, b) => a + b, 0);
  expect(n).toBe(16384);
  const module = kvm_module(v.kvm);
  const report = (rule: string, message: string): void => {
    throw new Error(`${rule} ${message}`);
  };
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) kvm_check_vms(module, report);
  const t1 = performance.now();
  for (let i = 0; i < 20; i++) mm_state_digest(v.kernel);
  const t2 = performance.now();
  stateDigestRegistry(v.kernel).unregister('kvm.vms');
  for (let i = 0; i < 20; i++) mm_state_digest(v.kernel);
  const t3 = performance.now();
  console.log(`16k SPTEs: KVM checks ${((t1 - t0) / 20).toFixed(2)} ms, kvm.vms digest ${((t2 - t1 - (t3 - t2)) / 20).toFixed(2)} ms (whole digest ${((t2 - t1) / 20).toFixed(2)} ms)`);
});
