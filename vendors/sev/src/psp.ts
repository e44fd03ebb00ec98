/**
 * The AMD Secure Processor's SEV firmware as the host sees it through the PSP mailbox: the
 * platform, the guest contexts of legacy SEV/SEV-ES (by handle) and of SEV-SNP (by guest-context
 * page), ASID binding, the launch commands with their measurements, and the status codes of
 * include/uapi/linux/psp-sev.h. The command functions are named after the SEV_CMD_* they execute
 * (drivers/crypto/ccp/sev-dev.c sends them; the firmware's behaviour is the "SEV Secure Nested
 * Paging Firmware ABI" and "SEV API" specifications, as Linux's callers and comments rely on it).
 *
 * Every command returns what __sev_do_cmd_locked() gives its caller: `rc` 0, or -EIO with the
 * firmware status in `error` (the psp_ret / argp->error KVM copies to user space). A failed
 * command changes nothing. Each command is charged as one PSP mailbox round trip (sev_psp_cmd).
 *
 * Measurements (node:crypto):
 *  - SNP launch digest: for each SNP_LAUNCH_UPDATE, LD = SHA-384(PAGE_INFO), PAGE_INFO (SNP ABI
 *    Table "PAGE_INFO", 0x70 bytes) = LD || CONTENTS || u16 0x70 || u8 page type || u8 IMI || u8
 *    VMPL3/2/1 permissions || u8 0 || u64 GPA, CONTENTS = SHA-384 of the page for NORMAL and VMSA
 *    pages and 48 zero bytes for ZERO, UNMEASURED, SECRETS and CPUID pages (as virtee's
 *    sev-snp-measure computes it, sevsnpmeasure/gctx.py), LD starting at 48 zero bytes.
 *  - Legacy SEV: GCTX.LD = SHA-256 over the plaintext of every LAUNCH_UPDATE_DATA and
 *    LAUNCH_UPDATE_VMSA, in order; LAUNCH_MEASURE returns MEASURE = HMAC-SHA256(TIK, 0x04 ||
 *    API_MAJOR || API_MINOR || BUILD || GCTX.POLICY || GCTX.LD || MNONCE) and MNONCE (SEV API
 *    "LAUNCH_MEASURE"). The TIK, which the guest owner's session blob wraps, is modelled as
 *    SHA-256 of the session blob, and MNONCE as a hash of the host seed, handle and LD: both are
 *    deterministic so that runs repeat.
 */
import { createHash, createHmac, type Hash } from 'node:crypto';
import { Errno, PAGE_SIZE, isMemPoison, type Pfn } from '@cocosim/core';
import type { SevHost } from './host.js';
import { PG_LEVEL_2M } from './rmp.js';
import {
  KVM_SEV_SNP_PAGE_TYPE_CPUID, KVM_SEV_SNP_PAGE_TYPE_NORMAL, KVM_SEV_SNP_PAGE_TYPE_SECRETS, KVM_SEV_SNP_PAGE_TYPE_UNMEASURED,
  KVM_SEV_SNP_PAGE_TYPE_ZERO, SEV_CMD_ACTIVATE, SEV_CMD_DEACTIVATE, SEV_CMD_DECOMMISSION, SEV_CMD_DF_FLUSH, SEV_CMD_GUEST_STATUS,
  SEV_CMD_LAUNCH_FINISH, SEV_CMD_LAUNCH_MEASURE, SEV_CMD_LAUNCH_START, SEV_CMD_LAUNCH_UPDATE_DATA, SEV_CMD_LAUNCH_UPDATE_VMSA,
  SEV_CMD_NAMES, SEV_CMD_SNP_ACTIVATE, SEV_CMD_SNP_DECOMMISSION, SEV_CMD_SNP_DF_FLUSH, SEV_CMD_SNP_GCTX_CREATE,
  SEV_CMD_SNP_LAUNCH_FINISH, SEV_CMD_SNP_LAUNCH_START, SEV_CMD_SNP_LAUNCH_UPDATE, SEV_CMD_SNP_PAGE_RECLAIM, SEV_POLICY_ES,
  SEV_RET_ACTIVE, SEV_RET_ASID_OWNED, SEV_RET_BAD_MEASUREMENT, SEV_RET_DFFLUSH_REQUIRED, SEV_RET_HWSEV_RET_PLATFORM,
  SEV_RET_INACTIVE, SEV_RET_INVALID_ADDRESS, SEV_RET_INVALID_ASID, SEV_RET_INVALID_GUEST, SEV_RET_INVALID_GUEST_STATE,
  SEV_RET_INVALID_LEN, SEV_RET_INVALID_PAGE_OWNER, SEV_RET_INVALID_PAGE_SIZE, SEV_RET_INVALID_PAGE_STATE, SEV_RET_INVALID_PARAM,
  SEV_RET_INVALID_PLATFORM_STATE, SEV_RET_POLICY_FAILURE, SEV_RET_WBINVD_REQUIRED, SNP_PAGE_TYPE_VMSA,
} from './uapi.js';

