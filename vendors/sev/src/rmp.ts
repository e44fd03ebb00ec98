/**
 * The Reverse Map Table (RMP) of an SEV-SNP host: the hardware (the table, RMPUPDATE, PSMASH,
 * PVALIDATE, RMPADJUST and the RMP checks of CPU and guest accesses, AMD APM Vol. 2 §15.36 and
 * Vol. 3) and Linux's host-side wrappers of arch/x86/virt/svm/sev.c (snp_lookup_rmpentry(),
 * rmpupdate(), psmash(), rmp_make_private(), rmp_make_shared(), adjust_direct_map(),
 * snp_leak_pages()).
 *
 * One entry per 4 KiB page of system memory; the entry of a 2 MiB-aligned page with PageSize set
 * is authoritative for the whole 2 MiB ("Find the authoritative RMP entry for a PFN. This can be
 * either a 4K RMP entry or a special large RMP entry that is authoritative for a whole 2M area",
 * __snp_lookup_rmpentry()). Only entries that differ from the all-zero Hypervisor state are
 * stored, so the table's memory grows with the pages assigned, not with the host's memory.
 *
 * Entry fields (struct rmpentry_raw, PPR Fam19h Mod01h): assigned, pagesize, immutable, gpa,
 * asid, vmsa, validated, and the VMPL1-3 permission masks RMPADJUST sets. The page states of the
 * SEV-SNP Firmware ABI ("Page States") map onto them: Hypervisor (all zero), Firmware (assigned,
 * immutable, asid 0), Pre-Guest (assigned, immutable, the guest's asid and gpa), Guest-Invalid
 * (assigned, not validated), Guest-Valid (assigned, validated).
 *
 * Where the APM's exact failure order is not in the sources the simulator relies on (Linux and its
 * comments), the checks say "(inferred)".
 */
import { BUG, Errno, PAGE_SIZE } from '@cocosim/core';
import { pr_err, pr_warn } from '@cocosim/mm';
import type { SevHost } from './host.js';
import {
  FAIL_INPUT, FAIL_PERMISSION, FAIL_SIZEMISMATCH, PVALIDATE_FAIL_NOUPDATE, RMPUPDATE_FAIL_OVERLAP, RMP_PG_SIZE_2M,
  RMP_PG_SIZE_4K, RMP_SUCCESS,
} from './uapi.js';

/** PTRS_PER_PMD: 4 KiB entries in a 2 MiB page. */
export const PTRS_PER_PMD = 512;
/** PG_LEVEL_4K / PG_LEVEL_2M (arch/x86/include/asm/pgtable_types.h). */
export const PG_LEVEL_4K = 1;
export const PG_LEVEL_2M = 2;

/** One RMP entry (the fields RMPREAD returns, plus validated, vmsa and the VMPL permissions). */
export interface RmpEntry {
  readonly assigned: boolean;
  /** RMP_PG_SIZE_4K or RMP_PG_SIZE_2M. */
  readonly pagesize: number;
  readonly immutable: boolean;
  /** The guest physical address the page is assigned at (page aligned). */
  readonly gpa: bigint;
  readonly asid: number;
  readonly vmsa: boolean;
  readonly validated: boolean;
  /** VMPL1..VMPL3 permission masks (RMPADJUST). */
  readonly vmpl_perms: readonly [number, number, number];
}

/** struct rmp_state: what RMPUPDATE writes. */
export interface RmpState {
  readonly gpa: bigint;
  readonly assigned: boolean;
  readonly pagesize: number;
  readonly immutable: boolean;
  readonly asid: number;
}

const HYPERVISOR: RmpEntry = Object.freeze({
  assigned: false, pagesize: RMP_PG_SIZE_4K, immutable: false, gpa: 0n, asid: 0, vmsa: false, validated: false, vmpl_perms: [0, 0, 0] as const,
});

/** Outcome of a guest instruction or access the RMP refuses with a nested page fault to KVM. */
export interface RmpNpf {
  readonly npf: true;
  /** PFERR_GUEST_SIZEM: a 4 KiB request on a 2 MiB entry (PSMASH resolves it). */
  readonly sizem: boolean;
}

/** What an RMP check of a guest access answers. */
export type RmpGuestCheck = 'ok' | 'npf' | 'not_validated';

