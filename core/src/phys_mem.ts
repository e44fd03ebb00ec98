/**
 * The bytes of host physical memory: what a load from (pfn, offset) returns, through which key.
 *
 * No single kernel file holds this: it is the hardware under clear_page() and copy_page()
 * (arch/x86/lib/clear_page_64.S, copy_page_64.S), memory encryption (arch/x86/mm/mem_encrypt*.c,
 * arch/x86/virt/vmx/tdx/tdx.c KeyIDs) and machine-check poison (mm/memory-failure.c). The rule:
 * reads return the bytes a real system would, and memory use grows with the bytes written, never
 * with memory size. Only pages that differ from "never written" are tracked; each holds a
 * compact descriptor, and real bytes exist only where something wrote non-uniform data:
 *
 *   (absent)     never written: what a fresh page from the allocator holds. Real DRAM returns
 *                stale data; cocosim returns a pattern derived from the host seed and the pfn,
 *                so it is deterministic and neither zeros nor anything the run wrote, and
 *                state() reports 'never_written' so a test can tell it from a zeroed page.
 *   zero         cleared: clear_page(), __GFP_ZERO, shmem faulting in a hole.
 *   fill b       every byte is b (fill(pfn, 0) is zero).
 *   bytes        a Uint8Array(PAGE_SIZE) of real contents; the only descriptor that costs memory.
 *   ciphertext   { key, tweak, plain }: DRAM holds AES-XTS(key, tweak = physical address of
 *                `tweak`, plain), where plain is one of the descriptors above. The ciphertext
 *                itself is never stored: it is computed when someone reads through another key.
 *
 * Keys. A key is an opaque key id: a TDX HKID, an SEV ASID, an MKTME KeyID, a CCA realm. Key 0 is
 * the plaintext domain: the host's own accesses (KeyID 0, C-bit clear), stored and read as is.
 * Every key id has a slot holding an AES-128-XTS key derived from the host seed, the key id and
 * a generation; programKey() starts a new generation, as TDH.MNG.KEY.CONFIG or a new SEV VEK do
 * when a key id is reused. An access through key k at pfn p sees:
 *   - the plaintext, when the page is ciphertext under k's current slot with tweak p, or plain
 *     and k is 0;
 *   - otherwise AES-XTS-decrypt(k, p, raw), raw being what DRAM holds: ciphertext read through
 *     the wrong key, through no key (a host read of a private page), after the slot was
 *     reprogrammed, or at another pfn than it was written at (copy_page moved it and the tweak
 *     no longer matches: why SNP and TDX cannot move private pages without firmware help).
 *     That is pseudo-random, deterministic for the seed, and neither the plaintext nor zeros.
 *   A page holds one key state. A write through a key other than the page's re-keys it: the rest
 *   of the page becomes what the old contents look like through the new key (garbage), then the
 *   written bytes land. Because XTS works on independent 16-byte blocks, this is exact: reading
 *   the untouched blocks through the old key still gives the old plaintext, as on hardware
 *   whose key is chosen per access. Integrity (TDX's TD-owner bit and MAC, SNP's RMP checks) is
 *   the vendor plugin's to model, on top of this.
 *
 * Poison. A page can have poisoned 64-byte lines (an MCE, a TDX integrity failure). Poison marks
 * the location, not the contents: reads and copies that touch a poisoned line report
 * `{ poisoned: true, pfn, line }` instead of data, so mm can raise SIGBUS or memory_failure().
 * Writes, clear(), fill() and free() store their contents and leave the line poisoned, as
 * ordinary stores do; unpoison() is the explicit clear (unpoison_memory(), the MOVDIR64B reset
 * of a TDX page).
 *
 * Storage. Faulting and punching a GiB of memory zeroes a quarter million pages, so the two
 * commonest states do not cost a Map entry: a byte per pfn, in 64 KiB chunks allocated the first
 * time a pfn of their 65536 is written, says never-written (0), zero (1) or "see the Map" (2),
 * and the Map holds only the other descriptors. Memory stays proportional to the pfns touched.
 *
 * Ranges. Every per-page operation stays within one page, and calling it with an offset or
 * length that leaves the page is a simulator bug (KernelBug); readRange() and writeRange() split
 * a range over contiguous pfns for the caller.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { BUG, BUG_ON } from './bug.js';
import { seedToU64, type PRandomSeed } from './prandom.js';
import { MAX_FRAME, PAGE_SIZE, type Pfn } from './types.js';

/** L1_CACHE_BYTES (arch/x86/include/asm/cache.h): the unit of poison. */
export const L1_CACHE_BYTES = 64;
const LINES_PER_PAGE = PAGE_SIZE / L1_CACHE_BYTES;

