import { describe, expect, test } from 'vitest';
import { KernelBug } from './bug.js';
import { L1_CACHE_BYTES, PhysMem, isMemPoison, type MemPoison } from './phys_mem.js';
import { PRandom } from './prandom.js';
import { MAX_FRAME, PAGE_SIZE, Pfn } from './types.js';

const P = Pfn;

/** Read that must not hit poison. */
function rd(m: PhysMem, pfn: number, offset = 0, len = PAGE_SIZE, key = 0): Uint8Array {
  const r = m.read(P(pfn), offset, len, key);
  if (isMemPoison(r)) throw new Error(`unexpected poison at pfn ${r.pfn} line ${r.line}`);
  return r;
}

function allBytes(b: Uint8Array, v: number): boolean {
  return b.every((x) => x === v);
}

function pattern(len: number, seed: number): Uint8Array {
  return new PRandom(seed).bytes(len);
}

describe('PhysMem descriptors', () => {
  test('never written: deterministic stale pattern, not zero, per pfn and per seed', () => {
    const m = new PhysMem(1);
    expect(m.state(P(5))).toBe('never_written');
    const a = rd(m, 5);
    expect(allBytes(a, 0)).toBe(false);
    expect(new Set(a).size).toBeGreaterThan(200);
    expect(rd(new PhysMem(1), 5)).toEqual(a);
    expect(rd(m, 6)).not.toEqual(a);
    expect(rd(new PhysMem(2), 5)).not.toEqual(a);
    expect(rd(new PhysMem('1'), 5)).not.toEqual(a);
    // Random access: a partial read is the same bytes as the slice of a full read.
    expect(rd(m, 5, 1001, 77)).toEqual(a.subarray(1001, 1078));
    expect(m.pagesTracked).toBe(0);
    expect(m.bytesStored).toBe(0);
    expect(m.inspect(P(5))).toEqual({ kind: 'never_written', key: 0, plain: 'never_written', poisonedLines: [] });
  });

  test('never written: golden bytes for seed 0', () => {
    const m = new PhysMem(0);
    expect(Array.from(rd(m, 0, 0, 8))).toEqual(GOLDEN_STALE_PFN0);
    expect(Array.from(rd(m, 2 ** 40, 4088, 8))).toEqual(GOLDEN_STALE_PFN2_40_TAIL);
  });

  test('zero: clear() reads as zeros and costs no bytes', () => {
    const m = new PhysMem();
    m.clear(P(3));
    expect(m.state(P(3))).toBe('zero');
    expect(allBytes(rd(m, 3), 0)).toBe(true);
    expect(rd(m, 3, 100, 5)).toEqual(new Uint8Array(5));
    expect(m.bytesStored).toBe(0);
  });

  test('fill: every byte is the value; fill 0 is zero', () => {
    const m = new PhysMem();
    m.fill(P(3), 0xab);
    expect(m.state(P(3))).toBe('fill');
    expect(m.inspect(P(3)).byte).toBe(0xab);
    expect(allBytes(rd(m, 3), 0xab)).toBe(true);
    m.fill(P(3), 0);
    expect(m.state(P(3))).toBe('zero');
    expect(() => m.fill(P(3), 256)).toThrow(KernelBug);
    expect(() => m.fill(P(3), -1)).toThrow(KernelBug);
    expect(m.bytesStored).toBe(0);
  });

  test('partial write on a zero page keeps the rest zero', () => {
    const m = new PhysMem();
    m.clear(P(1));
    const d = pattern(100, 1);
    m.write(P(1), 3996, d);
    expect(m.state(P(1))).toBe('bytes');
    const r = rd(m, 1);
    expect(r.subarray(3996)).toEqual(d);
    expect(allBytes(r.subarray(0, 3996), 0)).toBe(true);
    expect(m.bytesStored).toBe(PAGE_SIZE);
    // A second write lands in place.
    m.write(P(1), 0, new Uint8Array([1, 2, 3]));
    expect(Array.from(rd(m, 1, 0, 4))).toEqual([1, 2, 3, 0]);
    expect(m.bytesStored).toBe(PAGE_SIZE);
  });

  test('partial write on a fill page keeps the fill around it', () => {
    const m = new PhysMem();
    m.fill(P(1), 0x5a);
    m.write(P(1), 10, new Uint8Array([1, 2]));
    const r = rd(m, 1);
    expect(Array.from(r.subarray(8, 14))).toEqual([0x5a, 0x5a, 1, 2, 0x5a, 0x5a]);
  });

  test('partial write on a never-written page keeps the stale bytes around it', () => {
    const m = new PhysMem(9);
    const stale = rd(m, 2);
    m.write(P(2), 64, new Uint8Array([7, 7, 7, 8]));
    const r = rd(m, 2);
    expect(r.subarray(0, 64)).toEqual(stale.subarray(0, 64));
    expect(Array.from(r.subarray(64, 68))).toEqual([7, 7, 7, 8]);
    expect(r.subarray(68)).toEqual(stale.subarray(68));
  });

  test('a page written then cleared reads zero and drops its bytes', () => {
    const m = new PhysMem();
    m.write(P(8), 0, pattern(PAGE_SIZE, 2));
    expect(m.state(P(8))).toBe('bytes');
    expect(m.bytesStored).toBe(PAGE_SIZE);
    m.clear(P(8));
    expect(m.state(P(8))).toBe('zero');
    expect(allBytes(rd(m, 8), 0)).toBe(true);
    expect(m.bytesStored).toBe(0);
  });

  test('uniform writes stay compact', () => {
    const m = new PhysMem();
    m.write(P(1), 0, new Uint8Array(PAGE_SIZE).fill(0x11));
    expect(m.state(P(1))).toBe('fill');
    m.write(P(2), 0, new Uint8Array(PAGE_SIZE));
    expect(m.state(P(2))).toBe('zero');
    // Zeros over a zero page, the fill byte over a fill page: nothing to store.
    m.write(P(2), 100, new Uint8Array(200));
    expect(m.state(P(2))).toBe('zero');
    m.write(P(1), 5, new Uint8Array(9).fill(0x11));
    expect(m.state(P(1))).toBe('fill');
    expect(m.bytesStored).toBe(0);
    // A full non-uniform page replaces a bytes page; the caller's buffer is copied.
    const d = pattern(PAGE_SIZE, 3);
    m.write(P(3), 0, d);
    const copy = d.slice();
    d.fill(0);
    expect(rd(m, 3)).toEqual(copy);
    m.write(P(3), 0, new Uint8Array(PAGE_SIZE).fill(0xee));
    expect(m.state(P(3))).toBe('fill');
    expect(m.bytesStored).toBe(0);
  });

  test('free forgets the page', () => {
    const m = new PhysMem(4);
    const stale = rd(m, 7);
    m.write(P(7), 0, pattern(PAGE_SIZE, 4));
    m.free(P(7));
    expect(m.state(P(7))).toBe('never_written');
    expect(rd(m, 7)).toEqual(stale);
    expect(m.bytesStored).toBe(0);
    expect(m.pagesTracked).toBe(0);
  });

  test('accesses that leave the page are simulator bugs', () => {
    const m = new PhysMem();
    expect(() => m.read(P(0), 4000, 97)).toThrow(KernelBug);
    expect(() => m.read(P(0), -1, 1)).toThrow(KernelBug);
    expect(() => m.read(P(0), 0.5, 1)).toThrow(KernelBug);
    expect(() => m.write(P(0), 4095, new Uint8Array(2))).toThrow(KernelBug);
    expect(() => m.read(P(-1), 0, 1)).toThrow(KernelBug);
    expect(() => m.clear(P(MAX_FRAME + 1))).toThrow(KernelBug);
    expect(() => m.clear(P(1.5))).toThrow(KernelBug);
    expect(() => m.read(P(0), 0, 1, -3)).toThrow(KernelBug);
    expect(() => m.readRange(P(MAX_FRAME), 0, PAGE_SIZE + 1)).toThrow(KernelBug);
    expect(rd(m, MAX_FRAME, 4095, 1).length).toBe(1);
    expect(rd(m, 0, 4096, 0).length).toBe(0);
  });
});

