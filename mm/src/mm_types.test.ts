import { describe, expect, test } from 'vitest';
import {
  VM_DROPPABLE,
  VM_MERGEABLE,
  VM_READ,
  VM_SEALED,
  VM_WRITE,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_GET_HINDEX,
  VM_FAULT_SET_HINDEX,
  vm_flags_and,
  vm_flags_andnot,
  vm_flags_or,
  vm_flags_test,
} from './mm_types.js';

describe('64-bit vm_flags', () => {
  test('flags above bit 31 survive |, & and &~', () => {
    const f = vm_flags_or(vm_flags_or(VM_READ, VM_DROPPABLE), VM_MERGEABLE);
    expect(f).toBe(2 ** 40 + 2 ** 31 + 1);
    expect(vm_flags_test(f, VM_DROPPABLE) && vm_flags_test(f, VM_MERGEABLE) && !vm_flags_test(f, VM_SEALED)).toBe(true);
    expect(vm_flags_andnot(f, VM_MERGEABLE)).toBe(2 ** 40 + 1);
    expect(vm_flags_and(f, VM_DROPPABLE | 0)).toBe(0);
    expect(vm_flags_and(f, VM_DROPPABLE)).toBe(VM_DROPPABLE);
    /* the low flags test with plain & */
    expect(f & VM_READ).toBe(VM_READ);
    expect(f & VM_WRITE).toBe(0);
  });

  test('the huge page index of VM_FAULT_HWPOISON_LARGE', () => {
    expect(VM_FAULT_GET_HINDEX(VM_FAULT_HWPOISON_LARGE | VM_FAULT_SET_HINDEX(9))).toBe(9);
  });
});
