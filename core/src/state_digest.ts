/**
 * The state digest: a canonical hash of everything a simulated host holds, so that a test can
 * show that a failed call changed nothing and that two runs of one seed are identical.
 *
 * No kernel file does this; it is the simulator's counterpart of comparing two crash dumps. Each
 * package contributes the state it owns through a registry kept per host (the mm Kernel, or any
 * object standing for the host): `stateDigestRegistry(host).register(name, fn)`, where `fn`
 * feeds its state into a StateHash. mm registers the page store, memory contents, tasks, files,
 * page cache, swap and LRU (mm/src/debug.ts); KVM and VFIO register theirs the same way. The
 * digest runs the contributors in (order, name) order, so that when a package registers (at boot,
 * or lazily at its first VM) does not change the result.
 *
 * Canonical, not a memory image:
 * - Object identity never enters the hash. A contributor hashes a reference to an object (a
 *   File, a VMA, an address_space id) as `h.id(obj)` / `h.canon(ns, key)`: a small number given
 *   out in the order the traversal first meets it. Two states that differ only in which ids or
 *   JS objects the simulator happened to allocate hash the same; a reference that now points
 *   elsewhere does not.
 * - Iteration order is the contributor's choice and must be canonical: sorted keys for Maps and
 *   Sets whose insertion order means nothing, list order where it means something (an LRU list).
 * - What a contributor leaves out is its documented choice: statistics counters, stale fields the
 *   kernel too leaves behind in free memory, caches that are recomputed.
 *
 * The hash is 128 bits of four 32-bit multiply-xorshift lanes fed one word at a time, each step a
 * bijection of its lane's state: a state that differs in a single word always hashes differently,
 * and several differences collide with probability about 2^-128. It is not cryptographic, and
 * needs not be: it compares a simulator with itself. A word costs a few nanoseconds in V8, with
 * no call into native code per value (node's sha256 costs more than that per update() alone).
 */
import { BUG_ON } from './bug.js';

/* Odd multipliers of the four lanes (murmur3 and xxhash32 primes). */
const M0 = 0x85ebca6b;
const M1 = 0xc2b2ae35;
const M2 = 0x27d4eb2f;
const M3 = 0x165667b1;

/** murmur3's 32-bit finalizer: a bijection on u32. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const F64 = new Float64Array(1);
const F64_WORDS = new Uint32Array(F64.buffer);

/** A word order for the hex output: lanes, most significant first. */
function hex32(x: number): string {
  return (x >>> 0).toString(16).padStart(8, '0');
}

/**
 * The hasher a contributor feeds. Values go in one at a time; a section() groups a
 * contributor's values so that the digest can also say which part of the state changed.
 */
export class StateHash {
  private l0 = 0x243f6a88;
  private l1 = 0x85a308d3;
  private l2 = 0x13198a2e;
  private l3 = 0x03707344;
  /** Words fed into the current section. */
  private n = 0;
  private readonly ids = new Map<unknown, number>();
  private readonly nsIds = new Map<string, Map<number, number>>();
  private current: string | undefined = undefined;
  private readonly done: [string, string][] = [];

  /** One u32 (the low 32 bits of `v`, as ToUint32 takes them). */
  u32(v: number): void {
    switch (this.n++ & 3) {
      case 0: {
        const x = Math.imul(this.l0 ^ v, M0);
        this.l0 = x ^ (x >>> 15);
        break;
      }
      case 1: {
        const x = Math.imul(this.l1 ^ v, M1);
        this.l1 = x ^ (x >>> 15);
        break;
      }
      case 2: {
        const x = Math.imul(this.l2 ^ v, M2);
        this.l2 = x ^ (x >>> 15);
        break;
      }
      default: {
        const x = Math.imul(this.l3 ^ v, M3);
        this.l3 = x ^ (x >>> 15);
      }
    }
  }

  /** Any JS number, exactly: an int32 as one tagged word, anything else as its 64 IEEE bits. */
  num(v: number): void {
    if ((v | 0) === v && !Object.is(v, -0)) {
      this.u32(0x1);
      this.u32(v);
      return;
    }
    F64[0] = v;
    this.u32(0x2);
    this.u32(F64_WORDS[0]);
    this.u32(F64_WORDS[1]);
  }