describe('PhysMem memory use', () => {
  test('grows with written pages only', () => {
    const m = new PhysMem();
    const big = 2 ** 40;
    m.write(P(big), 0, pattern(PAGE_SIZE, 5));
    expect(m.bytesStored).toBe(PAGE_SIZE);
    expect(m.pagesTracked).toBe(1);
    // Reading elsewhere, anywhere, stores nothing.
    rd(m, big + 1);
    rd(m, 0);
    rd(m, MAX_FRAME);
    m.read(P(big + 2), 0, 16, 5);
    expect(m.bytesStored).toBe(PAGE_SIZE);
    expect(m.pagesTracked).toBe(1);
    expect(rd(m, big)).toEqual(pattern(PAGE_SIZE, 5));
  });

  test('clearing 262144 pages tracks each and stores no bytes', () => {
    const m = new PhysMem();
    for (let pfn = 0; pfn < 262144; pfn++) m.clear(P(pfn));
    expect(m.pagesTracked).toBe(262144);
    expect(m.bytesStored).toBe(0);
  });
});

describe('PhysMem compact states', () => {
  test('zero and never-written pages in chunks far apart: each state follows every kind of change', () => {
    const m = new PhysMem(4);
    const pfns = [0, 65535, 65536, 2 ** 40 + 7, MAX_FRAME];
    for (const pfn of pfns) m.clear(P(pfn));
    expect(m.pagesTracked).toBe(pfns.length);
    expect(pfns.map((pfn) => m.state(P(pfn)))).toEqual(pfns.map(() => 'zero'));
    /* zero -> fill -> bytes -> zero -> never written, and a key's ciphertext over a zero page */
    m.fill(P(65535), 9);
    m.write(P(65536), 5, Uint8Array.of(1, 2));
    m.clear(P(2 ** 40 + 7), 3);
    m.free(P(MAX_FRAME));
    expect(pfns.map((pfn) => m.state(P(pfn)))).toEqual(['zero', 'fill', 'bytes', 'ciphertext', 'never_written']);
    expect([m.pagesTracked, m.bytesStored]).toEqual([4, PAGE_SIZE]);
    expect(rd(m, 65536, 4, 4)).toEqual(Uint8Array.of(0, 1, 2, 0));
    expect(rd(m, MAX_FRAME)).toEqual(rd(new PhysMem(4), MAX_FRAME));
    m.clear(P(65536));
    m.clear(P(65535));
    m.free(P(0));
    m.free(P(0));
    expect(pfns.map((pfn) => m.state(P(pfn)))).toEqual(['never_written', 'zero', 'zero', 'ciphertext', 'never_written']);
    expect([m.pagesTracked, m.bytesStored]).toEqual([3, 0]);
    /* a raw copy of a zero page is a zero page; of a never-written one, that page's stale bytes */
    m.copy(P(5), P(65535));
    m.copy(P(6), P(0));
    expect([m.state(P(5)), m.state(P(6))]).toEqual(['zero', 'never_written']);
    expect(rd(m, 6)).toEqual(rd(m, 0));
    expect(rd(m, 6)).not.toEqual(rd(m, 7));
  });

  test('readInto() copies what read() returns into the array, and leaves it alone on poison', () => {
    const m = new PhysMem(2);
    m.write(P(3), 10, Uint8Array.of(7, 8, 9));
    const out = new Uint8Array(8).fill(0xee);
    expect(m.readInto(P(3), 9, 5, out, 2)).toBe(0);
    expect(out).toEqual(Uint8Array.of(0xee, 0xee, ...rd(m, 3, 9, 5), 0xee));
    expect(m.readInto(P(4), 0, 8, out, 0)).toBe(0);
    expect(out).toEqual(rd(m, 4, 0, 8));
    m.poison(P(3), 0);
    const before = out.slice();
    expect(m.readInto(P(3), 60, 8, out, 0)).toEqual({ poisoned: true, pfn: 3, line: 0 });
    expect(out).toEqual(before);
    expect(() => m.readInto(P(3), 100, 8, out, 1)).toThrow(KernelBug);
    expect(() => m.readInto(P(3), 4090, 8, new Uint8Array(8), 0)).toThrow(KernelBug);
  });
});

