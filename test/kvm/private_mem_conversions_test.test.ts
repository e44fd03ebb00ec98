/**
 * tools/testing/selftests/kvm/x86/private_mem_conversions_test.c: a KVM_X86_SW_PROTECTED_VM guest
 * converts its memory between shared and private with KVM_HC_MAP_GPA_RANGE, which exits to user
 * space (KVM_CAP_EXIT_HYPERCALL); the host flips the memory attributes and optionally
 * fallocates or punches holes in the guest_memfd, and both sides check what they see: the host
 * always sees the shared memory, private data survives a conversion of its neighbours, and a
 * punched hole reads back as zeroes.
 *
 * The C test runs each vCPU on its own pthread. The simulator is single-threaded: the vCPU
 * "threads" here take turns, one KVM_RUN and the handling of its exit at a time, which is one
 * of the interleavings the C test allows (each vCPU works on its own memory).
 */
import { describe } from 'vitest';
import { PAGE_SIZE, PMD_SIZE } from '@cocosim/core';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '@cocosim/mm';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_CAP_VM_TYPES, KVM_EXIT_HYPERCALL, KVM_EXIT_IO, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEM_GUEST_MEMFD, KVM_X86_SW_PROTECTED_VM, guestFill, guestLoad, guestScan, vmcall, type GuestCode,
} from '@cocosim/kvm';
import { test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_FAIL, TEST_REQUIRE } from '../lib/test_util.js';
import {
  VM_MEM_SRC_ANONYMOUS, VM_MEM_SRC_ANONYMOUS_THP, VM_MEM_SRC_SHMEM, __vm_create_with_vcpus, addr_gpa2hva, exit_reason_str,
  kvm_check_cap, kvm_fallocate, kvm_vm_free, vcpu_args_set, vcpu_run, virt_map, vm_create_guest_memfd, vm_enable_cap,
  vm_guest_mem_fallocate, vm_mem_add, vm_set_memory_attributes, type KvmVcpuFd, type VmMemBackingSrcType,
} from '../lib/kvm_util.js';
import { GUEST_DONE, GUEST_SYNC_N, REPORT_GUEST_ASSERT, UCALL_ABORT, UCALL_DONE, UCALL_SYNC, __GUEST_ASSERT, get_ucall, type Ucall } from '../lib/ucall.js';

const SZ_2M = PMD_SIZE;
const BASE_DATA_SLOT = 10;
const BASE_DATA_GPA = 1n << 32n;
const PER_CPU_DATA_SIZE = SZ_2M + PAGE_SIZE;

/** A page of `pattern` bytes, built once per pattern (compares and the host's memset() use it). */
const pattern_pages = new Map<number, Buffer>();
function pattern_page(pattern: number): Buffer {
  let page = pattern_pages.get(pattern);
  if (page === undefined) pattern_pages.set(pattern, (page = Buffer.alloc(PAGE_SIZE, pattern)));
  return page;
}

/** The offset of the first byte of `mem` that is not `pattern`, or -1 (memcmp against a filled page). */
function first_mismatch(mem: Uint8Array, pattern: number): number {
  const want = pattern_page(pattern);
  const have = Buffer.from(mem.buffer, mem.byteOffset, mem.length);
  for (let off = 0; off < have.length; off += PAGE_SIZE) {
    const n = Math.min(PAGE_SIZE, have.length - off);
    if (want.compare(have, off, off + n, 0, n) === 0) continue;
    return off + have.subarray(off, off + n).findIndex((b) => b !== pattern);
  }
  return -1;
}

/**
 * memcmp_g(gpa, pattern, size): the guest reads the range and asserts every byte. The C loop
 * compares byte by byte; `repe scasb` does the same reads and stops at the first byte that differs.
 */
function* memcmp_g(gpa: bigint, pattern: number, size: number): GuestCode {
  const i = yield* guestScan(gpa, pattern, size);
  const got = i < 0 ? pattern : (yield* guestLoad(gpa + BigInt(i), 1))[0]!;
  yield* __GUEST_ASSERT(i < 0, 'mem[i] == pattern',
    `Guest expected 0x${pattern.toString(16)} at offset ${i} (gpa 0x${(gpa + BigInt(i)).toString(16)}), got 0x${got.toString(16)}`);
}