/** The hardware RMP of one host. */
export class Rmp {
  private readonly entries = new Map<number, RmpEntry>();

  /** The table covers pfns [min_pfn, max_pfn] (RMP_BASE..RMP_END, rmptable_max_pfn). */
  constructor(readonly min_pfn: number, readonly max_pfn: number) {}

  /** Entries that are not in the Hypervisor state. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The entries not in the Hypervisor state, by pfn, read-only: for the state digest and the
   * DEBUG_VM rules (sev_debug.ts).
   */
  debug_entries(): ReadonlyMap<number, RmpEntry> {
    return this.entries;
  }

  /** The raw entry of `pfn` (its own, even inside a 2 MiB page). */
  raw(pfn: number): RmpEntry {
    return this.entries.get(pfn) ?? HYPERVISOR;
  }

  /** Whether `pfn` is in the table. */
  covers(pfn: number): boolean {
    return Number.isSafeInteger(pfn) && pfn >= this.min_pfn && pfn <= this.max_pfn;
  }

  /**
   * The authoritative entry of `pfn` and the pfn holding it: the 2 MiB-aligned entry when its
   * PageSize is 2M, else the page's own.
   */
  authoritative(pfn: number): { e: RmpEntry; at: number; level: number } {
    const aligned = pfn - (pfn % PTRS_PER_PMD);
    const large = this.entries.get(aligned);
    if (large !== undefined && large.pagesize === RMP_PG_SIZE_2M) return { e: large, at: aligned, level: PG_LEVEL_2M };
    return { e: this.raw(pfn), at: pfn, level: PG_LEVEL_4K };
  }

  /** The guest physical address the authoritative entry gives `pfn` (a 2 MiB entry records its base). */
  gpa_of(pfn: number): bigint {
    const a = this.authoritative(pfn);
    return a.e.gpa + BigInt(pfn - a.at) * BigInt(PAGE_SIZE);
  }

  private put(pfn: number, e: RmpEntry): void {
    if (!e.assigned && !e.immutable && !e.validated && !e.vmsa && e.pagesize === RMP_PG_SIZE_4K && e.asid === 0 && e.gpa === 0n) this.entries.delete(pfn);
    else this.entries.set(pfn, e);
  }

  /**
   * RMPUPDATE (hypervisor, CPL0): write `state` into the entry of `pfn`. Return codes (EAX):
   * FAIL_INPUT for a pfn outside the table or a 2 MiB update of an unaligned pfn;
   * FAIL_PERMISSION when the current (authoritative) entry is immutable (Pre-Guest, Firmware...:
   * "cannot be directly transitioned back ... via RMPUPDATE unless they are reclaimed first",
   * snp_page_reclaim()); RMPUPDATE_FAIL_OVERLAP when a 4 KiB update falls inside an assigned
   * 2 MiB entry (PSMASH first) or a 2 MiB update covers an assigned 4 KiB entry. The written entry
   * has Validated and VMSA clear. An all-zero state returns the page(s) to the Hypervisor state.
   */
  rmpupdate(pfn: number, state: RmpState): number {
    if (!this.covers(pfn)) return FAIL_INPUT;
    const huge = state.pagesize === RMP_PG_SIZE_2M;
    if (huge && pfn % PTRS_PER_PMD !== 0) return FAIL_INPUT;
    if (huge && !this.covers(pfn + PTRS_PER_PMD - 1)) return FAIL_INPUT;
    const cur = this.authoritative(pfn);
    if (cur.e.immutable) return FAIL_PERMISSION;
    const aligned = pfn - (pfn % PTRS_PER_PMD);
    if (!huge) {
      if (cur.level === PG_LEVEL_2M && cur.e.assigned) return RMPUPDATE_FAIL_OVERLAP;
    } else {
      for (let i = 0; i < PTRS_PER_PMD; i++) {
        const e = this.entries.get(aligned + i);
        if (e === undefined || (i === 0 && e.pagesize === RMP_PG_SIZE_2M)) continue;
        if (e.assigned) return RMPUPDATE_FAIL_OVERLAP;
        if (e.immutable) return FAIL_PERMISSION;
      }
    }
    const next: RmpEntry = {
      assigned: state.assigned, pagesize: state.pagesize, immutable: state.immutable, gpa: state.assigned ? state.gpa : 0n,
      asid: state.assigned ? state.asid : 0, vmsa: false, validated: false, vmpl_perms: [0, 0, 0],
    };
    if (huge) for (let i = 1; i < PTRS_PER_PMD; i++) this.entries.delete(aligned + i);
    if (!state.assigned && !state.immutable) this.put(pfn, { ...next, pagesize: RMP_PG_SIZE_4K });
    else this.put(pfn, next);
    return RMP_SUCCESS;
  }