describe('PhysMem ranges', () => {
  test('writeRange and readRange split over contiguous pfns', () => {
    const m = new PhysMem(3);
    for (const p of [10, 11, 12]) m.clear(P(p));
    const d = pattern(5000, 6);
    m.writeRange(P(10), 4000, d);
    expect(m.readRange(P(10), 4000, 5000)).toEqual(d);
    expect(m.state(P(10))).toBe('bytes');
    expect(m.state(P(11))).toBe('bytes');
    expect(m.state(P(12))).toBe('bytes');
    expect(rd(m, 10, 4000, 96)).toEqual(d.subarray(0, 96));
    expect(rd(m, 12, 0, 5000 - 96 - 4096)).toEqual(d.subarray(96 + 4096));
    expect(allBytes(rd(m, 12, 808, PAGE_SIZE - 808), 0)).toBe(true);
    // An offset beyond the first page starts in a later one.
    expect(m.readRange(P(9), PAGE_SIZE + 4000, 10)).toEqual(d.subarray(0, 10));
  });

  test('readRange of never-written memory is the concatenation of page reads', () => {
    const m = new PhysMem(3);
    const r = m.readRange(P(20), 100, 2 * PAGE_SIZE);
    expect(isMemPoison(r)).toBe(false);
    const expected = new Uint8Array(2 * PAGE_SIZE);
    expected.set(rd(m, 20, 100, PAGE_SIZE - 100), 0);
    expected.set(rd(m, 21), PAGE_SIZE - 100);
    expected.set(rd(m, 22, 0, 100), 2 * PAGE_SIZE - 100);
    expect(r).toEqual(expected);
    expect(m.readRange(P(20), 0, 0)).toEqual(new Uint8Array(0));
  });

  test('a write of a full page through writeRange stays compact', () => {
    const m = new PhysMem();
    m.writeRange(P(0), PAGE_SIZE, new Uint8Array(2 * PAGE_SIZE).fill(3));
    expect(m.state(P(0))).toBe('never_written');
    expect(m.state(P(1))).toBe('fill');
    expect(m.state(P(2))).toBe('fill');
    expect(m.bytesStored).toBe(0);
  });
});