/** The host's buffer for memcmp_h(): it reads one page at a time. */
const host_page = new Uint8Array(PAGE_SIZE);

/** memcmp_h(mem, gpa, pattern, size): the host reads its mapping of the range. */
function memcmp_h(vcpu: KvmVcpuFd, hva: bigint, gpa: bigint, pattern: number, size: number): void {
  const mem = size <= PAGE_SIZE ? host_page.subarray(0, size) : new Uint8Array(size);
  TEST_ASSERT(vcpu.p.load_into(hva, mem) === 0, `Host cannot read gpa 0x${gpa.toString(16)}`);
  const i = first_mismatch(mem, pattern);
  TEST_ASSERT(i < 0, `Host expected 0x${pattern.toString(16)} at gpa 0x${(gpa + BigInt(i)).toString(16)}, got 0x${mem[i]?.toString(16)}`);
}

const SYNC_SHARED = 0;
const SYNC_PRIVATE = 1;

function guest_sync_shared(gpa: bigint, size: number, current_pattern: number, new_pattern: number): GuestCode {
  return GUEST_SYNC_N(SYNC_SHARED, gpa, size, current_pattern, new_pattern);
}

function guest_sync_private(gpa: bigint, size: number, pattern: number): GuestCode {
  return GUEST_SYNC_N(SYNC_PRIVATE, gpa, size, pattern);
}

/* Arbitrary values, KVM doesn't care about the attribute flags. */
const MAP_GPA_SET_ATTRIBUTES = 1 << 0;
const MAP_GPA_SHARED = 1 << 1;
const MAP_GPA_DO_FALLOCATE = 1 << 2;

/** kvm_hypercall_map_gpa_range(gpa, size, flags) (lib/x86/processor.h): the hypercall must succeed. */
function* kvm_hypercall_map_gpa_range(gpa: bigint, size: number, flags: number): GuestCode {
  const ret = yield* vmcall(KVM_HC_MAP_GPA_RANGE, gpa, size / PAGE_SIZE, flags, 0);
  yield* __GUEST_ASSERT(ret === 0n, '!ret', `KVM_HC_MAP_GPA_RANGE failed: 0x${ret.toString(16)}`);
}

function* guest_map_mem(gpa: bigint, size: number, map_shared: boolean, do_fallocate: boolean): GuestCode {
  let flags = MAP_GPA_SET_ATTRIBUTES;
  if (map_shared) flags |= MAP_GPA_SHARED;
  if (do_fallocate) flags |= MAP_GPA_DO_FALLOCATE;
  yield* kvm_hypercall_map_gpa_range(gpa, size, flags);
}

function guest_map_shared(gpa: bigint, size: number, do_fallocate: boolean): GuestCode {
  return guest_map_mem(gpa, size, true, do_fallocate);
}

function guest_map_private(gpa: bigint, size: number, do_fallocate: boolean): GuestCode {
  return guest_map_mem(gpa, size, false, do_fallocate);
}

const test_ranges: readonly { offset: number; size: number }[] = [
  { offset: 0, size: PAGE_SIZE },
  { offset: 0, size: SZ_2M },
  { offset: PAGE_SIZE, size: PAGE_SIZE },
  { offset: PAGE_SIZE, size: SZ_2M },
  { offset: SZ_2M, size: PAGE_SIZE },
];

