import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, debug_vm_process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from './kvm.js';
import type { Kvm } from './kvm_host.js';
import { kvm_tdp_mmu_spte } from './mmu/tdp_mmu.js';
import {
  KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CHECK_EXTENSION, KVM_CLEAR_DIRTY_LOG, KVM_CREATE_VCPU, KVM_CREATE_VM,
  KVM_DIRTY_LOG_INITIALLY_SET, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_ENABLE_CAP, KVM_GET_DIRTY_LOG,
  KVM_MEM_LOG_DIRTY_PAGES, KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM,
} from './uapi.js';

const PAGE = 4096;
/** Pages of the logged slot at gpa 0: 256 (a 32-byte bitmap). */
const NPAGES = 256;

interface Vm {
  p: Process;
  kernel: Kernel;
  vm: number;
  vcpu: number;
  kvm: Kvm;
  mem: bigint;
  /** Where the tests have KVM copy bitmaps to. */
  buf: bigint;
}

function setup(manual = 0): Vm {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar());
  const kernel = root.resolve(Kernel);
  const p = new Process(kernel);
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
  const kvm = p.task.files.lookup(vm)!.private_data as Kvm;
  const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  const mem = p.mmap(0, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const buf = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (manual) expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, args: [manual] })).toBe(0);
  expect(slot(p, vm, 0, KVM_MEM_LOG_DIRTY_PAGES, 0, NPAGES, mem)).toBe(0);
  return { p, kernel, vm, vcpu, kvm, mem, buf };
}

function slot(p: Process, vm: number, id: number, flags: number, gfn: number, npages: number, hva: bigint): number {
  return p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: id, flags, guest_phys_addr: gfn * PAGE, memory_size: npages * PAGE, userspace_addr: hva });
}

/** 0, or the errno. */
function ioctl(t: Vm, req: number, arg: unknown): number {
  return t.p.ioctl(t.vm, req, arg) === 0 ? 0 : t.p.errno;
}

/** KVM_GET_DIRTY_LOG of slot 0 into t.buf: the pages whose bits are set. */
function getLog(t: Vm): number[] {
  expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 0, dirty_bitmap: t.buf })).toBe(0);
  return bits(t.p.load(t.buf, NPAGES / 8) as Uint8Array);
}

function bits(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let k = 0; k < b.length * 8; k++) if (b[k >> 3] & (1 << (k & 7))) out.push(k);
  return out;
}

function store(t: Vm, gfn: number): void {
  expect(t.p.guest_store(t.vcpu, gfn * PAGE, new Uint8Array([1]))).toBe(0);
}

function load(t: Vm, gfn: number): void {
  expect(t.p.guest_load(t.vcpu, gfn * PAGE, 1)).toBeInstanceOf(Uint8Array);
}

describe('KVM_GET_DIRTY_LOG (kvm_get_dirty_log_protect(), Linux 6.18)', () => {
  test('guest stores set bits; reading the log takes them and write-protects the pages, so the next store is logged', () => {
    const t = setup();
    store(t, 1);
    store(t, 3);
    store(t, 200);
    load(t, 5);
    expect(getLog(t)).toEqual([1, 3, 200]);
    expect(getLog(t)).toEqual([]);
    expect(kvm_tdp_mmu_spte(t.kvm, 1)!.spte & 2n).toBe(0n);
    store(t, 3);
    expect(getLog(t)).toEqual([3]);
  });

  test('a guest load marks a page KVM maps writable: the host wrote it, and (shadow paging) the guest PTE is dirty', () => {
    const t = setup();
    for (const page of [7n, 9n]) expect(t.p.store(t.mem + page * BigInt(PAGE), new Uint8Array([7]))).toBe(0);
    // the oracle guest's PTE of these 2 MiB is clean: shadow paging maps the read read-only
    load(t, 7);
    load(t, 8);
    expect(getLog(t)).toEqual([]);
    // a guest write dirties the gpte; the shadow page built while it was clean is dropped
    store(t, 1);
    load(t, 9);
    load(t, 7);
    load(t, 8);
    expect(getLog(t)).toEqual([1, 7, 9]);
  });

  test('errors in kernel order: EFAULT (no struct), EINVAL (slot id), ENOENT (no slot, no bitmap)', () => {
    const t = setup();
    expect(ioctl(t, KVM_GET_DIRTY_LOG, 0)).toBe(Errno.EFAULT);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 0x10000, dirty_bitmap: 0 })).toBe(Errno.EINVAL);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 32764, dirty_bitmap: 0 })).toBe(Errno.EINVAL);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 1, dirty_bitmap: 0 })).toBe(Errno.ENOENT);
    expect(slot(t.p, t.vm, 1, 0, NPAGES, 16, t.mem)).toBe(0);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 1, dirty_bitmap: t.buf })).toBe(Errno.ENOENT);
  });

  test('a bitmap address it cannot write is EFAULT after the bits were taken out: they are lost (as in Linux)', () => {
    const t = setup();
    store(t, 2);
    // DEBUG_VM knows this failure changes the VM (failed_call_may_change()): no finding
    const checked = debug_vm_process(t.p);
    expect(checked.ioctl(t.vm, KVM_GET_DIRTY_LOG, { slot: 0, dirty_bitmap: 0 })).toBe(-1);
    expect(checked.errno).toBe(Errno.EFAULT);
    expect(getLog(t)).toEqual([]);
  });

  test('the copy is whole longs: a 100-page slot writes 16 bytes', () => {
    const t = setup();
    expect(slot(t.p, t.vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, 100, t.mem)).toBe(0);
    expect(t.p.store(t.buf, new Uint8Array(24).fill(0xee))).toBe(0);
    expect(t.p.guest_store(t.vcpu, (0x1000 + 99) * PAGE, new Uint8Array([1]))).toBe(0);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 1, dirty_bitmap: t.buf })).toBe(0);
    const b = t.p.load(t.buf, 24) as Uint8Array;
    expect([...b.subarray(0, 16)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0]);
    expect([...b.subarray(16)]).toEqual(new Array(8).fill(0xee));
  });

  test('re-arming charges one SPTE update per write-protected page and a remote TLB flush', () => {
    const t = setup();
    store(t, 1);
    store(t, 2);
    t.kernel.cost.begin('get');
    getLog(t);
    const items = t.kernel.cost.end('get').items;
    expect(items.find((i) => i.name === 'spte_set')?.count).toBe(2);
    expect(items.find((i) => i.name === 'kvm_flush_remote_tlbs_per_vcpu')?.count).toBeGreaterThan(0);
  });
});