describe('PhysMem memory encryption', () => {
  const KEY = 7;

  function privatePage(m: PhysMem, pfn: number): Uint8Array {
    const plain = pattern(PAGE_SIZE, pfn);
    m.write(P(pfn), 0, plain, KEY);
    return plain;
  }

  test('the right key reads the plaintext; no key or another key reads neither plaintext nor zeros', () => {
    const m = new PhysMem(11);
    const plain = privatePage(m, 4);
    expect(m.state(P(4))).toBe('ciphertext');
    expect(rd(m, 4, 0, PAGE_SIZE, KEY)).toEqual(plain);
    for (const key of [0, 8]) {
      const g = rd(m, 4, 0, PAGE_SIZE, key);
      expect(g).not.toEqual(plain);
      expect(allBytes(g, 0)).toBe(false);
      expect(new Set(g).size).toBeGreaterThan(200);
      // Deterministic: again, and on another host with the same seed.
      expect(rd(m, 4, 0, PAGE_SIZE, key)).toEqual(g);
      const twin = new PhysMem(11);
      privatePage(twin, 4);
      expect(rd(twin, 4, 0, PAGE_SIZE, key)).toEqual(g);
    }
    expect(rd(m, 4, 0, PAGE_SIZE, 0)).not.toEqual(rd(m, 4, 0, PAGE_SIZE, 8));
    // Another host seed means other keys: other garbage.
    const other = new PhysMem(12);
    privatePage(other, 4);
    expect(rd(other, 4, 0, PAGE_SIZE, 0)).not.toEqual(rd(m, 4, 0, PAGE_SIZE, 0));
    expect(rd(other, 4, 0, PAGE_SIZE, KEY)).toEqual(plain);
  });

  test('garbage depends on the plaintext and the pfn', () => {
    const m = new PhysMem(11);
    m.clear(P(1), KEY);
    m.clear(P(2), KEY);
    m.fill(P(3), 1, KEY);
    const g1 = rd(m, 1);
    expect(rd(m, 2)).not.toEqual(g1);
    expect(rd(m, 3)).not.toEqual(g1);
    // Partial reads are slices of the whole.
    expect(rd(m, 1, 17, 33)).toEqual(g1.subarray(17, 50));
  });

  test('compact plaintext stays compact under a key', () => {
    const m = new PhysMem();
    m.clear(P(5), KEY);
    expect(m.inspect(P(5))).toEqual({ kind: 'ciphertext', key: KEY, tweakPfn: 5, keyCurrent: true, plain: 'zero', byte: 0, poisonedLines: [] });
    expect(allBytes(rd(m, 5, 0, PAGE_SIZE, KEY), 0)).toBe(true);
    m.write(P(5), 0, new Uint8Array(PAGE_SIZE).fill(9), KEY);
    expect(m.inspect(P(5)).plain).toBe('fill');
    expect(m.bytesStored).toBe(0);
    m.write(P(5), 10, new Uint8Array([1, 2, 3]), KEY);
    expect(m.inspect(P(5)).plain).toBe('bytes');
    expect(m.inspect(P(5)).key).toBe(KEY);
    expect(Array.from(rd(m, 5, 8, 7, KEY))).toEqual([9, 9, 1, 2, 3, 9, 9]);
    expect(m.bytesStored).toBe(PAGE_SIZE);
  });

  test('a write through another key re-keys the page: the rest reads as garbage', () => {
    const m = new PhysMem(13);
    m.clear(P(6));
    const d = pattern(32, 1);
    m.write(P(6), 0, d, KEY);
    expect(m.state(P(6))).toBe('ciphertext');
    const k = rd(m, 6, 0, PAGE_SIZE, KEY);
    expect(k.subarray(0, 32)).toEqual(d);
    expect(allBytes(k.subarray(32), 0)).toBe(false);
    // XTS blocks are independent: the host still reads its zeros in the blocks not written.
    const h = rd(m, 6);
    expect(allBytes(h.subarray(32), 0)).toBe(true);
    expect(h.subarray(0, 32)).not.toEqual(d);
    expect(allBytes(h.subarray(0, 32), 0)).toBe(false);
  });

  test('a partial-block write through another key garbles the rest of that 16-byte block', () => {
    const m = new PhysMem(13);
    m.clear(P(6));
    m.write(P(6), 4, new Uint8Array([1]), KEY);
    const h = rd(m, 6);
    expect(allBytes(h.subarray(0, 16), 0)).toBe(false);
    expect(allBytes(h.subarray(16), 0)).toBe(true);
  });

  test('a host (key 0) write onto a private page re-keys it to plaintext', () => {
    const m = new PhysMem(14);
    const plain = privatePage(m, 7);
    m.write(P(7), 0, new Uint8Array([0xaa, 0xbb]));
    expect(m.state(P(7))).toBe('bytes');
    expect(m.inspect(P(7)).key).toBe(0);
    expect(Array.from(rd(m, 7, 0, 2))).toEqual([0xaa, 0xbb]);
    // The guest still reads its plaintext outside the first block, garbage in it.
    const g = rd(m, 7, 0, PAGE_SIZE, KEY);
    expect(g.subarray(16)).toEqual(plain.subarray(16));
    expect(g.subarray(0, 16)).not.toEqual(plain.subarray(0, 16));
  });

  test('a plaintext page read through a key is garbage', () => {
    const m = new PhysMem(15);
    m.clear(P(1));
    const g = rd(m, 1, 0, PAGE_SIZE, KEY);
    expect(allBytes(g, 0)).toBe(false);
    const d = pattern(PAGE_SIZE, 2);
    m.write(P(2), 0, d);
    expect(rd(m, 2, 0, PAGE_SIZE, KEY)).not.toEqual(d);
  });

  test('a raw copy of ciphertext to another pfn no longer decrypts: the tweak moved', () => {
    const m = new PhysMem(16);
    const plain = privatePage(m, 10);
    expect(m.copy(P(20), P(10))).toBe(0);
    expect(m.inspect(P(20))).toMatchObject({ kind: 'ciphertext', key: KEY, tweakPfn: 10, plain: 'bytes' });
    // The host sees the same raw ciphertext at both places.
    expect(rd(m, 20)).toEqual(rd(m, 10));
    const g = rd(m, 20, 0, PAGE_SIZE, KEY);
    expect(g).not.toEqual(plain);
    expect(allBytes(g, 0)).toBe(false);
    expect(rd(m, 10, 0, PAGE_SIZE, KEY)).toEqual(plain);
    // Copied back to the pfn it was encrypted at, it decrypts again.
    m.clear(P(10));
    expect(m.copy(P(10), P(20))).toBe(0);
    expect(rd(m, 10, 0, PAGE_SIZE, KEY)).toEqual(plain);
    // Copies own their bytes.
    m.write(P(20), 0, new Uint8Array([1]), KEY);
    expect(rd(m, 10, 0, PAGE_SIZE, KEY)).toEqual(plain);
  });

  test('a compact ciphertext copied raw stays compact and still garbles', () => {
    const m = new PhysMem(16);
    m.clear(P(1), KEY);
    m.copy(P(2), P(1));
    expect(m.inspect(P(2))).toMatchObject({ kind: 'ciphertext', plain: 'zero', tweakPfn: 1 });
    expect(allBytes(rd(m, 2, 0, PAGE_SIZE, KEY), 0)).toBe(false);
    expect(m.bytesStored).toBe(0);
  });

  test('a copy through the key (the guest copying) decrypts at the destination', () => {
    const m = new PhysMem(17);
    const plain = privatePage(m, 1);
    expect(m.copy(P(2), P(1), KEY)).toBe(0);
    expect(m.inspect(P(2))).toMatchObject({ kind: 'ciphertext', key: KEY, tweakPfn: 2 });
    expect(rd(m, 2, 0, PAGE_SIZE, KEY)).toEqual(plain);
    expect(rd(m, 2)).not.toEqual(rd(m, 1));
  });

  test('a copy from key 0 into a key is a copy-and-encrypt (TDH.MEM.PAGE.ADD)', () => {
    const m = new PhysMem(18);
    const src = pattern(PAGE_SIZE, 3);
    m.write(P(1), 0, src);
    expect(m.copy(P(2), P(1), 0, KEY)).toBe(0);
    expect(rd(m, 2, 0, PAGE_SIZE, KEY)).toEqual(src);
    expect(rd(m, 2)).not.toEqual(src);
    expect(rd(m, 1)).toEqual(src);
    // A never-written source carries its stale bytes along.
    expect(m.copy(P(4), P(3), 0, KEY)).toBe(0);
    expect(rd(m, 4, 0, PAGE_SIZE, KEY)).toEqual(rd(m, 3));
    expect(m.inspect(P(4)).plain).toBe('never_written');
  });

  test('a raw copy of a never-written page carries the source stale bytes', () => {
    const m = new PhysMem(19);
    m.copy(P(9), P(8));
    expect(rd(m, 9)).toEqual(rd(m, 8));
    expect(rd(m, 9)).not.toEqual(rd(new PhysMem(19), 9));
    m.copy(P(8), P(8));
    expect(m.pagesTracked).toBe(1);
  });

  test('encrypt in place (SNP LAUNCH_UPDATE) and decrypt in place', () => {
    const m = new PhysMem(20);
    const d = pattern(PAGE_SIZE, 4);
    m.write(P(1), 0, d);
    expect(m.encrypt(P(1), KEY)).toBe(0);
    expect(m.state(P(1))).toBe('ciphertext');
    expect(rd(m, 1, 0, PAGE_SIZE, KEY)).toEqual(d);
    expect(rd(m, 1)).not.toEqual(d);
    expect(m.bytesStored).toBe(PAGE_SIZE);
    expect(m.decrypt(P(1), KEY)).toBe(0);
    expect(m.state(P(1))).toBe('bytes');
    expect(rd(m, 1)).toEqual(d);
    // A never-written page encrypted and decrypted is never-written again.
    const stale = rd(m, 2);
    m.encrypt(P(2), KEY);
    expect(rd(m, 2, 0, PAGE_SIZE, KEY)).toEqual(stale);
    m.decrypt(P(2), KEY);
    expect(m.state(P(2))).toBe('never_written');
    // Decrypting through the wrong key yields what that key saw: garbage.
    m.clear(P(3), KEY);
    const seen = rd(m, 3, 0, PAGE_SIZE, 9);
    m.decrypt(P(3), 9);
    expect(m.state(P(3))).toBe('bytes');
    expect(rd(m, 3)).toEqual(seen);
    expect(() => m.encrypt(P(3), 0)).toThrow(KernelBug);
    expect(() => m.decrypt(P(3), 0)).toThrow(KernelBug);
  });

  test('programKey: a reused key id gets a new key, old pages read as garbage', () => {
    const m = new PhysMem(21);
    const plain = privatePage(m, 1);
    m.programKey(KEY);
    expect(m.inspect(P(1)).keyCurrent).toBe(false);
    const g = rd(m, 1, 0, PAGE_SIZE, KEY);
    expect(g).not.toEqual(plain);
    m.clear(P(2), KEY);
    expect(allBytes(rd(m, 2, 0, PAGE_SIZE, KEY), 0)).toBe(true);
    expect(m.inspect(P(2)).keyCurrent).toBe(true);
    expect(() => m.programKey(0)).toThrow(KernelBug);
  });
});

