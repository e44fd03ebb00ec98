/**
 * Saving what a program did as a trace: TraceWriter wraps a simulated Process so that every
 * call of a method that has an op (close, mmap, ioctl...) is written as a trace line, with the
 * arguments spelt as a trace spells them, so that any scenario or test can be saved and then
 * replayed on another platform or on the real kernel by the oracle.
 *
 *   const w = new TraceWriter({ expect: true });
 *   const p = w.record(platform.process());
 *   const fd = p.open('/dev/null');        // {"op":"open","path":"/dev/null","flags":"O_RDWR","as":"fd"}
 *   p.close(fd);                           // {"op":"close","fd":"$fd"}
 *   writeFileSync('x.trace.jsonl', w.text());
 *
 * fds and addresses returned by calls are bound with "as" and later arguments that equal them
 * are written as references ("$fd", "$map+8192"), since their numbers differ on another
 * platform. Flags are spelt with the kernel names of the argument's prefix where the names
 * cover the value exactly. A call whose arguments a trace cannot express (a fractional fd, an
 * object where C has an int: the simulator's own tests of bad input) is written as a `//`
 * comment, and listed in `skipped`.
 */
import type { Process } from '@cocosim/mm';
import { names as defaultNames, type NameTable } from './names.js';
import { allOps, copyValue, type ArgSpec, type OpSpec } from './ops.js';
import { TRACE_VERSION } from './parse.js';
import { DEFAULT_DESIGN, DEFAULT_VENDOR } from './platforms.js';
import { intJson, makeResult, succeeded, type JsonValue, type OpResult } from './results.js';

export interface TraceWriterOptions {
  readonly vendor?: string;
  readonly design?: string;
  /** Write each call's result as its `expect`, so the saved trace is a regression test. */
  readonly expect?: boolean;
  readonly names?: NameTable;
}

interface Binding {
  readonly name: string;
  readonly kind: 'fd' | 'addr';
  readonly value: bigint;
  /** For an address: the length of the mapping. */
  readonly len: bigint;
  live: boolean;
}

/** A value a trace cannot spell. */
class Unrepresentable {
  constructor(readonly reason: string) {}
}

/** Struct fields that hold a user address or an fd (struct kvm_userspace_memory_region2 and kin). */
const STRUCT_ADDR_FIELDS = new Set(['userspace_addr', 'uaddr', 'dirty_bitmap']);
const STRUCT_FD_FIELDS = new Set(['guest_memfd', 'fd']);
/** How far past a mapping an address is still written relative to it. */
const NEAR = 1n << 30n;
/** Uniform data at least this long is written as {"fill", "len"}. */
const FILL_MIN = 16;

function isInt(v: unknown): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v));
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

export class TraceWriter {
  private readonly out: string[] = [];
  private readonly bindings: Binding[] = [];
  private readonly counters = new Map<string, number>();
  private readonly names: NameTable;
  private readonly byMethod = new Map<string, OpSpec>();
  private calls = 0;
  private depth = 0;
  /** Calls left out, with why. */
  readonly skipped: string[] = [];

  constructor(private readonly opts: TraceWriterOptions = {}) {
    this.names = opts.names ?? defaultNames;
    for (const op of allOps()) {
      for (const m of [op.method, op.variant?.method]) if (m !== undefined && !this.byMethod.has(m)) this.byMethod.set(m, op);
    }
  }

