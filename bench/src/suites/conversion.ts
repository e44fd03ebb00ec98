/**
 * conversion: what a shared <-> private conversion of guest memory costs the simulator, against
 * the work it cannot avoid, on a KVM_X86_SW_PROTECTED_VM (vendor sw_protected: TDP MMU, memory
 * attributes, guest_memfd).
 *
 * - to-private / to-shared: KVM_SET_MEMORY_ATTRIBUTES over 4 GiB (1048576 pages), every page
 *   mapped by a 4 KiB SPTE beforehand (KVM_PRE_FAULT_MEMORY of the whole range, untimed): shared
 *   pages from anonymous memory (MADV_NOHUGEPAGE, touched), private ones from guest_memfd. The
 *   conversion zaps the 1048576 SPTEs (kvm_arch_pre_set_memory_attributes), stores the attribute
 *   range and recomputes the huge-page mixed flags (kvm_arch_post_set_memory_attributes).
 * - typed-array pass: one loop over a Uint16Array of 1048576 entries that clears each non-zero
 *   one, in the same run: the floor any per-page zap is measured against. The last line printed
 *   is `conversion/typed-array ratio: X`, X = the slower conversion / the pass (target <= 20).
 * - unmapped 64 GiB / 4 KiB: the same ioctl over a 64 GiB memslot (and over 4 KiB of it) that
 *   maps nothing: its cost must not grow with guest size (target <= 10x), printed as
 *   `conversion/unmapped 64 GiB vs 4 KiB ratio: X`.
 * - gmem fault / punch hole: user loads from each page of a 1 GiB guest_memfd mapped MAP_SHARED
 *   (GUEST_MEMFD_FLAG_MMAP | INIT_SHARED, a default VM: kvm_gmem_fault_user_mapping() allocates
 *   and zeroes), then fallocate(PUNCH_HOLE) of all of it; bench/real/gmem_bench.c runs the same
 *   two cases on this machine's kernel where /dev/kvm is usable. The host and the loads are the
 *   mm suite's (freshProcess(), load_pages(): LRU lists made, one byte read into one buffer).
 *
 * Tracing is off (no sink), as on a production kernel.
 */
import { PAGE_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE,
  MAP_SHARED, PROT_READ, PROT_WRITE, type Process,
} from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM,
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_PRE_FAULT_MEMORY, KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, PG_LEVEL_4K, kvm_tdp_mmu_count_sptes,
  type Kvm,
} from '@cocosim/kvm';
import type { BenchCase, BenchSuite, SuiteResult } from '../harness.js';
import { freshProcess, load_pages } from './mm.js';

/** 4 GiB of 4 KiB pages. */
const NR_CONV = 1048576;
const CONV_BYTES = NR_CONV * PAGE_SIZE;
/** The unmapped memslot: 64 GiB at gpa 64 GiB. */
const BIG_GPA = 2 ** 36;
const BIG_BYTES = 2 ** 36;
/** 1 GiB of 4 KiB pages, for the guest_memfd cases. */
const NR_GIB = 262144;

function check(ok: boolean, what: string, p: Process): void {
  if (!ok) throw new Error(`conversion bench: ${what} failed (errno ${p.errno})`);
}

/** A process on a fresh host of `nr_pages` pages of RAM and KVM with `vendor`, tracing off. */
function ioctl(p: Process, fd: number, cmd: number, arg: unknown, what: string): number {
  const r = p.ioctl(fd, cmd, arg);
  check(r >= 0, what, p);
  return r;
}

function set_attributes(p: Process, vm: number, gpa: number, size: number, private_: boolean): void {
  ioctl(p, vm, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size, attributes: private_ ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0 }, 'KVM_SET_MEMORY_ATTRIBUTES');
}