describe('PhysMem poison', () => {
  test('a read touching a poisoned line reports it instead of data', () => {
    const m = new PhysMem();
    m.clear(P(1));
    m.poison(P(1), 3);
    expect(m.state(P(1))).toBe('poisoned');
    expect(m.inspect(P(1))).toMatchObject({ kind: 'zero', poisonedLines: [3] });
    expect(m.isPoisoned(P(1))).toBe(true);
    expect(rd(m, 1, 0, 3 * L1_CACHE_BYTES).length).toBe(192);
    expect(rd(m, 1, 256, 100).length).toBe(100);
    const r = m.read(P(1), 190, 4);
    expect(isMemPoison(r)).toBe(true);
    expect(r).toEqual({ poisoned: true, pfn: 1, line: 3 });
    expect(m.read(P(1), 0, PAGE_SIZE)).toEqual({ poisoned: true, pfn: 1, line: 3 });
    expect(isMemPoison(m.read(P(1), 192, 1))).toBe(true);
    expect(isMemPoison(m.read(P(1), 255, 1))).toBe(true);
    expect(isMemPoison(m.read(P(1), 256, 1))).toBe(false);
  });

  test('lines at the 32-bit word edges', () => {
    const m = new PhysMem();
    for (const line of [0, 31, 32, 63]) m.poison(P(1), line);
    expect(m.poisonedLines(P(1))).toEqual([0, 31, 32, 63]);
    expect((m.read(P(1), 31 * 64 + 10, 200) as MemPoison).line).toBe(31);
    expect((m.read(P(1), 33 * 64, 31 * 64) as MemPoison).line).toBe(63);
    expect(isMemPoison(m.read(P(1), 64, 30 * 64))).toBe(false);
    expect(() => m.poison(P(1), 64)).toThrow(KernelBug);
    expect(() => m.poison(P(1), -1)).toThrow(KernelBug);
  });

  test('a whole-page poison reports the first line touched', () => {
    const m = new PhysMem();
    m.poison(P(2));
    expect(m.poisonedLines(P(2)).length).toBe(64);
    expect(m.read(P(2), 1000, 10)).toEqual({ poisoned: true, pfn: 2, line: 15 });
    expect(m.readRange(P(1), PAGE_SIZE - 10, 20)).toEqual({ poisoned: true, pfn: 2, line: 0 });
    expect(isMemPoison(m.read(P(2), 0, 0))).toBe(false);
  });

  test('copy, encrypt and decrypt from a poisoned page fail and change nothing', () => {
    const m = new PhysMem();
    m.fill(P(1), 4);
    m.poison(P(1), 63);
    m.fill(P(2), 5);
    expect(m.copy(P(2), P(1))).toEqual({ poisoned: true, pfn: 1, line: 63 });
    expect(m.state(P(2))).toBe('fill');
    expect(m.encrypt(P(1), 3)).toEqual({ poisoned: true, pfn: 1, line: 63 });
    expect(m.inspect(P(1)).kind).toBe('fill');
    expect(m.decrypt(P(1), 3)).toEqual({ poisoned: true, pfn: 1, line: 63 });
    expect(m.inspect(P(1)).kind).toBe('fill');
  });

  test('writes land under poison; unpoison reveals the last contents', () => {
    const m = new PhysMem();
    m.clear(P(1));
    m.poison(P(1), 0);
    m.write(P(1), 0, new Uint8Array([1, 2]));
    m.clear(P(3));
    m.poison(P(3));
    m.clear(P(3));
    expect(m.state(P(3))).toBe('poisoned');
    expect(isMemPoison(m.read(P(1), 0, 2))).toBe(true);
    m.free(P(1));
    expect(m.isPoisoned(P(1))).toBe(true);
    m.write(P(1), 0, new Uint8Array([1, 2]));
    m.unpoison(P(1));
    expect(m.isPoisoned(P(1))).toBe(false);
    expect(m.state(P(1))).toBe('bytes');
    expect(Array.from(rd(m, 1, 0, 2))).toEqual([1, 2]);
  });
});