/** A read or copy touched a poisoned cache line instead of returning data. */
export interface MemPoison {
  readonly poisoned: true;
  readonly pfn: Pfn;
  /** The first poisoned line the access touched, 0..63 within the page. */
  readonly line: number;
}

export function isMemPoison(x: unknown): x is MemPoison {
  return typeof x === 'object' && x !== null && (x as { poisoned?: unknown }).poisoned === true;
}

/** What state() reports: the content descriptor, or 'poisoned' when any line is. */
export type PhysPageKind = 'never_written' | 'zero' | 'fill' | 'bytes' | 'ciphertext' | 'poisoned';

/** The full descriptor of a page, for tests and inspection. */
export interface PhysPageInfo {
  readonly kind: Exclude<PhysPageKind, 'poisoned'>;
  /** The key id the page is encrypted under; 0 for plaintext. */
  readonly key: number;
  /** Ciphertext: the pfn whose address was the tweak (not the page's own after a raw copy). */
  readonly tweakPfn?: Pfn;
  /** Ciphertext: false once programKey() gave the key id a new key after the page was written. */
  readonly keyCurrent?: boolean;
  /** The plaintext's descriptor: the page's own for plaintext pages. */
  readonly plain: 'never_written' | 'zero' | 'fill' | 'bytes';
  /** zero and fill: the byte value. */
  readonly byte?: number;
  readonly poisonedLines: readonly number[];
}

/*
 * Descriptors are immutable, except the array of a 'bytes' descriptor, which belongs to exactly
 * one page and is written in place. 'stale' is never-written content: the page's own (then it is
 * stored as an absent entry) or another pfn's, moved here by copy() or kept as the plaintext of
 * a page encrypted in place.
 */
type Plain =
  | { readonly kind: 'zero' }
  | { readonly kind: 'fill'; readonly byte: number }
  | { readonly kind: 'stale'; readonly origin: number }
  | { readonly kind: 'bytes'; readonly data: Uint8Array };

interface KeySlot {
  readonly id: number;
  readonly gen: number;
  /** AES-128-XTS key: two 16-byte halves. */
  readonly aes: Buffer;
}

interface Cipher {
  readonly kind: 'ciphertext';
  readonly key: KeySlot;
  readonly tweak: number;
  readonly plain: Plain;
}

type Page = Plain | Cipher;

const ZERO: Plain = Object.freeze({ kind: 'zero' });
const FILLS: readonly Plain[] = Array.from({ length: 256 }, (_, b) => (b === 0 ? ZERO : Object.freeze({ kind: 'fill', byte: b })));

/** murmur3's 32-bit finalizer: a bijective avalanche mix on u32. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function heldBytes(p: Page | undefined): number {
  if (p === undefined) return 0;
  const plain = p.kind === 'ciphertext' ? p.plain : p;
  return plain.kind === 'bytes' ? PAGE_SIZE : 0;
}

/** The fill byte when every byte of `data` is the same, else -1. */
function uniformByte(data: Uint8Array): number {
  const b = data[0];
  for (let i = 1; i < data.length; i++) if (data[i] !== b) return -1;
  return b;
}

