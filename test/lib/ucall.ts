/**
 * ucall, the selftests' "hypercall to user space" (tools/testing/selftests/kvm/lib/ucall_common.c,
 * lib/x86/ucall.c, include/ucall_common.h), on the simulator's guest programs (kvm/src/guest.ts).
 *
 * As in C, the ucall structs live in guest memory: ucall_init() puts a struct ucall_header (the
 * in_use bitmap and KVM_MAX_VCPUS struct ucall) in memslot 0 and writes each struct's host
 * address into it; the guest claims a struct with test_and_set_bit() on the bitmap, writes cmd
 * and args (and for an assertion the message into `buffer`), then executes `in al, dx` on
 * UCALL_PIO_PORT with rdi = the struct's host address: KVM_EXIT_IO. The host reads rdi
 * (KVM_GET_REGS), copies the struct from its own mapping of the guest memory and completes the
 * I/O with an immediate-exit KVM_RUN (vcpu_run_complete_io()).
 *
 * One difference: a guest's `exp` and `file` strings are pointers into the test binary, which
 * the host can read in C; a guest program has no such strings in guest memory, so ucall_assert()
 * writes "exp at file:line - message" into the buffer instead.
 */
import { KVM_EXIT_IO, guestFill, guestReadU64, guestStore, guestWriteU64, pioIn, type GuestCode } from '@cocosim/kvm';
import { TEST_ASSERT, TEST_FAIL } from './test_util.js';
import { addr_gpa2hva, vcpu_regs_get, vcpu_run_complete_io, type KvmVcpuFd, type KvmVm } from './kvm_util.js';

/* include/ucall_common.h */
export const UCALL_NONE = 0;
export const UCALL_SYNC = 1;
export const UCALL_ABORT = 2;
export const UCALL_PRINTF = 3;
export const UCALL_DONE = 4;
export const UCALL_UNHANDLED = 5;

export const UCALL_MAX_ARGS = 7;
export const UCALL_BUFFER_LEN = 1024;

/** lib/x86/ucall.c */
export const UCALL_PIO_PORT = 0x1000;

/** KVM_MAX_VCPUS as the selftests see it (the ucall pool has one struct per vCPU). */
const UCALL_POOL_VCPUS = 1024;

/*
 * struct ucall { u64 cmd; u64 args[7]; char buffer[1024]; struct ucall *hva; } and struct
 * ucall_header { DECLARE_BITMAP(in_use, KVM_MAX_VCPUS); struct ucall ucalls[KVM_MAX_VCPUS]; }.
 */
const UC_CMD = 0;
const UC_ARGS = 8;
const UC_BUFFER = UC_ARGS + 8 * UCALL_MAX_ARGS;
const UC_HVA = UC_BUFFER + UCALL_BUFFER_LEN;
const SIZEOF_UCALL = UC_HVA + 8;
const HDR_UCALLS = UCALL_POOL_VCPUS / 8;
const SIZEOF_UCALL_HEADER = HDR_UCALLS + UCALL_POOL_VCPUS * SIZEOF_UCALL;

/**
 * Where the harness puts the ucall pool: KVM_UTIL_MIN_VADDR, identity-mapped in memslot 0 (the
 * C harness allocates it there with __vm_vaddr_alloc() and tells the guest through the
 * `ucall_pool` global; a guest program knows it as this constant).
 */
export const UCALL_POOL_GVA = 0x2000n;

/** GUEST_UCALL_FAILED: the value a guest passes when it could not allocate a struct. */
const GUEST_UCALL_FAILED = 0xffff_ffff_ffff_ffffn;

/** struct ucall as the host copies it. */
export interface Ucall {
  cmd: bigint;
  args: bigint[];
  buffer: string;
  hva: bigint;
}

/** ucall_nr_pages_required(page_size): the pages the pool takes. */
export function ucall_nr_pages_required(page_size: number): number {
  return Math.ceil(SIZEOF_UCALL_HEADER / page_size);
}

/**
 * ucall_init(vm): the header in guest memory (memslot 0 must cover it), every struct's `hva`
 * set to its own host address.
 */
