/**
 * The in-memory ring buffer sink: what tests read traces from (traces are
 * test oracles). Bounded like the kernel's ring buffer: when full, the oldest record is dropped
 * and counted, so a long scenario cannot exhaust memory.
 */
import type { TraceArgs, TraceEventMap, TraceEventName } from './events.js';
import type { TraceRecord, TraceSink } from './tracer.js';

/** Fields to match: typed by TraceEventMap for a tracepoint name, free-form otherwise. */
export type FieldSubset<N extends string> = N extends TraceEventName ? Partial<TraceEventMap[N]> : TraceArgs;

/** Whether every field in `subset` is present in rec.args with the same value (=== , so 1n !== 1). */
export function matchesFields(rec: TraceRecord, subset: TraceArgs | undefined): boolean {
  if (subset === undefined) return true;
  for (const [k, v] of Object.entries(subset)) {
    if (v === undefined) continue;
    if (!Object.prototype.hasOwnProperty.call(rec.args, k) || rec.args[k] !== v) return false;
  }
  return true;
}

/** Records named `name` whose fields include `subset`, in order. */
export function findEvents<N extends string>(records: Iterable<TraceRecord>, name: N, subset?: FieldSubset<N>): TraceRecord[] {
  const out: TraceRecord[] = [];
  for (const r of records) if (r.name === name && matchesFields(r, subset as TraceArgs | undefined)) out.push(r);
  return out;
}

/** The first record named `name` whose fields include `subset`. */
export function findEvent<N extends string>(records: Iterable<TraceRecord>, name: N, subset?: FieldSubset<N>): TraceRecord | undefined {
  for (const r of records) if (r.name === name && matchesFields(r, subset as TraceArgs | undefined)) return r;
  return undefined;
}

export class RingSink implements TraceSink {
  private buf: TraceRecord[] = [];
  /** Index of the oldest record once the ring has wrapped. */
  private head = 0;
  private lost = 0;

  /** @param capacity records kept, a positive integer (default 65536). */
  constructor(readonly capacity = 65536) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`RingSink capacity ${String(capacity)}: need a positive integer`);
    }
  }

  record(rec: TraceRecord): void {
    if (this.buf.length < this.capacity) {
      this.buf.push(rec);
      return;
    }
    this.buf[this.head] = rec;
    this.head = (this.head + 1) % this.capacity;
    this.lost++;
  }

  /** Records held. */
  get size(): number {
    return this.buf.length;
  }

  /** Records dropped because the ring was full, since the last clear(). */
  get dropped(): number {
    return this.lost;
  }

  /** Records held, oldest first; only those named `name` when given. */
  events(name?: string): TraceRecord[] {
    const all = this.head === 0 ? this.buf.slice() : [...this.buf.slice(this.head), ...this.buf.slice(0, this.head)];
    return name === undefined ? all : all.filter((r) => r.name === name);
  }

  /** Records named `name` whose fields include `subset`, oldest first. */
  find<N extends string>(name: N, subset?: FieldSubset<N>): TraceRecord[] {
    return findEvents(this.events(), name, subset);
  }

  /** Forget every record and the dropped count. */
  clear(): void {
    this.buf = [];
    this.head = 0;
    this.lost = 0;
  }
}