/** A guest_memfd memslot of `bytes` at `gpa` whose shared half is anonymous memory never touched unless `touch`. */
function add_slot(p: Process, vm: number, slot: number, gpa: number, bytes: number, touch: boolean): void {
  const hva = p.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  check(hva !== MAP_FAILED, 'mmap', p);
  check(p.madvise(hva, bytes, MADV_NOHUGEPAGE) === 0, 'madvise(MADV_NOHUGEPAGE)', p);
  if (touch) check(p.store(hva, new Uint8Array(bytes).fill(1)) === 0, 'store', p);
  const gmem = ioctl(p, vm, KVM_CREATE_GUEST_MEMFD, { size: bytes, flags: 0 }, 'KVM_CREATE_GUEST_MEMFD');
  ioctl(p, vm, KVM_SET_USER_MEMORY_REGION2, {
    slot, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: gpa, memory_size: bytes, userspace_addr: hva, guest_memfd: gmem, guest_memfd_offset: 0,
  }, 'KVM_SET_USER_MEMORY_REGION2');
}

/** The VM of the conversion cases, built once and reused: each case's prepare puts it in the state it needs. */
interface ConvVm {
  readonly p: Process;
  readonly vm: number;
  readonly vcpu: number;
  readonly kvm: Kvm;
  /** The attribute [0, 4 GiB) has now. */
  private_: boolean;
}

let conv: ConvVm | undefined;

function conv_vm(): ConvVm {
  if (conv !== undefined) return conv;
  /* Shared and private backing of 4 GiB each, and room for the rest. */
  const p = freshProcess(2 * NR_CONV + 65536, 'sw_protected');
  const vm = ioctl(p, p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM, 'KVM_CREATE_VM');
  const vcpu = ioctl(p, vm, KVM_CREATE_VCPU, 0, 'KVM_CREATE_VCPU');
  add_slot(p, vm, 0, 0, CONV_BYTES, true);
  add_slot(p, vm, 1, BIG_GPA, BIG_BYTES, false);
  conv = { p, vm, vcpu, kvm: p.task.files.lookup(vm)!.private_data as Kvm, private_: false };
  return conv;
}

/** Every page of [0, 4 GiB) has `private_` and is mapped by a 4 KiB SPTE. */
function conv_prepare(private_: boolean): ConvVm {
  const c = conv_vm();
  if (c.private_ !== private_) {
    set_attributes(c.p, c.vm, 0, CONV_BYTES, private_);
    c.private_ = private_;
  }
  const range = { gpa: 0, size: CONV_BYTES, flags: 0 };
  ioctl(c.p, c.vcpu, KVM_PRE_FAULT_MEMORY, range, 'KVM_PRE_FAULT_MEMORY');
  if (range.size !== 0 || kvm_tdp_mmu_count_sptes(c.kvm)[PG_LEVEL_4K] !== NR_CONV) {
    throw new Error(`conversion bench: ${kvm_tdp_mmu_count_sptes(c.kvm)[PG_LEVEL_4K]} 4K SPTEs after the pre-fault, not ${NR_CONV}`);
  }
  return c;
}

function conv_case(to_private: boolean): BenchCase {
  return {
    name: `to-${to_private ? 'private' : 'shared'}: KVM_SET_MEMORY_ATTRIBUTES over 4 GiB, 1048576 4K SPTEs mapped`,
    samples: 5,
    prepare: () => {
      const c = conv_prepare(!to_private);
      return () => {
        set_attributes(c.p, c.vm, 0, CONV_BYTES, to_private);
        c.private_ = to_private;
        if (kvm_tdp_mmu_count_sptes(c.kvm)[PG_LEVEL_4K] !== 0) throw new Error('conversion bench: SPTEs left after the conversion');
      };
    },
  };
}

/** A conversion to private of `bytes` of the unmapped 64 GiB slot (reset to shared untimed). */
function unmapped_case(name: string, bytes: number): BenchCase {
  return {
    name,
    samples: 15,
    prepare: () => {
      const c = conv_vm();
      set_attributes(c.p, c.vm, BIG_GPA, BIG_BYTES, false);
      return () => set_attributes(c.p, c.vm, BIG_GPA, bytes, true);
    },
  };
}

