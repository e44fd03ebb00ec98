/**
 * kvm_hooks.ts: call_int_hook() semantics with per-hook defaults (the first answer other than the
 * default wins, in registration order; the default without providers), the wrappers' "undefined
 * means the base decides", and the per-inode registry of private-memory stores.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Inode, Kernel, File, O_RDWR, mmRegistrar } from '@cocosim/mm';
import {
  ENOIOCTLCMD, KVM_HOOK_DEFAULT, call_kvm_hook, kvm_hook_check_extension, kvm_hook_gmem_ioctl, kvm_private_store, kvm_private_store_register,
  register_kvm_hooks, type KvmPrivateStore,
} from './kvm_hooks.js';

function kernel(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 256 })).resolve(Kernel);
}

describe('kvm_hooks', () => {
  test('without providers every hook answers its default', () => {
    const k = kernel();
    expect(call_kvm_hook(k, 'supported_mem_attributes', KVM_HOOK_DEFAULT, {} as never)).toBe(KVM_HOOK_DEFAULT);
    expect(kvm_hook_check_extension(k, undefined, 250)).toBeUndefined();
    expect(kvm_hook_gmem_ioctl(k, {} as File, 1, 0, {} as never)).toBe(-Errno.ENOTTY);
  });

  test('providers are asked in order; the first answer other than the default wins; hosts do not share them', () => {
    const k = kernel();
    const asked: string[] = [];
    register_kvm_hooks(k, { name: 'a', check_extension: (_kvm, cap) => (asked.push('a'), cap === 1 ? 7 : KVM_HOOK_DEFAULT) });
    register_kvm_hooks(k, { name: 'b', check_extension: (_kvm, cap) => (asked.push('b'), cap === 1 ? 8 : 0) });
    register_kvm_hooks(k, { name: 'c', vm_ioctl: () => -ENOIOCTLCMD });
    expect(kvm_hook_check_extension(k, undefined, 1)).toBe(7);
    expect(asked).toEqual(['a']);
    expect(kvm_hook_check_extension(k, undefined, 2)).toBe(0);
    expect(asked).toEqual(['a', 'a', 'b']);
    expect(kvm_hook_check_extension(kernel(), undefined, 1)).toBeUndefined();
  });

  test('a private store is found by the file\'s inode, not by the file', () => {
    const k = kernel();
    const inode = new Inode(k.get_next_ino(), 0o100600, {}, {}, k.next_mapping_id());
    const store: KvmPrivateStore = { bind: () => 0, unbind: () => undefined, get_pfn: () => -Errno.EFAULT };
    const f1 = new File(inode, {}, O_RDWR, 0);
    expect(kvm_private_store(f1)).toBeUndefined();
    expect(kvm_private_store(null)).toBeUndefined();
    kvm_private_store_register(inode, store);
    expect(kvm_private_store(new File(inode, {}, O_RDWR, 0))).toBe(store);
  });
});