function compactOf(page: Uint8Array): Plain {
  const b = uniformByte(page);
  return b >= 0 ? FILLS[b] : { kind: 'bytes', data: page.slice() };
}

/** A Plain another page can hold: the same object, except bytes are copied. */
function clonePlain(p: Plain): Plain {
  return p.kind === 'bytes' ? { kind: 'bytes', data: p.data.slice() } : p;
}

/** Per-pfn state codes of PhysMem's chunks (see "Storage" above). */
const ST_NEVER = 0;
const ST_ZERO = 1;
const ST_MAP = 2;
/** pfns per state chunk. */
const CHUNK_PFNS = 65536;

export class PhysMem {
  /** Descriptors of the pages whose state code is ST_MAP (neither never-written nor zero). */
  private readonly pages = new Map<number, Page>();
  /** State chunks by chunk number (pfn / CHUNK_PFNS); an absent chunk is all ST_NEVER. */
  private readonly chunks = new Map<number, Uint8Array>();
  /** The last chunk looked up, so that runs of nearby pfns skip the Map. */
  private lastChunkNo = -1;
  private lastChunk: Uint8Array | undefined = undefined;
  /** Pages whose state is not ST_NEVER. */
  private tracked = 0;
  /** Poisoned lines per pfn: bit i of lo is line i, bit i of hi is line 32 + i. */
  private readonly poisonMasks = new Map<number, { lo: number; hi: number }>();
  private readonly keys = new Map<number, KeySlot>();
  private readonly seed64: bigint;
  private readonly staleLo: number;
  private readonly staleHi: number;
  private stored = 0;

  /** `seed` is the host's: it decides never-written contents and the memory-encryption keys. */
  constructor(seed: PRandomSeed = 0) {
    this.seed64 = seedToU64(seed);
    this.staleLo = fmix32(Number(this.seed64 & 0xffffffffn) ^ 0x5741_4c45);
    this.staleHi = fmix32(Number(this.seed64 >> 32n) ^ 0x6f6c_6421);
  }

  /** Real bytes held for page contents: PAGE_SIZE per page in the 'bytes' state. */
  get bytesStored(): number {
    return this.stored;
  }

  /** Pages with a descriptor other than never-written. */
  get pagesTracked(): number {
    return this.tracked;
  }

  /**
   * Read `len` bytes at `offset` in `pfn` through `key` (0: plaintext access). Returns a new
   * array, or the poison status when the range touches a poisoned line.
   */
  read(pfn: Pfn, offset: number, len: number, key = 0): Uint8Array | MemPoison {
    this.checkRange(pfn, offset, len);
    this.checkKey(key);
    const poison = this.poisonIn(pfn, offset, len);
    if (poison) return poison;
    const out = new Uint8Array(len);
    this.viewInto(pfn, offset, len, key, out, 0);
    return out;
  }

  /**
   * read() into `out` from index `at` rather than into a new array (a user load copies straight
   * to its destination): 0, or the poison status, and then `out` is unchanged.
   */
  readInto(pfn: Pfn, offset: number, len: number, out: Uint8Array, at: number, key = 0): 0 | MemPoison {
    this.checkRange(pfn, offset, len);
    this.checkKey(key);
    if (!Number.isSafeInteger(at) || at < 0 || at + len > out.length) BUG(`PhysMem.readInto: ${len} bytes at ${at} leave the array`);
    const poison = this.poisonIn(pfn, offset, len);
    if (poison) return poison;
    this.viewInto(pfn, offset, len, key, out, at);
    return 0;
  }

