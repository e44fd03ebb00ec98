/**
 * The Intel MKTME (TME-MK) hardware of one host and the kernel's use of it, from
 * shared/research/vendor-models.md §4 ([MKTME-*] sources: the 2018-2019 "x86: Enable MKTME" RFCs,
 * never merged) and the PCONFIG interface of arch/x86/include/asm/intel_pconfig.h.
 *
 * What the hardware is:
 *   - KeyIDs live in the top `keyid_bits` bits of the physical address (MAXPHYADDR): the removed
 *     detect_tme() lowered x86_phys_bits by TME_ACTIVATE_KEYID_BITS. Every CPU access (a PTE's or
 *     EPT entry's address) and every device DMA address carries one; KeyID 0 is the TME key.
 *   - Keys are programmed per KeyID into every memory controller by PCONFIG(MKTME_KEY_PROGRAM):
 *     SET_KEY_DIRECT, SET_KEY_RANDOM, CLEAR_KEY (back to the TME key's behaviour: the KeyID's old
 *     data no longer decrypts) and NO_ENCRYPT (the KeyID passes plaintext). Status codes per the
 *     header. Hardware does not know which pages use a KeyID: reprogramming a KeyID in use is
 *     legal and leaves its pages unreadable ("Freed Data Leak" mitigation, §4.2).
 *   - AES-XTS with the physical address as tweak, no integrity: an access with a KeyID other
 *     than the page's reads what the ciphertext decrypts to under that key (garbage, no fault, no
 *     poison); a write through another KeyID lands and the owner later reads garbage.
 *   - No cache coherency across KeyIDs ("CPU does not enforce coherency between mappings of the
 *     same physical page with different KeyIDs", [MKTME-prep]): dirty lines cached under the old
 *     KeyID that are not flushed before a page changes KeyID are written back later, over the new
 *     KeyID's data, which then reads as garbage. The kernel therefore clflushes on allocation
 *     (KeyID-0 lines) and on free (KeyID-k lines).
 *
 * PhysMem (core/src/phys_mem.ts) does the cryptography: a KeyID k with a key is PhysMem key k
 * (programKey() gives it a new generation on every PCONFIG that sets or clears it); KeyID 0 and a
 * NO_ENCRYPT KeyID are PhysMem key 0 (plaintext).
 *
 * What the kernel side is (the RFC, modelled as functions of this class): a refcount per KeyID
 * (the "mktme" key type refuses to update or revoke a key in use: -EBUSY), page_ext->keyid per
 * page, prep_encrypted_page() (flush KeyID-0 lines, set the KeyID, zero the page through it) and
 * free_encrypted_page() (flush KeyID-k lines, KeyID back to 0).
 */
import { BUG, Errno, isMemPoison, type MemPoison, type Pfn, type PhysMem, type CostModel } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import {
  MKTME_AES_XTS_128, MKTME_DEVICE_BUSY, MKTME_ENTROPY_ERROR, MKTME_INVALID_ENC_ALG, MKTME_INVALID_KEYID, MKTME_INVALID_PROG_CMD,
  MKTME_KEYID_CLEAR_KEY, MKTME_KEYID_NO_ENCRYPT, MKTME_KEYID_SET_KEY_DIRECT, MKTME_KEYID_SET_KEY_RANDOM, MKTME_KEY_PROGRAM,
  MKTME_PROG_SUCCESS, mktme_keyid_ctrl_command, mktme_keyid_ctrl_enc_alg,
  type MktmeKeyProgram, type PconfigResult,
} from './pconfig.js';

const PAGE_SIZE = 4096;

export interface MktmePlatformOptions {
  /** TME_ACTIVATE_KEYID_BITS: first parts had 6 (63 usable KeyIDs); at most 15 in the MSR field. */
  readonly keyid_bits?: number;
  /** MAXPHYADDR before the KeyID bits are taken from it (CPUID 0x80000008). Default 46. */
  readonly phys_bits?: number;
  /** TME_ACTIVATE_CRYPTO_ALGS: the enabled algorithms as ENC_ALG bits. Default AES-XTS-128. */
  readonly enc_algs?: number;
}

