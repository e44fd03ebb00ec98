import { describe, expect, test } from 'vitest';
import { Errno, ERR_PTR, IS_ERR, IS_ERR_OR_NULL, PTR_ERR, PTR_ERR_OR_ZERO, errno_from_name, errno_name, strerror, EWOULDBLOCK } from './errno.js';

describe('errno', () => {
  test('every name round-trips through its number', () => {
    for (const [name, n] of Object.entries(Errno)) {
      expect(errno_name(n)).toBe(name);
      expect(errno_from_name(name)).toBe(n);
      expect(errno_name(-n)).toBe(name);
    }
  });

  test('the numbers user space sees are the asm-generic ones', () => {
    expect(Errno.EPERM).toBe(1);
    expect(Errno.EFAULT).toBe(14);
    expect(Errno.EBUSY).toBe(16);
    expect(Errno.EEXIST).toBe(17);
    expect(Errno.EINVAL).toBe(22);
    expect(Errno.ENOSPC).toBe(28);
    expect(Errno.ENOSYS).toBe(38);
    expect(Errno.EOPNOTSUPP).toBe(95);
    expect(Errno.EHWPOISON).toBe(133);
    expect(Errno.ENOTTY).toBe(25);
    expect(EWOULDBLOCK).toBe(Errno.EAGAIN);
    expect(errno_from_name('EWOULDBLOCK')).toBe(11);
  });

  test('strerror gives glibc texts and Unknown error for the rest', () => {
    expect(strerror(Errno.EINVAL)).toBe('Invalid argument');
    expect(strerror(Errno.EHWPOISON)).toBe('Memory page has hardware error');
    expect(strerror(Errno.ENOTSUPP)).toBe('Unknown error 524');
    expect(strerror(0)).toBe('Unknown error 0');
  });

  test('unknown names and numbers are undefined, not a throw', () => {
    expect(errno_from_name('EFOO')).toBeUndefined();
    expect(errno_from_name('toString')).toBeUndefined();
    expect(errno_name(4000)).toBeUndefined();
  });

  test('ERR_PTR / IS_ERR / PTR_ERR', () => {
    const p = ERR_PTR(-Errno.ENOMEM);
    expect(IS_ERR(p)).toBe(true);
    expect(PTR_ERR(p)).toBe(-12);
    expect(ERR_PTR(-Errno.ENOMEM)).toBe(p);
    expect(IS_ERR({ x: 1 })).toBe(false);
    expect(IS_ERR(null)).toBe(false);
    expect(IS_ERR_OR_NULL(null)).toBe(true);
    expect(PTR_ERR_OR_ZERO({})).toBe(0);
    expect(PTR_ERR_OR_ZERO(p)).toBe(-12);
    expect(() => ERR_PTR(0)).toThrow(RangeError);
    expect(() => ERR_PTR(-4096)).toThrow(RangeError);
  });
});
