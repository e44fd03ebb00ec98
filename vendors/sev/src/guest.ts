/**
 * The guest side of SEV-SNP for guest programs, as Linux's guest does it (arch/x86/coco/sev/ and
 * the selftests' lib/x86/sev.c): the GHCB MSR protocol's page state change and termination
 * request, the PSC NAE event with its buffer in shared memory, and set_memory_encrypted() /
 * set_memory_decrypted() (PSC private then PVALIDATE; PVALIDATE rescind then PSC shared).
 */
import { fwcall, guestAccept, guestStore, type GuestCode } from '@cocosim/kvm';
import {
  GHCB_MSR_PSC_REQ_GFN, GHCB_MSR_TERM_REQ, PSC_ENTRY_SIZE, PSC_HDR_SIZE, SNP_PAGE_STATE_PRIVATE, SNP_PAGE_STATE_SHARED,
  SVM_EXIT_VMGEXIT, SVM_VMGEXIT_PSC, VMGEXIT_PSC_MAX_ENTRY, VMGEXIT_PSC_OP_PRIVATE, VMGEXIT_PSC_OP_SHARED, psc_buffer_encode,
  type PscEntry,
} from './uapi.js';

/** VMGEXIT with the GHCB MSR protocol's page state change for one 4 KiB page: the response MSR. */
export function* snp_psc_msr(gpa: bigint, to_private: boolean): GuestCode<bigint> {
  const op = to_private ? SNP_PAGE_STATE_PRIVATE : SNP_PAGE_STATE_SHARED;
  const regs = yield* fwcall(SVM_EXIT_VMGEXIT, GHCB_MSR_PSC_REQ_GFN(gpa >> 12n, op));
  return regs[0] ?? 0n;
}

/**
 * The PSC NAE event: the descriptor (psc_hdr and entries) is written to the shared scratch page at
 * `scratch_gpa`, then VMGEXIT(SVM_VMGEXIT_PSC). Returns sw_exit_info_2 (0 on success).
 */
export function* snp_psc(scratch_gpa: bigint, entries: readonly PscEntry[]): GuestCode<bigint> {
  if (entries.length === 0 || entries.length > VMGEXIT_PSC_MAX_ENTRY) throw new RangeError(`snp_psc: ${entries.length} entries`);
  const buf = psc_buffer_encode(0, entries.length - 1, entries);
  yield* guestStore(scratch_gpa, buf);
  const regs = yield* fwcall(SVM_VMGEXIT_PSC, scratch_gpa, PSC_HDR_SIZE + PSC_ENTRY_SIZE * entries.length);
  return regs[1] ?? 0n;
}

/** The PSC entries for `npages` pages at `gpa`, 2 MiB entries where aligned. */
export function psc_entries(gpa: bigint, npages: number, to_private: boolean): PscEntry[] {
  const out: PscEntry[] = [];
  const operation = to_private ? VMGEXIT_PSC_OP_PRIVATE : VMGEXIT_PSC_OP_SHARED;
  let gfn = gpa >> 12n;
  for (let left = npages; left > 0; ) {
    const huge = gfn % 512n === 0n && left >= 512;
    out.push({ cur_page: 0, gfn, operation, pagesize: huge ? 1 : 0 });
    gfn += huge ? 512n : 1n;
    left -= huge ? 512 : 1;
  }
  return out;
}

/**
 * set_memory_encrypted() of an SNP guest: PSC to private (NAE event through the scratch page),
 * then PVALIDATE (which maps the pages with the C-bit). Returns 0, or the failing step's code.
 */
export function* snp_set_memory_private(gpa: bigint, npages: number, scratch_gpa: bigint): GuestCode<bigint> {
  const psc = yield* snp_psc(scratch_gpa, psc_entries(gpa, npages, true));
  if (psc) return psc;
  return BigInt(yield* guestAccept(gpa, npages, true));
}

/**
 * set_memory_decrypted() of an SNP guest: PVALIDATE rescind (clearing the C-bit), then PSC to
 * shared. Returns 0, or the failing step's code.
 */
export function* snp_set_memory_shared(gpa: bigint, npages: number, scratch_gpa: bigint): GuestCode<bigint> {
  const rc = yield* guestAccept(gpa, npages, false);
  if (rc) return BigInt(rc);
  return yield* snp_psc(scratch_gpa, psc_entries(gpa, npages, false));
}

/** sev_es_terminate(): the GHCB MSR termination request (reason set, reason code). */
export function* sev_es_terminate(reason_set: number, reason_code: number): GuestCode {
  yield* fwcall(SVM_EXIT_VMGEXIT, (BigInt(reason_code & 0xff) << 16n) | (BigInt(reason_set & 0xf) << 12n) | GHCB_MSR_TERM_REQ);
}