  /**
   * PSMASH (hypervisor): split the assigned 2 MiB entry at 2 MiB-aligned `pfn` into 512 4 KiB
   * entries "while preserving the Validated bit" (psmash()), each with its own gpa. FAIL_INPUT
   * for an unaligned pfn or one outside the table, and (inferred) for an entry that is not an
   * assigned 2 MiB page; FAIL_PERMISSION (inferred) for an immutable one.
   */
  psmash(pfn: number): number {
    if (!this.covers(pfn) || pfn % PTRS_PER_PMD !== 0) return FAIL_INPUT;
    const e = this.entries.get(pfn);
    if (e === undefined || e.pagesize !== RMP_PG_SIZE_2M || !e.assigned) return FAIL_INPUT;
    if (e.immutable) return FAIL_PERMISSION;
    for (let i = 0; i < PTRS_PER_PMD; i++) {
      this.entries.set(pfn + i, { ...e, pagesize: RMP_PG_SIZE_4K, gpa: e.gpa + BigInt(i) * BigInt(PAGE_SIZE), vmsa: i === 0 && e.vmsa });
    }
    return RMP_SUCCESS;
  }

  /**
   * The RMP's ownership check of a guest access (and of PVALIDATE/RMPADJUST): the authoritative
   * entry must be assigned to the guest's ASID at the page's gpa and not immutable.
   */
  private owns(asid: number, gpa_page: bigint, pfn: number): boolean {
    const a = this.authoritative(pfn);
    return a.e.assigned && !a.e.immutable && a.e.asid === asid && this.gpa_of(pfn) === gpa_page;
  }

  /**
   * PVALIDATE (guest, rAX = the page, ECX = size, EDX = validate) of the page at `gpa` that the
   * nested page tables map to `pfn`. Returns the EAX code (FAIL_INPUT for a misaligned 2 MiB
   * request, FAIL_SIZEMISMATCH for a 2 MiB request on a 4 KiB entry, as when the nested mapping
   * is 4 KiB pages), PVALIDATE_FAIL_NOUPDATE when
   * the Validated bit already had the value (rFLAGS.CF = 1), or the #NPF the RMP check raises
   * (not the guest's page; a 4 KiB request on a 2 MiB entry: PFERR_GUEST_SIZEM, see
   * sev_handle_rmp_fault()).
   */
  pvalidate(asid: number, gpa: bigint, pfn: number, pagesize: number, validate: boolean): number | RmpNpf {
    const huge = pagesize === RMP_PG_SIZE_2M;
    if (pagesize !== RMP_PG_SIZE_4K && !huge) return FAIL_INPUT;
    if (huge && gpa % (2n << 20n) !== 0n) return FAIL_INPUT;
    if (!this.owns(asid, gpa, pfn)) return { npf: true, sizem: false };
    const a = this.authoritative(pfn);
    if (a.level === PG_LEVEL_2M && !huge) return { npf: true, sizem: true };
    if (a.level === PG_LEVEL_4K && huge) return FAIL_SIZEMISMATCH;
    if (a.e.validated === validate) return PVALIDATE_FAIL_NOUPDATE;
    this.entries.set(a.at, { ...a.e, validated: validate });
    return RMP_SUCCESS;
  }

