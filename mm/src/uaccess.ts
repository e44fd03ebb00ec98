/**
 * include/linux/uaccess.h: the kernel's copies from and to a user address space. They go through
 * the CPU's view of user memory (fault.ts userLoad()/userStore()), so a copy faults pages in as
 * the kernel's does, and an address the process could not touch is -EFAULT.
 */
import { Errno } from '@cocosim/core';
import { userLoad, userStore } from './fault.js';
import type { MmStruct } from './mm_types.js';

/** copy_from_user() of `len` bytes at `uaddr`: the bytes, or undefined (-EFAULT). */
export function copy_from_user(mm: MmStruct, uaddr: bigint, len: number): Uint8Array | undefined {
  const r = userLoad(mm, uaddr, len);
  return r instanceof Uint8Array ? r : undefined;
}

/** copy_to_user(): 0, or -EFAULT. */
export function copy_to_user(mm: MmStruct, uaddr: bigint, data: Uint8Array): number {
  return userStore(mm, uaddr, data) === 0 ? 0 : -Errno.EFAULT;
}

/** get_user() of an int (or unsigned int, by `signed`): the value, or undefined (-EFAULT). */
export function get_user_int(mm: MmStruct, uaddr: bigint, signed = true): number | undefined {
  const b = copy_from_user(mm, uaddr, 4);
  if (b === undefined) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, 4);
  return signed ? v.getInt32(0, true) : v.getUint32(0, true);
}

/**
 * put_user() of a 32-bit value (its low 32 bits): 0, or -EFAULT. One store instruction
 * (__put_user_4): across a page boundary into a page it cannot write, nothing is written (Linux
 * 6.18.44: FIONREAD at the last byte of a mapping leaves that byte alone).
 */
export function put_user_int(mm: MmStruct, uaddr: bigint, value: number | bigint): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(BigInt.asUintN(32, BigInt(value))), true);
  return userStore(mm, uaddr, b, true) === 0 ? 0 : -Errno.EFAULT;
}