function* guest_test_explicit_conversion(base_gpa: bigint, do_fallocate: boolean): GuestCode {
  const def_p = 0xaa;
  const init_p = 0xcc;

  /* Memory should be shared by default. */
  yield* guestFill(base_gpa, def_p, PER_CPU_DATA_SIZE);
  yield* memcmp_g(base_gpa, def_p, PER_CPU_DATA_SIZE);
  yield* guest_sync_shared(base_gpa, PER_CPU_DATA_SIZE, def_p, init_p);

  yield* memcmp_g(base_gpa, init_p, PER_CPU_DATA_SIZE);

  for (const r of test_ranges) {
    const gpa = base_gpa + BigInt(r.offset);
    const size = r.size;
    const p1 = 0x11;
    const p2 = 0x22;
    const p3 = 0x33;
    const p4 = 0x44;

    /* Set the test region to pattern one to differentiate it from the data range as a whole. */
    yield* guestFill(gpa, p1, size);

    /*
     * Convert to private, set and verify the private data, and then verify that the rest of the
     * data (map shared) still holds the initial pattern, and that the host always sees the shared
     * memory (initial pattern). Unlike shared memory, punching a hole in private memory is
     * destructive, i.e. previous values aren't guaranteed to be preserved.
     */
    yield* guest_map_private(gpa, size, do_fallocate);

    if (size > PAGE_SIZE) {
      yield* guestFill(gpa, p2, PAGE_SIZE);
    } else {
      yield* guestFill(gpa, p2, size);
      yield* guest_sync_private(gpa, size, p1);

      /* Verify that the private memory was set to pattern two, and shared memory still holds the initial pattern. */
      yield* memcmp_g(gpa, p2, size);
      if (gpa > base_gpa) yield* memcmp_g(base_gpa, init_p, Number(gpa - base_gpa));
      if (gpa + BigInt(size) < base_gpa + BigInt(PER_CPU_DATA_SIZE)) {
        yield* memcmp_g(gpa + BigInt(size), init_p, Number(base_gpa + BigInt(PER_CPU_DATA_SIZE) - (gpa + BigInt(size))));
      }

      /* Convert odd-number page frames back to shared to verify KVM also correctly handles holes in private ranges. */
      for (let j = 0; j < size; j += PAGE_SIZE) {
        if ((j / PAGE_SIZE) & 1) {
          yield* guest_map_shared(gpa + BigInt(j), PAGE_SIZE, do_fallocate);
          yield* guest_sync_shared(gpa + BigInt(j), PAGE_SIZE, p1, p3);
          yield* memcmp_g(gpa + BigInt(j), p3, PAGE_SIZE);
        } else {
          yield* guest_sync_private(gpa + BigInt(j), PAGE_SIZE, p1);
        }
      }
    }

    /*
     * Convert the entire region back to shared, explicitly write pattern three to fill in the
     * even-number frames before asking the host to verify (and write pattern four).
     */
    yield* guest_map_shared(gpa, size, do_fallocate);
    yield* guestFill(gpa, p3, size);
    yield* guest_sync_shared(gpa, size, p3, p4);
    yield* memcmp_g(gpa, p4, size);

    /* Reset the shared memory back to the initial pattern. */
    yield* guestFill(gpa, init_p, size);

    /*
     * Free (via PUNCH_HOLE) *all* private memory so that the next iteration starts from a clean
     * slate, e.g. with respect to whether or not there are pages/folios in guest_mem.
     */
    yield* guest_map_shared(base_gpa, PER_CPU_DATA_SIZE, true);
  }
}

function* guest_punch_hole(gpa: bigint, size: number): GuestCode {
  /* "Mapping" memory shared via fallocate() is done via PUNCH_HOLE. */
  yield* kvm_hypercall_map_gpa_range(gpa, size, MAP_GPA_SHARED | MAP_GPA_DO_FALLOCATE);
}

/*
 * Test that PUNCH_HOLE actually frees memory by punching holes without doing a proper
 * conversion. Freeing (PUNCH_HOLE) should zap SPTEs, and reallocating (subsequent fault) should
 * zero memory.
 */
function* guest_test_punch_hole(base_gpa: bigint, precise: boolean): GuestCode {
  const init_p = 0xcc;

  /* Convert the entire range to private, this testcase is all about punching holes in guest_memfd. */
  yield* guest_map_private(base_gpa, PER_CPU_DATA_SIZE, false);

  for (const r of test_ranges) {
    const gpa = base_gpa + BigInt(r.offset);
    const size = r.size;

    /* Free all memory before each iteration, even for the !precise case. */
    yield* guest_punch_hole(base_gpa, PER_CPU_DATA_SIZE);

    /* Fault-in and initialize memory, and verify the pattern. */
    if (precise) {
      yield* guestFill(gpa, init_p, size);
      yield* memcmp_g(gpa, init_p, size);
    } else {
      yield* guestFill(base_gpa, init_p, PER_CPU_DATA_SIZE);
      yield* memcmp_g(base_gpa, init_p, PER_CPU_DATA_SIZE);
    }

    /* Punch a hole at the target range and verify that reads from the guest succeed and return zeroes. */
    yield* guest_punch_hole(gpa, size);
    yield* memcmp_g(gpa, 0, size);
  }
}