  /**
   * RMPADJUST (guest at VMPL0): set the permissions of VMPL `target_vmpl` (1..3) on its page, and
   * the VMSA bit. FAIL_INPUT for a misaligned 2 MiB request; FAIL_PERMISSION for a target VMPL the
   * caller may not adjust (only less privileged ones) or a page that is not validated (inferred);
   * size mismatches as PVALIDATE.
   */
  rmpadjust(asid: number, gpa: bigint, pfn: number, pagesize: number, target_vmpl: number, perms: number, vmsa: boolean): number | RmpNpf {
    const huge = pagesize === RMP_PG_SIZE_2M;
    if (pagesize !== RMP_PG_SIZE_4K && !huge) return FAIL_INPUT;
    if (huge && (gpa % (2n << 20n) !== 0n || pfn % PTRS_PER_PMD !== 0)) return FAIL_INPUT;
    if (!Number.isInteger(target_vmpl) || target_vmpl < 1 || target_vmpl > 3) return FAIL_PERMISSION;
    if (!this.owns(asid, gpa, pfn)) return { npf: true, sizem: false };
    const a = this.authoritative(pfn);
    if (a.level === PG_LEVEL_2M && !huge) return { npf: true, sizem: true };
    if (a.level === PG_LEVEL_4K && huge) return FAIL_SIZEMISMATCH;
    if (!a.e.validated) return FAIL_PERMISSION;
    const vmpl_perms = [...a.e.vmpl_perms] as [number, number, number];
    vmpl_perms[target_vmpl - 1] = perms & 0xf;
    this.entries.set(a.at, { ...a.e, vmpl_perms, vmsa });
    return RMP_SUCCESS;
  }

  /**
   * The RMP check of a guest data access (APM "RMP and VMPL Access Checks"): with the C-bit set
   * the page must be the guest's (else #NPF with the RMP bit to KVM) and validated (else #VC
   * "page not validated" in the guest); a C=0 access must not reach a page assigned to a guest.
   */
  guest_check(asid: number, gpa_page: bigint, pfn: number, c_bit: boolean): RmpGuestCheck {
    if (!c_bit) return this.authoritative(pfn).e.assigned ? 'npf' : 'ok';
    if (!this.owns(asid, gpa_page, pfn)) return 'npf';
    return this.authoritative(pfn).e.validated ? 'ok' : 'not_validated';
  }

  /**
   * The RMP check of a host (hypervisor) write: an assigned or immutable page faults with
   * X86_PF_RMP. Host reads are not checked: they return what DRAM holds (the ciphertext).
   */
  host_write_faults(pfn: number): boolean {
    const a = this.authoritative(pfn);
    return a.e.assigned || a.e.immutable;
  }

  /** Set the Validated bit of a page the firmware validated itself (SNP_LAUNCH_UPDATE) and clear Immutable. */
  firmware_validate(pfn: number, vmsa: boolean): void {
    const a = this.authoritative(pfn);
    this.entries.set(a.at, { ...a.e, validated: true, immutable: false, vmsa });
  }

  /** SNP_PAGE_RECLAIM's RMP side: the immutable page becomes a reclaimable assigned page (Reclaim state). */
  firmware_reclaim(pfn: number): void {
    const a = this.authoritative(pfn);
    this.entries.set(a.at, { ...a.e, immutable: false, validated: false, vmsa: false });
  }
}

/* ---- Linux's host wrappers (arch/x86/virt/svm/sev.c) ---- */

/**
 * snp_lookup_rmpentry(): whether `pfn` is assigned and the level of its authoritative entry, or
 * -EFAULT for a pfn beyond the table (get_raw_rmpentry()).
 */
export function snp_lookup_rmpentry(h: SevHost, pfn: number): { assigned: boolean; level: number } | number {
  if (!h.rmp.covers(pfn)) return -Errno.EFAULT;
  const a = h.rmp.authoritative(pfn);
  return { assigned: a.e.assigned, level: a.level };
}

/**
 * dump_rmpentry(): the "PFN 0x..., RMP entry" lines rmpupdate() and snp_leak_pages() print (the
 * raw entry of an assigned page; a 2 MiB region's non-zero entries for an unassigned one).
 */
export function dump_rmpentry(h: SevHost, pfn: number): void {
  const e = h.rmp.authoritative(pfn).e;
  pr_err(h.kernel, `SEV-SNP: PFN 0x${pfn.toString(16)}, RMP entry: assigned ${Number(e.assigned)} pagesize ${e.pagesize} immutable ${Number(e.immutable)} gpa 0x${e.gpa.toString(16)} asid ${e.asid} vmsa ${Number(e.vmsa)} validated ${Number(e.validated)}`);
}