/** The simulated firmware's version (SEV API / SNP ABI major.minor and build). */
export const SEV_API_MAJOR = 1;
export const SEV_API_MINOR = 55;
export const SEV_BUILD = 21;

/** Legacy SEV guest states (SEV API "GSTATE"). */
export const SEV_GSTATE_UNINIT = 0;
export const SEV_GSTATE_LUPDATE = 1;
export const SEV_GSTATE_LSECRET = 2;
export const SEV_GSTATE_RUNNING = 3;
/** SNP guest states (SNP ABI "GSTATE"). */
export const SNP_GSTATE_INIT = 0;
export const SNP_GSTATE_LAUNCH = 1;
export const SNP_GSTATE_RUNNING = 2;

/** LAUNCH_MEASURE's output: MEASURE (32 bytes) and MNONCE (16 bytes). */
export const SEV_MEASURE_BLOB_LEN = 48;
/** SNP_CPUID_COUNT_MAX: entries of the CPUID page (struct snp_cpuid_table). */
const SNP_CPUID_COUNT_MAX = 64;
/** The CPUID page: u32 count, u32 rsvd, u64 rsvd, then 48-byte entries (eax_in, ecx_in, xcr0_in, xss_in, eax..edx, rsvd). */
const SNP_CPUID_ENTRY_SIZE = 48;
const SNP_CPUID_HDR_SIZE = 16;

/** What a firmware command returns to its caller (__sev_do_cmd_locked()). */
export interface FwResult {
  /** 0, or -EIO when the firmware reported an error. */
  readonly rc: number;
  /** The firmware status (SEV_RET_*), 0 on success. */
  readonly error: number;
}

const OK: FwResult = { rc: 0, error: 0 };
function fw_err(error: number): FwResult {
  return { rc: -Errno.EIO, error };
}

/** A legacy SEV / SEV-ES guest context. */
export class SevGuestCtx {
  state = SEV_GSTATE_LUPDATE;
  asid = 0;
  readonly ld: Hash = createHash('sha256');
  /** The launch digest once LAUNCH_MEASURE took it (the hash cannot be read twice). */
  ld_final: Buffer | undefined = undefined;

  constructor(readonly handle: number, readonly policy: number, readonly tik: Buffer) {}

  get es(): boolean {
    return (this.policy & SEV_POLICY_ES) !== 0;
  }
}

/** An SEV-SNP guest context, named by its context page. */
export class SnpGuestCtx {
  state = SNP_GSTATE_INIT;
  asid = 0;
  policy = 0n;
  gosvw: Uint8Array = new Uint8Array(16);
  /** The launch digest (SHA-384), 48 zero bytes at GCTX_CREATE. */
  ld: Buffer = Buffer.alloc(48);
  host_data: Uint8Array = new Uint8Array(32);

  constructor(readonly gctx_pfn: number) {}
}

/** The ID block of SNP_LAUNCH_FINISH (struct sev_data_snp_id_block's leading fields): ld[48], ..., policy. */
export interface SnpIdBlock {
  readonly ld: Uint8Array;
  readonly policy: bigint;
}

/** The PSP firmware of one host. */
export class SevFirmware {
  /** The platform was initialized (SEV INIT / SNP_INIT_EX; sev_platform_init()). */
  platform_init = false;
  /** Legacy guests by handle. */
  readonly guests = new Map<number, SevGuestCtx>();
  /** SNP guests by context page. */
  readonly snp_guests = new Map<number, SnpGuestCtx>();
  /** The guest each ASID is bound to (ACTIVATE / SNP_ACTIVATE). */
  readonly asid_owner = new Map<number, SevGuestCtx | SnpGuestCtx>();
  /** ASIDs deactivated since the last DF_FLUSH: ACTIVATE refuses them (SEV_RET_DFFLUSH_REQUIRED). */
  readonly dirty_asids = new Set<number>();
  /** A DEACTIVATE happened and no WBINVD since: DF_FLUSH refuses (SEV_RET_WBINVD_REQUIRED). */
  wbinvd_required = false;
  private next_handle = 1;

