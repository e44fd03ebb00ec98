import { describe, expect } from 'vitest';
import { Errno } from '@cocosim/core';
import { test } from './fixtures.js';
import { __vm_ioctl, vm_ioctl, vm_ioctl_fails } from './kvm_util.js';
import { TestAssertionFailure } from './test_util.js';

describe('kvm_util: __vm_ioctl returns what C sees, vm_ioctl asserts', () => {
  test('a failing ioctl gives -1 and errno raw, and the selftests message when asserted', ({ host }) => {
    const p = host.process();
    const vm = { p, fd: p.open('/dev/null') };
    expect(__vm_ioctl(vm, 0xae00)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    expect(() => vm_ioctl(vm, 0xae00, undefined, 'KVM_GET_API_VERSION')).toThrow(TestAssertionFailure);
    expect(() => vm_ioctl(vm, 0xae00, undefined, 'KVM_GET_API_VERSION'))
      .toThrow('KVM_GET_API_VERSION failed, rc: -1 errno: 25 (ENOTTY)');
    expect(() => vm_ioctl(vm, 0xae00)).toThrow('ioctl 0xae00 failed, rc: -1 errno: 25 (ENOTTY)');
    vm_ioctl_fails(vm, 0xae00, undefined, Errno.ENOTTY);
    expect(() => vm_ioctl_fails(vm, 0xae00, undefined, Errno.EINVAL)).toThrow(TestAssertionFailure);
  });

  test('a succeeding ioctl returns its result', ({ host }) => {
    const p = host.process();
    const vm = { p, fd: p.open('/dev/null') };
    expect(vm_ioctl(vm, 0x5451, undefined, 'FIOCLEX')).toBe(0);
    expect(() => vm_ioctl_fails(vm, 0x5451, undefined, Errno.EINVAL)).toThrow(TestAssertionFailure);
  });
});