/** What a KeyID currently does in the memory controllers. */
export type MktmeKeyState =
  /** Never programmed, or CLEAR_KEY: the KeyID encrypts with a key nobody knows any more. */
  | 'cleared'
  /** SET_KEY_DIRECT / SET_KEY_RANDOM: encrypting with its own key. */
  | 'encrypt'
  /** NO_ENCRYPT: accesses through the KeyID are plaintext. */
  | 'no_encrypt';

/** Who accesses memory (vendor-models.md's actors). */
export type MktmeActor = 'hostUser' | 'hostKernel' | 'dma' | 'guest';

/** What an access does on MKTME: it always proceeds (no integrity); what the actor sees differs. */
export interface MktmeAccessOutcome {
  readonly kind: 'ok';
  /**
   * 'plaintext': the access's KeyID is the page's (or both are plaintext domains); 'ciphertext':
   * it is not, so a read returns the ciphertext decrypted with the wrong key (garbage) and a
   * write leaves garbage for the page's owner.
   */
  readonly data: 'plaintext' | 'ciphertext';
}

interface KeySlot {
  state: MktmeKeyState;
  /** Kernel references (mktme_keyid_get/put): pages and VMAs using the KeyID. */
  refcount: number;
}

/** A dirty copy of a page cached under `keyid` (the page's plaintext as that KeyID sees it). */
interface DirtyLines {
  readonly keyid: number;
  readonly data: Uint8Array;
}

export class MktmePlatform {
  readonly keyid_bits: number;
  readonly phys_bits: number;
  /** The bit position of the lowest KeyID bit in a physical address. */
  readonly keyid_shift: number;
  /** The highest KeyID (2^keyid_bits - 1); KeyID 0 is TME's and cannot be programmed. */
  readonly max_keyid: number;
  readonly enc_algs: number;
  /** Test knob: the next PCONFIG finds the memory controllers busy (MKTME_DEVICE_BUSY). */
  device_busy = false;
  /** Test knob: the next SET_KEY_RANDOM finds the entropy source failing (MKTME_ENTROPY_ERROR). */
  entropy_error = false;

  private readonly keys = new Map<number, KeySlot>();
  /** page_ext->keyid by pfn; absent: 0. */
  private readonly page_keyids = new Map<number, number>();
  /** Dirty lines still in the caches, by pfn: the KeyID they were written through. */
  private readonly dirty = new Map<number, DirtyLines>();

  constructor(readonly kernel: Kernel, opts: MktmePlatformOptions = {}) {
    this.keyid_bits = opts.keyid_bits ?? 6;
    this.phys_bits = opts.phys_bits ?? 46;
    if (!Number.isInteger(this.keyid_bits) || this.keyid_bits < 1 || this.keyid_bits > 15) BUG(`mktme: keyid_bits ${this.keyid_bits}`);
    this.keyid_shift = this.phys_bits - this.keyid_bits;
    this.max_keyid = (1 << this.keyid_bits) - 1;
    this.enc_algs = opts.enc_algs ?? MKTME_AES_XTS_128;
  }

  /**
   * The KeyID slots, the per-page KeyIDs and the dirty lines in the caches, read-only: for the
   * state digest and the DEBUG_VM rules (mktme_debug.ts).
   */
  debug_tables(): {
    readonly keys: ReadonlyMap<number, { readonly state: MktmeKeyState; readonly refcount: number }>;
    readonly page_keyids: ReadonlyMap<number, number>;
    readonly dirty: ReadonlyMap<number, { readonly keyid: number; readonly data: Uint8Array }>;
  } {
    return { keys: this.keys, page_keyids: this.page_keyids, dirty: this.dirty };
  }

  private get phys(): PhysMem {
    return this.kernel.phys;
  }

  private get cost(): CostModel {
    return this.kernel.cost;
  }

  // ---- PCONFIG ---------------------------------------------------------------------------

