/**
 * copy_from_user() of an ioctl's struct as cocosim passes it (include/linux/uaccess.h): the
 * argument is a plain object with the C field names; a missing field is 0 (the caller zeroed the
 * struct); an argument that is no object is a bad pointer (-EFAULT). A field must hold what its C
 * type can: an integer (number or bigint), which is truncated to the field's width as C would
 * store it; anything else (a fraction, NaN, a string) cannot have come from C memory and makes
 * the copy fail with -EFAULT.
 */

/** The struct behind an ioctl's pointer argument, or undefined for a bad pointer. */
export function user_struct(arg: unknown): Record<string, unknown> | undefined {
  return typeof arg === 'object' && arg !== null && !Array.isArray(arg) ? (arg as Record<string, unknown>) : undefined;
}

/** An integer field reduced modulo 2^bits, or undefined when the value is no integer. */
function field_bits(v: unknown, bits: number): bigint | undefined {
  if (v === undefined) return 0n;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt.asUintN(bits, BigInt(v)) : undefined;
  if (typeof v === 'bigint') return BigInt.asUintN(bits, v);
  return undefined;
}

/** A __u64 / __aligned_u64 field. */
export function get_u64(s: Record<string, unknown>, field: string): bigint | undefined {
  return field_bits(s[field], 64);
}

/** A __u32 field. */
export function get_u32(s: Record<string, unknown>, field: string): number | undefined {
  const v = field_bits(s[field], 32);
  return v === undefined ? undefined : Number(v);
}

/** A __u16 field. */
export function get_u16(s: Record<string, unknown>, field: string): number | undefined {
  const v = field_bits(s[field], 16);
  return v === undefined ? undefined : Number(v);
}

/** A __s32 field (an fd). */
export function get_s32(s: Record<string, unknown>, field: string): number | undefined {
  const v = field_bits(s[field], 32);
  return v === undefined ? undefined : Number(BigInt.asIntN(32, v));
}

/**
 * Reads the listed fields at once: the values, or undefined when any cannot be a C value (the
 * copy faults). `u64` fields come back as bigints, the others as numbers.
 */
export function copy_fields<U32 extends string, U64 extends string>(
  s: Record<string, unknown>,
  u32: readonly U32[],
  u64: readonly U64[],
): ({ [K in U32]: number } & { [K in U64]: bigint }) | undefined {
  const out: Record<string, number | bigint> = {};
  for (const f of u32) {
    const v = get_u32(s, f);
    if (v === undefined) return undefined;
    out[f] = v;
  }
  for (const f of u64) {
    const v = get_u64(s, f);
    if (v === undefined) return undefined;
    out[f] = v;
  }
  return out as { [K in U32]: number } & { [K in U64]: bigint };
}