export function ucall_init(vm: KvmVm): void {
  const base = addr_gpa2hva(vm, UCALL_POOL_GVA);
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < UCALL_POOL_VCPUS; i++) {
    const uc = base + BigInt(HDR_UCALLS + i * SIZEOF_UCALL);
    dv.setBigUint64(0, uc, true);
    const r = vm.p.store(uc + BigInt(UC_HVA), b);
    TEST_ASSERT(r === 0, `ucall_init: cannot write the ucall pool at 0x${uc.toString(16)}`);
  }
}

/* ---- the guest side ---- */

/** ucall_alloc(): test_and_set_bit() on the in_use bitmap; the struct's GVA, args zeroed. */
function* ucall_alloc(): GuestCode<bigint | undefined> {
  for (let w = 0; w < UCALL_POOL_VCPUS / 64; w++) {
    const word_gva = UCALL_POOL_GVA + BigInt(8 * w);
    const word = yield* guestReadU64(word_gva);
    if (word === 0xffff_ffff_ffff_ffffn) continue;
    let bit = 0;
    while (word & (1n << BigInt(bit))) bit++;
    yield* guestWriteU64(word_gva, word | (1n << BigInt(bit)));
    const uc = UCALL_POOL_GVA + BigInt(HDR_UCALLS + (64 * w + bit) * SIZEOF_UCALL);
    yield* guestFill(uc + BigInt(UC_ARGS), 0, 8 * UCALL_MAX_ARGS);
    return uc;
  }
  return undefined;
}

/** ucall_free(): clear_bit() of the struct's index. */
function* ucall_free(uc: bigint): GuestCode {
  const i = Number(uc - UCALL_POOL_GVA - BigInt(HDR_UCALLS)) / SIZEOF_UCALL;
  const word_gva = UCALL_POOL_GVA + BigInt(8 * Math.floor(i / 64));
  const word = yield* guestReadU64(word_gva);
  yield* guestWriteU64(word_gva, word & ~(1n << BigInt(i % 64)));
}

/** ucall_arch_do_ucall(uc): `in al, dx` on UCALL_PIO_PORT with rdi = uc. */
function* ucall_arch_do_ucall(uc_hva: bigint): GuestCode {
  yield* pioIn(UCALL_PIO_PORT, 1, uc_hva);
}

function u64(x: bigint | number): bigint {
  return BigInt.asUintN(64, BigInt(x));
}

/** ucall(cmd, nargs, ...): the guest's call; at most UCALL_MAX_ARGS arguments are passed. */
export function* ucall(cmd: number, ...args: (bigint | number)[]): GuestCode {
  const uc = yield* ucall_alloc();
  if (uc === undefined) {
    yield* ucall_arch_do_ucall(GUEST_UCALL_FAILED);
    return;
  }
  yield* guestWriteU64(uc + BigInt(UC_CMD), cmd);
  for (let i = 0; i < Math.min(args.length, UCALL_MAX_ARGS); i++) yield* guestWriteU64(uc + BigInt(UC_ARGS + 8 * i), u64(args[i]!));
  yield* ucall_arch_do_ucall(yield* guestReadU64(uc + BigInt(UC_HVA)));
  yield* ucall_free(uc);
}

/**
 * ucall_assert(cmd, exp, file, line, fmt, ...): an ABORT ucall whose buffer holds the failed
 * expression, where, and the message.
 */
export function* ucall_assert(cmd: number, exp: string, where: string, msg: string): GuestCode {
  const uc = yield* ucall_alloc();
  if (uc === undefined) {
    yield* ucall_arch_do_ucall(GUEST_UCALL_FAILED);
    return;
  }
  yield* guestWriteU64(uc + BigInt(UC_CMD), cmd);
  const text = new TextEncoder().encode(`${exp} at ${where} - ${msg}`).subarray(0, UCALL_BUFFER_LEN - 1);
  const buf = new Uint8Array(text.length + 1);
  buf.set(text);
  yield* guestStore(uc + BigInt(UC_BUFFER), buf);
  yield* ucall_arch_do_ucall(yield* guestReadU64(uc + BigInt(UC_HVA)));
  yield* ucall_free(uc);
}

/** GUEST_SYNC(stage): ucall(UCALL_SYNC, 2, "hello", stage); the string is its address, 0 here. */
export function GUEST_SYNC(stage: bigint | number): GuestCode {
  return ucall(UCALL_SYNC, 0n, stage);
}

