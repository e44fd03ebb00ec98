/**
 * The assertion vocabulary of the kernel selftests (tools/testing/selftests/kvm/include/test_util.h,
 * lib/assert.c), so that a cocosim test reads like a KVM selftest.
 *
 * TEST_ASSERT and TEST_ASSERT_EQ throw a TestAssertionFailure whose message is the one the C
 * selftests print; TEST_REQUIRE skips the running test with its reason (KSFT_SKIP).
 */
import { errno_name, strerror } from '@cocosim/core';
import { currentTestContext } from './test_context.js';

export { expectWarning } from './warnings.js';

export class TestAssertionFailure extends Error {
  override readonly name = 'TestAssertionFailure';
}

/** TEST_ASSERT(cond, fmt, ...): fails the test with `msg` unless `cond` holds. */
export function TEST_ASSERT(cond: unknown, msg = 'assertion failed'): asserts cond {
  if (!cond) throw new TestAssertionFailure(`==== Test Assertion Failure ====\n  ${msg}`);
}

/** TEST_FAIL(fmt, ...). */
export function TEST_FAIL(msg: string): never {
  throw new TestAssertionFailure(`==== Test Assertion Failure ====\n  ${msg}`);
}

function show(x: unknown): string {
  if (typeof x === 'bigint') return `0x${x.toString(16)}`;
  if (typeof x === 'number') return Number.isSafeInteger(x) && x >= 0 ? `0x${x.toString(16)} (${x})` : String(x);
  if (x instanceof Uint8Array) return `<${x.length} bytes ${Buffer.from(x.subarray(0, 32)).toString('hex')}${x.length > 32 ? '...' : ''}>`;
  return JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    return (typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number') &&
      Number.isInteger(Number(a)) && Number.isInteger(Number(b)) && BigInt(a) === BigInt(b);
  }
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null) {
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length &&
      ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

/**
 * TEST_ASSERT_EQ(a, b): a number compares equal to a bigint of the same value (a u64 from the
 * uAPI against a literal), byte arrays by content, objects deeply. The failure names both sides
 * as the C macro does ("a == b failed. a is 0x1 b is 0x2").
 */
export function TEST_ASSERT_EQ(a: unknown, b: unknown, what = 'a == b'): void {
  if (!equal(a, b)) throw new TestAssertionFailure(`==== Test Assertion Failure ====\n  ${what} failed.\n\tleft is ${show(a)}\n\tright is ${show(b)}`);
}

/**
 * TEST_REQUIRE(cond): skip this test (KSFT_SKIP) with a reason unless cond holds, like
 * `TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD))`.
 */
export function TEST_REQUIRE(cond: unknown, reason = 'requirement not met'): asserts cond {
  if (cond) return;
  const ctx = currentTestContext();
  if (ctx === undefined) throw new TestAssertionFailure(`TEST_REQUIRE outside a test: ${reason}`);
  ctx.skip(reason);
}

/**
 * __KVM_SYSCALL_ERROR(name, ret) from kvm_util.h: `"%s failed, rc: %i errno: %i (%s)"`, the message
 * every vm_*() helper fails with.
 */
export function __KVM_SYSCALL_ERROR(name: string, ret: number, errno: number): string {
  const ename = errno_name(errno);
  return `${name} failed, rc: ${ret} errno: ${errno} (${ename ?? strerror(errno)})`;
}

/** __KVM_IOCTL_ERROR(#cmd, ret): the same message for an ioctl, named by its kernel name. */
export const __KVM_IOCTL_ERROR = __KVM_SYSCALL_ERROR;

/**
 * TEST_ASSERT a syscall result as C sees it (`ret`, and `errno` when ret is -1): `expected` is
 * either 'success' (any ret >= 0) or an errno number the call must fail with.
 */
export function TEST_ASSERT_SYSCALL(name: string, ret: number, errno: number, expected: 'success' | number): void {
  if (expected === 'success') {
    TEST_ASSERT(ret >= 0, __KVM_SYSCALL_ERROR(name, ret, errno));
    return;
  }
  TEST_ASSERT(ret === -1 && errno === expected,
    `${name} should fail with ${errno_name(expected) ?? expected}, rc: ${ret} errno: ${errno} (${errno_name(errno) ?? strerror(errno)})`);
}
