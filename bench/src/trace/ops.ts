/**
 * The op table: every op a trace may call, its arguments, what it returns, and the Process
 * method that performs it (docs/trace-format.md, "Ops of the generic part"; ops outside it are
 * registered by the package that implements them, with registerOp()).
 *
 * An op binds a trace line to a method of the simulated process. Its arguments are listed in
 * the order the method takes them, so that most ops are a plain positional call; an op whose
 * method takes its arguments in another shape gives toCall() (trace -> method) and fromCall()
 * (method -> trace, for the trace writer), and toResult() reads what the method returned.
 *
 * A platform lacking an op answers as a kernel without it would: a process with no method of
 * that name gives -1 with the op's `missing` errno (ENOSYS for a system call), never a crash.
 * So the table lists every op of the format, and an op starts working the moment mm or kvm
 * adds the method.
 */
import { BUG_ON, Errno, U64_MAX } from '@cocosim/core';
import { debug_vm_outside, type Process } from '@cocosim/mm';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_EXIT_MEMORY_FAULT, KVM_GET_REGS, KVM_PRE_FAULT_MEMORY, KVM_REGS_FIELDS, KVM_RUN,
  KVM_SET_MEMORY_ATTRIBUTES2, file_is_kvm_vcpu, kvm_run_exit, type KvmVcpu,
} from '@cocosim/kvm';
import type { Platform } from '../host.js';
import type { OpResult, SignalInfo } from './results.js';
import { MAX_DATA_LEN, type ArgKind } from './values.js';
import { registerVfioOps } from './vfio_ops.js';

export interface ArgSpec {
  readonly name: string;
  readonly kind: ArgKind;
  /** The trace value used when a line omits the argument; without one the argument is required. */
  readonly default?: number | string;
  /** The argument may be omitted and has no default: the op then gets undefined (mlock vs mlock2). */
  readonly optional?: boolean;
  /** For flags: the prefixes of the kernel names that spell it ("MFD_"). */
  readonly names?: string | readonly string[];
  /** For flags: one name (a command, an advice), not names joined by '|'. */
  readonly enum?: boolean;
  /** An address into a mapping: the trace writer spells it relative to the mapping ("$map+4096"). */
  readonly addr?: boolean;
  /** The largest value the replayer accepts: a size it must allocate a buffer of. */
  readonly max?: number;
}

/** What an op runs against. */
export interface OpContext {
  readonly platform: Platform;
  readonly process: Process;
}

/** Vendors and designs that add an op; an op without one is the base kernel's (every platform). */
export interface OpProvider {
  readonly vendors?: readonly string[];
  readonly designs?: readonly string[];
}

export interface OpSpec {
  readonly name: string;
  readonly args: readonly ArgSpec[];
  /** The `returns` column of the spec's table. */
  readonly returns: string;
  /** One or two sentences: what the op does and how its result reads. */
  readonly doc: string;
  /** Part of the generic part of the format: the kernel oracle replays it on real Linux. */
  readonly generic: boolean;
  readonly provider?: OpProvider;
  /** The Process method performing the op; the trace writer records calls to it as this op. */
  readonly method: string;
  /**
   * When the arguments select another method (mlock with flags is mlock2): its name. The trace
   * writer records calls to it as this op too.
   */
  readonly variant?: { readonly method: string; readonly when: (args: readonly unknown[]) => boolean };
  /** The errno of a platform without the op: what a kernel without it returns. */
  readonly missing: number;
  /**
   * Trace arguments (evaluated, in `args` order) -> the method's arguments. `ctx` is there for
   * the arguments a trace leaves implicit (process_vm_readv's pid is the replaying process).
   */
  toCall(args: readonly unknown[], ctx: OpContext): unknown[];
  /** The method's arguments -> trace arguments in `args` order (the trace writer). */
  fromCall(jsArgs: readonly unknown[]): unknown[];
  /**
   * The method's return value -> C's view of the call. `before` is a copy of jsArgs taken
   * before it ran when `snapshot` is set (the method writes into its arguments), else jsArgs.
   */
  toResult(ret: unknown, p: Process, jsArgs: readonly unknown[], before: readonly unknown[]): OpResult;
  /** The method writes into its arguments (a struct's out-fields): copy them before the call. */
  readonly snapshot?: boolean;
  /**
   * An op that is no Process method (simulated hardware: a device plugged in, its DMA) performs
   * itself on the context; the process's methods are not consulted, and the op is on every
   * platform that registers what it needs (it answers `missing` where that is absent).
   */
  run?(args: readonly unknown[], ctx: OpContext): OpResult;
  /** What a successful call returns, for the trace writer's "as": an fd, or an address. */
  binds?(traceArgs: readonly unknown[]): 'fd' | 'addr' | undefined;
  /** The handle name the trace writer gives the result ("memfd", then "memfd2"...). */
  readonly handle?: string;
}

