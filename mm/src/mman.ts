/**
 * The memory-mapping uAPI constants (include/uapi/asm-generic/mman-common.h,
 * include/uapi/asm-generic/mman.h, include/uapi/linux/mman.h, arch/x86/include/uapi/asm/mman.h)
 * with Linux x86-64 values, the kernel's translations of them into VM_* flags
 * (include/linux/mman.h), and the conversion of syscall arguments of any JS shape into the
 * register values the kernel sees.
 */
import { type Hva } from '@cocosim/core';
import type { File } from './fs.js';
import { VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_NOHUGEPAGE, VM_PKEY_BIT0, VM_READ, VM_SYNC, VM_WRITE } from './mm_types.js';

/* mman-common.h: protections */
/** page can be read */
export const PROT_READ = 0x1;
/** page can be written */
export const PROT_WRITE = 0x2;
/** page can be executed */
export const PROT_EXEC = 0x4;
/** page may be used for atomic ops */
export const PROT_SEM = 0x8;
/** page can not be accessed */
export const PROT_NONE = 0x0;
/** mprotect flag: extend change to start of growsdown vma */
export const PROT_GROWSDOWN = 0x01000000;
/** mprotect flag: extend change to end of growsup vma */
export const PROT_GROWSUP = 0x02000000;

/* linux/mman.h: mapping types */
/** Share changes */
export const MAP_SHARED = 0x01;
/** Changes are private */
export const MAP_PRIVATE = 0x02;
/** share + validate extension flags */
export const MAP_SHARED_VALIDATE = 0x03;
/** Zero memory under memory pressure. */
export const MAP_DROPPABLE = 0x08;
/** Mask for type of mapping */
export const MAP_TYPE = 0x0f;

/* mman-common.h and x86 mman.h: flags */
/** Interpret addr exactly */
export const MAP_FIXED = 0x10;
/** don't use a file */
export const MAP_ANONYMOUS = 0x20;
export const MAP_ANON = MAP_ANONYMOUS;
/** only give out 32bit addresses (x86-64) */
export const MAP_32BIT = 0x40;
/** only map above 4GB (x86-64) */
export const MAP_ABOVE4G = 0x80;
/** stack-like segment */
export const MAP_GROWSDOWN = 0x0100;
/** ETXTBSY (ignored) */
export const MAP_DENYWRITE = 0x0800;
/** mark it as an executable (ignored) */
export const MAP_EXECUTABLE = 0x1000;
/** pages are locked */
export const MAP_LOCKED = 0x2000;
/** don't check for reservations */
export const MAP_NORESERVE = 0x4000;
/** populate (prefault) pagetables */
export const MAP_POPULATE = 0x008000;
/** do not block on IO */
export const MAP_NONBLOCK = 0x010000;
/** give out an address that is best suited for process/thread stacks */
export const MAP_STACK = 0x020000;
/** create a huge page mapping */
export const MAP_HUGETLB = 0x040000;
/** perform synchronous page faults for the mapping */
export const MAP_SYNC = 0x080000;
/** MAP_FIXED which doesn't unmap underlying mapping */
export const MAP_FIXED_NOREPLACE = 0x100000;
/** For anonymous mmap, memory could be uninitialized */
export const MAP_UNINITIALIZED = 0x4000000;

/* Huge page size encoding with MAP_HUGETLB (include/uapi/asm-generic/hugetlb_encode.h) */
export const MAP_HUGE_SHIFT = 26;
export const MAP_HUGE_MASK = 0x3f;
/* include/uapi/linux/mman.h MAP_HUGE_* (HUGETLB_FLAG_ENCODE_*: log2 of the page size) */
export const MAP_HUGE_16KB = 14 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_64KB = 16 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_512KB = 19 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_1MB = 20 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_2MB = 21 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_8MB = 23 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_16MB = 24 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_32MB = 25 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_256MB = 28 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_512MB = 29 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_1GB = 30 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_2GB = 31 * 2 ** MAP_HUGE_SHIFT;
export const MAP_HUGE_16GB = 34 * 2 ** MAP_HUGE_SHIFT;

/**
 * LEGACY_MAP_MASK (include/linux/mman.h): the flags every mmap implementation implicitly
 * supports. MAP_SHARED silently drops the others; MAP_SHARED_VALIDATE refuses them (EOPNOTSUPP).
 * Checked on Linux 6.18: MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE or | MAP_SYNC on a memfd is
 * EOPNOTSUPP, | MAP_32BIT or | MAP_ABOVE4G is accepted (x86 adds MAP_ABOVE4G to the mask: "x86/mm:
 * Introduce MAP_ABOVE4G", Linux 6.6).
 */
export const LEGACY_MAP_MASK =
  MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_UNINITIALIZED |
  MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB | MAP_32BIT |
  MAP_ABOVE4G | MAP_HUGE_2MB | MAP_HUGE_1GB;

/* mlock2() and mlockall() */
/** Lock pages in range after they are faulted in, do not prefault */
export const MLOCK_ONFAULT = 0x01;
/** lock all current mappings */
export const MCL_CURRENT = 1;
/** lock all future mappings */
export const MCL_FUTURE = 2;
/** lock all pages that are faulted in */
export const MCL_ONFAULT = 4;

