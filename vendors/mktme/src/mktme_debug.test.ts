/**
 * mktme_debug.ts: the "mktme.platform" digest part follows KeyID programming and page KeyIDs and
 * stays put across failed calls; the "mktme:" DEBUG_VM rules catch corrupted KeyID bookkeeping
 * and are quiet over a D12 flow (add_key, encrypt_mprotect, faults, munmap) checked call by call.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer, stateDigestDiff } from '@cocosim/core';
import {
  Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, check_vm, debug_vm_process, mm_state_digest, mmRegistrar, pagemap_pfn,
  type DebugVmFinding,
} from '@cocosim/mm';
import { add_key, encrypt_mprotect, kvmRegistrar, mktme_encrypt } from '@cocosim/kvm';
import { mktmeVendorPlugin, mktme_platform_of, mktme_x86_ops } from './index.js';
import type { MktmeKeyState } from './mktme.js';

const PG = BigInt(PAGE_SIZE);
const CPU_KEY = 'type=cpu algorithm=aes-xts-128';
const fill = (b: number, n = 16): Uint8Array => new Uint8Array(n).fill(b);

/** A host with 2-bit KeyIDs (KeyIDs 1-3) running D12. */
function host(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 1 << 14 }), mktmeVendorPlugin.registrar({ keyid_bits: 2 }),
    kvmRegistrar({ x86_ops: mktme_x86_ops }), mktme_encrypt.registrar({})).resolve(Kernel);
}

function mktme_violations(kernel: Kernel): string[] {
  return check_vm(kernel).filter((v) => v.rule.startsWith('mktme:')).map((v) => `${v.rule} ${v.message}`);
}

type Keys = Map<number, { state: MktmeKeyState; refcount: number }>;

describe('mktme state digest', () => {
  test('PCONFIG and a page\'s KeyID change mktme.platform; failed calls change nothing', () => {
    const kernel = host();
    const p = new Process(kernel);
    const a = p.mmap(0, 2n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, fill(1))).toBe(0);
    const d0 = mm_state_digest(kernel);
    expect(Object.keys(d0.parts)).toContain('mktme.platform');
    // encrypt_mprotect() with no such key: -ENOKEY, nothing moves.
    expect(encrypt_mprotect(p, a, PG, PROT_READ | PROT_WRITE, 12345)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOKEY);
    expect(stateDigestDiff(d0, mm_state_digest(kernel))).toEqual([]);

    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    expect(key).toBeGreaterThan(0);
    const d1 = mm_state_digest(kernel);
    expect(stateDigestDiff(d0, d1)).toContain('mktme.platform');
    expect(encrypt_mprotect(p, a, 2n * PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    expect(p.store(a, fill(0x5e))).toBe(0);
    const d2 = mm_state_digest(kernel);
    expect(stateDigestDiff(d1, d2)).toContain('mktme.platform');

    // Every KeyID taken (1-3): the fourth key is refused after its payload was parsed; nothing moves.
    expect(add_key(p, 'mktme', 'k2', CPU_KEY)).toBeGreaterThan(0);
    expect(add_key(p, 'mktme', 'k3', CPU_KEY)).toBeGreaterThan(0);
    const d3 = mm_state_digest(kernel);
    expect(add_key(p, 'mktme', 'k4', CPU_KEY)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOKEY);
    expect(stateDigestDiff(d3, mm_state_digest(kernel))).toEqual([]);
  });
});

describe('mktme DEBUG_VM rules', () => {
  /** A page of `p` encrypted with a fresh key: its pfn and KeyID. */
  function encrypted(kernel: Kernel, p: Process): { pfn: number; keyid: number } {
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(encrypt_mprotect(p, a, PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    expect(p.store(a, fill(0x22))).toBe(0);
    const pfn = pagemap_pfn(p.mm, a)!;
    return { pfn, keyid: mktme_platform_of(kernel).page_keyid(pfn) };
  }

  test('quiet with an encrypted page; keyid_ref and keyid_cleared catch a KeyID losing its reference or key', () => {
    const kernel = host();
    const { keyid, pfn } = encrypted(kernel, new Process(kernel));
    expect(keyid).toBeGreaterThan(0);
    expect(mktme_violations(kernel)).toEqual([]);
    const keys = mktme_platform_of(kernel).debug_tables().keys as Keys;
    const slot = keys.get(keyid)!;
    keys.set(keyid, { state: slot.state, refcount: 0 });
    expect(mktme_violations(kernel).some((m) => m.startsWith('mktme:keyid_ref') && m.includes(`KeyID ${keyid} has 0 references`))).toBe(true);
    keys.set(keyid, { state: 'cleared', refcount: slot.refcount });
    expect(mktme_violations(kernel).some((m) => m.startsWith('mktme:keyid_cleared') && m.includes(`0x${pfn.toString(16)}`))).toBe(true);
    keys.set(keyid, slot);
    expect(mktme_violations(kernel)).toEqual([]);
  });

  test('keyid_free: a free page that still carries a KeyID', () => {
    const kernel = host();
    const { keyid } = encrypted(kernel, new Process(kernel));
    const free = kernel.page_alloc.alloc_page(0);
    kernel.page_alloc.__free_page(free);
    const pages = mktme_platform_of(kernel).debug_tables().page_keyids as Map<number, number>;
    pages.set(free, keyid);
    expect(mktme_violations(kernel).some((m) => m.startsWith('mktme:keyid_free') && m.includes(`0x${free.toString(16)}`))).toBe(true);
    pages.delete(free);
  });

  test('debug_vm_process: encrypt_mprotect, faults, a failed one and munmap pass every check', () => {
    const kernel = host();
    const findings: DebugVmFinding[] = [];
    const p = debug_vm_process(new Process(kernel), { onFinding: (f) => findings.push(f) });
    const key = add_key(p, 'mktme', 'k', CPU_KEY);
    const a = p.mmap(0, 4n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, fill(1, 4 * PAGE_SIZE))).toBe(0);
    expect(encrypt_mprotect(p, a, 2n * PG, PROT_READ | PROT_WRITE, key)).toBe(0);
    expect(p.store(a, fill(2, 3 * PAGE_SIZE))).toBe(0);
    expect(p.munmap(a, PG)).toBe(0);
    expect(p.mprotect(a + 8n * PG, PG, PROT_READ)).toBe(-1);
    expect(p.munmap(a, 4n * PG)).toBe(0);
    expect(findings).toEqual([]);
    expect(mktme_violations(kernel)).toEqual([]);
  });
});