  constructor(readonly h: SevHost) {}

  /** One mailbox round trip of command `cmd` (the PSP trace point's name and its cost). */
  private cmd(cmd: number, fn: () => FwResult): FwResult {
    const kernel = this.h.kernel;
    kernel.cost.charge('sev_psp_cmd');
    const r = fn();
    if (kernel.tracer.enabled('cocosim_sev_cmd')) kernel.tracer.emit('cocosim_sev_cmd', { cmd: SEV_CMD_NAMES.get(cmd) ?? String(cmd), error: r.error });
    return r;
  }

  /** sev_platform_init(): INIT (and SNP_INIT_EX on an SNP host) once. */
  platform_initialize(): FwResult {
    this.platform_init = true;
    return OK;
  }

  /** The host cleared the caches of every CPU (wbinvd_on_all_cpus()). */
  wbinvd(): void {
    this.wbinvd_required = false;
  }

  private asid_in_range(asid: number, es: boolean): boolean {
    const { min_sev_asid, max_sev_asid } = this.h.opts;
    if (!Number.isInteger(asid) || asid < 1) return false;
    return es ? asid < min_sev_asid : asid >= min_sev_asid && asid <= max_sev_asid;
  }

  /** The ASID checks of ACTIVATE / SNP_ACTIVATE, then the binding and the guest's new key in the memory controller. */
  private bind(ctx: SevGuestCtx | SnpGuestCtx, asid: number, es: boolean): FwResult {
    if (!this.asid_in_range(asid, es)) return fw_err(SEV_RET_INVALID_ASID);
    if (ctx.asid !== 0) return fw_err(SEV_RET_ACTIVE);
    if (this.asid_owner.has(asid)) return fw_err(SEV_RET_ASID_OWNED);
    if (this.dirty_asids.has(asid)) return fw_err(SEV_RET_DFFLUSH_REQUIRED);
    ctx.asid = asid;
    this.asid_owner.set(asid, ctx);
    // The guest's VEK goes to the memory controller slot of this ASID.
    this.h.kernel.phys.programKey(asid);
    return OK;
  }

  private unbind(ctx: SevGuestCtx | SnpGuestCtx): void {
    this.asid_owner.delete(ctx.asid);
    this.dirty_asids.add(ctx.asid);
    this.wbinvd_required = true;
    ctx.asid = 0;
  }

  /* ---- legacy SEV / SEV-ES ---- */

  /** SEV_CMD_LAUNCH_START: a new guest context (handle 0 asks for one) in LUPDATE with its policy. */
  launch_start(handle: number, policy: number, session: Uint8Array | null): FwResult & { handle?: number } {
    let out: number | undefined;
    const r = this.cmd(SEV_CMD_LAUNCH_START, () => {
      if (!this.platform_init) return fw_err(SEV_RET_INVALID_PLATFORM_STATE);
      if (handle !== 0 && !this.guests.has(handle)) return fw_err(SEV_RET_INVALID_GUEST);
      const tik = createHash('sha256').update('sev-tik').update(session ?? new Uint8Array(0)).digest();
      const ctx = new SevGuestCtx(this.next_handle++, policy >>> 0, tik);
      this.guests.set(ctx.handle, ctx);
      out = ctx.handle;
      return OK;
    });
    return out === undefined ? r : { ...r, handle: out };
  }