/**
 * adjust_direct_map(): before a 4 KiB RMP update, split the host's 2 MiB direct-map mapping of
 * the page to 4 KiB (set_memory_4k()), since a write through a 2 MiB mapping overlapping a
 * private 4 KiB page takes an RMP #PF. A 2 MiB update needs no split. Charged once per 2 MiB
 * region: Linux never rebuilds the large mapping.
 */
function adjust_direct_map(h: SevHost, pfn: number, level: number): number {
  if (level > PG_LEVEL_2M) return -Errno.EINVAL;
  if (level === PG_LEVEL_2M) return 0;
  const region = Math.floor(pfn / PTRS_PER_PMD);
  if (h.direct_map_split.has(region)) return 0;
  h.direct_map_split.add(region);
  h.kernel.cost.charge('sev_direct_map_split');
  return 0;
}

/**
 * rmpupdate(): adjust_direct_map(), then RMPUPDATE, retried while it reports FAIL_OVERLAP (a
 * concurrent 2 MiB update by another CPU or the firmware, transient). The simulator has no such
 * concurrent updater, so an overlap that persists is the caller's own entry and the kernel would
 * spin forever: a simulator bug report. Any other failure: pr_err, dump_rmpentry(), -EFAULT.
 */
export function rmpupdate(h: SevHost, pfn: number, state: RmpState): number {
  const level = state.pagesize === RMP_PG_SIZE_2M ? PG_LEVEL_2M : PG_LEVEL_4K;
  if (adjust_direct_map(h, pfn, level)) return -Errno.EFAULT;
  h.kernel.cost.charge('sev_rmpupdate');
  const ret = h.rmp.rmpupdate(pfn, state);
  if (ret === RMPUPDATE_FAIL_OVERLAP) {
    BUG(`rmpupdate: PFN 0x${pfn.toString(16)} keeps failing with RMPUPDATE_FAIL_OVERLAP (no concurrent update): the kernel would retry forever`);
  }
  if (ret) {
    pr_err(h.kernel, `SEV-SNP: RMPUPDATE failed for PFN ${pfn.toString(16)}, pg_level: ${level}, ret: ${ret}`);
    dump_rmpentry(h, pfn);
    return -Errno.EFAULT;
  }
  if (h.kernel.tracer.enabled('cocosim_snp_rmpupdate')) {
    h.kernel.tracer.emit('cocosim_snp_rmpupdate', { pfn, assigned: state.assigned, pagesize: state.pagesize, immutable: state.immutable, gpa: state.gpa, asid: state.asid });
  }
  return 0;
}

/** rmp_make_private(): the page (or 2 MiB page) to guest-owned state: assigned to `asid` at `gpa`. */
export function rmp_make_private(h: SevHost, pfn: number, gpa: bigint, level: number, asid: number, immutable: boolean): number {
  return rmpupdate(h, pfn, { gpa, assigned: true, pagesize: level === PG_LEVEL_2M ? RMP_PG_SIZE_2M : RMP_PG_SIZE_4K, immutable, asid });
}

/** rmp_make_shared(): the page (or 2 MiB page) back to the Hypervisor state. */
export function rmp_make_shared(h: SevHost, pfn: number, level: number): number {
  return rmpupdate(h, pfn, { gpa: 0n, assigned: false, pagesize: level === PG_LEVEL_2M ? RMP_PG_SIZE_2M : RMP_PG_SIZE_4K, immutable: false, asid: 0 });
}

/**
 * psmash(): PSMASH of the 2 MiB page at `pfn` (-EINVAL for a pfn beyond memory, as !pfn_valid()),
 * returning the instruction's code.
 */
export function psmash(h: SevHost, pfn: number): number {
  if (!h.rmp.covers(pfn)) return -Errno.EINVAL;
  h.kernel.cost.charge('sev_psmash');
  return h.rmp.psmash(pfn);
}

/**
 * snp_leak_pages(): pages whose RMP entry could not be returned to the Hypervisor state are
 * unusable by the host: they go on the leaked list forever (never freed).
 */
export function snp_leak_pages(h: SevHost, pfn: number, npages: number): void {
  pr_warn(h.kernel, `SEV-SNP: Leaking PFN range 0x${pfn.toString(16)}-0x${(pfn + npages).toString(16)}`);
  for (let i = 0; i < npages; i++) {
    h.leaked.add(pfn + i);
    dump_rmpentry(h, pfn + i);
  }
}
