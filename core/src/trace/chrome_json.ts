/**
 * Chrome Trace Event JSON, the format ui.perfetto.dev and chrome://tracing open directly:
 *
 *     { "traceEvents": [ ... ], "displayTimeUnit": "ns" }
 *
 * - `ts` and `dur` are microseconds: virtual ns / 1000 (fractions kept, so no ns is lost).
 * - Tracks: `pid` is the host or a VM, `tid` a vCPU or kernel context, named by 'M' events
 *   (`process_name` / `thread_name` with `args.name`).
 * - Spans are 'X' with `dur`; tracepoints are thread-scoped instants, 'i' with `"s": "t"`;
 *   lifetimes that overlap are async 'b'/'e' with `id` and `cat`; counters are 'C' with numeric
 *   args.
 * - JSON has no bigint: bigint values are written as 0x-hex strings (they are addresses, SPTEs,
 *   error codes), and non-finite numbers as strings. Counter args must be numbers, so a bigint
 *   counter value becomes a number and a non-finite one is left out.
 *
 * Events are written in the order the Tracer recorded them; an 'X' slice is recorded when it
 * closes, so it follows the slices nested in it. Perfetto sorts by ts and does not mind.
 */
import type { TraceArgs } from './events.js';
import type { TracePhase, TraceRecord, TraceSink } from './tracer.js';

export type ChromeArgValue = number | string | boolean;

export interface ChromeTraceEvent {
  readonly name: string;
  readonly ph: TracePhase;
  /** µs */
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  /** 'X' only, µs. */
  readonly dur?: number;
  readonly cat?: string;
  readonly id?: string;
  /** 'i' only: scope, "t" (thread). */
  readonly s?: 't';
  readonly args?: Readonly<Record<string, ChromeArgValue>>;
}

export interface ChromeTrace {
  readonly traceEvents: ChromeTraceEvent[];
  readonly displayTimeUnit: 'ns';
}

function jsonArgs(args: TraceArgs, counter: boolean): Record<string, ChromeArgValue> {
  const out: Record<string, ChromeArgValue> = {};
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (counter) {
      const n = typeof v === 'bigint' ? Number(v) : v;
      if (typeof n === 'number' && Number.isFinite(n)) out[k] = n;
    } else if (typeof v === 'bigint') {
      out[k] = v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
    } else if (typeof v === 'number' && !Number.isFinite(v)) {
      out[k] = String(v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** One record as a Chrome trace event. */
export function toChromeEvent(rec: TraceRecord): ChromeTraceEvent {
  const ev: { -readonly [K in keyof ChromeTraceEvent]: ChromeTraceEvent[K] } = {
    name: rec.name,
    ph: rec.ph,
    ts: rec.ts / 1000,
    pid: rec.pid,
    tid: rec.tid,
  };
  if (rec.ph === 'X') ev.dur = (rec.dur ?? 0) / 1000;
  if (rec.ph === 'i') ev.s = 't';
  if (rec.cat !== undefined) ev.cat = rec.cat;
  if (rec.id !== undefined) ev.id = rec.id;
  ev.args = jsonArgs(rec.args, rec.ph === 'C');
  return ev;
}

/** The Chrome trace of `records` (e.g. a RingSink's events()). */
export function toChromeTrace(records: Iterable<TraceRecord>): ChromeTrace {
  const traceEvents: ChromeTraceEvent[] = [];
  for (const r of records) traceEvents.push(toChromeEvent(r));
  return { traceEvents, displayTimeUnit: 'ns' };
}

/** A Tracer sink that collects Chrome trace events. */
export class ChromeTraceSink implements TraceSink {
  private readonly events: ChromeTraceEvent[] = [];

  record(rec: TraceRecord): void {
    this.events.push(toChromeEvent(rec));
  }

  /** The trace object (JSON.stringify-able: no bigint, no NaN). */
  toJSON(): ChromeTrace {
    return { traceEvents: this.events.slice(), displayTimeUnit: 'ns' };
  }

  /** The trace as JSON text, to write to a .json file for ui.perfetto.dev. */
  serialize(space?: number): string {
    return JSON.stringify(this.toJSON(), null, space);
  }
}
