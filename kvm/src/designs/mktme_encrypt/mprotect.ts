/**
 * encrypt_mprotect(2): mm/mprotect.c of the MKTME RFC, Alison Schofield, "[PATCH, RFC 45/62] mm:
 * Add the encrypt_mprotect() system call for MKTME" (8 May 2019,
 * 20190508144422.13171-46-kirill.shutemov@linux.intel.com), with "mm: Restrict MKTME memory
 * encryption to anonymous VMAs" and "mm: Set KeyIDs in encrypted VMAs". "It takes the same
 * parameters as legacy mprotect, plus an additional key serial number that is mapped to an
 * encryption keyid": the VMAs of the range get the KeyID, and every page allocated for them from
 * then on carries it (memory.ts).
 *
 * The KeyID of an anonymous VMA is kept in vma->vm_private_data (the RFC kept it in the KeyID
 * bits of vma->vm_page_prot): the base copies it when it splits the VMA. Not modelled: the RFC's
 * refusal to merge VMAs with different KeyIDs (the base may merge a new anonymous mapping into an
 * encrypted neighbour, whose KeyID it then takes), and the per-VMA KeyID references.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  do_mprotect_pkey, find_vma, find_vma_intersection, ulong_arg, vma_is_anonymous, zap_page_range_single, type MmStruct,
  type VmAreaStruct,
} from '@cocosim/mm';
import { lookup_user_key, mktme_keyid_from_key } from './mktme_keys.js';

/** What an encrypted VMA keeps in vm_private_data. */
export class MktmeVmaKeyid {
  constructor(readonly keyid: number) {}
}

/** vma_keyid(): the KeyID of `vma`'s new pages (0: TME's). */
export function vma_keyid(vma: VmAreaStruct): number {
  const d = vma.vm_private_data;
  return d instanceof MktmeVmaKeyid ? d.keyid : 0;
}

/**
 * mprotect_set_encrypt(): the VMAs covering [start, end) (pages) take `keyid`. Their existing
 * pages are zapped, so that the next access allocates a page with the new KeyID: the data they
 * held is gone ("functionally just MADV_DONTNEED"), which is why the RFC's flow is
 * mmap(PROT_NONE), then encrypt_mprotect(), then use.
 */
function mprotect_set_encrypt(mm: MmStruct, start: number, end: number, keyid: number): void {
  for (let vpn = start; vpn < end;) {
    const vma = find_vma(mm, vpn);
    if (vma === undefined || vma.start_vpn >= end) break;
    const s = Math.max(vma.start_vpn, vpn);
    const e = Math.min(vma.end_vpn, end);
    if (vma_keyid(vma) !== keyid) {
      zap_page_range_single(vma, s, e - s, null);
      vma.vm_private_data = keyid === 0 ? undefined : new MktmeVmaKeyid(keyid);
    }
    vpn = e;
  }
}

/**
 * SYSCALL_DEFINE4(encrypt_mprotect): -EINVAL for a length that is not page aligned, then
 * lookup_user_key()'s -ENOKEY / -EKEYREVOKED, -EINVAL for a key with no KeyID, -EINVAL if a VMA
 * of the range is not anonymous, then do_mprotect_ext(): legacy mprotect()'s checks and
 * protection change, and the KeyID on the range. The anonymous check is made for the whole range
 * before anything changes (the RFC made it VMA by VMA inside the mprotect loop).
 */
export function sys_encrypt_mprotect(mm: MmStruct, ustart: unknown, ulen: unknown, prot: unknown, serial: unknown): number {
  const kernel = mm.kernel;
  const start = ulong_arg(ustart);
  const len = ulong_arg(ulen);
  if (len !== undefined && len % BigInt(PAGE_SIZE) !== 0n) return -Errno.EINVAL;
  const key = lookup_user_key(kernel, serial);
  if (typeof key === 'number') return key;
  const keyid = mktme_keyid_from_key(kernel, key);
  if (!keyid) return -Errno.EINVAL;
  if (start !== undefined && len !== undefined && start % BigInt(PAGE_SIZE) === 0n && len > 0n && start + len <= 1n << 64n) {
    const s = Number(start / BigInt(PAGE_SIZE));
    const e = Number((start + len) / BigInt(PAGE_SIZE));
    for (let v = find_vma_intersection(mm, s, e); v !== undefined && v.start_vpn < e; v = find_vma(mm, v.end_vpn)) {
      if (!vma_is_anonymous(v)) return -Errno.EINVAL;
    }
  }
  const r = do_mprotect_pkey(mm, ustart, ulen, prot);
  if (r) return r;
  if (len === 0n || start === undefined || len === undefined) return 0;
  mprotect_set_encrypt(mm, Number(start / BigInt(PAGE_SIZE)), Number((start + len) / BigInt(PAGE_SIZE)), keyid);
  return 0;
}