/** GUEST_SYNC1..GUEST_SYNC6(args...): ucall(UCALL_SYNC, n, args...). */
export function GUEST_SYNC_N(...args: (bigint | number)[]): GuestCode {
  return ucall(UCALL_SYNC, ...args);
}

/** GUEST_DONE(). */
export function GUEST_DONE(): GuestCode {
  return ucall(UCALL_DONE);
}

/** __GUEST_ASSERT(cond, fmt, ...): an ABORT ucall unless `cond`; `exp` names the condition. */
export function* __GUEST_ASSERT(cond: boolean, exp: string, msg = ''): GuestCode {
  if (!cond) yield* ucall_assert(UCALL_ABORT, exp, guest_caller(), msg);
}

/** GUEST_ASSERT(cond). */
export function GUEST_ASSERT(cond: boolean, exp = 'condition'): GuestCode {
  return __GUEST_ASSERT(cond, exp, exp);
}

/** GUEST_ASSERT_EQ(a, b): "%#lx != %#lx (a != b)". */
export function GUEST_ASSERT_EQ(a: bigint | number, b: bigint | number, what = 'a == b'): GuestCode {
  return __GUEST_ASSERT(u64(a) === u64(b), what, `0x${u64(a).toString(16)} != 0x${u64(b).toString(16)} (${what.replace('==', '!=')})`);
}

/** GUEST_FAIL(fmt, ...). */
export function GUEST_FAIL(msg: string): GuestCode {
  return ucall_assert(UCALL_ABORT, 'Unconditional guest failure', guest_caller(), msg);
}

/** The guest code's file:line for an assertion (C's __FILE__:__LINE__). */
function guest_caller(): string {
  const line = new Error().stack?.split('\n').find((l) => /\.test\.ts:\d+/.test(l));
  const m = line?.match(/([^/\s(]+\.test\.ts):(\d+)/);
  return m ? `${m[1]}:${m[2]}` : 'guest';
}

/* ---- the host side ---- */

/** ucall_arch_get_ucall(): rdi (KVM_GET_REGS) of a KVM_EXIT_IO on UCALL_PIO_PORT, else undefined. */
function ucall_arch_get_ucall(vcpu: KvmVcpuFd): bigint | undefined {
  const run = vcpu.run;
  if (run.exit_reason === KVM_EXIT_IO && run.io.port === UCALL_PIO_PORT) return vcpu_regs_get(vcpu).rdi;
  return undefined;
}

/**
 * get_ucall(vcpu, uc): the ucall the vCPU exited with (its cmd; UCALL_NONE after another exit),
 * copied from the host's mapping of the struct, and the I/O completed (vcpu_run_complete_io).
 */
export function get_ucall(vcpu: KvmVcpuFd, uc?: Ucall): bigint {
  const out = uc ?? { cmd: 0n, args: [], buffer: '', hva: 0n };
  const addr = ucall_arch_get_ucall(vcpu);
  if (addr === undefined) {
    Object.assign(out, { cmd: BigInt(UCALL_NONE), args: new Array<bigint>(UCALL_MAX_ARGS).fill(0n), buffer: '', hva: 0n });
    return out.cmd;
  }
  TEST_ASSERT(addr !== GUEST_UCALL_FAILED, 'Guest failed to allocate ucall struct');
  const bytes = vcpu.vm.p.load(addr, SIZEOF_UCALL);
  if (!(bytes instanceof Uint8Array)) TEST_FAIL(`get_ucall: cannot read the ucall at 0x${addr.toString(16)}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const buf = bytes.subarray(UC_BUFFER, UC_BUFFER + UCALL_BUFFER_LEN);
  const nul = buf.indexOf(0);
  Object.assign(out, {
    cmd: dv.getBigUint64(UC_CMD, true),
    args: Array.from({ length: UCALL_MAX_ARGS }, (_, i) => dv.getBigUint64(UC_ARGS + 8 * i, true)),
    buffer: new TextDecoder().decode(buf.subarray(0, nul < 0 ? buf.length : nul)),
    hva: dv.getBigUint64(UC_HVA, true),
  });
  vcpu_run_complete_io(vcpu);
  return out.cmd;
}

/** REPORT_GUEST_ASSERT(uc): fail the test with the guest's message. */
export function REPORT_GUEST_ASSERT(uc: Ucall): never {
  TEST_FAIL(uc.buffer);
}
