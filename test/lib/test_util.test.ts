import { describe, expect, test } from 'vitest';
import { Errno, WarnSink } from '@cocosim/core';
import {
  TEST_ASSERT, TEST_ASSERT_EQ, TEST_ASSERT_SYSCALL, TEST_REQUIRE, TestAssertionFailure,
  __KVM_IOCTL_ERROR, expectWarning,
} from './test_util.js';
import { currentTestContext, setCurrentTestContext } from './test_context.js';

describe('test_util', () => {
  test('__KVM_IOCTL_ERROR prints what kvm_util.h prints', () => {
    expect(__KVM_IOCTL_ERROR('KVM_SET_USER_MEMORY_REGION2', -1, Errno.EINVAL))
      .toBe('KVM_SET_USER_MEMORY_REGION2 failed, rc: -1 errno: 22 (EINVAL)');
    expect(__KVM_IOCTL_ERROR('KVM_CREATE_GUEST_MEMFD', -1, 4000)).toBe('KVM_CREATE_GUEST_MEMFD failed, rc: -1 errno: 4000 (Unknown error 4000)');
  });

  test('TEST_ASSERT throws with the message, and passes on truth', () => {
    TEST_ASSERT(1 === 1);
    expect(() => TEST_ASSERT(false, 'guest_memfd() with size 0x1 should fail')).toThrow(TestAssertionFailure);
    expect(() => TEST_ASSERT(0, 'x')).toThrow(/Test Assertion Failure[\s\S]*x/);
  });

  test('TEST_ASSERT_EQ compares u64 numbers with bigints, bytes by content, objects deeply', () => {
    TEST_ASSERT_EQ(4096, 4096n);
    TEST_ASSERT_EQ(new Uint8Array([1, 2]), new Uint8Array([1, 2]));
    TEST_ASSERT_EQ({ size: 4096, blocks: 8 }, { size: 4096, blocks: 8 });
    expect(() => TEST_ASSERT_EQ(1, 2n)).toThrow(/left is 0x1 \(1\)\n\tright is 0x2/);
    expect(() => TEST_ASSERT_EQ(new Uint8Array([1]), new Uint8Array([2]))).toThrow(TestAssertionFailure);
    expect(() => TEST_ASSERT_EQ({ a: 1 }, { a: 1, b: 2 })).toThrow(TestAssertionFailure);
    expect(() => TEST_ASSERT_EQ(0.5, 0n)).toThrow(TestAssertionFailure);
    expect(() => TEST_ASSERT_EQ([1], { 0: 1 })).toThrow(TestAssertionFailure);
  });

  test('TEST_ASSERT_SYSCALL checks -1 and errno', () => {
    TEST_ASSERT_SYSCALL('memfd_create', 3, 0, 'success');
    TEST_ASSERT_SYSCALL('memfd_create', -1, Errno.EINVAL, Errno.EINVAL);
    expect(() => TEST_ASSERT_SYSCALL('memfd_create', -1, Errno.EFAULT, Errno.EINVAL))
      .toThrow(/memfd_create should fail with EINVAL, rc: -1 errno: 14 \(EFAULT\)/);
    expect(() => TEST_ASSERT_SYSCALL('memfd_create', 3, 0, Errno.EINVAL)).toThrow(TestAssertionFailure);
    expect(() => TEST_ASSERT_SYSCALL('mmap', -1, Errno.ENOMEM, 'success')).toThrow(/mmap failed, rc: -1 errno: 12 \(ENOMEM\)/);
  });

  test('TEST_REQUIRE skips through the running test context with its reason', () => {
    const real = currentTestContext();
    expect(real).toBeDefined();
    const skipped: (string | undefined)[] = [];
    setCurrentTestContext({ skip: (note?: string) => { skipped.push(note); throw new Error('skipped'); } });
    try {
      TEST_REQUIRE(true, 'never');
      expect(() => TEST_REQUIRE(false, 'KVM_CAP_GUEST_MEMFD not supported')).toThrow('skipped');
    } finally {
      setCurrentTestContext(real);
    }
    expect(skipped).toEqual(['KVM_CAP_GUEST_MEMFD not supported']);
  });

  test('a warning the test expects does not fail it', () => {
    expectWarning(/refcount underflow/);
    const sink = new WarnSink();
    expect(sink.WARN_ON(true, 'refcount underflow on pfn 0x10')).toBe(true);
    expectWarning(/once only/);
    expect(sink.WARN_ON_ONCE(true, 'mm/gup.c:1', 'once only')).toBe(true);
    expect(sink.WARN_ON_ONCE(true, 'mm/gup.c:1', 'once only')).toBe(true);
    expect(sink.WARN_ON(false, 'not taken')).toBe(false);
    expect(sink.warnings.map((w) => w.kind)).toEqual(['WARN_ON', 'WARN_ON_ONCE']);
  });

  test.fails('an unexpected WARN_ON fails the test (strict-warn setup)', () => {
    new WarnSink().WARN_ON(true, 'unexpected');
  });

  test.fails('an expected warning that never fires fails the test', () => {
    expectWarning('never fires');
  });
});