  /** SEV_CMD_ACTIVATE: bind an ASID to the guest (SEV ASIDs for SEV guests, the low ones for SEV-ES). */
  activate(handle: number, asid: number): FwResult {
    return this.cmd(SEV_CMD_ACTIVATE, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      return this.bind(ctx, asid, ctx.es);
    });
  }

  private launching(handle: number): SevGuestCtx | FwResult {
    const ctx = this.guests.get(handle);
    if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
    if (ctx.state !== SEV_GSTATE_LUPDATE) return fw_err(SEV_RET_INVALID_GUEST_STATE);
    if (ctx.asid === 0) return fw_err(SEV_RET_INACTIVE);
    return ctx;
  }

  /**
   * SEV_CMD_LAUNCH_UPDATE_DATA: measure `len` bytes of plaintext at system physical address
   * `paddr` (contiguous pages) and encrypt them in place with the guest's key. Address and length
   * must be 16-byte aligned (the cipher's block).
   */
  launch_update_data(handle: number, paddr: bigint, len: number): FwResult {
    return this.cmd(SEV_CMD_LAUNCH_UPDATE_DATA, () => {
      const ctx = this.launching(handle);
      if (!(ctx instanceof SevGuestCtx)) return ctx;
      if (len <= 0 || len % 16 !== 0) return fw_err(SEV_RET_INVALID_LEN);
      if (paddr % 16n !== 0n) return fw_err(SEV_RET_INVALID_ADDRESS);
      const pfn = Number(paddr / BigInt(PAGE_SIZE)) as Pfn;
      const off = Number(paddr % BigInt(PAGE_SIZE));
      const phys = this.h.kernel.phys;
      const plain = phys.readRange(pfn, off, len, 0);
      if (isMemPoison(plain)) return fw_err(SEV_RET_HWSEV_RET_PLATFORM);
      ctx.ld.update(plain);
      encrypt_range(this.h, pfn, off, plain, ctx.asid);
      return OK;
    });
  }

  /** SEV_CMD_LAUNCH_UPDATE_VMSA: measure and encrypt a vCPU save area (SEV-ES policy only). */
  launch_update_vmsa(handle: number, vmsa_pfn: number): FwResult {
    return this.cmd(SEV_CMD_LAUNCH_UPDATE_VMSA, () => {
      const ctx = this.launching(handle);
      if (!(ctx instanceof SevGuestCtx)) return ctx;
      if (!ctx.es) return fw_err(SEV_RET_POLICY_FAILURE);
      const phys = this.h.kernel.phys;
      const plain = phys.read(vmsa_pfn as Pfn, 0, PAGE_SIZE, 0);
      if (isMemPoison(plain)) return fw_err(SEV_RET_HWSEV_RET_PLATFORM);
      ctx.ld.update(plain);
      phys.encrypt(vmsa_pfn as Pfn, ctx.asid);
      return OK;
    });
  }

  /**
   * SEV_CMD_LAUNCH_MEASURE: the launch measurement blob (MEASURE || MNONCE), LUPDATE -> LSECRET.
   * A buffer shorter than the blob gets SEV_RET_INVALID_LEN and the length it needs.
   */
  launch_measure(handle: number, len: number): FwResult & { len: number; blob?: Uint8Array } {
    let need = len;
    let blob: Uint8Array | undefined;
    const r = this.cmd(SEV_CMD_LAUNCH_MEASURE, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      if (ctx.state !== SEV_GSTATE_LUPDATE) return fw_err(SEV_RET_INVALID_GUEST_STATE);
      if (len < SEV_MEASURE_BLOB_LEN) {
        need = SEV_MEASURE_BLOB_LEN;
        return fw_err(SEV_RET_INVALID_LEN);
      }
      ctx.ld_final = ctx.ld.digest();
      const mnonce = createHash('sha256').update('sev-mnonce').update(this.h.seed_tag).update(String(handle)).update(ctx.ld_final).digest().subarray(0, 16);
      const policy = Buffer.alloc(4);
      policy.writeUInt32LE(ctx.policy);
      const measure = createHmac('sha256', ctx.tik)
        .update(Uint8Array.of(0x04, SEV_API_MAJOR, SEV_API_MINOR, SEV_BUILD))
        .update(policy).update(ctx.ld_final).update(mnonce).digest();
      blob = Uint8Array.from([...measure, ...mnonce]);
      need = SEV_MEASURE_BLOB_LEN;
      ctx.state = SEV_GSTATE_LSECRET;
      return OK;
    });
    return { ...r, len: need, ...(blob === undefined ? {} : { blob }) };
  }

  /** SEV_CMD_LAUNCH_FINISH: LSECRET -> RUNNING. */
  launch_finish(handle: number): FwResult {
    return this.cmd(SEV_CMD_LAUNCH_FINISH, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      if (ctx.state !== SEV_GSTATE_LSECRET) return fw_err(SEV_RET_INVALID_GUEST_STATE);
      ctx.state = SEV_GSTATE_RUNNING;
      return OK;
    });
  }

  /** SEV_CMD_GUEST_STATUS: the guest's policy, state and handle. */
  guest_status(handle: number): FwResult & { policy?: number; state?: number } {
    let out: { policy: number; state: number } | undefined;
    const r = this.cmd(SEV_CMD_GUEST_STATUS, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      out = { policy: ctx.policy, state: ctx.state };
      return OK;
    });
    return { ...r, ...out };
  }

  /** SEV_CMD_DEACTIVATE: unbind the guest's ASID; it needs WBINVD and DF_FLUSH before reuse. */
  deactivate(handle: number): FwResult {
    return this.cmd(SEV_CMD_DEACTIVATE, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      if (ctx.asid === 0) return fw_err(SEV_RET_INACTIVE);
      this.unbind(ctx);
      return OK;
    });
  }

  /** SEV_CMD_DECOMMISSION: delete an inactive guest context. */
  decommission(handle: number): FwResult {
    return this.cmd(SEV_CMD_DECOMMISSION, () => {
      const ctx = this.guests.get(handle);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      if (ctx.asid !== 0) return fw_err(SEV_RET_ACTIVE);
      this.guests.delete(handle);
      return OK;
    });
  }

  /** SEV_CMD_DF_FLUSH / SEV_CMD_SNP_DF_FLUSH: flush the data fabric write buffers; deactivated ASIDs become reusable. */
  df_flush(snp: boolean): FwResult {
    return this.cmd(snp ? SEV_CMD_SNP_DF_FLUSH : SEV_CMD_DF_FLUSH, () => {
      if (this.wbinvd_required) return fw_err(SEV_RET_WBINVD_REQUIRED);
      this.dirty_asids.clear();
      return OK;
    });
  }

  /* ---- SEV-SNP ---- */

  /**
   * SEV_CMD_SNP_GCTX_CREATE: a guest context in the page at `pfn`, which must be a Firmware page
   * (assigned, immutable, ASID 0: snp_alloc_firmware_page()).
   */
  snp_gctx_create(pfn: number): FwResult {
    return this.cmd(SEV_CMD_SNP_GCTX_CREATE, () => {
      if (!this.platform_init) return fw_err(SEV_RET_INVALID_PLATFORM_STATE);
      if (!this.h.rmp.covers(pfn)) return fw_err(SEV_RET_INVALID_ADDRESS);
      const e = this.h.rmp.authoritative(pfn).e;
      if (!e.assigned || !e.immutable || e.asid !== 0 || this.snp_guests.has(pfn)) return fw_err(SEV_RET_INVALID_PAGE_STATE);
      this.snp_guests.set(pfn, new SnpGuestCtx(pfn));
      return OK;
    });
  }

  private snp_ctx(gctx_pfn: number, state: number): SnpGuestCtx | FwResult {
    const ctx = this.snp_guests.get(gctx_pfn);
    if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
    if (ctx.state !== state) return fw_err(SEV_RET_INVALID_GUEST_STATE);
    return ctx;
  }

  /**
   * SEV_CMD_SNP_LAUNCH_START: INIT -> LAUNCH with the guest policy; a policy asking for a newer
   * ABI than the firmware's is SEV_RET_POLICY_FAILURE.
   */
  snp_launch_start(gctx_pfn: number, policy: bigint, gosvw: Uint8Array): FwResult {
    return this.cmd(SEV_CMD_SNP_LAUNCH_START, () => {
      const ctx = this.snp_ctx(gctx_pfn, SNP_GSTATE_INIT);
      if (!(ctx instanceof SnpGuestCtx)) return ctx;
      const major = Number((policy >> 8n) & 0xffn);
      const minor = Number(policy & 0xffn);
      if (major > SEV_API_MAJOR || (major === SEV_API_MAJOR && minor > SEV_API_MINOR)) return fw_err(SEV_RET_POLICY_FAILURE);
      ctx.policy = policy;
      ctx.gosvw = gosvw.slice();
      ctx.state = SNP_GSTATE_LAUNCH;
      return OK;
    });
  }

  /** SEV_CMD_SNP_ACTIVATE: bind an SEV-ES/SNP ASID (1 .. min_sev_asid - 1) to the guest. */
  snp_activate(gctx_pfn: number, asid: number): FwResult {
    return this.cmd(SEV_CMD_SNP_ACTIVATE, () => {
      const ctx = this.snp_guests.get(gctx_pfn);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      return this.bind(ctx, asid, true);
    });
  }

  /**
   * SEV_CMD_SNP_LAUNCH_UPDATE of the 4 KiB page at `pfn` with `page_type`: the page must be
   * Pre-Guest for this guest (assigned to its ASID, immutable, not validated: rmp_make_private(...,
   * true) in sev_gmem_post_populate()); its contents are set per type and encrypted in place,
   * the launch digest extended, and the page becomes Guest-Valid (validated, mutable). A CPUID
   * page whose entries the firmware rejects is written back with the values it accepts,
   * unencrypted, and SEV_RET_INVALID_PARAM is returned (KVM copies it back to user space).
   */
  snp_launch_update(gctx_pfn: number, pfn: number, page_size: number, page_type: number): FwResult {
    return this.cmd(SEV_CMD_SNP_LAUNCH_UPDATE, () => {
      const ctx = this.snp_ctx(gctx_pfn, SNP_GSTATE_LAUNCH);
      if (!(ctx instanceof SnpGuestCtx)) return ctx;
      if (ctx.asid === 0) return fw_err(SEV_RET_INACTIVE);
      if (page_size !== 0) return fw_err(SEV_RET_INVALID_PAGE_SIZE);
      if (![KVM_SEV_SNP_PAGE_TYPE_NORMAL, SNP_PAGE_TYPE_VMSA, KVM_SEV_SNP_PAGE_TYPE_ZERO, KVM_SEV_SNP_PAGE_TYPE_UNMEASURED,
        KVM_SEV_SNP_PAGE_TYPE_SECRETS, KVM_SEV_SNP_PAGE_TYPE_CPUID].includes(page_type)) return fw_err(SEV_RET_INVALID_PARAM);
      const rmp = this.h.rmp;
      if (!rmp.covers(pfn)) return fw_err(SEV_RET_INVALID_ADDRESS);
      const a = rmp.authoritative(pfn);
      if (a.level === PG_LEVEL_2M) return fw_err(SEV_RET_INVALID_PAGE_SIZE);
      if (!a.e.assigned || !a.e.immutable || a.e.validated) return fw_err(SEV_RET_INVALID_PAGE_STATE);
      if (a.e.asid !== ctx.asid) return fw_err(SEV_RET_INVALID_PAGE_OWNER);
      const phys = this.h.kernel.phys;
      const page = phys.read(pfn as Pfn, 0, PAGE_SIZE, 0);
      if (isMemPoison(page)) return fw_err(SEV_RET_HWSEV_RET_PLATFORM);
      if (page_type === KVM_SEV_SNP_PAGE_TYPE_CPUID) {
        const fixed = snp_cpuid_validate(page, this.h.opts.c_bit);
        if (fixed !== null) {
          phys.write(pfn as Pfn, 0, fixed, 0);
          return fw_err(SEV_RET_INVALID_PARAM);
        }
      }
      const measured = page_type === KVM_SEV_SNP_PAGE_TYPE_NORMAL || page_type === SNP_PAGE_TYPE_VMSA;
      ctx.ld = snp_page_info_digest(ctx.ld, measured ? createHash('sha384').update(page).digest() : Buffer.alloc(48), page_type, rmp.gpa_of(pfn));
      if (page_type === KVM_SEV_SNP_PAGE_TYPE_ZERO) phys.clear(pfn as Pfn, ctx.asid);
      else if (page_type === KVM_SEV_SNP_PAGE_TYPE_SECRETS) phys.write(pfn as Pfn, 0, snp_secrets_page(this.h.seed_tag, gctx_pfn), ctx.asid);
      else phys.encrypt(pfn as Pfn, ctx.asid);
      rmp.firmware_validate(pfn, page_type === SNP_PAGE_TYPE_VMSA);
      return OK;
    });
  }

  /**
   * SEV_CMD_SNP_LAUNCH_FINISH: LAUNCH -> RUNNING. With an ID block its launch digest and policy
   * must be the guest's (SEV_RET_BAD_MEASUREMENT, SEV_RET_POLICY_FAILURE); the ID block's
   * signature (ID_AUTH) is not verified here.
   */
  snp_launch_finish(gctx_pfn: number, id_block: SnpIdBlock | null, host_data: Uint8Array): FwResult {
    return this.cmd(SEV_CMD_SNP_LAUNCH_FINISH, () => {
      const ctx = this.snp_ctx(gctx_pfn, SNP_GSTATE_LAUNCH);
      if (!(ctx instanceof SnpGuestCtx)) return ctx;
      if (id_block !== null) {
        if (!Buffer.from(id_block.ld).equals(ctx.ld)) return fw_err(SEV_RET_BAD_MEASUREMENT);
        if (id_block.policy !== ctx.policy) return fw_err(SEV_RET_POLICY_FAILURE);
      }
      ctx.host_data = host_data.slice();
      ctx.state = SNP_GSTATE_RUNNING;
      return OK;
    });
  }

  /**
   * SEV_CMD_SNP_PAGE_RECLAIM: a firmware-owned (immutable) page that no live guest context uses
   * becomes reclaimable (assigned, mutable), which RMPUPDATE can then return to the hypervisor.
   */
  snp_page_reclaim(pfn: number): FwResult {
    return this.cmd(SEV_CMD_SNP_PAGE_RECLAIM, () => {
      if (!this.h.rmp.covers(pfn)) return fw_err(SEV_RET_INVALID_ADDRESS);
      const e = this.h.rmp.authoritative(pfn).e;
      if (!e.assigned || !e.immutable || this.snp_guests.has(pfn)) return fw_err(SEV_RET_INVALID_PAGE_STATE);
      this.h.rmp.firmware_reclaim(pfn);
      return OK;
    });
  }

  /** SEV_CMD_SNP_DECOMMISSION: unbind the ASID and delete the context; its page stays a Firmware page. */
  snp_decommission(gctx_pfn: number): FwResult {
    return this.cmd(SEV_CMD_SNP_DECOMMISSION, () => {
      const ctx = this.snp_guests.get(gctx_pfn);
      if (ctx === undefined) return fw_err(SEV_RET_INVALID_GUEST);
      if (ctx.asid !== 0) this.unbind(ctx);
      this.snp_guests.delete(gctx_pfn);
      return OK;
    });
  }
}

