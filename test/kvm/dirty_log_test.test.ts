/**
 * tools/testing/selftests/kvm/dirty_log_test.c, its three log modes on the default VM: the guest
 * writes the iteration number into random pages of a memslot that logs, and after each round the
 * host collects the dirty pages (KVM_GET_DIRTY_LOG; KVM_GET_DIRTY_LOG then KVM_CLEAR_DIRTY_LOG
 * with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2; the vCPU's dirty ring and KVM_RESET_DIRTY_RINGS) and
 * checks them against memory, as vm_dirty_log_verify() does: every page that holds the current
 * iteration is reported dirty, and a page reported dirty holds it.
 *
 * In C the vCPU runs in a thread that the main thread stops now and then to collect; here each
 * round is a KVM_RUN up to the guest's GUEST_SYNC (the ucall that ends the round), so a page is
 * dirty in a round exactly when the guest wrote it in that round: the check is an equality.
 */
import { describe } from 'vitest';
import {
  KVM_CAP_DIRTY_LOG_RING, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CLEAR_DIRTY_LOG, KVM_DIRTY_GFN_F_DIRTY,
  KVM_DIRTY_GFN_F_RESET, KVM_DIRTY_LOG_INITIALLY_SET, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_DIRTY_LOG_PAGE_OFFSET,
  KVM_EXIT_IO, KVM_GET_DIRTY_LOG, KVM_MEM_LOG_DIRTY_PAGES, KVM_RESET_DIRTY_RINGS, guestWriteU64, type GuestCode,
} from '@cocosim/kvm';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, type Process } from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import {
  VM_MEM_SRC_ANONYMOUS, VM_SHAPE_DEFAULT, __vm_create, addr_gpa2hva, kvm_vm_free, vcpu_run, vm_enable_cap, vm_ioctl,
  vm_userspace_mem_region_add, vm_vcpu_add, virt_map, type KvmVcpuFd, type KvmVm,
} from '../lib/kvm_util.js';
import { GUEST_DONE, GUEST_SYNC, UCALL_DONE, UCALL_SYNC, get_ucall, type Ucall } from '../lib/ucall.js';

const TEST_MEM_SLOT_INDEX = 1;
/* The memory the guest dirties: 4 MiB, far from the VM's own memory at GPA 0. */
const DEFAULT_GUEST_TEST_MEM = 0xc0000000n;
const TEST_MEM_PAGES = 1024;
/* Random pages written per round (some twice), and rounds. */
const TEST_PAGES_PER_LOOP = 256;
const TEST_ITERATIONS = 6;
const PAGE = 4096;
/* 4096 entries of struct kvm_dirty_gfn: more than a round dirties, so the ring never fills. */
const TEST_DIRTY_RING_BYTES = 65536;

