import { describe, expect, test } from 'vitest';
import { LEGACY_MAP_MASK, MAP_32BIT, MAP_FIXED_NOREPLACE, MAP_HUGE_1GB, MAP_STACK, MAP_SYNC, PROT_EXEC, PROT_READ, calc_vm_flag_bits, calc_vm_prot_bits, int_arg, ulong_arg } from './mman.js';
import { VM_EXEC, VM_NOHUGEPAGE, VM_READ } from './mm_types.js';

describe('mman', () => {
  test('syscall arguments as the 64-bit register values C passes', () => {
    expect(ulong_arg(-1)).toBe(2n ** 64n - 1n);
    expect(ulong_arg(2n ** 64n - 1n)).toBe(2n ** 64n - 1n);
    expect(ulong_arg(2 ** 63)).toBe(2n ** 63n);
    expect(ulong_arg(-(2n ** 63n))).toBe(2n ** 63n);
    for (const bad of [0.5, NaN, Infinity, '1', null, undefined, 2n ** 64n, -(2n ** 63n) - 1n, {}]) expect(ulong_arg(bad)).toBeUndefined();
    expect(int_arg(2 ** 32 + 4)).toBe(4);
    expect(int_arg(0xffffffff)).toBe(-1);
  });

  test('translations to VM_* flags', () => {
    expect(calc_vm_prot_bits(PROT_READ | PROT_EXEC | 0x100, 0)).toBe(VM_READ | VM_EXEC);
    // the protection key lands in VM_PKEY_BIT0..3, vm_flags bits 32-35
    expect(calc_vm_prot_bits(PROT_EXEC, 1)).toBe(VM_EXEC + 2 ** 32);
    expect(calc_vm_prot_bits(PROT_EXEC, 15)).toBe(VM_EXEC + 15 * 2 ** 32);
    expect(calc_vm_flag_bits(null, MAP_STACK)).toBe(VM_NOHUGEPAGE);
    expect(LEGACY_MAP_MASK & MAP_32BIT).toBe(MAP_32BIT);
    expect(LEGACY_MAP_MASK & (MAP_FIXED_NOREPLACE | MAP_SYNC)).toBe(0);
    expect(LEGACY_MAP_MASK & MAP_HUGE_1GB).toBe(MAP_HUGE_1GB);
  });
});
