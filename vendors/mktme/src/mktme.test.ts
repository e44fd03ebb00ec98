/**
 * The MKTME hardware model (mktme.ts, pconfig.ts): PCONFIG status codes, KeyIDs in the physical
 * address, per-page KeyIDs, wrong-KeyID reads and writes, key reprogramming, cache coherency
 * across KeyIDs, the kernel's prep/free/encrypt_mprotect paths and their costs.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Errno, isMemPoison, type Pfn } from '@cocosim/core';
import {
  MKTME_AES_XTS_128, MKTME_DEVICE_BUSY, MKTME_ENTROPY_ERROR, MKTME_INVALID_ENC_ALG, MKTME_INVALID_KEYID, MKTME_INVALID_PROG_CMD,
  MKTME_KEYID_CLEAR_KEY, MKTME_KEYID_NO_ENCRYPT, MKTME_KEYID_SET_KEY_DIRECT, MKTME_KEYID_SET_KEY_RANDOM, MKTME_KEY_PROGRAM,
  MKTME_PROG_SUCCESS, PCONFIG_LEAF_INVALID, tme_activate_keyid_bits,
} from './pconfig.js';
import { mktme_host, type MktmeHost } from './mktme_util.js';
import { MKTME_COST_ENTRIES } from './costs.js';
import { mktmeVendorPlugin } from './index.js';

const PAGE = 4096;
const hosts: MktmeHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(keyid_bits?: number): MktmeHost {
  const h = mktme_host({ seed: 3, platform: keyid_bits === undefined ? {} : { keyid_bits } });
  hosts.push(h);
  return h;
}

function bytes(pattern: number, len = PAGE): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (pattern + i * 7) & 0xff);
}

function read(h: MktmeHost, pfn: number, keyid: number, offset = 0, len = PAGE): Uint8Array {
  const r = h.mktme.read(h.mktme.mk_pa(pfn, keyid, offset), len);
  if (isMemPoison(r)) throw new Error('poison');
  return r;
}

/** Program `keyid` with a direct key; expects success. */
function program(h: MktmeHost, keyid: number, cmd = MKTME_KEYID_SET_KEY_DIRECT): void {
  const r = h.mktme.pconfig(MKTME_KEY_PROGRAM, { keyid, keyid_ctrl: cmd | (cmd <= MKTME_KEYID_SET_KEY_RANDOM ? MKTME_AES_XTS_128 : 0) });
  expect(r).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
}

describe('plugin', () => {
  test('exports the vendor "mktme" with no private VM type and its cost entries', () => {
    expect(mktmeVendorPlugin.name).toBe('mktme');
    expect(mktmeVendorPlugin.x86_ops.supported_vm_types).toBe(0);
    expect(mktmeVendorPlugin.costs.map((c) => c.name)).toEqual(['mktme_pconfig', 'mktme_pconfig_random']);
    for (const c of MKTME_COST_ENTRIES) expect(c.provenance).toBe('estimate');
  });
});