  /**
   * Write `data` at `offset` in `pfn` through `key`. A full page of one byte value stays compact;
   * a write through a key other than the page's re-keys the page (see the file comment).
   */
  write(pfn: Pfn, offset: number, data: Uint8Array, key = 0): void {
    this.checkRange(pfn, offset, data.length);
    this.checkKey(key);
    if (data.length === 0) return;
    const page = this.getPage(pfn);
    const slot = this.slot(key);
    if (data.length === PAGE_SIZE) {
      this.setPage(pfn, page, this.wrap(pfn, page, slot, compactOf(data)));
      return;
    }
    const own = this.ownPlain(pfn, page, slot);
    let next: Plain;
    if (own === undefined) {
      const img = this.materialize(pfn, page, slot);
      img.set(data, offset);
      next = { kind: 'bytes', data: img };
    } else if (own.kind === 'bytes') {
      own.data.set(data, offset);
      next = own;
    } else if ((own.kind === 'zero' && uniformByte(data) === 0) || (own.kind === 'fill' && uniformByte(data) === own.byte)) {
      return;
    } else {
      const img = this.plainImage(own);
      img.set(data, offset);
      next = { kind: 'bytes', data: img };
    }
    this.setPage(pfn, page, this.wrap(pfn, page, slot, next));
  }

  /**
   * clear_page(): zero the page, through `key` when the zeroing is done with a private key (TDX
   * TDH.MEM.PAGE.AUG zeroes with the TD's HKID). Updates one Map entry.
   */
  clear(pfn: Pfn, key = 0): void {
    this.checkPfn(pfn);
    if (key === 0) {
      const c = this.chunkOf(pfn, true)!;
      const i = pfn % CHUNK_PFNS;
      const st = c[i];
      if (st === ST_ZERO) return;
      if (st === ST_NEVER) {
        this.tracked++;
      } else {
        if (heldBytes(this.pages.get(pfn)) !== 0) this.stored -= PAGE_SIZE;
        this.pages.delete(pfn);
      }
      c[i] = ST_ZERO;
      return;
    }
    this.checkKey(key);
    const page = this.getPage(pfn);
    this.setPage(pfn, page, this.wrap(pfn, page, this.slot(key), ZERO));
  }