/** One SNP launch-digest step: SHA-384 of the PAGE_INFO structure (see the file comment). */
export function snp_page_info_digest(ld: Uint8Array, contents: Uint8Array, page_type: number, gpa: bigint): Buffer {
  const info = Buffer.alloc(0x70);
  info.set(ld, 0);
  info.set(contents, 48);
  info.writeUInt16LE(0x70, 96);
  info.writeUInt8(page_type, 98);
  info.writeBigUInt64LE(BigInt.asUintN(64, gpa), 104);
  return createHash('sha384').update(info).digest();
}

/** Encrypt `plain` (read through the host key at `off` of `pfn` onwards) in place under `key`. */
function encrypt_range(h: SevHost, pfn: number, off: number, plain: Uint8Array, key: number): void {
  const phys = h.kernel.phys;
  let done = 0;
  let p = pfn;
  let o = off;
  while (done < plain.length) {
    const n = Math.min(PAGE_SIZE - o, plain.length - done);
    if (n === PAGE_SIZE) phys.encrypt(p as Pfn, key);
    else phys.write(p as Pfn, o, plain.subarray(done, done + n), key);
    done += n;
    p++;
    o = 0;
  }
}

/**
 * The firmware's CPUID check (the part cocosim models): at most SNP_CPUID_COUNT_MAX entries, and
 * leaf 0x8000001F must report the host's C-bit position in EBX[5:0]. Returns the corrected page,
 * or null when the page is accepted.
 */