/** MAP_FAILED, `(void *)-1` (include/uapi/asm-generic/mman-common.h). */
const MAP_FAILED = U64_MAX;

type Method = (...args: unknown[]) => unknown;

/** The process's method of that name, if the platform has it. */
export function methodOf(p: object, name: string): Method | undefined {
  const f = (p as Record<string, unknown>)[name];
  return typeof f === 'function' ? (f as Method) : undefined;
}

function isSignal(v: unknown): v is SignalInfo {
  if (typeof v !== 'object' || v === null) return false;
  const { signo, si_code } = v as Partial<SignalInfo>;
  return (typeof signo === 'number' || typeof signo === 'string') && (typeof si_code === 'number' || typeof si_code === 'string');
}

/**
 * C's view of what a system call method returned: -1 (or MAP_FAILED) with errno, a signal
 * record as a signal, bytes as data, anything else as the result.
 */
export function syscallResult(ret: unknown, p: Process): OpResult {
  if (ret === -1 || ret === -1n || ret === MAP_FAILED) return { ret: -1, errno: p.errno };
  if (typeof ret === 'number' || typeof ret === 'bigint') return { ret };
  if (isSignal(ret)) return { ret: -1, signal: ret };
  if (ret instanceof Uint8Array) return { ret: 0, data: ret };
  BUG_ON(true, `trace op: a process method returned ${typeof ret}, which no result field can hold`);
  return { ret: -1 };
}

/** A plain copy of argument values, for ops that compare a struct before and after the call. */
export function copyValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return v.slice();
  if (Array.isArray(v)) return v.map(copyValue);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyValue(x)]));
  return v;
}