function* guest_code(base_gpa: bigint): GuestCode {
  /* Run the conversion test twice, with and without doing fallocate() on the guest_memfd backing. */
  yield* guest_test_explicit_conversion(base_gpa, false);
  yield* guest_test_explicit_conversion(base_gpa, true);

  /* Run the PUNCH_HOLE test twice too, once with the entire guest_memfd faulted in, once with only the target range. */
  yield* guest_test_punch_hole(base_gpa, false);
  yield* guest_test_punch_hole(base_gpa, true);
  yield* GUEST_DONE();
}

function handle_exit_hypercall(vcpu: KvmVcpuFd): void {
  const run = vcpu.run;
  const gpa = run.hypercall.args[0]!;
  const size = run.hypercall.args[1]! * BigInt(PAGE_SIZE);
  const set_attributes = (run.hypercall.args[2]! & BigInt(MAP_GPA_SET_ATTRIBUTES)) !== 0n;
  const map_shared = (run.hypercall.args[2]! & BigInt(MAP_GPA_SHARED)) !== 0n;
  const do_fallocate = (run.hypercall.args[2]! & BigInt(MAP_GPA_DO_FALLOCATE)) !== 0n;
  const vm = vcpu.vm;

  TEST_ASSERT(run.hypercall.nr === BigInt(KVM_HC_MAP_GPA_RANGE), `Wanted MAP_GPA_RANGE (${KVM_HC_MAP_GPA_RANGE}), got '${run.hypercall.nr}'`);

  if (do_fallocate) vm_guest_mem_fallocate(vm, gpa, size, map_shared);

  if (set_attributes) vm_set_memory_attributes(vm, gpa, size, map_shared ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE);
  run.hypercall.ret = 0n;
}

/**
 * One turn of __test_mem_conversions()'s loop for a vCPU: KVM_RUN and the handling of its exit.
 * Returns true once the guest is done.
 */
function test_mem_conversions_step(vcpu: KvmVcpuFd): boolean {
  const run = vcpu.run;
  const vm = vcpu.vm;
  vcpu_run(vcpu);

  if (run.exit_reason === KVM_EXIT_HYPERCALL) {
    handle_exit_hypercall(vcpu);
    return false;
  }

  TEST_ASSERT(run.exit_reason === KVM_EXIT_IO, `Wanted KVM_EXIT_IO, got exit reason: ${run.exit_reason} (${exit_reason_str(run.exit_reason)})`);

  const uc: Ucall = { cmd: 0n, args: [], buffer: '', hva: 0n };
  switch (Number(get_ucall(vcpu, uc))) {
    case UCALL_ABORT:
      REPORT_GUEST_ASSERT(uc);
    // falls through: REPORT_GUEST_ASSERT() does not return
    case UCALL_SYNC: {
      const gpa = uc.args[1]!;
      const size = Number(uc.args[2]!);
      TEST_ASSERT(uc.args[0] === BigInt(SYNC_SHARED) || uc.args[0] === BigInt(SYNC_PRIVATE), `Unknown sync command '${uc.args[0]}'`);
      for (let i = 0; i < size; i += vm.page_size) {
        const nr_bytes = Math.min(vm.page_size, size - i);
        const hva = addr_gpa2hva(vm, gpa + BigInt(i));

        /* In all cases, the host should observe the shared data. */
        memcmp_h(vcpu, hva, gpa + BigInt(i), Number(uc.args[3]!), nr_bytes);

        /* For shared, write the new pattern to guest memory. */
        if (uc.args[0] === BigInt(SYNC_SHARED)) TEST_ASSERT(vcpu.p.store(hva, pattern_page(Number(uc.args[4]!)).subarray(0, nr_bytes)) === 0, 'memset(hva)');
      }
      return false;
    }
    case UCALL_DONE:
      return true;
    default:
      TEST_FAIL(`Unknown ucall 0x${uc.cmd.toString(16)}.`);
  }
}

/** get_backing_src_pagesz(): the backing's page size (THP: the PMD size). */
function get_backing_src_pagesz(src_type: VmMemBackingSrcType): number {
  return src_type === VM_MEM_SRC_ANONYMOUS_THP ? SZ_2M : PAGE_SIZE;
}