  /**
   * PCONFIG with RAX = `leaf`, RBX = `prog` (SDM): #GP(0) for an unsupported leaf or a misaligned
   * structure, otherwise the status in RAX. Programs every memory controller; charged as
   * mktme_pconfig.
   */
  pconfig(leaf: number, prog: MktmeKeyProgram): PconfigResult {
    if (leaf !== MKTME_KEY_PROGRAM) return { kind: 'exception', name: '#GP(0)', reason: `PCONFIG leaf ${leaf} not supported` };
    if (prog.address !== undefined && (prog.address & 0xffn) !== 0n) {
      return { kind: 'exception', name: '#GP(0)', reason: 'mktme_key_program not 256-byte aligned' };
    }
    this.cost.charge(mktme_keyid_ctrl_command(prog.keyid_ctrl) === MKTME_KEYID_SET_KEY_RANDOM ? 'mktme_pconfig_random' : 'mktme_pconfig');
    const rax = this.key_program(prog);
    return { kind: 'ret', rax };
  }

  private key_program(prog: MktmeKeyProgram): number {
    if (this.device_busy) {
      // Another PCONFIG holds the memory controllers' key tables: the caller retries.
      this.device_busy = false;
      return MKTME_DEVICE_BUSY;
    }
    const cmd = mktme_keyid_ctrl_command(prog.keyid_ctrl);
    if (cmd > MKTME_KEYID_NO_ENCRYPT || (prog.keyid_ctrl & ~0xffffff) !== 0) return MKTME_INVALID_PROG_CMD;
    // KeyID 0 is the TME key (IA32_TME_ACTIVATE), not PCONFIG's; above max_keyid is not a KeyID.
    if (!Number.isInteger(prog.keyid) || prog.keyid < 1 || prog.keyid > this.max_keyid) return MKTME_INVALID_KEYID;
    if (cmd === MKTME_KEYID_SET_KEY_DIRECT || cmd === MKTME_KEYID_SET_KEY_RANDOM) {
      const alg = mktme_keyid_ctrl_enc_alg(prog.keyid_ctrl);
      // Exactly one algorithm, and one that IA32_TME_ACTIVATE enabled.
      if (alg === 0 || (alg & (alg - 1)) !== 0 || (alg & this.enc_algs) === 0) return MKTME_INVALID_ENC_ALG;
      if (cmd === MKTME_KEYID_SET_KEY_RANDOM && this.entropy_error) {
        this.entropy_error = false;
        return MKTME_ENTROPY_ERROR;
      }
    }
    const slot = this.slot(prog.keyid);
    switch (cmd) {
      case MKTME_KEYID_SET_KEY_DIRECT:
      case MKTME_KEYID_SET_KEY_RANDOM:
        slot.state = 'encrypt';
        this.phys.programKey(prog.keyid);
        break;
      case MKTME_KEYID_CLEAR_KEY:
        slot.state = 'cleared';
        this.phys.programKey(prog.keyid);
        break;
      case MKTME_KEYID_NO_ENCRYPT:
        slot.state = 'no_encrypt';
        break;
    }
    return MKTME_PROG_SUCCESS;
  }

  private slot(keyid: number): KeySlot {
    let s = this.keys.get(keyid);
    if (s === undefined) this.keys.set(keyid, (s = { state: 'cleared', refcount: 0 }));
    return s;
  }

  key_state(keyid: number): MktmeKeyState | 'tme' {
    if (keyid === 0) return 'tme';
    return this.keys.get(keyid)?.state ?? 'cleared';
  }

  /** The PhysMem key an access through `keyid` uses: 0 (plaintext) for TME and NO_ENCRYPT. */
  phys_key(keyid: number): number {
    const st = this.key_state(keyid);
    return st === 'tme' || st === 'no_encrypt' ? 0 : keyid;
  }

  // ---- physical addresses with KeyID bits -----------------------------------------------

  /** The physical address of (pfn, offset) through `keyid`: the KeyID in bits [phys_bits-1 : keyid_shift]. */
  mk_pa(pfn: number, keyid: number, offset = 0): bigint {
    if (keyid < 0 || keyid > this.max_keyid) BUG(`mktme: KeyID ${keyid} out of range`);
    const pa = (BigInt(pfn) << 12n) | BigInt(offset);
    if (pa >> BigInt(this.keyid_shift) !== 0n) BUG(`mktme: pfn ${pfn} beyond the address bits left to memory`);
    return pa | (BigInt(keyid) << BigInt(this.keyid_shift));
  }