  /** A bigint of any size (two's complement words, low first, then the word count). */
  big(v: bigint): void {
    let x = v < 0n ? -v : v;
    let words = 0;
    this.u32(v < 0n ? 0x4 : 0x3);
    do {
      this.u32(Number(x & 0xffffffffn));
      x >>= 32n;
      words++;
    } while (x > 0n);
    this.u32(words);
  }

  bool(b: boolean): void {
    this.u32(b ? 0x5 : 0x6);
  }

  /** A string (UTF-16 code units and the length), or null/undefined as their own tag. */
  str(s: string | null | undefined): void {
    if (s === null || s === undefined) {
      this.u32(s === null ? 0x7 : 0x8);
      return;
    }
    this.u32(0x9);
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.u32(s.charCodeAt(i));
  }

  /** A byte array (its length and its contents, four bytes to a word where aligned). */
  bytes(b: Uint8Array): void {
    this.u32(0xa);
    this.u32(b.length);
    const whole = b.byteOffset % 4 === 0 ? b.length >>> 2 : 0;
    if (whole > 0) this.words(new Uint32Array(b.buffer, b.byteOffset, whole));
    for (let i = whole * 4; i < b.length; i++) this.u32(b[i]);
  }

  /** The words of a 32-bit typed array, in order (no length: callers hash it when it varies). */
  words(a: Uint32Array | Int32Array): void {
    let i = 0;
    /* up to the next lane-0 word one at a time, then four lanes per step, as u32() would */
    while (i < a.length && (this.n & 3) !== 0) this.u32(a[i++]);
    let l0 = this.l0;
    let l1 = this.l1;
    let l2 = this.l2;
    let l3 = this.l3;
    const start = i;
    const whole = i + ((a.length - i) & ~3);
    for (; i < whole; i += 4) {
      const x0 = Math.imul(l0 ^ a[i], M0);
      l0 = x0 ^ (x0 >>> 15);
      const x1 = Math.imul(l1 ^ a[i + 1], M1);
      l1 = x1 ^ (x1 >>> 15);
      const x2 = Math.imul(l2 ^ a[i + 2], M2);
      l2 = x2 ^ (x2 >>> 15);
      const x3 = Math.imul(l3 ^ a[i + 3], M3);
      l3 = x3 ^ (x3 >>> 15);
    }
    this.n += whole - start;
    this.l0 = l0;
    this.l1 = l1;
    this.l2 = l2;
    this.l3 = l3;
    for (; i < a.length; i++) this.u32(a[i]);
  }

  /**
   * The canonical number of an object (or of any value used as an identity): 1, 2, 3... in the
   * order the traversal first asks, the same number for the same object within one digest.
   * `first` tells the caller to hash the object's own fields now (it is new).
   */
  id(obj: unknown): { readonly id: number; readonly first: boolean } {
    const known = this.ids.get(obj);
    if (known !== undefined) return { id: known, first: false };
    const id = this.ids.size + 1;
    this.ids.set(obj, id);
    return { id, first: true };
  }

  /**
   * The canonical number of a numeric identity within a namespace ("mapping" for
   * folio->mapping ids, "owner" for page owners): as id(), for numbers a package hands out.
   * 0 stays 0 (NULL).
   */
  canon(ns: string, key: number): number {
    if (key === 0) return 0;
    let m = this.nsIds.get(ns);
    if (m === undefined) this.nsIds.set(ns, (m = new Map()));
    let c = m.get(key);
    if (c === undefined) m.set(key, (c = m.size + 1));
    return c;
  }

  /** Whether a numeric identity already has its number in `ns` (without giving it one). */
  known(ns: string, key: number): boolean {
    return this.nsIds.get(ns)?.has(key) === true;
  }

  /** Whether an object already has its number (without giving it one). */
  has(obj: unknown): boolean {
    return this.ids.has(obj);
  }