function snp_cpuid_validate(page: Uint8Array, c_bit: number): Uint8Array | null {
  const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const count = v.getUint32(0, true);
  const fixed = page.slice();
  const fv = new DataView(fixed.buffer);
  let bad = false;
  if (count > SNP_CPUID_COUNT_MAX) {
    fv.setUint32(0, SNP_CPUID_COUNT_MAX, true);
    bad = true;
  }
  for (let i = 0; i < Math.min(count, SNP_CPUID_COUNT_MAX); i++) {
    const at = SNP_CPUID_HDR_SIZE + i * SNP_CPUID_ENTRY_SIZE;
    if (v.getUint32(at, true) !== 0x8000001f) continue;
    const ebx = v.getUint32(at + 28, true);
    if ((ebx & 0x3f) !== c_bit) {
      fv.setUint32(at + 28, (ebx & ~0x3f) | c_bit, true);
      bad = true;
    }
  }
  return bad ? fixed : null;
}

/** The secrets page the firmware writes for a guest: VMPCKs and the like, derived per guest context. */
function snp_secrets_page(seed_tag: string, gctx_pfn: number): Uint8Array {
  const out = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i += 32) out.set(createHash('sha256').update('snp-secrets').update(seed_tag).update(`${gctx_pfn}:${i}`).digest(), i);
  return out;
}