  /** Splits a physical address into pfn, offset and KeyID. */
  decode_pa(pa: bigint): { pfn: Pfn; offset: number; keyid: number } {
    const shift = BigInt(this.keyid_shift);
    const keyid = Number((pa >> shift) & BigInt(this.max_keyid));
    const addr = pa & ((1n << shift) - 1n);
    return { pfn: Number(addr >> 12n) as Pfn, offset: Number(addr & 0xfffn), keyid };
  }

  // ---- accesses ---------------------------------------------------------------------------

  /**
   * What an access through `keyid` to `pfn` does: it always proceeds (AES-XTS has no integrity,
   * no KeyID ownership check exists: [MKTME-mitigations], vendor-models.md §4.3 "no fault, no
   * poison"); the data is the page's plaintext only through the page's own PhysMem key.
   */
  access_outcome(pfn: number, keyid: number): MktmeAccessOutcome {
    return { kind: 'ok', data: this.phys_key(keyid) === this.phys_key(this.page_keyid(pfn)) ? 'plaintext' : 'ciphertext' };
  }

  /** A CPU or DMA read of `len` bytes at physical address `pa` (KeyID in its top bits). */
  read(pa: bigint, len: number): Uint8Array | MemPoison {
    const { pfn, offset, keyid } = this.decode_pa(pa);
    return this.phys.read(pfn, offset, len, this.phys_key(keyid));
  }

  /**
   * A CPU store at `pa`: the line is cached dirty under the access's KeyID until it is flushed
   * (clflush / wbinvd / free_encrypted_page) or the page changes KeyID without a flush.
   */
  write(pa: bigint, data: Uint8Array): void {
    const { pfn, offset, keyid } = this.decode_pa(pa);
    const key = this.phys_key(keyid);
    this.phys.write(pfn, offset, data, key);
    const now = this.phys.read(pfn, 0, PAGE_SIZE, key);
    if (!isMemPoison(now)) this.dirty.set(pfn, { keyid, data: now });
  }

  /** A device DMA write at `pa`: DMA is coherent with memory and bypasses the CPU caches' KeyID tags. */
  dma_write(pa: bigint, data: Uint8Array): void {
    const { pfn, offset, keyid } = this.decode_pa(pa);
    this.phys.write(pfn, offset, data, this.phys_key(keyid));
  }

  /** CLFLUSH of every line of `pfn` through `keyid`: writes back the dirty lines it tagged. */
  clflush_page(pfn: number, keyid: number): void {
    this.cost.charge('clflush_4k');
    const d = this.dirty.get(pfn);
    if (d !== undefined && d.keyid === keyid) this.dirty.delete(pfn);
  }

  /**
   * Cache eviction (WBINVD, or lines falling out of the LLC): every dirty line goes back to DRAM
   * through the KeyID it was written with, over whatever the page holds now.
   */
  wbinvd(): void {
    this.cost.charge('wbinvd');
    for (const [pfn, d] of this.dirty) this.phys.write(pfn as Pfn, 0, d.data, this.phys_key(d.keyid));
    this.dirty.clear();
  }

  /** Whether dirty lines of `pfn` under `keyid` are still in the caches. */
  has_dirty_lines(pfn: number, keyid?: number): boolean {
    const d = this.dirty.get(pfn);
    return d !== undefined && (keyid === undefined || d.keyid === keyid);
  }

  // ---- the kernel's KeyID bookkeeping (RFC) ----------------------------------------------

  page_keyid(pfn: number): number {
    return this.page_keyids.get(pfn) ?? 0;
  }

  keyid_refcount(keyid: number): number {
    return this.keys.get(keyid)?.refcount ?? 0;
  }

  /**
   * The "mktme" key type's update/revoke (RFC [MKTME-encrypt]): reprogramming a KeyID with pages
   * is refused (-EBUSY); otherwise PCONFIG, whose status maps to -EIO as the RFC did (and
   * -EAGAIN for DEVICE_BUSY, which it retried).
   */
  mktme_key_program(prog: MktmeKeyProgram): number {
    if (prog.keyid >= 1 && prog.keyid <= this.max_keyid && this.keyid_refcount(prog.keyid) > 0) return -Errno.EBUSY;
    const r = this.pconfig(MKTME_KEY_PROGRAM, prog);
    if (r.kind === 'exception') return -Errno.EINVAL;
    if (r.rax === MKTME_PROG_SUCCESS) return 0;
    if (r.rax === MKTME_DEVICE_BUSY) return -Errno.EAGAIN;
    return -Errno.EIO;
  }

