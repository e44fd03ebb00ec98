import { describe, expect, test } from 'vitest';
import {
  ALIGN, ALIGN_DOWN, Gfn, Gpa, MAX_FRAME, PAGE_ALIGNED, PAGE_SIZE, U64_MAX, gfn_to_gpa, gpa_to_gfn,
  hva_to_vpn, offset_in_page, to_s64, to_u64, u64_wrap, vpn_to_hva, BIT, BIT_ULL, PgOff, pgoff_to_offset,
  offset_to_pgoff,
} from './types.js';

describe('address conversions stay exact up to 2^64', () => {
  test('gpa <-> gfn across 2^32 pages, 2^52 and the top of the u64 range', () => {
    expect(gpa_to_gfn(Gpa(0x1_0000_0000n * 4096n))).toBe(2 ** 32);
    expect(gfn_to_gpa(Gfn(2 ** 32))).toBe(0x1000_0000_0000n);
    expect(gpa_to_gfn(Gpa(U64_MAX))).toBe(MAX_FRAME);
    expect(gfn_to_gpa(Gfn(MAX_FRAME))).toBe(U64_MAX - 4095n);
    expect(gpa_to_gfn(Gpa(0xffff_ffff_ffffn))).toBe(0xf_ffff_ffff);
    // The bug this prevents: 32-bit shifts on a number.
    expect(gpa_to_gfn(Gpa(2n ** 44n))).not.toBe(Number(2n ** 44n) >> 12);
  });

  test('hva <-> vpn and pgoff <-> offset round-trip at 2^47 and 2^63', () => {
    const top = 0x7fff_ffff_f000n;
    expect(vpn_to_hva(hva_to_vpn(top as never))).toBe(top);
    expect(offset_to_pgoff(2n ** 63n - 1n)).toBe(2 ** 51 - 1);
    expect(pgoff_to_offset(PgOff(2 ** 51 - 1))).toBe(2n ** 63n - 4096n);
  });

  test('alignment helpers', () => {
    expect(PAGE_ALIGNED(0n)).toBe(true);
    expect(PAGE_ALIGNED(4097n)).toBe(false);
    expect(PAGE_ALIGNED(2 ** 40)).toBe(true);
    expect(ALIGN(1n, 4096n)).toBe(4096n);
    expect(ALIGN_DOWN(U64_MAX, 4096n)).toBe(U64_MAX - 4095n);
    expect(offset_in_page(U64_MAX)).toBe(PAGE_SIZE - 1);
  });

  test('u64 arithmetic wraps as C does', () => {
    expect(u64_wrap(U64_MAX + 1n)).toBe(0n);
    expect(u64_wrap(-1n)).toBe(U64_MAX);
  });

  test('BIT and BIT_ULL above 32 bits', () => {
    expect(BIT(40)).toBe(1099511627776);
    expect(BIT_ULL(63)).toBe(0x8000_0000_0000_0000n);
  });
});

describe('uAPI values of any shape', () => {
  test.each([
    [0, 0n], [4096, 4096n], [Number.MAX_SAFE_INTEGER, 2n ** 53n - 1n], [U64_MAX, U64_MAX], [0n, 0n],
  ])('to_u64(%s) accepts', (x, want) => {
    expect(to_u64(x)).toBe(want);
  });

  test.each([
    [-1], [0.5], [Number.NaN], [Number.POSITIVE_INFINITY], [2 ** 53], [U64_MAX + 1n], [-1n], ['4096'], [null],
    [undefined], [{}],
  ])('to_u64(%s) refuses', (x) => {
    expect(to_u64(x)).toBeUndefined();
  });

  test('to_s64 takes negatives and refuses beyond the s64 range', () => {
    expect(to_s64(-1)).toBe(-1n);
    expect(to_s64(-(2n ** 63n))).toBe(-(2n ** 63n));
    expect(to_s64(2n ** 63n)).toBeUndefined();
    expect(to_s64(1.5)).toBeUndefined();
  });
});
