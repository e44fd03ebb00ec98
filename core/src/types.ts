/**
 * The units of memory management, as branded types so that a Gfn cannot be passed where a Pfn is
 * expected.
 *
 * Two representations, chosen by range:
 * - Frame and page numbers (`Pfn`, `Gfn`, `PgOff`) are JS numbers. They index 4 KiB pages, so the
 *   largest is 2^52 - 1 for a 64-bit address space: always an exact integer in a double.
 * - Byte addresses (`Gpa`, `Hva`, `Iova`) are u64 values and are `bigint`, so that
 *   `0xffffffffffffffff`, wrap-around checks and the kernel's overflow tests stay exact.
 *
 * JavaScript's `>>`, `<<` and `&` on numbers are 32-bit: nothing here uses them on addresses.
 * Conversions divide and multiply (numbers) or shift bigints.
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Host physical frame number. */
export type Pfn = Brand<number, 'Pfn'>;
/** Guest frame number. */
export type Gfn = Brand<number, 'Gfn'>;
/** Page offset into a file (`pgoff_t`). */
export type PgOff = Brand<number, 'PgOff'>;
/** Guest physical address (u64). */
export type Gpa = Brand<bigint, 'Gpa'>;
/** Host virtual address (u64, `unsigned long`). */
export type Hva = Brand<bigint, 'Hva'>;
/** I/O virtual address (u64, `dma_addr_t`). */
export type Iova = Brand<bigint, 'Iova'>;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PMD_SHIFT = 21;
export const PMD_SIZE = 2 * 1024 * 1024;
export const PUD_SHIFT = 30;
export const PUD_SIZE = 1024 * 1024 * 1024;
/** Pages per PMD (HPAGE_PMD_NR) and per PUD. */
export const HPAGE_PMD_ORDER = PMD_SHIFT - PAGE_SHIFT;
export const HPAGE_PMD_NR = 512;
export const HPAGE_PUD_ORDER = PUD_SHIFT - PAGE_SHIFT;
export const HPAGE_PUD_NR = 262144;

const PAGE_SIZE_N = 4096n;
const PAGE_SHIFT_N = 12n;

export const U64_MAX = 0xffff_ffff_ffff_ffffn;
export const S64_MAX = 0x7fff_ffff_ffff_ffffn;
export const U32_MAX = 0xffff_ffff;

/** Largest frame number: a 64-bit address space has 2^52 pages. */
export const MAX_FRAME = 2 ** 52 - 1;

/** 2^order, exactly (orders up to 52). */
export function order_to_pages(order: number): number {
  return 2 ** order;
}

/** True for a non-negative integer that a double holds exactly. */
export function is_index(x: number): boolean {
  return Number.isSafeInteger(x) && x >= 0;
}

/** True for an integer in [0, 2^64): a valid u64. */
export function is_u64(x: bigint): boolean {
  return x >= 0n && x <= U64_MAX;
}

/**
 * Coerce a value from the uAPI (a number, a bigint, or anything else) to a u64, or undefined when
 * it cannot be one: negative, fractional, NaN, infinite, or beyond 2^64 - 1. Numbers above 2^53
 * are not exact in a double, so they are refused too: pass bigints for those.
 */
export function to_u64(x: unknown): bigint | undefined {
  if (typeof x === 'bigint') return is_u64(x) ? x : undefined;
  if (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) return BigInt(x);
  return undefined;
}

/** Like to_u64 for a signed 64-bit value (`loff_t`, `__s64`). */
export function to_s64(x: unknown): bigint | undefined {
  if (typeof x === 'bigint') return x >= -S64_MAX - 1n && x <= S64_MAX ? x : undefined;
  if (typeof x === 'number' && Number.isSafeInteger(x)) return BigInt(x);
  return undefined;
}

/** Reduce modulo 2^64, as C's unsigned arithmetic does (`a + b` on u64). */
export function u64_wrap(x: bigint): bigint {
  return BigInt.asUintN(64, x);
}

/** PAGE_ALIGNED() for a byte value. */
export function PAGE_ALIGNED(x: bigint | number): boolean {
  return typeof x === 'bigint' ? x % PAGE_SIZE_N === 0n : x % PAGE_SIZE === 0;
}

/** IS_ALIGNED(x, a) for a power-of-two or any positive alignment. */
export function IS_ALIGNED(x: bigint, a: bigint): boolean {
  return x % a === 0n;
}

/** ALIGN_DOWN(x, a) and ALIGN(x, a) (round up) on u64 byte values. */
export function ALIGN_DOWN(x: bigint, a: bigint): bigint {
  return x - (x % a);
}
export function ALIGN(x: bigint, a: bigint): bigint {
  return ALIGN_DOWN(x + a - 1n, a);
}

/** gpa_to_gfn() (include/linux/kvm_host.h): `gpa >> PAGE_SHIFT`. */
export function gpa_to_gfn(gpa: Gpa): Gfn {
  return Number(gpa >> PAGE_SHIFT_N) as Gfn;
}

/** gfn_to_gpa() (include/linux/kvm_host.h): `(gpa_t)gfn << PAGE_SHIFT`. */
export function gfn_to_gpa(gfn: Gfn): Gpa {
  return (BigInt(gfn) << PAGE_SHIFT_N) as Gpa;
}

/** The page number holding a virtual address (`addr >> PAGE_SHIFT`), as a plain index. */
export function hva_to_vpn(hva: Hva): number {
  return Number(hva >> PAGE_SHIFT_N);
}

export function vpn_to_hva(vpn: number): Hva {
  return (BigInt(vpn) << PAGE_SHIFT_N) as Hva;
}

/** PFN_PHYS() and PHYS_PFN() for host physical addresses. */
export function PFN_PHYS(pfn: Pfn): bigint {
  return BigInt(pfn) << PAGE_SHIFT_N;
}
export function PHYS_PFN(phys: bigint): Pfn {
  return Number(phys >> PAGE_SHIFT_N) as Pfn;
}

/** Byte offset in a file to its page offset (`pos >> PAGE_SHIFT`). */
export function offset_to_pgoff(offset: bigint): PgOff {
  return Number(offset >> PAGE_SHIFT_N) as PgOff;
}
export function pgoff_to_offset(pgoff: PgOff): bigint {
  return BigInt(pgoff) << PAGE_SHIFT_N;
}

/** Offset within the page (`addr & ~PAGE_MASK`). */
export function offset_in_page(addr: bigint): number {
  return Number(addr % PAGE_SIZE_N);
}

/** Casts for values known to be in range (after validation). */
export const Pfn = (n: number): Pfn => n as Pfn;
export const Gfn = (n: number): Gfn => n as Gfn;
export const PgOff = (n: number): PgOff => n as PgOff;
export const Gpa = (n: bigint | number): Gpa => BigInt(n) as Gpa;
export const Hva = (n: bigint | number): Hva => BigInt(n) as Hva;
export const Iova = (n: bigint | number): Iova => BigInt(n) as Iova;

/** BIT(n) for flag words wider than 32 bits: an exact power of two as a number (n <= 52). */
export function BIT(n: number): number {
  return 2 ** n;
}

/** BIT_ULL(n) as a bigint (any n < 64). */
export function BIT_ULL(n: number): bigint {
  return 1n << BigInt(n);
}