  /**
   * prep_encrypted_page() for an allocation with `keyid` (RFC [MKTME-prep]): flush the page's
   * KeyID-0 lines, set page_ext->keyid, take a KeyID reference and zero the page through the new
   * KeyID ("zero the page after the KeyID is set"). With `flush: false` the caller skips the
   * flush (the bug the RFC's ordering prevents): stale dirty lines of the old KeyID stay cached.
   */
  prep_encrypted_page(pfn: number, keyid: number, opts: { flush?: boolean } = {}): number {
    if (keyid < 1 || keyid > this.max_keyid) return -Errno.EINVAL;
    const old = this.page_keyid(pfn);
    if (old !== 0) return -Errno.EBUSY;
    if (opts.flush !== false) this.clflush_page(pfn, old);
    this.page_keyids.set(pfn, keyid);
    this.slot(keyid).refcount++;
    this.cost.charge('page_zero_4k');
    this.phys.clear(pfn as Pfn, this.phys_key(keyid));
    return 0;
  }

  /**
   * free_encrypted_page() (RFC [MKTME-prep]): flush the KeyID-k lines, KeyID back to 0, drop the
   * reference. The page's DRAM keeps the ciphertext (no zeroing on free): a later read through
   * KeyID 0 sees garbage, never the old plaintext.
   */
  free_encrypted_page(pfn: number, opts: { flush?: boolean } = {}): number {
    const keyid = this.page_keyid(pfn);
    if (keyid === 0) return -Errno.EINVAL;
    if (opts.flush !== false) this.clflush_page(pfn, keyid);
    this.page_keyids.delete(pfn);
    this.slot(keyid).refcount--;
    return 0;
  }

  /**
   * encrypt_mprotect() of pages (RFC [MKTME-zap]): the existing pages are zapped (their contents
   * are destroyed: "functionally just MADV_DONTNEED") and the next fault allocates a fresh page
   * for the new KeyID. Returns the contents outcome for each page and charges the TLB shootdown.
   */
  encrypt_mprotect_pages(pfns: readonly number[], newPfns: readonly number[], keyid: number): number {
    if (pfns.length !== newPfns.length) BUG('mktme: encrypt_mprotect_pages lengths');
    if (keyid !== 0 && this.key_state(keyid) !== 'encrypt' && this.key_state(keyid) !== 'no_encrypt') return -Errno.ENOKEY;
    this.cost.charge('tlb_shootdown_ipi');
    for (const pfn of pfns) {
      if (this.page_keyid(pfn) !== 0) this.free_encrypted_page(pfn);
      this.phys.free(pfn as Pfn);
    }
    for (const pfn of newPfns) {
      if (keyid === 0) {
        this.cost.charge('page_zero_4k');
        this.phys.clear(pfn as Pfn);
      } else {
        const r = this.prep_encrypted_page(pfn, keyid);
        if (r < 0) return r;
      }
    }
    return 0;
  }
}

const platforms = new WeakMap<Kernel, MktmePlatform>();

/** `kernel`'s MKTME hardware: the one mktmeRegistrar() made, or a default one on first use. */
export function mktme_platform_of(kernel: Kernel): MktmePlatform {
  let p = platforms.get(kernel);
  if (p === undefined) platforms.set(kernel, (p = new MktmePlatform(kernel)));
  return p;
}

/** Install `kernel`'s MKTME hardware with `opts` (mktmeRegistrar()). */
export function mktme_platform_init(kernel: Kernel, opts: MktmePlatformOptions = {}): MktmePlatform {
  if (platforms.has(kernel)) BUG('mktme: the host already has its MKTME platform');
  const p = new MktmePlatform(kernel, opts);
  platforms.set(kernel, p);
  return p;
}
