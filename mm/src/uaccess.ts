/**
 * include/linux/uaccess.h: the kernel's copies from and to a user address space. They go through
 * the CPU's view of user memory (fault.ts userLoad()/userStore()), so a copy faults pages in as
 * the kernel's does, and an address the process could not touch is -EFAULT.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
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

/**
 * strncpy_from_user() (lib/strncpy_from_user.c): the string at `uaddr`, at most `count` bytes,
 * read until its NUL: its bytes without the NUL (exactly `count` of them when there was none in
 * reach), or undefined (-EFAULT) when a byte before the NUL cannot be read. A NULL pointer is just
 * address 0, readable where something is mapped there.
 */
export function strncpy_from_user(mm: MmStruct, uaddr: bigint, count: number): Uint8Array | undefined {
  const out = new Uint8Array(count);
  let n = 0;
  while (n < count) {
    const addr = uaddr + BigInt(n);
    const chunk = Math.min(count - n, PAGE_SIZE - Number(addr % BigInt(PAGE_SIZE)));
    const b = copy_from_user(mm, addr, chunk);
    if (b === undefined) {
      /* the bytes before the fault may hold the NUL: the kernel falls back to a byte at a time */
      for (let k = 0; k < chunk; k++) {
        const one = copy_from_user(mm, addr + BigInt(k), 1);
        if (one === undefined) return undefined;
        if (one[0] === 0) return out.subarray(0, n + k);
        out[n + k] = one[0];
      }
      return undefined;
    }
    const z = b.indexOf(0);
    if (z >= 0) {
      out.set(b.subarray(0, z), n);
      return out.subarray(0, n + z);
    }
    out.set(b, n);
    n += chunk;
  }
  return out;
}