function sameCopy(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => sameCopy(x, b[k]));
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameCopy((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b || (typeof a !== typeof b && (typeof a === 'bigint' || typeof b === 'bigint') && BigInt(a as number) === BigInt(b as number));
}

/**
 * The out-fields of a struct argument: the fields the call wrote (changed or added). Without
 * the struct's layout this is what tells them apart from the fields the caller filled in.
 */
export function outFields(before: unknown, after: unknown): Record<string, unknown> | undefined {
  if (typeof after !== 'object' || after === null || after instanceof Uint8Array || Array.isArray(after)) return undefined;
  const old = (typeof before === 'object' && before !== null ? before : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(after)) if (!(k in old) || !sameCopy(old[k], v)) out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The fields of an op entry that most ops leave to the defaults. */
export type OpInit = Pick<OpSpec, 'name' | 'args' | 'returns' | 'doc'> & Partial<Omit<OpSpec, 'name' | 'args' | 'returns' | 'doc'>>;

/** An op entry with the defaults: a generic system call, method of the same name, positional. */
export function defineOp(init: OpInit): OpSpec {
  return {
    generic: true,
    method: init.name,
    missing: Errno.ENOSYS,
    toCall: (args) => [...args],
    fromCall: (jsArgs) => [...jsArgs],
    toResult: (ret, p) => syscallResult(ret, p),
    ...init,
  };
}

const OPS = new Map<string, OpSpec>();

/** Adds an op to the table (a package's ops: vendor launch ioctls, a design's syscalls...). */
export function registerOp(op: OpInit): OpSpec {
  const spec = defineOp(op);
  BUG_ON(OPS.has(spec.name), `trace op ${spec.name} registered twice`);
  OPS.set(spec.name, spec);
  return spec;
}

export function getOp(name: string): OpSpec | undefined {
  return OPS.get(name);
}

/** Every op, in the order registered (the spec's order for the generic part). */
export function allOps(): OpSpec[] {
  return [...OPS.values()];
}

/**
 * Runs an op on a process: what C sees. A process without the op's method answers with the
 * op's `missing` errno, as a kernel without the system call would.
 */
export function runOp(op: OpSpec, ctx: OpContext, args: readonly unknown[]): OpResult {
  /* hardware, not a system call: DEBUG_VM, if on, must see it (debug_vm_outside()) */
  if (op.run !== undefined) {
    const run = op.run;
    return debug_vm_outside(ctx.process, op.name, () => run(args, ctx));
  }
  const f = methodOf(ctx.process, op.variant?.when(args) === true ? op.variant.method : op.method);
  if (f === undefined) return { ret: -1, errno: op.missing };
  const jsArgs = op.toCall(args, ctx);
  const before = op.snapshot === true ? jsArgs.map(copyValue) : jsArgs;
  const ret = f.apply(ctx.process, jsArgs);
  return op.toResult(ret, ctx.process, jsArgs, before);
}

/** Whether a process (or Process.prototype) has the op. */
export function hasOp(op: OpSpec, p: object): boolean {
  return op.run !== undefined || methodOf(p, op.method) !== undefined;
}

/* ---- result readers shared by several ops ---- */

/** A read-like call: bytes read as ret, and the bytes as data (a returned buffer, or the one passed in). */
function readResult(ret: unknown, p: Process, jsArgs: readonly unknown[]): OpResult {
  if (ret instanceof Uint8Array) return { ret: ret.length, data: ret };
  const r = syscallResult(ret, p);
  const buf = jsArgs.find((a): a is Uint8Array => a instanceof Uint8Array);
  if (r.errno !== undefined || buf === undefined || typeof r.ret !== 'number') return r;
  return { ret: r.ret, data: buf.slice(0, r.ret) };
}

/** fstat: 0 with {size, blocks}, from a returned kstat or the struct passed in. */
function statResult(ret: unknown, p: Process, jsArgs: readonly unknown[]): OpResult {
  const returned = typeof ret === 'object' && ret !== null && !isSignal(ret);
  const stat = returned ? ret : jsArgs[1];
  const r = syscallResult(returned ? 0 : ret, p);
  if (r.errno !== undefined || typeof stat !== 'object' || stat === null) return r;
  const s = stat as Record<string, unknown>;
  return { ...r, stat: { size: s.st_size ?? s.size, blocks: s.st_blocks ?? s.blocks } };
}

/** load/store: 0 (with data for a load), or the signal the access raised. */
function accessResult(ret: unknown, p: Process): OpResult {
  if (ret instanceof Uint8Array) return { ret: 0, data: ret };
  return syscallResult(ret, p);
}

/**
 * guest_load/guest_store: 0 with data, or 0 with the exit (KVM_RUN itself succeeded and
 * returned to userspace with an exit reason other than the access completing).
 */
function guestAccessResult(ret: unknown, p: Process): OpResult {
  if (typeof ret === 'object' && ret !== null && 'reason' in ret) return { ret: 0, exit: ret as Record<string, unknown> };
  // KVM_RUN failed and still filled kvm_run (KVM_EXIT_MEMORY_FAULT comes with -EFAULT).
  if (typeof ret === 'object' && ret !== null && 'exit' in ret && 'ret' in ret) {
    const { ret: r, exit } = ret as { ret: unknown; exit: Record<string, unknown> };
    return { ...syscallResult(r, p), exit };
  }
  return accessResult(ret, p);
}

/* ---- the generic part (docs/trace-format.md) ---- */

/** A C buffer of `count` bytes for a read-like call (the count was checked against MAX_DATA_LEN). */
function buffer(count: unknown): Uint8Array {
  return new Uint8Array(Math.min(Number(count), MAX_DATA_LEN));
}

const fd: ArgSpec = { name: 'fd', kind: 'fd' };
const count: ArgSpec = { name: 'count', kind: 'u64', max: MAX_DATA_LEN };
const addr: ArgSpec = { name: 'addr', kind: 'u64', addr: true };
const length: ArgSpec = { name: 'length', kind: 'u64' };

registerOp({
  name: 'memfd_create',
  args: [{ name: 'name', kind: 'string' }, { name: 'flags', kind: 'flags', names: 'MFD_', default: 0 }],
  returns: 'fd',
  doc: 'memfd_create(2): an anonymous shmem file. `name` null passes NULL (EFAULT).',
  binds: () => 'fd',
  handle: 'memfd',
});
registerOp({ name: 'close', args: [fd], returns: '0', doc: 'close(2).' });
registerOp({
  name: 'ftruncate',
  args: [fd, { name: 'length', kind: 'int' }],
  returns: '0',
  doc: 'ftruncate(2); `length` is an off_t, so negative values reach the kernel.',
});
registerOp({
  name: 'fallocate',
  args: [fd, { name: 'mode', kind: 'flags', names: 'FALLOC_FL_', default: 0 }, { name: 'offset', kind: 'int' }, { name: 'len', kind: 'int' }],
  returns: '0',
  doc: 'fallocate(2): allocate, or punch a hole with FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.',
});
registerOp({
  name: 'fcntl',
  args: [fd, { name: 'cmd', kind: 'flags', names: 'F_', enum: true }, { name: 'arg', kind: 'flags', names: 'F_SEAL_', default: 0 }],
  returns: "cmd's result (seals as a number)",
  doc: 'fcntl(2): F_ADD_SEALS with seals such as "F_SEAL_WRITE|F_SEAL_SHRINK", F_GET_SEALS.',
});
registerOp({
  name: 'fstat',
  args: [fd],
  returns: '0, with `"stat": {"size", "blocks"}`',
  doc: 'fstat(2): st_size and st_blocks (512-byte units).',
  toCall: (args) => [args[0], {}],
  fromCall: (jsArgs) => [jsArgs[0]],
  toResult: statResult,
});
registerOp({
  name: 'read',
  args: [fd, count],
  returns: 'bytes read, with `data`',
  doc: 'read(2) at the file position, into a buffer of `count` bytes.',
  toCall: ([f, n]) => [f, buffer(n)],
  fromCall: ([f, buf]) => [f, buf instanceof Uint8Array ? buf.length : buf],
  toResult: readResult,
});
registerOp({
  name: 'pread',
  args: [fd, count, { name: 'offset', kind: 'int' }],
  returns: 'bytes read, with `data`',
  doc: 'pread64(2), into a buffer of `count` bytes.',
  toCall: ([f, n, off]) => [f, buffer(n), off],
  fromCall: ([f, buf, off]) => [f, buf instanceof Uint8Array ? buf.length : buf, off],
  toResult: readResult,
});
registerOp({ name: 'write', args: [fd, { name: 'data', kind: 'data' }], returns: 'bytes written', doc: 'write(2) of `data` (its length is the count).' });
registerOp({
  name: 'pwrite',
  args: [fd, { name: 'data', kind: 'data' }, { name: 'offset', kind: 'int' }],
  returns: 'bytes written',
  doc: 'pwrite64(2).',
});
registerOp({
  name: 'mmap',
  args: [
    { ...addr, default: 0 }, length, { name: 'prot', kind: 'flags', names: 'PROT_' }, { name: 'flags', kind: 'flags', names: 'MAP_' },
    { name: 'fd', kind: 'fd', default: -1 }, { name: 'offset', kind: 'int', default: 0 },
  ],
  returns: 'address',
  doc: 'mmap(2); MAP_FAILED is ret -1 with errno. Bind the address with "as" and use "$h+OFFSET".',
  binds: () => 'addr',
  handle: 'map',
});
registerOp({ name: 'munmap', args: [addr, length], returns: '0', doc: 'munmap(2).' });
registerOp({ name: 'mprotect', args: [addr, length, { name: 'prot', kind: 'flags', names: 'PROT_' }], returns: '0', doc: 'mprotect(2).' });
registerOp({
  name: 'madvise',
  args: [addr, length, { name: 'advice', kind: 'flags', names: 'MADV_', enum: true }],
  returns: '0',
  doc: 'madvise(2).',
});
registerOp({
  name: 'mlock',
  args: [addr, length, { name: 'flags', kind: 'flags', names: 'MLOCK_', optional: true }],
  returns: '0',
  doc: 'mlock(2); with `flags` (MLOCK_ONFAULT), mlock2(2).',
  toCall: ([a, l, f]) => (f === undefined ? [a, l] : [a, l, f]),
  variant: { method: 'mlock2', when: (args) => args[2] !== undefined },
});
registerOp({ name: 'munlock', args: [addr, length], returns: '0', doc: 'munlock(2).' });
registerOp({
  name: 'load',
  args: [addr, { name: 'len', kind: 'u64', max: MAX_DATA_LEN }],
  returns: '0 with `data`, or a `signal`',
  doc: 'The process reads `len` bytes at `addr`; a fault it cannot resolve is a signal (ret -1, signal, si_code).',
  toResult: accessResult,
});
registerOp({
  name: 'store',
  args: [addr, { name: 'data', kind: 'data' }],
  returns: '0, or a `signal`',
  doc: 'The process writes `data` at `addr`; a fault it cannot resolve is a signal (ret -1, signal, si_code).',
  toResult: accessResult,
});
/*
 * process_vm_readv/process_vm_writev take the C signature (pid, local_iov, liovcnt, remote_iov,
 * riovcnt, flags); a trace line is the common case of it, the own process with one iovec on
 * each side and no flags, as the kernel oracle issues it. A recorded call of another shape has
 * no trace spelling: fromCall() then hands the writer the iovec arrays, which it reports as not
 * representable.
 */
interface Iovec {
  readonly iov_base: unknown;
  readonly iov_len: unknown;
}

function isIovec(v: unknown): v is Iovec {
  return typeof v === 'object' && v !== null && 'iov_base' in v && 'iov_len' in v;
}

/** The one remote iovec and the one local buffer of a single-iovec call, if it is one. */
function singleIovec(jsArgs: readonly unknown[]): { remote: Iovec; local: Uint8Array } | undefined {
  const [, local, liovcnt, remote, riovcnt, flags] = jsArgs;
  if (!Array.isArray(local) || !Array.isArray(remote) || local.length !== 1 || remote.length !== 1) return undefined;
  if (Number(liovcnt) !== 1 || Number(riovcnt) !== 1 || (flags !== undefined && Number(flags) !== 0)) return undefined;
  const l: unknown = local[0];
  const r: unknown = remote[0];
  const buf = l instanceof Uint8Array ? l : isIovec(l) && l.iov_base instanceof Uint8Array ? l.iov_base : undefined;
  return buf !== undefined && isIovec(r) ? { remote: r, local: buf } : undefined;
}

registerOp({
  name: 'process_vm_readv',
  args: [addr, { name: 'len', kind: 'u64', max: MAX_DATA_LEN }],
  returns: 'bytes, with `data`',
  doc: 'process_vm_readv(2) on the own process, one iovec each side: reads through GUP.',
  toCall: ([a, n], ctx) => [ctx.process, [buffer(n)], 1, [{ iov_base: a, iov_len: n }], 1, 0],
  fromCall: (jsArgs) => {
    const one = singleIovec(jsArgs);
    return one === undefined ? [jsArgs[3], jsArgs[1]] : [one.remote.iov_base, one.remote.iov_len];
  },
  toResult: (ret, p, jsArgs) => {
    const r = syscallResult(ret, p);
    const one = singleIovec(jsArgs);
    if (r.errno !== undefined || one === undefined || typeof r.ret !== 'number') return r;
    return { ret: r.ret, data: one.local.slice(0, r.ret) };
  },
});
registerOp({
  name: 'process_vm_writev',
  args: [addr, { name: 'data', kind: 'data' }],
  returns: 'bytes',
  doc: 'process_vm_writev(2) on the own process, one iovec each side: writes through GUP.',
  toCall: ([a, d], ctx) => [ctx.process, [d], 1, [{ iov_base: a, iov_len: (d as Uint8Array).length }], 1, 0],
  fromCall: (jsArgs) => {
    const one = singleIovec(jsArgs);
    return one === undefined ? [jsArgs[3], jsArgs[1]] : [one.remote.iov_base, one.local];
  },
});
registerOp({
  name: 'open',
  args: [{ name: 'path', kind: 'string' }, { name: 'flags', kind: 'flags', names: 'O_', default: 'O_RDWR' }],
  returns: 'fd',
  doc: 'open(2) of a device node (/dev/kvm, /dev/null, /dev/zero; /dev/vfio/vfio, /dev/vfio/GROUP, /dev/vfio/devices/vfioN, /dev/iommu).',
  binds: () => 'fd',
  handle: 'fd',
});

/** What the trace tools need to know of an ioctl request beyond its number. */
export interface IoctlInfo {
  /**
   * The struct fields the kernel writes. They come back in "arg" after every call, failed or
   * not, as the kernel oracle reports them from the struct layout (KVM_PRE_FAULT_MEMORY's gpa
   * and size, KVM_SET_MEMORY_ATTRIBUTES2's error_offset).
   */
  readonly outFields?: readonly string[];
  /** The result is a new fd (KVM_CREATE_VM, KVM_CREATE_VCPU...): the trace writer binds it. */
  readonly returnsFd?: boolean;
  /**
   * The exit to report after the call, if any (KVM_RUN: the vCPU's struct kvm_run exit in
   * kernel names, when it returned 0 or failed with a memory-fault exit).
   */
  exit?(p: Process, fd: unknown, result: OpResult): Record<string, unknown> | undefined;
}

const IOCTLS = new Map<bigint, IoctlInfo>();

/** Describes an ioctl request (the KVM package lists its own). */
export function registerIoctl(req: number | bigint, info: IoctlInfo): void {
  IOCTLS.set(BigInt(req), info);
}

function ioctlInfo(req: unknown): IoctlInfo | undefined {
  return typeof req === 'number' && Number.isSafeInteger(req) ? IOCTLS.get(BigInt(req))
    : typeof req === 'bigint' ? IOCTLS.get(req) : undefined;
}

/**
 * The "arg" of an ioctl's result: the registered out-fields of its struct (0 when the struct
 * lacks one), or, for a request nobody described, the fields a successful call wrote.
 */
function ioctlArg(req: unknown, failed: boolean, before: unknown, after: unknown): Record<string, unknown> | undefined {
  const info = ioctlInfo(req);
  if (info?.outFields === undefined) return failed ? undefined : outFields(before, after);
  if (typeof after !== 'object' || after === null || info.outFields.length === 0) return undefined;
  const s = after as Record<string, unknown>;
  return Object.fromEntries(info.outFields.map((f) => [f, s[f] ?? 0]));
}

registerOp({
  name: 'ioctl',
  args: [fd, { name: 'req', kind: 'flags', enum: true, names: ['KVM_', 'FI', 'FS_IOC_', 'VFIO_', 'IOMMU_'] }, { name: 'arg', kind: 'struct', default: 0 }],
  returns: 'the ioctl\'s result; out-fields of the struct come back in `"arg"`',
  doc: 'ioctl(2): `req` by kernel name or number, `arg` a number or a struct with kernel field names.',
  snapshot: true,
  toResult: (ret, p, jsArgs, before) => {
    const r = syscallResult(ret, p);
    const arg = ioctlArg(jsArgs[1], r.errno !== undefined, before[2], jsArgs[2]);
    const exit = ioctlInfo(jsArgs[1])?.exit?.(p, jsArgs[0], r);
    return { ...r, ...(exit !== undefined && { exit }), ...(arg !== undefined && { arg }) };
  },
  binds: (traceArgs) => (ioctlInfo(traceArgs[1])?.returnsFd === true ? 'fd' : undefined),
  handle: 'fd',
});
// The KVM requests that return a new fd, so that the trace writer binds it ("as").
registerIoctl(KVM_CREATE_VM, { returnsFd: true });
registerIoctl(KVM_CREATE_VCPU, { returnsFd: true });
registerIoctl(KVM_CREATE_GUEST_MEMFD, { returnsFd: true });
// kvm_vcpu_pre_fault_memory() copies the advanced range back whether or not it failed.
registerIoctl(KVM_PRE_FAULT_MEMORY, { outFields: ['gpa', 'size'] });
registerIoctl(KVM_SET_MEMORY_ATTRIBUTES2, { outFields: ['error_offset'] });
// struct kvm_regs: KVM_GET_REGS writes every register (a failed call leaves the caller's struct as it was).
registerIoctl(KVM_GET_REGS, { outFields: KVM_REGS_FIELDS });
/*
 * KVM_RUN: the vCPU's struct kvm_run exit when it returned 0, or failed with the one exit that
 * comes with -1 (KVM_EXIT_MEMORY_FAULT with EFAULT/EHWPOISON); other failures leave it stale.
 */
registerIoctl(KVM_RUN, {
  exit: (p, fd, result) => {
    const file = p.task.files.lookup(fd);
    if (file === undefined || !file_is_kvm_vcpu(file)) return undefined;
    const run = (file.private_data as KvmVcpu).run;
    const memory_fault = run.exit_reason === KVM_EXIT_MEMORY_FAULT && (result.errno === Errno.EFAULT || result.errno === Errno.EHWPOISON);
    if (result.ret === 0 || memory_fault) return kvm_run_exit(run);
    return undefined;
  },
});
registerOp({
  name: 'guest_load',
  args: [{ name: 'vcpu', kind: 'fd' }, { name: 'gpa', kind: 'u64' }, { name: 'len', kind: 'u64', max: MAX_DATA_LEN }],
  returns: '0 with `data`, or an `exit`',
  doc: 'The vCPU reads guest memory; an exit to userspace other than completion comes back in `exit` (struct kvm_run, kernel names).',
  toResult: guestAccessResult,
});
registerOp({
  name: 'guest_store',
  args: [{ name: 'vcpu', kind: 'fd' }, { name: 'gpa', kind: 'u64' }, { name: 'data', kind: 'data' }],
  returns: '0, or an `exit`',
  doc: 'The vCPU writes guest memory; an exit to userspace other than completion comes back in `exit`.',
  toResult: guestAccessResult,
});

/* ---- system calls outside the spec's generic table (proposed for it: the oracle can run them) ---- */

registerOp({
  name: 'lseek',
  args: [fd, { name: 'offset', kind: 'int' }, { name: 'whence', kind: 'flags', names: 'SEEK_', enum: true }],
  returns: 'the new offset',
  doc: 'lseek(2): moves the position read and write use; SEEK_DATA and SEEK_HOLE find data in a sparse file.',
  generic: false,
});
registerOp({
  name: 'fchmod',
  args: [fd, { name: 'mode', kind: 'int' }],
  returns: '0',
  doc: 'fchmod(2): `mode` as a number (0o755 is 493); F_SEAL_EXEC freezes the execute bits.',
  generic: false,
});

/* ---- VFIO and iommufd: their ioctls' out-fields, and the simulated device's ops (vfio_ops.ts) ---- */

registerVfioOps();