/** The guest's random_u32() (guest_random_u32(): an xorshift the test seeds the same way every run). */
function xorshift(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** guest_code(): each round writes the iteration into TEST_PAGES_PER_LOOP random pages, then GUEST_SYNC. */
function* guest_code(): GuestCode {
  const random = xorshift(0x5eed);
  for (let iteration = 1; iteration <= TEST_ITERATIONS; iteration++) {
    for (let i = 0; i < TEST_PAGES_PER_LOOP; i++) {
      const page = random() % TEST_MEM_PAGES;
      yield* guestWriteU64(DEFAULT_GUEST_TEST_MEM + BigInt(page * PAGE), iteration);
    }
    yield* GUEST_SYNC(iteration);
  }
  yield* GUEST_DONE();
}

type LogMode = 'dirty-log' | 'clear-log' | 'dirty-ring';

/** Bit `page` of a bitmap the kernel wrote (little-endian longs: bit k of byte k / 8). */
function test_bit(bmap: Uint8Array, page: number): boolean {
  return (bmap[page >> 3]! & (1 << (page & 7))) !== 0;
}

/** The bitmap of the test slot, KVM_GET_DIRTY_LOG into `buf`. */
function get_dirty_log(vm: KvmVm, buf: bigint): Uint8Array {
  vm_ioctl(vm, KVM_GET_DIRTY_LOG, { slot: TEST_MEM_SLOT_INDEX, dirty_bitmap: buf }, 'KVM_GET_DIRTY_LOG');
  return vm.p.load(buf, TEST_MEM_PAGES / 8) as Uint8Array;
}

/**
 * dirty_ring_collect_dirty_pages(): the entries from the fetch index that KVM marked DIRTY, each
 * then marked RESET for KVM_RESET_DIRTY_RINGS, which must reset as many. Returns the pages.
 */
function dirty_ring_collect(vm: KvmVm, ring: bigint, fetch: { index: number }): Set<number> {
  const p: Process = vm.p;
  const entries = TEST_DIRTY_RING_BYTES / 16;
  const pages = new Set<number>();
  let count = 0;
  for (;;) {
    const at = ring + BigInt((fetch.index % entries) * 16);
    const e = p.load(at, 16) as Uint8Array;
    const v = new DataView(e.buffer, e.byteOffset);
    if (!(v.getUint32(0, true) & KVM_DIRTY_GFN_F_DIRTY)) break;
    TEST_ASSERT_EQ(v.getUint32(4, true), TEST_MEM_SLOT_INDEX, 'the entry names the test slot');
    pages.add(Number(v.getBigUint64(8, true)));
    const flags = new Uint8Array(4);
    new DataView(flags.buffer).setUint32(0, KVM_DIRTY_GFN_F_RESET, true);
    TEST_ASSERT(p.store(at, flags) === 0, 'harvest the entry');
    fetch.index++;
    count++;
  }
  TEST_ASSERT_EQ(vm_ioctl(vm, KVM_RESET_DIRTY_RINGS, 0, 'KVM_RESET_DIRTY_RINGS'), count, 'KVM_RESET_DIRTY_RINGS resets what was harvested');
  return pages;
}

/**
 * vm_dirty_log_verify(): a page holding this round's iteration was written this round and must be
 * reported; one reported must hold it.
 */
function vm_dirty_log_verify(vm: KvmVm, dirty: (page: number) => boolean, iteration: number): void {
  let reported = 0;
  for (let page = 0; page < TEST_MEM_PAGES; page++) {
    const b = vm.p.load(addr_gpa2hva(vm, DEFAULT_GUEST_TEST_MEM + BigInt(page * PAGE)), 8) as Uint8Array;
    const value = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    if (dirty(page)) {
      reported++;
      TEST_ASSERT(value === iteration, `page ${page} reported dirty in iteration ${iteration} holds ${value}`);
    } else {
      TEST_ASSERT(value !== iteration, `page ${page} written in iteration ${iteration} is not reported dirty`);
    }
  }
  TEST_ASSERT(reported > 0, `iteration ${iteration} dirtied pages`);
}

function run_test(host: Parameters<typeof __vm_create>[0], mode: LogMode): void {
  const vm = __vm_create(host, VM_SHAPE_DEFAULT, 1, 0);
  if (mode === 'clear-log') vm_enable_cap(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET);
  /* the ring's size is set before the first vCPU, which gets its ring */
  if (mode === 'dirty-ring') vm_enable_cap(vm, KVM_CAP_DIRTY_LOG_RING, TEST_DIRTY_RING_BYTES);
  const vcpu: KvmVcpuFd = vm_vcpu_add(vm, 0, guest_code);
  vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, DEFAULT_GUEST_TEST_MEM, TEST_MEM_SLOT_INDEX, TEST_MEM_PAGES, KVM_MEM_LOG_DIRTY_PAGES);
  virt_map(vm, DEFAULT_GUEST_TEST_MEM, DEFAULT_GUEST_TEST_MEM, TEST_MEM_PAGES);

  const p = vm.p;
  const buf = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const ring = mode === 'dirty-ring' ? p.mmap(0, TEST_DIRTY_RING_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd, KVM_DIRTY_LOG_PAGE_OFFSET * PAGE) : 0n;
  const fetch = { index: 0 };
  if (mode === 'clear-log') {
    /* KVM_DIRTY_LOG_INITIALLY_SET: every page starts dirty; clear them all before the first round */
    const all = get_dirty_log(vm, buf);
    for (let page = 0; page < TEST_MEM_PAGES; page++) TEST_ASSERT(test_bit(all, page), `page ${page} is initially dirty`);
    vm_ioctl(vm, KVM_CLEAR_DIRTY_LOG, { slot: TEST_MEM_SLOT_INDEX, first_page: 0, num_pages: TEST_MEM_PAGES, dirty_bitmap: buf }, 'KVM_CLEAR_DIRTY_LOG');
  }

  const uc: Ucall = { cmd: 0n, args: [], buffer: '', hva: 0n };
  for (let iteration = 1; ; iteration++) {
    vcpu_run(vcpu);
    TEST_ASSERT_EQ(vcpu.run.exit_reason, KVM_EXIT_IO, 'the round ends with a ucall');
    const cmd = Number(get_ucall(vcpu, uc));
    if (cmd === UCALL_DONE) {
      TEST_ASSERT_EQ(iteration, TEST_ITERATIONS + 1, 'every round ran');
      break;
    }
    TEST_ASSERT_EQ(cmd, UCALL_SYNC, 'GUEST_SYNC');
    TEST_ASSERT_EQ(uc.args[1], BigInt(iteration), 'the round the guest finished');
    if (mode === 'dirty-ring') {
      const pages = dirty_ring_collect(vm, ring, fetch);
      vm_dirty_log_verify(vm, (page) => pages.has(page), iteration);
    } else {
      const bmap = get_dirty_log(vm, buf);
      vm_dirty_log_verify(vm, (page) => test_bit(bmap, page), iteration);
      if (mode === 'clear-log') {
        /* with manual protection the bits stay until cleared: clear what was collected */
        TEST_ASSERT(get_dirty_log(vm, buf).every((b, k) => b === bmap[k]), 'KVM_GET_DIRTY_LOG leaves the bits with manual protection');
        vm_ioctl(vm, KVM_CLEAR_DIRTY_LOG, { slot: TEST_MEM_SLOT_INDEX, first_page: 0, num_pages: TEST_MEM_PAGES, dirty_bitmap: buf }, 'KVM_CLEAR_DIRTY_LOG');
      }
    }
  }
  kvm_vm_free(vm);
}

describe('dirty_log_test', () => {
  for (const mode of ['dirty-log', 'clear-log', 'dirty-ring'] as const) {
    test(`log mode ${mode}`, ({ host }) => run_test(host, mode));
  }
});