describe('PCONFIG(MKTME_KEY_PROGRAM) status codes (intel_pconfig.h)', () => {
  test('unsupported leaf and a misaligned structure raise #GP(0)', () => {
    const h = host();
    expect(h.mktme.pconfig(PCONFIG_LEAF_INVALID, { keyid: 1, keyid_ctrl: MKTME_AES_XTS_128 })).toMatchObject({ kind: 'exception', name: '#GP(0)' });
    expect(h.mktme.pconfig(MKTME_KEY_PROGRAM, { keyid: 1, keyid_ctrl: MKTME_AES_XTS_128, address: 0x1040n })).toMatchObject({ kind: 'exception', name: '#GP(0)' });
    expect(h.mktme.pconfig(MKTME_KEY_PROGRAM, { keyid: 1, keyid_ctrl: MKTME_AES_XTS_128, address: 0x1100n })).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
  });

  test('each status code', () => {
    const h = host();
    const kp = (keyid: number, keyid_ctrl: number) => h.mktme.pconfig(MKTME_KEY_PROGRAM, { keyid, keyid_ctrl });
    expect(kp(1, 4 | MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_INVALID_PROG_CMD });
    expect(kp(0, MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_INVALID_KEYID });
    expect(kp(64, MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_INVALID_KEYID }); // 6 KeyID bits: 1..63
    expect(kp(63, MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
    expect(kp(2, MKTME_KEYID_SET_KEY_DIRECT)).toEqual({ kind: 'ret', rax: MKTME_INVALID_ENC_ALG }); // no algorithm
    expect(kp(2, MKTME_KEYID_SET_KEY_DIRECT | (1 << 9))).toEqual({ kind: 'ret', rax: MKTME_INVALID_ENC_ALG }); // not enabled
    expect(kp(2, MKTME_KEYID_SET_KEY_RANDOM | (3 << 8))).toEqual({ kind: 'ret', rax: MKTME_INVALID_ENC_ALG }); // two
    h.mktme.entropy_error = true;
    expect(kp(2, MKTME_KEYID_SET_KEY_RANDOM | MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_ENTROPY_ERROR });
    expect(kp(2, MKTME_KEYID_SET_KEY_RANDOM | MKTME_AES_XTS_128)).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
    h.mktme.device_busy = true;
    expect(kp(3, MKTME_KEYID_CLEAR_KEY)).toEqual({ kind: 'ret', rax: MKTME_DEVICE_BUSY });
    expect(kp(3, MKTME_KEYID_CLEAR_KEY)).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
    expect(kp(4, MKTME_KEYID_NO_ENCRYPT)).toEqual({ kind: 'ret', rax: MKTME_PROG_SUCCESS });
    expect([h.mktme.key_state(0), h.mktme.key_state(2), h.mktme.key_state(3), h.mktme.key_state(4), h.mktme.key_state(5)])
      .toEqual(['tme', 'encrypt', 'cleared', 'no_encrypt', 'cleared']);
  });

  test('each PCONFIG that reaches the controllers is charged (random keys cost more)', () => {
    const h = host();
    h.kernel.cost.begin('pconfig');
    program(h, 1);
    program(h, 2, MKTME_KEYID_SET_KEY_RANDOM);
    const r = h.kernel.cost.end('pconfig');
    expect(r.items.map((i) => [i.name, i.count])).toEqual([['mktme_pconfig', 1], ['mktme_pconfig_random', 1]]);
  });
});

describe('KeyIDs in the physical address', () => {
  test('the top keyid_bits of MAXPHYADDR hold the KeyID', () => {
    const h = host();
    expect(h.mktme.keyid_shift).toBe(40);
    expect(h.mktme.max_keyid).toBe(63);
    const pa = h.mktme.mk_pa(0x1234, 5, 0x18);
    expect(pa).toBe((5n << 40n) | 0x1234018n);
    expect(h.mktme.decode_pa(pa)).toEqual({ pfn: 0x1234, offset: 0x18, keyid: 5 });
    expect(tme_activate_keyid_bits(6n << 32n)).toBe(6);
    const h4 = host(4);
    expect([h4.mktme.keyid_shift, h4.mktme.max_keyid]).toEqual([42, 15]);
  });
});

describe('per-page KeyID and accesses with the wrong KeyID', () => {
  test('prep_encrypted_page zeroes through the new KeyID; KeyID 0 and other KeyIDs read ciphertext, no fault', () => {
    const h = host();
    program(h, 1);
    program(h, 2);
    const pfn = 100;
    h.kernel.phys.write(pfn as Pfn, 0, bytes(0x40));
    expect(h.mktme.prep_encrypted_page(pfn, 1)).toBe(0);
    expect(h.mktme.page_keyid(pfn)).toBe(1);
    expect(h.mktme.keyid_refcount(1)).toBe(1);
    expect(read(h, pfn, 1)).toEqual(new Uint8Array(PAGE)); // zero after the KeyID is set
    const secret = bytes(0x11);
    h.mktme.write(h.mktme.mk_pa(pfn, 1), secret);
    expect(read(h, pfn, 1)).toEqual(secret);
    // Host kernel / user (KeyID 0) and another KeyID: garbage, neither the secret nor zeros.
    const k0 = read(h, pfn, 0);
    const k2 = read(h, pfn, 2);
    for (const v of [k0, k2]) {
      expect(v).not.toEqual(secret);
      expect(v).not.toEqual(new Uint8Array(PAGE));
    }
    expect(k0).not.toEqual(k2);
    expect(h.mktme.access_outcome(pfn, 0)).toEqual({ kind: 'ok', data: 'ciphertext' });
    expect(h.mktme.access_outcome(pfn, 2)).toEqual({ kind: 'ok', data: 'ciphertext' });
    expect(h.mktme.access_outcome(pfn, 1)).toEqual({ kind: 'ok', data: 'plaintext' });
    // A second prep of a page that has a KeyID is refused; a KeyID out of range too.
    expect(h.mktme.prep_encrypted_page(pfn, 2)).toBe(-Errno.EBUSY);
    expect(h.mktme.prep_encrypted_page(101, 0)).toBe(-Errno.EINVAL);
    expect(h.mktme.prep_encrypted_page(101, 64)).toBe(-Errno.EINVAL);
  });

  test('a wrong-KeyID write (host or DMA) lands silently: the owner reads garbage in the blocks written', () => {
    const h = host();
    program(h, 1);
    const pfn = 200;
    h.mktme.prep_encrypted_page(pfn, 1);
    const secret = bytes(0x22);
    h.mktme.write(h.mktme.mk_pa(pfn, 1), secret);
    // A full-line (64 B) host write through KeyID 0 at offset 128 and a partial one (8 B) at 1024.
    h.mktme.write(h.mktme.mk_pa(pfn, 0, 128), new Uint8Array(64).fill(0xee));
    h.mktme.dma_write(h.mktme.mk_pa(pfn, 0, 1024), new Uint8Array(8).fill(0xdd));
    const owner = read(h, pfn, 1);
    expect(owner.subarray(0, 128)).toEqual(secret.subarray(0, 128)); // untouched XTS blocks intact
    expect(owner.subarray(128, 192)).not.toEqual(secret.subarray(128, 192));
    expect(owner.subarray(128, 192)).not.toEqual(new Uint8Array(64).fill(0xee));
    // The 8-byte write corrupts its whole 16-byte XTS block for the owner.
    expect(owner.subarray(1024, 1040)).not.toEqual(secret.subarray(1024, 1040));
    expect(owner.subarray(1040)).toEqual(secret.subarray(1040));
    // The writer reads back what it wrote through its own KeyID.
    expect(read(h, pfn, 0, 128, 64)).toEqual(new Uint8Array(64).fill(0xee));
    expect(h.kernel.phys.isPoisoned(pfn as Pfn)).toBe(false);
  });

  test('a device DMA read with the page\'s KeyID in its address sees the plaintext; with KeyID 0, ciphertext', () => {
    const h = host();
    program(h, 3);
    const pfn = 300;
    h.mktme.prep_encrypted_page(pfn, 3);
    const data = bytes(0x33);
    h.mktme.dma_write(h.mktme.mk_pa(pfn, 3), data);
    expect(read(h, pfn, 3)).toEqual(data);
    expect(read(h, pfn, 0)).not.toEqual(data);
  });

  test('NO_ENCRYPT: the KeyID passes plaintext, as KeyID 0 does', () => {
    const h = host();
    program(h, 4, MKTME_KEYID_NO_ENCRYPT);
    const pfn = 400;
    h.mktme.prep_encrypted_page(pfn, 4);
    const data = bytes(0x44);
    h.mktme.write(h.mktme.mk_pa(pfn, 4), data);
    expect(read(h, pfn, 0)).toEqual(data);
    expect(h.mktme.access_outcome(pfn, 0).data).toBe('plaintext');
  });
});

describe('key changes and the free path', () => {
  test('the kernel refuses to reprogram or clear a KeyID in use (-EBUSY); PCONFIG itself does not check', () => {
    const h = host();
    program(h, 5);
    const pfn = 500;
    h.mktme.prep_encrypted_page(pfn, 5);
    const data = bytes(0x55);
    h.mktme.write(h.mktme.mk_pa(pfn, 5), data);
    expect(h.mktme.mktme_key_program({ keyid: 5, keyid_ctrl: MKTME_KEYID_CLEAR_KEY })).toBe(-Errno.EBUSY);
    expect(read(h, pfn, 5)).toEqual(data);
    // The hardware takes it: the page's residual ciphertext no longer decrypts (no fault).
    program(h, 5, MKTME_KEYID_CLEAR_KEY);
    expect(read(h, pfn, 5)).not.toEqual(data);
    // And reprogramming the same KeyID with a new key does not bring the data back.
    program(h, 5);
    expect(read(h, pfn, 5)).not.toEqual(data);
    expect(h.mktme.mktme_key_program({ keyid: 9, keyid_ctrl: 7 })).toBe(-Errno.EIO);
    expect(h.mktme.mktme_key_program({ keyid: 9, keyid_ctrl: MKTME_AES_XTS_128 })).toBe(0);
  });

  test('free_encrypted_page flushes KeyID-k lines and returns the page to KeyID 0 with its ciphertext (no plaintext leak)', () => {
    const h = host();
    program(h, 6);
    const pfn = 600;
    h.mktme.prep_encrypted_page(pfn, 6);
    const data = bytes(0x66);
    h.mktme.write(h.mktme.mk_pa(pfn, 6), data);
    expect(h.mktme.has_dirty_lines(pfn, 6)).toBe(true);
    h.kernel.cost.begin('free');
    expect(h.mktme.free_encrypted_page(pfn)).toBe(0);
    expect(h.kernel.cost.end('free').items.map((i) => i.name)).toEqual(['clflush_4k']);
    expect(h.mktme.has_dirty_lines(pfn)).toBe(false);
    expect(h.mktme.page_keyid(pfn)).toBe(0);
    expect(h.mktme.keyid_refcount(6)).toBe(0);
    expect(read(h, pfn, 0)).not.toEqual(data);
    expect(h.mktme.free_encrypted_page(pfn)).toBe(-Errno.EINVAL);
    // The KeyID is free: the key may be replaced now.
    expect(h.mktme.mktme_key_program({ keyid: 6, keyid_ctrl: MKTME_KEYID_CLEAR_KEY })).toBe(0);
  });
});

describe('no cache coherency across KeyIDs', () => {
  test('with the flush on allocation the new KeyID\'s data survives a cache write-back', () => {
    const h = host();
    program(h, 7);
    const pfn = 700;
    h.mktme.write(h.mktme.mk_pa(pfn, 0), bytes(0x70)); // dirty KeyID-0 lines
    h.kernel.cost.begin('prep');
    h.mktme.prep_encrypted_page(pfn, 7);
    expect(h.kernel.cost.end('prep').items.map((i) => i.name)).toEqual(['clflush_4k', 'page_zero_4k']);
    const data = bytes(0x77);
    h.mktme.write(h.mktme.mk_pa(pfn, 7), data);
    h.mktme.wbinvd();
    expect(read(h, pfn, 7)).toEqual(data);
  });

  test('without it, stale KeyID-0 lines written back later turn the new KeyID\'s data into garbage', () => {
    const h = host();
    program(h, 8);
    const pfn = 800;
    const stale = bytes(0x80);
    h.mktme.write(h.mktme.mk_pa(pfn, 0), stale);
    h.mktme.prep_encrypted_page(pfn, 8, { flush: false });
    expect(h.mktme.has_dirty_lines(pfn, 0)).toBe(true);
    // The new owner's own stores hit the caches under KeyID 8; the KeyID-0 alias lines remain.
    const data = bytes(0x88);
    h.kernel.phys.write(pfn as Pfn, 0, data, h.mktme.phys_key(8));
    expect(read(h, pfn, 8)).toEqual(data);
    h.mktme.wbinvd(); // eviction writes the KeyID-0 lines back over DRAM
    const after = read(h, pfn, 8);
    expect(after).not.toEqual(data);
    expect(after).not.toEqual(stale);
    expect(read(h, pfn, 0)).toEqual(stale);
  });
});

describe('encrypt_mprotect: the KeyID change zaps the pages', () => {
  test('old contents are destroyed; the new pages read zero through the new KeyID; the shootdown is charged', () => {
    const h = host();
    program(h, 9);
    const oldPfns = [900, 901];
    for (const p of oldPfns) h.mktme.write(h.mktme.mk_pa(p, 0), bytes(p));
    h.kernel.cost.begin('mprotect');
    expect(h.mktme.encrypt_mprotect_pages(oldPfns, [910, 911], 9)).toBe(0);
    const items = h.kernel.cost.end('mprotect').items.map((i) => [i.name, i.count]);
    expect(items).toEqual([['clflush_4k', 2], ['page_zero_4k', 2], ['tlb_shootdown_ipi', 1]]);
    for (const p of [910, 911]) {
      expect(h.mktme.page_keyid(p)).toBe(9);
      expect(read(h, p, 9)).toEqual(new Uint8Array(PAGE));
    }
    expect(h.kernel.phys.state(900 as Pfn)).toBe('never_written');
    expect(h.mktme.keyid_refcount(9)).toBe(2);
    // A KeyID without a key cannot be used.
    expect(h.mktme.encrypt_mprotect_pages([910], [920], 10)).toBe(-Errno.ENOKEY);
  });
});