describe('KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and KVM_CLEAR_DIRTY_LOG (kvm_clear_dirty_log_protect())', () => {
  test('KVM_CHECK_EXTENSION says MANUAL_PROTECT_ENABLE | INITIALLY_SET; args beyond them, or flags, are EINVAL', () => {
    const t = setup();
    expect(t.p.ioctl(t.vm, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)).toBe(3);
    for (const [flags, a] of [[0, 2], [0, 4], [0, 7], [1, 1]]) {
      expect(ioctl(t, KVM_ENABLE_CAP, { cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, flags, args: [a] }), `flags ${flags} args ${a}`).toBe(Errno.EINVAL);
    }
    expect(t.kvm.manual_dirty_log_protect).toBe(0);
  });

  test('with manual protection the log stays until cleared; clearing re-arms the cleared pages', () => {
    const t = setup(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
    store(t, 1);
    store(t, 2);
    store(t, 65);
    expect(getLog(t)).toEqual([1, 2, 65]);
    expect(getLog(t)).toEqual([1, 2, 65]);
    expect(t.p.store(t.buf, new Uint8Array([0x06, 0, 0, 0, 0, 0, 0, 0]))).toBe(0);
    expect(ioctl(t, KVM_CLEAR_DIRTY_LOG, { slot: 0, first_page: 0, num_pages: 64, dirty_bitmap: t.buf })).toBe(0);
    expect(getLog(t)).toEqual([65]);
    store(t, 1);
    store(t, 65);
    expect(getLog(t)).toEqual([1, 65]);
  });

  test('KVM_CLEAR_DIRTY_LOG validation, in order; a failed call clears nothing', () => {
    const t = setup(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
    store(t, 1);
    const clear = (a: Record<string, unknown>): number => ioctl(t, KVM_CLEAR_DIRTY_LOG, { slot: 0, dirty_bitmap: t.buf, ...a });
    expect(t.p.store(t.buf, new Uint8Array(32).fill(0xff))).toBe(0);
    expect(clear({ slot: 0x10000, first_page: 1 })).toBe(Errno.EINVAL);
    expect(clear({ slot: 2, first_page: 1 })).toBe(Errno.EINVAL);
    expect(clear({ slot: 2, first_page: 0, num_pages: 64 })).toBe(Errno.ENOENT);
    expect(clear({ first_page: 320, num_pages: 0 })).toBe(Errno.EINVAL);
    expect(clear({ first_page: 192, num_pages: 128 })).toBe(Errno.EINVAL);
    expect(clear({ first_page: 0, num_pages: 3 })).toBe(Errno.EINVAL);
    expect(clear({ first_page: 0, num_pages: 64, dirty_bitmap: 0 })).toBe(Errno.EFAULT);
    expect(getLog(t)).toEqual([1]);
    expect(clear({ first_page: 256, num_pages: 0, dirty_bitmap: 0 })).toBe(0);
  });

  test('INITIALLY_SET: a new bitmap has every page of the slot set, and enabling logging write-protects nothing', () => {
    const t = setup(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET);
    expect(getLog(t)).toHaveLength(NPAGES);
    expect(slot(t.p, t.vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, 100, t.mem)).toBe(0);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 1, dirty_bitmap: t.buf })).toBe(0);
    expect(bits(t.p.load(t.buf, 16) as Uint8Array)).toEqual(Array.from({ length: 100 }, (_, k) => k));
    // a slot already mapped writable keeps its SPTEs writable when logging is turned on
    expect(slot(t.p, t.vm, 2, 0, 0x2000, 16, t.mem)).toBe(0);
    expect(t.p.guest_store(t.vcpu, 0x2000 * PAGE, new Uint8Array([1]))).toBe(0);
    expect(slot(t.p, t.vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x2000, 16, t.mem)).toBe(0);
    expect(kvm_tdp_mmu_spte(t.kvm, 0x2000)!.spte & 2n).toBe(2n);
    // clearing re-arms: the page is write-protected again and its next store is logged
    expect(t.p.store(t.buf, new Uint8Array(8).fill(0xff))).toBe(0);
    expect(ioctl(t, KVM_CLEAR_DIRTY_LOG, { slot: 2, first_page: 0, num_pages: 16, dirty_bitmap: t.buf })).toBe(0);
    expect(kvm_tdp_mmu_spte(t.kvm, 0x2000)!.spte & 2n).toBe(0n);
    expect(t.p.guest_store(t.vcpu, 0x2001 * PAGE, new Uint8Array([1]))).toBe(0);
    expect(ioctl(t, KVM_GET_DIRTY_LOG, { slot: 2, dirty_bitmap: t.buf })).toBe(0);
    expect(bits(t.p.load(t.buf, 8) as Uint8Array)).toEqual([1]);
  });
});
