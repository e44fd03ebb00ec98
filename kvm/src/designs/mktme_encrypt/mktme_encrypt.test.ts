/*
 * D12's vendor-independent part: the "mktme" key payload, the design's system calls on a host
 * without MKTME hardware, and its registration. The behaviour on MKTME hardware (KeyIDs, pages,
 * host and guest views, /dev/mktme) is vendors/mktme/src/mktme_encrypt.test.ts: kvm cannot
 * import the vendor package.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { sw_protected_cvm } from '../../cvm.js';
import { DESIGNS, design_of } from '../index.js';
import { add_key, encrypt_mprotect, mktme_cvm, mktme_encrypt, mktme_encrypt_vmm, mktme_preparse_payload } from './index.js';

const K = 'ab'.repeat(16);
const T = 'cd'.repeat(16);

describe('D12 mktme_encrypt without MKTME hardware', () => {
  test('the payload options of mktme_keys.rst: type, algorithm, key, tweak', () => {
    expect(mktme_preparse_payload('type=cpu algorithm=aes-xts-128')).toEqual({ keyid_ctrl: 0x101, data_key: undefined, tweak_key: undefined });
    expect(mktme_preparse_payload('type=no-encrypt')).toEqual({ keyid_ctrl: 3 });
    const user = mktme_preparse_payload(`type=user algorithm=aes-xts-128 key=${K} tweak=${T}`);
    expect(user).toMatchObject({ keyid_ctrl: 0x100 });
    expect((user as { data_key: Uint8Array }).data_key).toEqual(new Uint8Array(16).fill(0xab));
    for (const bad of ['', 'type=cpu', `type=user algorithm=aes-xts-128 key=${K}`, 'type=no-encrypt algorithm=aes-xts-128', 'type=clear',
      'algorithm=aes-xts-128', 'type=cpu algorithm=aes-xts-128 type=cpu', `type=cpu algorithm=aes-xts-128 tweak=${T.slice(2)}`]) {
      expect(mktme_preparse_payload(bad), bad).toBe(-Errno.EINVAL);
    }
  });

  test('a host without the MKTME arch has no "mktme" key type (ENODEV) and so no key (ENOKEY); the VMM half applies to MKTME only', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 2048 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
      mktme_encrypt.registrar()).resolve(Kernel);
    expect(DESIGNS.get('mktme_encrypt')).toBe(mktme_encrypt);
    expect(design_of(kernel)?.options).toEqual({ uapi: 'encrypt_mprotect' });
    const p = new Process(kernel);
    expect(add_key(p, 'mktme', 'k', 'type=cpu algorithm=aes-xts-128')).toBe(-1);
    expect(p.errno).toBe(Errno.ENODEV);
    const a = p.mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(encrypt_mprotect(p, a, 4096, PROT_READ, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOKEY);
    expect(encrypt_mprotect(p, a, 100, PROT_READ, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(mktme_encrypt_vmm.vendor_cvm!('mktme', undefined)).toBe(mktme_cvm);
    expect(mktme_encrypt_vmm.vendor_cvm!('sw_protected', sw_protected_cvm)).toBe(sw_protected_cvm);
    expect(mktme_encrypt_vmm.applies(sw_protected_cvm)).toBe('D12 runs on MKTME only (a default VM whose memory the VMM keys), not on sw_protected');
  });
});