const TYPED_ARRAY_CASE = 'typed-array pass: clear the non-zero entries of a Uint16Array of 1048576';
const UNMAPPED_64G = 'unmapped 64 GiB: KVM_SET_MEMORY_ATTRIBUTES over a 64 GiB memslot that maps nothing';
const UNMAPPED_4K = 'unmapped 4 KiB: KVM_SET_MEMORY_ATTRIBUTES over 4 KiB of the same memslot';

/** A default VM with a 1 GiB guest_memfd (MMAP | INIT_SHARED) mapped MAP_SHARED. */
function gmem_prepare(): { p: Process; fd: number; addr: number } {
  const p = freshProcess(2 * NR_GIB, 'none');
  const vm = ioctl(p, p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_DEFAULT_VM, 'KVM_CREATE_VM');
  const fd = ioctl(p, vm, KVM_CREATE_GUEST_MEMFD, { size: NR_GIB * PAGE_SIZE, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED }, 'KVM_CREATE_GUEST_MEMFD');
  const addr = p.mmap(0, NR_GIB * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  check(addr !== MAP_FAILED, 'mmap of guest_memfd', p);
  return { p, fd, addr: Number(addr) };
}

const cases: BenchCase[] = [
  conv_case(true),
  conv_case(false),
  {
    name: TYPED_ARRAY_CASE,
    samples: 15,
    prepare: () => {
      const a = new Uint16Array(NR_CONV).fill(0x3f);
      return () => {
        let n = 0;
        for (let i = 0; i < a.length; i++) {
          if (a[i] !== 0) {
            a[i] = 0;
            n++;
          }
        }
        if (n !== NR_CONV) throw new Error(`conversion bench: the pass cleared ${n} entries`);
      };
    },
  },
  unmapped_case(UNMAPPED_64G, BIG_BYTES),
  unmapped_case(UNMAPPED_4K, PAGE_SIZE),
  {
    name: 'gmem fault: load of an unmapped page of a 1 GiB guest_memfd MAP_SHARED mapping (MMAP | INIT_SHARED)',
    ops: NR_GIB,
    samples: 5,
    prepare: () => {
      const { p, addr } = gmem_prepare();
      return () => load_pages(p, addr, NR_GIB);
    },
  },
  {
    name: 'gmem punch hole: 1 GiB of guest_memfd, all 262144 pages mapped',
    samples: 5,
    prepare: () => {
      const { p, fd, addr } = gmem_prepare();
      load_pages(p, addr, NR_GIB);
      return () => check(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, NR_GIB * PAGE_SIZE) === 0, 'fallocate(PUNCH_HOLE)', p);
    },
  },
];

function ms_of(result: SuiteResult, name: string): number {
  const r = result.results.find((c) => c.name === name || c.name.startsWith(name));
  if (r === undefined) throw new Error(`conversion bench: no result for "${name}"`);
  return r.ms;
}

export const conversionSuite: BenchSuite = {
  name: 'conversion',
  description: 'shared <-> private conversion of 4 GiB of mapped guest memory against a typed-array pass; unmapped 64 GiB vs 4 KiB; guest_memfd fault-in and punch hole of 1 GiB',
  cases,
  realKernel: { source: 'gmem_bench.c', needs_kvm: true },
  summary: (result) => {
    const conversion = Math.max(ms_of(result, 'to-private'), ms_of(result, 'to-shared'));
    const typed = ms_of(result, TYPED_ARRAY_CASE);
    return [
      `conversion/unmapped 64 GiB vs 4 KiB ratio: ${(ms_of(result, UNMAPPED_64G) / ms_of(result, UNMAPPED_4K)).toFixed(2)}`,
      `conversion/typed-array ratio: ${(conversion / typed).toFixed(2)}`,
    ];
  },
};