/* madvise() advice */
/** no further special treatment */
export const MADV_NORMAL = 0;
/** expect random page references */
export const MADV_RANDOM = 1;
/** expect sequential page references */
export const MADV_SEQUENTIAL = 2;
/** will need these pages */
export const MADV_WILLNEED = 3;
/** don't need these pages */
export const MADV_DONTNEED = 4;
/** free pages only if memory pressure */
export const MADV_FREE = 8;
/** remove these pages & resources */
export const MADV_REMOVE = 9;
/** don't inherit across fork */
export const MADV_DONTFORK = 10;
/** do inherit across fork */
export const MADV_DOFORK = 11;
/** KSM may merge identical pages */
export const MADV_MERGEABLE = 12;
/** KSM may not merge identical pages */
export const MADV_UNMERGEABLE = 13;
/** Worth backing with hugepages */
export const MADV_HUGEPAGE = 14;
/** Not worth backing with hugepages */
export const MADV_NOHUGEPAGE = 15;
/** Explicity exclude from the core dump, overrides the coredump filter bits */
export const MADV_DONTDUMP = 16;
/** Clear the MADV_DONTDUMP flag */
export const MADV_DODUMP = 17;
/** Zero memory on fork, child only */
export const MADV_WIPEONFORK = 18;
/** Undo MADV_WIPEONFORK */
export const MADV_KEEPONFORK = 19;
/** deactivate these pages */
export const MADV_COLD = 20;
/** reclaim these pages */
export const MADV_PAGEOUT = 21;
/** populate (prefault) page tables readable */
export const MADV_POPULATE_READ = 22;
/** populate (prefault) page tables writable */
export const MADV_POPULATE_WRITE = 23;
/** like DONTNEED, but drop locked pages too */
export const MADV_DONTNEED_LOCKED = 24;
/** Synchronous hugepage collapse */
export const MADV_COLLAPSE = 25;
/** poison a page for testing */
export const MADV_HWPOISON = 100;
/** soft offline page for testing */
export const MADV_SOFT_OFFLINE = 101;
/** fatal signal on access to range */
export const MADV_GUARD_INSTALL = 102;
/** unguard range */
export const MADV_GUARD_REMOVE = 103;

/** C's MAP_FAILED, ((void *) -1): what mmap() returns on failure. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn as Hva;

/**
 * _calc_vm_trans(x, bit1, bit2): bit2 if x has bit1. Both are single bits below 2^31 (the
 * translations mman.h makes all are).
 */
function _calc_vm_trans(x: number, bit1: number, bit2: number): number {
  return (x & bit1) !== 0 ? bit2 : 0;
}

/**
 * calc_vm_prot_bits(): PROT_* -> VM_READ/VM_WRITE/VM_EXEC, and x86's arch_calc_vm_prot_bits():
 * `pkey` in VM_PKEY_BIT0..3 (vm_flags bits 32-35, hence arithmetic; pkeys.ts).
 */
export function calc_vm_prot_bits(prot: number, pkey: number): number {
  return _calc_vm_trans(prot, PROT_READ, VM_READ) + _calc_vm_trans(prot, PROT_WRITE, VM_WRITE) +
    _calc_vm_trans(prot, PROT_EXEC, VM_EXEC) + (pkey & 0xf) * VM_PKEY_BIT0;
}

/** calc_vm_flag_bits(): MAP_* -> VM_* (MAP_STACK means VM_NOHUGEPAGE since 6.7). */
export function calc_vm_flag_bits(_file: File | null, flags: number): number {
  return _calc_vm_trans(flags, MAP_GROWSDOWN, VM_GROWSDOWN) | _calc_vm_trans(flags, MAP_LOCKED, VM_LOCKED) |
    _calc_vm_trans(flags, MAP_SYNC, VM_SYNC) | _calc_vm_trans(flags, MAP_STACK, VM_NOHUGEPAGE);
}

/* Syscall arguments */

const TWO64 = 2n ** 64n;
const TWO63 = 2n ** 63n;

/**
 * An `unsigned long` / `size_t` / `off_t` syscall argument as the kernel receives it: the 64-bit
 * register value. A C program passes an integer that the call ABI truncates or sign-extends to 64
 * bits, so any integer in [-2^63, 2^64) is accepted (negative values wrap, as `(size_t)-1` does).
 * Anything else (fractions, NaN, strings, integers outside that range) is no value a C program
 * can pass: undefined, which each syscall turns into the errno it gives for an invalid value of
 * that argument.
 */
export function ulong_arg(x: unknown): bigint | undefined {
  let v: bigint;
  if (typeof x === 'bigint') v = x;
  else if (typeof x === 'number' && Number.isInteger(x)) v = BigInt(x);
  else return undefined;
  if (v < -TWO63 || v >= TWO64) return undefined;
  return BigInt.asUintN(64, v);
}

/**
 * An `int` syscall argument: the low 32 bits of the register, signed (the kernel's SYSCALL_DEFINE
 * wrappers truncate). Undefined for values no C program can pass (see ulong_arg()).
 */
export function int_arg(x: unknown): number | undefined {
  const v = ulong_arg(x);
  return v === undefined ? undefined : Number(BigInt.asIntN(32, v));
}

/** The low 32 bits of an `unsigned long` flags argument, unsigned (what `flags & MASK` tests). */
export function low32(v: bigint): number {
  return Number(v & 0xffff_ffffn);
}
