/**
 * A TDX guest's side, for guest programs (kvm/src/guest.ts): the TDCALLs of the Linux TDX guest
 * (arch/x86/coco/tdx/tdx.c, arch/x86/include/asm/shared/tdx.h) as cocosim fwcall instructions.
 *
 * Register convention of a TDCALL fwcall: fn = RAX (the leaf), args = RCX, RDX, R8, R9, R10, R11,
 * R12, R13, R14, R15; the instruction returns RAX, RCX, RDX, R8, R9, R10, R11, R12, R13, R14, R15.
 * A TDG.VP.VMCALL returns its status in R10 (index 5) and a value in R11 (index 6); a KVM
 * hypercall through TDG.VP.VMCALL (R10 != 0) retires with the hypercall's result alone.
 */
import { type GuestCode } from '@cocosim/kvm';
import { TDX_SUCCESS } from './tdx_errno.js';
import {
  TDG_MEM_PAGE_ACCEPT, TDG_VP_INFO, TDG_VP_VMCALL, TDVMCALL_MAP_GPA, TDVMCALL_STATUS_RETRY, TDVMCALL_STATUS_SUCCESS, TDX_PS_1G,
  TDX_PS_2M, TDX_PS_4K,
} from './uapi.js';

const PAGE = 4096n;

/** `tdcall` with RAX = `fn` and `args` from RCX on: the eleven registers it returns. */
export function* tdcall(fn: bigint, ...args: bigint[]): GuestCode<readonly bigint[]> {
  const r = yield { op: 'fwcall', fn, args };
  return Array.isArray(r) ? (r as readonly bigint[]) : [TDX_SUCCESS, 0n, 0n, 0n, 0n, typeof r === 'bigint' ? r : 0n];
}

/** TDG.MEM.PAGE.ACCEPT of the page at private `gpa` of TDX size `level` (0 4K, 1 2M, 2 1G): the status (RAX). */
export function* tdg_mem_page_accept(gpa: bigint, level: number): GuestCode<bigint> {
  const r = yield* tdcall(TDG_MEM_PAGE_ACCEPT, gpa | BigInt(level));
  return r[0]!;
}

/** TDG.VP.INFO: the GPAW (RCX[5:0]) and the TD's attributes (RDX). */
export function* tdg_vp_info(): GuestCode<{ gpaw: number; attributes: bigint }> {
  const r = yield* tdcall(TDG_VP_INFO);
  return { gpaw: Number(r[1]! & 0x3fn), attributes: r[2]! };
}

/** The shared bit of a TD with this GPAW (cc_mkdec(): tdx_shared_mask(), bit GPAW - 1). */
export function tdx_shared_mask(gpaw: number): bigint {
  return 1n << BigInt(gpaw - 1);
}

/** try_accept_one(): ACCEPT one `level`-sized page at `start` if it fits [start, start+len): its size, or 0. */
function* try_accept_one(start: bigint, len: bigint, level: number): GuestCode<bigint> {
  const size = PAGE * 512n ** BigInt(level);
  if (start % size || len < size) return 0n;
  const err = yield* tdg_mem_page_accept(start, level);
  return err === TDX_SUCCESS ? size : 0n;
}

/**
 * tdx_accept_memory(start, end): accept every page of the private range, 1 GiB, 2 MiB or 4 KiB at
 * a time, the largest that works. False when a page cannot be accepted (already accepted...).
 */
export function* tdx_accept_memory(start: bigint, end: bigint): GuestCode<boolean> {
  while (start < end) {
    const len = end - start;
    let accepted = yield* try_accept_one(start, len, TDX_PS_1G);
    if (!accepted) accepted = yield* try_accept_one(start, len, TDX_PS_2M);
    if (!accepted) accepted = yield* try_accept_one(start, len, TDX_PS_4K);
    if (!accepted) return false;
    start += accepted;
  }
  return true;
}

/** One TDG.VP.VMCALL<MapGPA> of [gpa, gpa + size): R10 (status) and R11 (where a failure or RETRY stopped). */
export function* tdvmcall_map_gpa(gpa: bigint, size: bigint): GuestCode<{ status: bigint; r11: bigint }> {
  const r = yield* tdcall(TDG_VP_VMCALL, 0n, 0n, 0n, 0n, 0n, TDVMCALL_MAP_GPA, gpa, size);
  return { status: r[5]!, r11: r[6]! };
}

/**
 * tdx_map_gpa(start, end, enc): ask the VMM to convert the range, the shared bit set for a
 * decryption; on RETRY continue from R11 (at most 3 times).
 */
export function* tdx_map_gpa(start: bigint, end: bigint, enc: boolean, shared_mask: bigint): GuestCode<boolean> {
  const MAX_RETRIES_PER_PAGE = 3;
  let retry_count = 0;
  while (retry_count < MAX_RETRIES_PER_PAGE) {
    const gpa = enc ? start : start | shared_mask;
    const r = yield* tdvmcall_map_gpa(gpa, end - start);
    if (r.status === TDVMCALL_STATUS_SUCCESS) return true;
    if (r.status !== TDVMCALL_STATUS_RETRY) return false;
    const next = r.r11 & ~shared_mask;
    if (next < start || next >= end) return false;
    if (next === start) {
      retry_count++;
    } else {
      start = next;
      retry_count = 0;
    }
  }
  return false;
}

/**
 * tdx_enc_status_changed() for set_memory_encrypted() / set_memory_decrypted() of `npages` at
 * private gpa `gpa`: MapGPA, and for an encryption the acceptance of the pages.
 */
export function* tdx_enc_status_changed(gpa: bigint, npages: number, enc: boolean, shared_mask: bigint): GuestCode<boolean> {
  const start = gpa & ~shared_mask;
  const end = start + BigInt(npages) * PAGE;
  if (!(yield* tdx_map_gpa(start, end, enc, shared_mask))) return false;
  if (enc) return yield* tdx_accept_memory(start, end);
  return true;
}