describe('PhysMem digest and determinism', () => {
  test('digest follows observable contents, not the descriptor', () => {
    const m = new PhysMem(30);
    m.clear(P(1));
    m.write(P(2), 0, new Uint8Array([1]));
    m.write(P(2), 0, new Uint8Array([0]));
    m.clear(P(2));
    m.write(P(3), 0, pattern(PAGE_SIZE, 1));
    m.write(P(3), 0, new Uint8Array(PAGE_SIZE / 2));
    m.write(P(3), PAGE_SIZE / 2, new Uint8Array(PAGE_SIZE / 2));
    expect(m.state(P(3))).toBe('bytes');
    expect(m.digest(P(3))).toBe(m.digest(P(1)));
    expect(m.digest(P(2))).toBe(m.digest(P(1)));
    expect(m.digest(P(1))).toMatch(/^[0-9a-f]{64}$/);
  });

  test('digest distinguishes contents, keys, poison, and never-written from zero', () => {
    const m = new PhysMem(30);
    m.clear(P(1));
    const zero = m.digest(P(1));
    expect(m.digest(P(9))).not.toBe(zero);
    m.fill(P(2), 1);
    expect(m.digest(P(2))).not.toBe(zero);
    m.clear(P(3), 5);
    expect(m.digest(P(3))).not.toBe(zero);
    m.clear(P(4));
    m.poison(P(4), 1);
    expect(m.digest(P(4))).not.toBe(zero);
    // The owner of a private page sees its plaintext: equal plaintext, equal digest.
    m.clear(P(5), 5);
    expect(m.digest(P(5))).toBe(m.digest(P(3)));
  });

  test('the same seed and the same operations give the same memory', () => {
    const run = (seed: number): string[] => {
      const m = new PhysMem(seed);
      const r = new PRandom(seed).fork('ops');
      for (let i = 0; i < 200; i++) {
        const pfn = P(r.below(16));
        switch (r.below(6)) {
          case 0:
            m.clear(pfn, r.below(3));
            break;
          case 1:
            m.fill(pfn, r.below(256));
            break;
          case 2: {
            const off = r.below(PAGE_SIZE);
            m.write(pfn, off, r.bytes(r.below(PAGE_SIZE - off + 1)), r.below(3));
            break;
          }
          case 3:
            m.copy(pfn, P(r.below(16)), r.below(3), r.below(3));
            break;
          case 4:
            m.encrypt(pfn, 1 + r.below(2));
            break;
          default:
            m.free(pfn);
        }
      }
      const out: string[] = [];
      for (let p = 0; p < 16; p++) {
        out.push(m.digest(P(p)));
        for (const key of [0, 1, 2]) out.push(Buffer.from(rd(m, p, 0, PAGE_SIZE, key)).toString('hex'));
      }
      return out;
    };
    const a = run(40);
    expect(run(40)).toEqual(a);
    expect(run(41)).not.toEqual(a);
  });
});

// Pinned outputs of the never-written pattern: a change here changes every recorded run.
const GOLDEN_STALE_PFN0 = [44, 187, 42, 63, 87, 144, 142, 88];
const GOLDEN_STALE_PFN2_40_TAIL = [102, 117, 165, 167, 66, 30, 44, 113];