  /** Set every byte of the page to `byte`, through `key`. */
  fill(pfn: Pfn, byte: number, key = 0): void {
    this.checkPfn(pfn);
    this.checkKey(key);
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) BUG(`PhysMem.fill: byte ${byte}`);
    const page = this.getPage(pfn);
    this.setPage(pfn, page, this.wrap(pfn, page, this.slot(key), FILLS[byte]));
  }

  /** Forget the contents: the page reads as never written again. Poison stays. */
  free(pfn: Pfn): void {
    this.checkPfn(pfn);
    this.setPage(pfn, this.getPage(pfn), undefined);
  }

  /**
   * copy_page(dst, src): read the whole source page through `srcKey`, write it to `dst` through
   * `dstKey`. With both keys 0 (the host copying through its direct map) the raw DRAM contents
   * move: ciphertext keeps its tweak, so it no longer decrypts at `dst`. srcKey 0 with a private
   * dstKey is a firmware copy-and-encrypt (TDX TDH.MEM.PAGE.ADD). Returns 0, or the poison
   * status when the source has a poisoned line; then nothing changed.
   */
  copy(dstPfn: Pfn, srcPfn: Pfn, srcKey = 0, dstKey = srcKey): 0 | MemPoison {
    this.checkPfn(dstPfn);
    this.checkPfn(srcPfn);
    this.checkKey(srcKey);
    this.checkKey(dstKey);
    const poison = this.poisonIn(srcPfn, 0, PAGE_SIZE);
    if (poison) return poison;
    const src = this.getPage(srcPfn);
    const dst = this.getPage(dstPfn);
    let next: Page | undefined;
    if (srcKey === 0 && dstKey === 0) {
      if (src === undefined) next = { kind: 'stale', origin: srcPfn };
      else if (src.kind === 'ciphertext') next = { ...src, plain: clonePlain(src.plain) };
      else next = clonePlain(src);
    } else {
      const srcSlot = this.slot(srcKey);
      const own = this.ownPlain(srcPfn, src, srcSlot);
      const flat: Plain = own !== undefined ? clonePlain(own) : { kind: 'bytes', data: this.materialize(srcPfn, src, srcSlot) };
      next = this.wrap(dstPfn, dst, this.slot(dstKey), flat);
    }
    this.setPage(dstPfn, dst, next);
    return 0;
  }

  /**
   * Encrypt the page in place under `key`, as firmware does (SNP LAUNCH_UPDATE, SEV
   * LAUNCH_UPDATE_DATA): what the host sees through key 0 becomes the plaintext under `key`,
   * with this pfn as the tweak. Returns 0, or the poison status (nothing changed).
   */
  encrypt(pfn: Pfn, key: number): 0 | MemPoison {
    this.checkPfn(pfn);
    this.checkKey(key);
    BUG_ON(key === 0, 'PhysMem.encrypt: key 0 is the plaintext domain');
    const poison = this.poisonIn(pfn, 0, PAGE_SIZE);
    if (poison) return poison;
    const page = this.getPage(pfn);
    const own = this.ownPlain(pfn, page, undefined);
    const plain: Plain = own ?? { kind: 'bytes', data: this.materialize(pfn, page, undefined) };
    this.setPage(pfn, page, { kind: 'ciphertext', key: this.slot(key)!, tweak: pfn, plain });
    return 0;
  }

  /**
   * Decrypt the page in place: what `key` sees becomes the plaintext the host sees (firmware
   * reclaiming a page with its contents, SEV DBG_DECRYPT in place). Returns 0, or the poison
   * status (nothing changed).
   */
  decrypt(pfn: Pfn, key: number): 0 | MemPoison {
    this.checkPfn(pfn);
    this.checkKey(key);
    BUG_ON(key === 0, 'PhysMem.decrypt: key 0 is the plaintext domain');
    const poison = this.poisonIn(pfn, 0, PAGE_SIZE);
    if (poison) return poison;
    const page = this.getPage(pfn);
    const slot = this.slot(key);
    const own = this.ownPlain(pfn, page, slot);
    this.setPage(pfn, page, own ?? { kind: 'bytes', data: this.materialize(pfn, page, slot) });
    return 0;
  }

  /**
   * Load a new key into key id `key` (TDH.MNG.KEY.CONFIG, a new SEV VEK for a reused ASID): pages
   * written under the old key read as garbage through `key` from now on.
   */
  programKey(key: number): void {
    this.checkKey(key);
    BUG_ON(key === 0, 'PhysMem.programKey: key 0 is the plaintext domain');
    const old = this.keys.get(key);
    this.keys.set(key, this.deriveKey(key, old === undefined ? 0 : old.gen + 1));
  }

  /** Poison one 64-byte line (0..63), or every line when `line` is omitted. */
  poison(pfn: Pfn, line?: number): void {
    this.checkPfn(pfn);
    if (line !== undefined && !(Number.isInteger(line) && line >= 0 && line < LINES_PER_PAGE)) BUG(`PhysMem.poison: line ${line}`);
    let m = this.poisonMasks.get(pfn);
    if (m === undefined) {
      m = { lo: 0, hi: 0 };
      this.poisonMasks.set(pfn, m);
    }
    if (line === undefined) {
      m.lo = 0xffffffff;
      m.hi = 0xffffffff;
    } else if (line < 32) {
      m.lo = (m.lo | (1 << line)) >>> 0;
    } else {
      m.hi = (m.hi | (1 << (line - 32))) >>> 0;
    }
  }

  /** Clear every poisoned line of the page; the contents are what was last stored. */
  unpoison(pfn: Pfn): void {
    this.checkPfn(pfn);
    this.poisonMasks.delete(pfn);
  }

  isPoisoned(pfn: Pfn): boolean {
    return this.poisonMasks.has(pfn);
  }

  /** The poisoned line indexes of the page, ascending. */
  poisonedLines(pfn: Pfn): number[] {
    const m = this.poisonMasks.get(pfn);
    const lines: number[] = [];
    if (m === undefined) return lines;
    for (let l = 0; l < LINES_PER_PAGE; l++) if (this.lineBit(m, l)) lines.push(l);
    return lines;
  }

  /** The descriptor kind; 'poisoned' wins over the contents when any line is poisoned. */
  state(pfn: Pfn): PhysPageKind {
    if (this.poisonMasks.has(pfn)) return 'poisoned';
    return this.inspect(pfn).kind;
  }

  /** The whole descriptor of the page. */
  inspect(pfn: Pfn): PhysPageInfo {
    this.checkPfn(pfn);
    const page = this.getPage(pfn);
    const poisonedLines = this.poisonedLines(pfn);
    if (page === undefined) return { kind: 'never_written', key: 0, plain: 'never_written', poisonedLines };
    const plain = page.kind === 'ciphertext' ? page.plain : page;
    const plainKind = plain.kind === 'stale' ? 'never_written' : plain.kind;
    const byte = plain.kind === 'zero' ? 0 : plain.kind === 'fill' ? plain.byte : undefined;
    if (page.kind !== 'ciphertext') return { kind: plainKind, key: 0, plain: plainKind, ...(byte === undefined ? {} : { byte }), poisonedLines };
    return {
      kind: 'ciphertext',
      key: page.key.id,
      tweakPfn: page.tweak as Pfn,
      keyCurrent: this.keys.get(page.key.id) === page.key,
      plain: plainKind,
      ...(byte === undefined ? {} : { byte }),
      poisonedLines,
    };
  }

  /**
   * A stable hash (sha256, hex) of what the page's owner observes: the key id (0 for plaintext),
   * the page read through that key id, and the poisoned lines. Equal for equal observable
   * state, whatever descriptor holds it.
   */
  digest(pfn: Pfn): string {
    this.checkPfn(pfn);
    const page = this.getPage(pfn);
    const key = page !== undefined && page.kind === 'ciphertext' ? page.key.id : 0;
    const img = new Uint8Array(PAGE_SIZE);
    this.viewInto(pfn, 0, PAGE_SIZE, key, img, 0);
    const m = this.poisonMasks.get(pfn);
    return createHash('sha256')
      .update(`key=${key};poison=${m ? m.hi : 0},${m ? m.lo : 0};`)
      .update(img)
      .digest('hex');
  }

  /**
   * Read `len` bytes starting `offset` bytes after the start of `pfn`, across as many contiguous
   * pfns as it spans. Returns the poison status of the first poisoned line met.
   */
  readRange(pfn: Pfn, offset: number, len: number, key = 0): Uint8Array | MemPoison {
    this.checkSpan(pfn, offset, len);
    this.checkKey(key);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const pos = offset + done;
      const p = (pfn + Math.floor(pos / PAGE_SIZE)) as Pfn;
      const off = pos % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const poison = this.poisonIn(p, off, n);
      if (poison) return poison;
      this.viewInto(p, off, n, key, out, done);
      done += n;
    }
    return out;
  }

  /** Write `data` starting `offset` bytes after the start of `pfn`, across contiguous pfns. */
  writeRange(pfn: Pfn, offset: number, data: Uint8Array, key = 0): void {
    this.checkSpan(pfn, offset, data.length);
    this.checkKey(key);
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const p = (pfn + Math.floor(pos / PAGE_SIZE)) as Pfn;
      const off = pos % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      this.write(p, off, data.subarray(done, done + n), key);
      done += n;
    }
  }

  private checkPfn(pfn: number): void {
    if (!Number.isSafeInteger(pfn) || pfn < 0 || pfn > MAX_FRAME) BUG(`PhysMem: bad pfn ${pfn}`);
  }

  private checkRange(pfn: number, offset: number, len: number): void {
    this.checkPfn(pfn);
    if (!Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 || offset + len > PAGE_SIZE) {
      BUG(`PhysMem: range ${offset}+${len} leaves pfn ${pfn}`);
    }
  }

  private checkSpan(pfn: number, offset: number, len: number): void {
    this.checkPfn(pfn);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0) BUG(`PhysMem: range ${offset}+${len}`);
    const last = len === 0 ? pfn : pfn + Math.floor((offset + len - 1) / PAGE_SIZE);
    if (last > MAX_FRAME) BUG(`PhysMem: range ${offset}+${len} from pfn ${pfn} leaves physical memory`);
  }

  private checkKey(key: number): void {
    if (!Number.isSafeInteger(key) || key < 0) BUG(`PhysMem: bad key id ${key}`);
  }

  private lineBit(m: { lo: number; hi: number }, line: number): boolean {
    return line < 32 ? (m.lo & (1 << line)) !== 0 : (m.hi & (1 << (line - 32))) !== 0;
  }

  private poisonIn(pfn: number, offset: number, len: number): MemPoison | undefined {
    if (len === 0) return undefined;
    const m = this.poisonMasks.get(pfn);
    if (m === undefined) return undefined;
    const last = Math.floor((offset + len - 1) / L1_CACHE_BYTES);
    for (let l = Math.floor(offset / L1_CACHE_BYTES); l <= last; l++) {
      if (this.lineBit(m, l)) return { poisoned: true, pfn: pfn as Pfn, line: l };
    }
    return undefined;
  }

  /** The current slot of a key id, created on first use; undefined for key 0. */
  private slot(key: number): KeySlot | undefined {
    if (key === 0) return undefined;
    let s = this.keys.get(key);
    if (s === undefined) {
      s = this.deriveKey(key, 0);
      this.keys.set(key, s);
    }
    return s;
  }

  private deriveKey(id: number, gen: number): KeySlot {
    const aes = createHash('sha256').update(`cocosim:phys_mem:key:${this.seed64}:${id}:${gen}`).digest();
    return { id, gen, aes };
  }

  /** The chunk holding pfn's state code; created when `create`, else undefined if absent. */
  private chunkOf(pfn: number, create: boolean): Uint8Array | undefined {
    const no = Math.floor(pfn / CHUNK_PFNS);
    if (no === this.lastChunkNo) return this.lastChunk;
    let c = this.chunks.get(no);
    if (c === undefined) {
      if (!create) return undefined;
      c = new Uint8Array(CHUNK_PFNS);
      this.chunks.set(no, c);
    }
    this.lastChunkNo = no;
    this.lastChunk = c;
    return c;
  }

  /** The page's descriptor; undefined when it was never written. */
  private getPage(pfn: number): Page | undefined {
    const c = this.chunkOf(pfn, false);
    if (c === undefined) return undefined;
    const st = c[pfn % CHUNK_PFNS];
    return st === ST_NEVER ? undefined : st === ST_ZERO ? ZERO : this.pages.get(pfn);
  }

  private setPage(pfn: number, old: Page | undefined, next: Page | undefined): void {
    this.stored += heldBytes(next) - heldBytes(old);
    const never = next === undefined || (next.kind === 'stale' && next.origin === pfn);
    const c = this.chunkOf(pfn, !never);
    if (c === undefined) return;
    const i = pfn % CHUNK_PFNS;
    const st = c[i];
    const nst = never ? ST_NEVER : next === ZERO ? ST_ZERO : ST_MAP;
    if (st === ST_MAP && nst !== ST_MAP) this.pages.delete(pfn);
    if (nst === ST_MAP) this.pages.set(pfn, next!);
    if (st === ST_NEVER) {
      if (nst !== ST_NEVER) this.tracked++;
    } else if (nst === ST_NEVER) this.tracked--;
    c[i] = nst;
  }

  /** `plain` stored at `pfn` through `slot`, reusing the current descriptor when nothing changes. */
  private wrap(pfn: number, page: Page | undefined, slot: KeySlot | undefined, plain: Plain): Page {
    if (slot === undefined) return plain;
    if (page !== undefined && page.kind === 'ciphertext' && page.key === slot && page.tweak === pfn && page.plain === plain) return page;
    return { kind: 'ciphertext', key: slot, tweak: pfn, plain };
  }

  /**
   * The plaintext an access through `slot` (undefined: key 0) sees without any cryptography,
   * or undefined when it sees garbage and the page must be materialized.
   */
  private ownPlain(pfn: number, page: Page | undefined, slot: KeySlot | undefined): Plain | undefined {
    if (page === undefined) return slot === undefined ? { kind: 'stale', origin: pfn } : undefined;
    if (page.kind !== 'ciphertext') return slot === undefined ? page : undefined;
    return page.key === slot && page.tweak === pfn ? page.plain : undefined;
  }

  /** A fresh, mutable PAGE_SIZE image of a plaintext descriptor. */
  private plainImage(p: Plain): Uint8Array {
    const img = new Uint8Array(PAGE_SIZE);
    this.plainInto(p, 0, PAGE_SIZE, img, 0);
    return img;
  }

  private plainInto(p: Plain, offset: number, len: number, out: Uint8Array, at: number): void {
    switch (p.kind) {
      case 'zero':
        out.fill(0, at, at + len);
        return;
      case 'fill':
        out.fill(p.byte, at, at + len);
        return;
      case 'bytes':
        out.set(p.data.subarray(offset, offset + len), at);
        return;
      case 'stale':
        this.staleInto(p.origin, offset, len, out, at);
        return;
    }
  }

  /**
   * Never-written contents of `origin`: u32 word w of the page is fmix32 of a per-page value plus
   * w times an odd constant, little-endian; random access, so a partial read costs its length.
   */
  private staleInto(origin: number, offset: number, len: number, out: Uint8Array, at: number): void {
    const lo = origin % 2 ** 32;
    const hi = Math.floor(origin / 2 ** 32);
    const base = fmix32(this.staleLo ^ fmix32(lo ^ fmix32(hi ^ this.staleHi)));
    for (let i = 0; i < len; i++) {
      const pos = offset + i;
      const word = fmix32((base + Math.imul(Math.floor(pos / 4) + 1, 0x9e3779b9)) >>> 0);
      out[at + i] = (word >>> ((pos % 4) * 8)) & 0xff;
    }
  }

  /**
   * What an access through `slot` (undefined: key 0) at `pfn` reads, as a fresh PAGE_SIZE array:
   * the raw DRAM contents decrypted with the accessor's key.
   */
  private materialize(pfn: number, page: Page | undefined, slot: KeySlot | undefined): Uint8Array {
    let raw: Uint8Array;
    if (page === undefined) raw = this.plainImage({ kind: 'stale', origin: pfn });
    else if (page.kind === 'ciphertext') raw = this.xts(true, page.key, page.tweak, this.plainImage(page.plain));
    else raw = this.plainImage(page);
    return slot === undefined ? raw : this.xts(false, slot, pfn, raw);
  }

  /** AES-128-XTS over one page, the page's physical address as the tweak. */
  private xts(encrypt: boolean, slot: KeySlot, tweakPfn: number, data: Uint8Array): Uint8Array {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(BigInt(tweakPfn) * BigInt(PAGE_SIZE));
    const c = encrypt ? createCipheriv('aes-128-xts', slot.aes, iv) : createDecipheriv('aes-128-xts', slot.aes, iv);
    const out = new Uint8Array(PAGE_SIZE);
    out.set(c.update(data));
    c.final();
    return out;
  }

  private viewInto(pfn: number, offset: number, len: number, key: number, out: Uint8Array, at: number): void {
    const page = this.getPage(pfn);
    if (page === undefined && key === 0) {
      this.staleInto(pfn, offset, len, out, at);
      return;
    }
    const slot = this.slot(key);
    const own = this.ownPlain(pfn, page, slot);
    if (own !== undefined) this.plainInto(own, offset, len, out, at);
    else out.set(this.materialize(pfn, page, slot).subarray(offset, offset + len), at);
  }
}