  /** `p`, recording: every call of a method with an op becomes a trace line; the rest passes through. */
  record<P extends Process>(p: P): P {
    const handler: ProxyHandler<P> = {
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop, target);
        const op = typeof prop === 'string' ? this.byMethod.get(prop) : undefined;
        if (op === undefined || typeof v !== 'function') return v;
        return (...jsArgs: unknown[]): unknown => {
          const before = op.snapshot === true ? jsArgs.map(copyValue) : jsArgs;
          this.depth++;
          let ret: unknown;
          try {
            ret = (v as (...a: unknown[]) => unknown).apply(target, jsArgs);
          } finally {
            this.depth--;
          }
          // Only the outermost call is the program's; one method calling another is the simulator's business.
          if (this.depth === 0) this.write(op, before, op.toResult(ret, target, jsArgs, before));
          return ret;
        };
      },
    };
    return new Proxy(p, handler);
  }

  /** The header and every line so far. */
  lines(): string[] {
    const platform = { vendor: this.opts.vendor ?? DEFAULT_VENDOR, design: this.opts.design ?? DEFAULT_DESIGN };
    return [JSON.stringify({ trace: TRACE_VERSION, platform }), ...this.out];
  }

  /** The trace as JSON Lines text. */
  text(): string {
    return `${this.lines().join('\n')}\n`;
  }

  private write(op: OpSpec, jsArgsBefore: readonly unknown[], result: OpResult): void {
    const traceArgs = op.fromCall(jsArgsBefore);
    const line: Record<string, JsonValue> = { op: op.name };
    for (const [k, spec] of op.args.entries()) {
      const v = traceArgs[k];
      if (v === undefined && (spec.default !== undefined || spec.optional === true)) continue;
      const enc = this.encode(spec, v);
      if (enc instanceof Unrepresentable) {
        const why = `${op.name}: argument ${spec.name} = ${describe(v)}: ${enc.reason}`;
        this.skipped.push(why);
        this.out.push(`// not representable in a trace, left out: ${why}`);
        return;
      }
      line[spec.name] = enc;
    }
    const r = makeResult(this.calls++, op.name, result);
    const kind = succeeded(r.ret) ? op.binds?.(traceArgs) : undefined;
    if (kind !== undefined) {
      const base = op.handle ?? 'h';
      const n = (this.counters.get(base) ?? 0) + 1;
      this.counters.set(base, n);
      const name = n === 1 ? base : `${base}${n}`;
      const lenArg = op.args.findIndex((a) => a.name === 'length');
      const len = lenArg >= 0 && isInt(traceArgs[lenArg]) ? BigInt(traceArgs[lenArg]) : 0n;
      this.bindings.push({ name, kind, value: BigInt(result.ret), len, live: true });
      line.as = name;
    }
    this.retire(op, traceArgs, r.ret);
    if (this.opts.expect === true) {
      const { i: _i, op: _op, ...fields } = r;
      line.expect = fields as JsonValue;
    }
    this.out.push(JSON.stringify(line));
  }

  /** A closed fd or an unmapped range is no longer what later equal numbers refer to. */
  private retire(op: OpSpec, traceArgs: readonly unknown[], ret: JsonValue): void {
    if (!succeeded(ret)) return;
    const first = traceArgs[0];
    if (!isInt(first)) return;
    const v = BigInt(first);
    if (op.name === 'close') {
      for (const b of this.bindings) if (b.kind === 'fd' && b.value === v) b.live = false;
    } else if (op.name === 'munmap' && isInt(traceArgs[1])) {
      const end = v + BigInt(traceArgs[1]);
      for (const b of this.bindings) if (b.kind === 'addr' && v <= b.value && b.value + b.len <= end) b.live = false;
    }
  }

  /**
   * A reference for `v`: the live fd bound to it; for an address, the mapping holding it (or
   * ending at it), else the nearest mapping below within NEAR, since any address a program
   * computes is relative to a mapping it made.
   */
  private ref(kind: 'fd' | 'addr', v: bigint): string | undefined {
    const live = this.bindings.filter((b) => b.live && b.kind === kind).reverse();
    if (kind === 'fd') {
      const b = live.find((x) => x.value === v);
      return b === undefined ? undefined : `$${b.name}`;
    }
    const b = live.find((x) => v >= x.value && v <= x.value + x.len)
      ?? live.filter((x) => v >= x.value && v - x.value < NEAR).sort((x, y) => (x.value > y.value ? -1 : 1))[0];
    if (b === undefined) return undefined;
    const off = v - b.value;
    return off === 0n ? `$${b.name}` : `$${b.name}+${off < 4096n ? off.toString() : `0x${off.toString(16)}`}`;
  }

  private int(v: unknown, what: string): JsonValue | Unrepresentable {
    if (!isInt(v)) return new Unrepresentable(`a trace has no way to write this as ${what}`);
    return intJson(v);
  }

  private encode(spec: ArgSpec, v: unknown): JsonValue | Unrepresentable {
    switch (spec.kind) {
      case 'fd':
        if (!isInt(v)) return new Unrepresentable('an fd is a C int');
        return this.ref('fd', BigInt(v)) ?? intJson(v);
      case 'int':
        return this.int(v, 'an integer');
      case 'u64': {
        if (!isInt(v)) return new Unrepresentable('a trace has no way to write this as an unsigned integer');
        const u = BigInt.asUintN(64, BigInt(v));
        return (spec.addr === true ? this.ref('addr', u) : undefined) ?? intJson(u);
      }
      case 'flags': {
        if (!isInt(v)) return new Unrepresentable('flags are a C integer');
        const prefixes = spec.names === undefined ? [] : typeof spec.names === 'string' ? [spec.names] : spec.names;
        const value = BigInt(v);
        if (value >= 0n) {
          for (const prefix of prefixes) {
            const s = this.names.spell(value, prefix, spec.enum === true ? 'enum' : 'bits');
            if (s !== undefined) return s;
          }
        }
        return intJson(v);
      }
      case 'data':
        if (!(v instanceof Uint8Array)) return new Unrepresentable('data is a byte buffer');
        if (v.length >= FILL_MIN && v.every((b) => b === v[0])) return { fill: v[0], len: v.length };
        return Buffer.from(v.buffer, v.byteOffset, v.length).toString('hex');
      case 'string':
        if (typeof v === 'string' || v === null) return v;
        return new Unrepresentable('a path or name is a C string (or null)');
      case 'struct':
        return this.struct(v, undefined);
    }
  }

  private struct(v: unknown, field: string | undefined): JsonValue | Unrepresentable {
    if (isInt(v)) {
      const b = BigInt(v);
      const ref = field !== undefined && STRUCT_ADDR_FIELDS.has(field) ? this.ref('addr', b)
        : field !== undefined && STRUCT_FD_FIELDS.has(field) ? this.ref('fd', b) : undefined;
      return ref ?? intJson(v);
    }
    if (v === null || v === undefined) return 0;
    if (Array.isArray(v)) {
      const items: JsonValue[] = [];
      for (const x of v) {
        const e = this.struct(x, undefined);
        if (e instanceof Unrepresentable) return e;
        items.push(e);
      }
      return items;
    }
    if (typeof v === 'object' && !(v instanceof Uint8Array)) {
      const out: { [k: string]: JsonValue } = {};
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined) continue;
        const e = this.struct(x, k);
        if (e instanceof Unrepresentable) return e;
        out[k] = e;
      }
      return out;
    }
    return new Unrepresentable('struct fields are integers, nested structs or arrays');
  }
}