  /** The 128-bit hash of the values fed since the last section() (hex, 32 digits). */
  private finish(): string {
    const n = this.n;
    const o0 = fmix32((this.l0 ^ n) >>> 0);
    const o1 = fmix32((this.l1 + o0) >>> 0);
    const o2 = fmix32((this.l2 + o1) >>> 0);
    const o3 = fmix32((this.l3 + o2 + n) >>> 0);
    return hex32(o3) + hex32(o2) + hex32(o1) + hex32(o0);
  }

  private reset(): void {
    this.l0 = 0x243f6a88;
    this.l1 = 0x85a308d3;
    this.l2 = 0x13198a2e;
    this.l3 = 0x03707344;
    this.n = 0;
  }

  /** Start the part of the state called `name`; the previous part's hash is kept. */
  section(name: string): void {
    if (this.current !== undefined) this.done.push([this.current, this.finish()]);
    this.reset();
    this.current = name;
    this.str(name);
  }

  /** Close the last section: every part's hash, in order. Canonical ids persist across parts. */
  parts(): [string, string][] {
    if (this.current !== undefined) this.done.push([this.current, this.finish()]);
    this.current = undefined;
    this.reset();
    return this.done.slice();
  }
}

/** A package's contribution: feed its state into `h`. */
export type StateContributor = (h: StateHash) => void;

interface Contributor {
  readonly name: string;
  readonly order: number;
  readonly fn: StateContributor;
  /** The part this one keeps a copy of (see register()). */
  readonly mirrors: string | undefined;
}

/** The contributors of one host. */
export class StateDigestRegistry {
  private readonly list: Contributor[] = [];

  /**
   * Add a contributor. `order` places it (mm's parts are 0-99, so that the ids they give out
   * come first; a package above mm uses 100 or more); names must be unique per host.
   * `mirrors` names a part whose changes this one follows, as a vendor's copy of a VM's stage-2
   * (pKVM's hypervisor, the RMM) follows KVM's SPTEs in "kvm.vms": wherever that part may change,
   * so may this one (mirroring()).
   */
  register(name: string, fn: StateContributor, order = 100, mirrors?: string): void {
    BUG_ON(this.list.some((c) => c.name === name), `state digest contributor ${name} registered twice`);
    this.list.push({ name, order, fn, mirrors });
    this.list.sort((a, b) => a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  has(name: string): boolean {
    return this.list.some((c) => c.name === name);
  }

  unregister(name: string): void {
    const i = this.list.findIndex((c) => c.name === name);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** The parts that mirror `name`, directly or through another mirror. */
  mirroring(name: string): string[] {
    const out: string[] = [];
    for (let i = -1; i < out.length; i++) {
      const of = i < 0 ? name : out[i];
      for (const c of this.list) if (c.mirrors === of && !out.includes(c.name)) out.push(c.name);
    }
    return out;
  }

  /** The contributors' names, in the order they run. */
  names(): string[] {
    return this.list.map((c) => c.name);
  }

  /** Run every contributor on a fresh StateHash. */
  compute(): StateDigest {
    const h = new StateHash();
    for (const c of this.list) {
      h.section(c.name);
      c.fn(h);
    }
    const parts = h.parts();
    const all = new StateHash();
    all.section('state');
    for (const [name, d] of parts) {
      all.str(name);
      all.str(d);
    }
    return { digest: all.parts()[0][1], parts: Object.fromEntries(parts) };
  }
}

/** A digest of a host's state and of each contributor's part of it. */
export interface StateDigest {
  /** The whole state (hex, 128 bits). */
  readonly digest: string;
  /** Contributor name -> the digest of its part. */
  readonly parts: Readonly<Record<string, string>>;
}

/** The names of the parts that differ between two digests of one host. */
export function stateDigestDiff(a: StateDigest, b: StateDigest): string[] {
  const names = new Set([...Object.keys(a.parts), ...Object.keys(b.parts)]);
  return [...names].filter((n) => a.parts[n] !== b.parts[n]).sort();
}

const registries = new WeakMap<object, StateDigestRegistry>();

/** The digest contributors of a host (`host` is the object that stands for it: mm's Kernel). */
export function stateDigestRegistry(host: object): StateDigestRegistry {
  let r = registries.get(host);
  if (r === undefined) registries.set(host, (r = new StateDigestRegistry()));
  return r;
}