function test_mem_conversions(host: SimHost, src_type: VmMemBackingSrcType, nr_vcpus: number, nr_memslots: number): void {
  /*
   * Nothing here reads the trace: the fixture's ring would take some 80,000 records (faults, SPTE
   * changes, page-cache updates) per vCPU, a third of the run's time.
   */
  host.tracer.removeSink(host.trace);

  /* Allocate enough memory so that each vCPU's chunk can be naturally aligned to the backing store. */
  const alignment = Math.max(SZ_2M, get_backing_src_pagesz(src_type));
  const per_cpu_size = Math.ceil(PER_CPU_DATA_SIZE / alignment) * alignment;
  const memfd_size = per_cpu_size * nr_vcpus;
  const slot_size = memfd_size / nr_memslots;

  TEST_ASSERT(Number.isInteger(slot_size) && slot_size * nr_memslots === memfd_size,
    `The memfd size (0x${memfd_size.toString(16)}) needs to be cleanly divisible by the number of memslots (${nr_memslots})`);
  const { vm, vcpus } = __vm_create_with_vcpus(host, { type: KVM_X86_SW_PROTECTED_VM }, nr_vcpus, 0, guest_code);

  vm_enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, 1 << KVM_HC_MAP_GPA_RANGE);

  const memfd = vm_create_guest_memfd(vm, memfd_size, 0);

  for (let i = 0; i < nr_memslots; i++) {
    vm_mem_add(vm, src_type, BASE_DATA_GPA + BigInt(slot_size * i), BASE_DATA_SLOT + i, slot_size / vm.page_size,
      KVM_MEM_GUEST_MEMFD, memfd, slot_size * i);
  }

  for (let i = 0; i < nr_vcpus; i++) {
    const gpa = BASE_DATA_GPA + BigInt(i * per_cpu_size);
    vcpu_args_set(vcpus[i]!, gpa);

    /* Map only what is needed so that an out-of-bounds access results #PF => SHUTDOWN instead of data corruption. */
    virt_map(vm, gpa, gpa, PER_CPU_DATA_SIZE / vm.page_size);
  }

  /* The vCPU threads, taking turns. */
  const running = new Set(vcpus);
  while (running.size > 0) for (const vcpu of [...running]) if (test_mem_conversions_step(vcpu)) running.delete(vcpu);

  kvm_vm_free(vm);

  /*
   * Allocate and free memory from the guest_memfd after closing the VM fd. The guest_memfd is
   * gifted a reference to its owning VM, i.e. should prevent the VM from being fully destroyed
   * until the last reference to the guest_memfd is also put.
   */
  kvm_fallocate(vm.p, memfd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, memfd_size);
  kvm_fallocate(vm.p, memfd, FALLOC_FL_KEEP_SIZE, 0, memfd_size);

  TEST_ASSERT(vm.p.close(memfd) === 0, 'close(memfd)');
}

/*
 * Each run fills and compares its 2 MiB + 4 KiB about a hundred times and takes some 13,000 TDP
 * faults (every conversion zaps the range): seconds, not milliseconds, hence the timeout.
 */
const SLOW = { timeout: 60_000 };

describe('private_mem_conversions_test', () => {
  test('one vCPU, one memslot, anonymous shared memory (the default run)', SLOW, ({ swHost }) => {
    TEST_REQUIRE(kvm_check_cap(swHost, KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM));
    test_mem_conversions(swHost, VM_MEM_SRC_ANONYMOUS, 1, 1);
  });

  test('-n 2 -m 2 -s shmem: two vCPUs taking turns, one memslot each, shared memory in a memfd', SLOW, ({ swHost }) => {
    test_mem_conversions(swHost, VM_MEM_SRC_SHMEM, 2, 2);
  });

  test('-s anonymous_thp -m 2: THP-backed shared memory, a memslot boundary inside the vCPU\'s range', SLOW, ({ swHost }) => {
    test_mem_conversions(swHost, VM_MEM_SRC_ANONYMOUS_THP, 1, 2);
  });

  test('this machine\'s kernel has no KVM_X86_SW_PROTECTED_VM: the selftest would skip', ({ host }) => {
    TEST_ASSERT((kvm_check_cap(host, KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM)) === 0, 'SW_PROTECTED on the none host');
  });
});
