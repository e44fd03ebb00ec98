/**
 * The Tracer: where mm, KVM, VFIO and the vendors report what they do.
 *
 * Every record carries the virtual time (from the injected Clock, never wall time) and the
 * current track: `pid` is the simulated host (HOST_PID) or a VM (vmTrackPid(id)), `tid` a vCPU
 * index or a named kernel context (`kvm-mmu`, `gmem`...), named once with nameThread(). Records
 * go to every attached sink (ring.ts for tests, ftrace_text.ts, chrome_json.ts) and, for
 * tracepoints, to typed listeners registered with on().
 *
 * What can be recorded:
 * - tracepoints, emit(name, fields): instants, typed by TraceEventMap (events.ts);
 * - synchronous kernel paths, span(name, args, fn) or begin()/end(): Chrome 'X' slices, which
 *   nest because the paths they time nest (a span must open and close within one synchronous
 *   call chain);
 * - lifetimes that overlap (pins, DMA mappings, conversions): asyncBegin()/asyncEnd() with a
 *   category and an id, Chrome 'b'/'e';
 * - counters (nr_free_pages, nr_pinned...): counter(), Chrome 'C'.
 *
 * Hot paths test enabled(name) before building fields; emit() tests it again, so a forgotten
 * check costs an object, never a wrong trace.
 *
 * Tracing must never change what the simulator does. A sink or listener that throws is caught,
 * detached, listed in `failures`, and reported to the remaining sinks as a `cocosim_warn` record
 * of kind `trace_sink`; the emitting kernel path carries on as if nothing happened. (Misusing
 * the Tracer itself, e.g. end() without begin(), is a simulator bug and throws KernelBug, the same
 * way whether or not anything is listening.)
 */
import { EventEmitter } from 'eventemitter3';
import { KernelBug } from '../bug.js';
import type { Clock } from '../clock.js';
import type { TraceArgs, TraceEventMap, TraceEventName } from './events.js';

/** Chrome Trace Event phases the Tracer produces. */
export type TracePhase = 'i' | 'X' | 'b' | 'e' | 'C' | 'M';

/** Where a record is drawn: process (host or VM) and thread (vCPU or kernel context). */
export interface Track {
  readonly pid: number;
  readonly tid: number;
  /** The CPU column of ftrace text; 0 when absent. */
  readonly cpu?: number;
}

/** The simulated host's pid. */
export const HOST_PID = 1;

/** The pid of VM `vmId`'s track (100 + vm id, so VMs sort after the host). */
export function vmTrackPid(vmId: number): number {
  return 100 + vmId;
}

/** One trace record, as sinks receive it. Times are virtual ns. */
export interface TraceRecord {
  readonly ph: TracePhase;
  readonly name: string;
  /** Start time (ns). */
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly cpu?: number;
  /** Fields (tracepoints), span arguments, counter values, or `{ name }` for 'M' records. */
  readonly args: TraceArgs;
  /** 'X' only: duration in ns. */
  readonly dur?: number;
  /** 'b'/'e' only: the lifetime's id (numbers and bigints as 0x-hex). */
  readonly id?: string;
  /** 'b'/'e' only: the category the id is unique in. */
  readonly cat?: string;
}

export interface TraceSink {
  record(rec: TraceRecord): void;
}

/** A sink or listener the Tracer detached because it threw. */
export interface TraceFailure {
  readonly sink?: TraceSink;
  /** Tracepoint name, for a listener registered with on(). */
  readonly listener?: string;
  readonly error: unknown;
  /** Virtual time of the record it failed on. */
  readonly ts: number;
}

/** An async lifetime begun and not yet ended. */
export interface OpenAsync {
  readonly cat: string;
  readonly name: string;
  readonly id: string;
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
}

type TraceListeners = { [K in TraceEventName]: [fields: TraceEventMap[K], rec: TraceRecord] };
type AnyListener = (fields: TraceArgs, rec: TraceRecord) => void;

interface SpanFrame {
  readonly name: string;
  readonly args: TraceArgs;
  readonly ts: number;
  readonly track: Track;
  /**
   * Whether the span was enabled when it began: a disabled span is still a frame, so that end()
   * pairs with begin() the same way whatever is listening.
   */
  readonly on: boolean;
}

/** Normalize an async id: numbers and bigints as 0x-hex (pfns, iovas), strings as they are. */
export function traceId(id: number | bigint | string): string {
  if (typeof id === 'string') return id;
  if (typeof id === 'bigint') return id < 0n ? `-0x${(-id).toString(16)}` : `0x${id.toString(16)}`;
  return Number.isSafeInteger(id) && id >= 0 ? `0x${id.toString(16)}` : String(id);
}

export class Tracer {
  /** Copy-on-write, so dispatch iterates without copying and a sink may detach mid-dispatch. */
  private sinks: readonly TraceSink[] = [];
  private readonly bus = new EventEmitter<TraceListeners>();
  /** Listeners attached with on() and not detached: with no sink either, nothing is recorded. */
  private listening = 0;
  private filter: ReadonlySet<string> | undefined;
  private track: Track = { pid: HOST_PID, tid: 0 };
  private readonly stack: SpanFrame[] = [];
  private readonly asyncOpen = new Map<string, OpenAsync>();
  /** Latest 'M' record per process / thread, replayed to sinks added later. */
  private readonly meta = new Map<string, TraceRecord>();
  private readonly failed: TraceFailure[] = [];
  /** Failures not yet reported: reported once the record being delivered has reached everyone. */
  private readonly unreported: TraceFailure[] = [];

  constructor(private readonly clock: Clock) {}

  /** Sinks and listeners detached because they threw, oldest first. */
  get failures(): readonly TraceFailure[] {
    return this.failed;
  }

  /**
   * Attach a sink (once: attaching it again does nothing). It first receives the process and
   * thread names given so far.
   */
  addSink(sink: TraceSink): void {
    if (this.sinks.includes(sink)) return;
    this.sinks = [...this.sinks, sink];
    for (const rec of this.meta.values()) {
      if (!this.sinks.includes(sink)) break;
      this.deliver(sink, rec);
    }
    this.report();
  }

  /** Detach a sink; returns whether it was attached. */
  removeSink(sink: TraceSink): boolean {
    const before = this.sinks.length;
    this.sinks = this.sinks.filter((s) => s !== sink);
    return this.sinks.length !== before;
  }

  /**
   * Restrict what sinks receive to these record names (tracepoints, spans, async lifetimes,
   * counters), like writing to set_event; undefined (the default) lets everything through.
   * Process and thread names always go through. Listeners registered with on() are not filtered.
   */
  setFilter(names: Iterable<string> | undefined): void {
    this.filter = names === undefined ? undefined : new Set(names);
  }

  /** Whether a record named `name` would go anywhere. Cheap: test it before building fields. */
  enabled(name: string): boolean {
    /* a tracer nobody reads (a benchmark, production settings) answers without a lookup */
    if (this.sinks.length === 0 && this.listening === 0) return false;
    return this.toSinks(name) || this.bus.listenerCount(name as TraceEventName) > 0;
  }

  private toSinks(name: string): boolean {
    return this.sinks.length > 0 && (this.filter === undefined || this.filter.has(name));
  }

  /**
   * Call fn(fields, record) for every emit of tracepoint `name`. Returns the function that
   * unsubscribes. A listener that throws is detached (see the top of this file).
   */
  on<K extends TraceEventName>(name: K, fn: (fields: TraceEventMap[K], rec: TraceRecord) => void): () => void {
    const bus = this.bus as unknown as EventEmitter<string>;
    let attached = true;
    const detach = (): void => {
      if (!attached) return;
      attached = false;
      this.listening--;
      bus.off(name, wrapped);
    };
    const wrapped: AnyListener = (fields, rec) => {
      try {
        (fn as unknown as AnyListener)(fields, rec);
      } catch (error) {
        detach();
        this.fail({ listener: name, error, ts: rec.ts });
      }
    };
    bus.on(name, wrapped);
    this.listening++;
    return detach;
  }

  /** The track new records are drawn on. */
  get currentTrack(): Track {
    return this.track;
  }

  /** Switch the current track; returns the previous one (to restore). */
  setTrack(track: Track): Track {
    const prev = this.track;
    this.track = track;
    return prev;
  }

  /** Run fn with `track` as the current track, then restore the previous one. */
  withTrack<T>(track: Track, fn: () => T): T {
    const prev = this.setTrack(track);
    try {
      return fn();
    } finally {
      this.track = prev;
    }
  }

  /** Name process `pid` (Chrome 'M' process_name): "host", "vm1"... */
  nameProcess(pid: number, name: string): void {
    this.setMeta(`p:${pid}`, { ph: 'M', name: 'process_name', ts: this.clock.now(), pid, tid: 0, args: { name } });
  }

  /** Name thread `tid` of `pid` (Chrome 'M' thread_name; the TASK of ftrace text): "vcpu0", "kvm-mmu"... */
  nameThread(pid: number, tid: number, name: string): void {
    this.setMeta(`t:${pid}:${tid}`, { ph: 'M', name: 'thread_name', ts: this.clock.now(), pid, tid, args: { name } });
  }

  private setMeta(key: string, rec: TraceRecord): void {
    this.meta.set(key, rec);
    this.dispatch(rec);
  }

  /** Record tracepoint `name` (an instant) on the current track. */
  emit<K extends TraceEventName>(name: K, fields: TraceEventMap[K]): void {
    if (this.sinks.length === 0 && this.listening === 0) return;
    const sinks = this.toSinks(name);
    const listeners = this.bus.listenerCount(name) > 0;
    if (!sinks && !listeners) return;
    const args: TraceArgs = { ...(fields as TraceArgs) };
    const rec = this.make('i', name, this.clock.now(), args);
    if (sinks) this.dispatch(rec);
    if (listeners) {
      (this.bus as unknown as EventEmitter<string>).emit(name, args, rec);
      this.report();
    }
  }

  /**
   * Time a synchronous path: fn runs inside span `name`, recorded as one 'X' slice when it
   * returns. If fn throws, the span (and any spans fn left open) is closed at the current time
   * and the exception propagates.
   */
  span<T>(name: string, args: TraceArgs | undefined, fn: () => T): T {
    const depth = this.stack.length;
    this.begin(name, args);
    let result: T;
    try {
      result = fn();
    } catch (err) {
      while (this.stack.length > depth) this.close(this.stack.pop()!);
      throw err;
    }
    this.end(name);
    return result;
  }

  /** Open span `name` on the current track; close it with end(). */
  begin(name: string, args?: TraceArgs): void {
    const on = this.toSinks(name);
    this.stack.push({ name, args: on && args ? { ...args } : {}, ts: this.clock.now(), track: this.track, on });
  }

  /**
   * Close the innermost open span and record it. `name`, when given, must be the innermost
   * span's (a check that begin/end pair up). end() with nothing open is a simulator bug.
   */
  end(name?: string): void {
    const top = this.stack.at(-1);
    if (top === undefined) throw new KernelBug(`Tracer.end(${name ?? ''}) with no open span`);
    if (name !== undefined && name !== top.name) {
      throw new KernelBug(`Tracer.end("${name}") but the innermost open span is "${top.name}"`);
    }
    this.close(this.stack.pop()!);
  }

  private close(f: SpanFrame): void {
    if (!f.on || !this.toSinks(f.name)) return;
    const now = this.clock.now();
    const { pid, tid, cpu } = f.track;
    this.dispatch({ ph: 'X', name: f.name, ts: f.ts, dur: now - f.ts, pid, tid, ...(cpu !== undefined && { cpu }), args: f.args });
  }

  /** Depth of open spans. */
  get spanDepth(): number {
    return this.stack.length;
  }

  /**
   * Begin lifetime `name` with `id` in category `cat` (a pin of pfn 0x1234, a DMA mapping of an
   * iova...). Ended by asyncEnd with the same cat, name and id. Lifetimes begun while `name` is
   * disabled are not tracked.
   */
  asyncBegin(cat: string, name: string, id: number | bigint | string, args?: TraceArgs): void {
    if (!this.toSinks(name)) return;
    const sid = traceId(id);
    const rec = this.make('b', name, this.clock.now(), args ? { ...args } : {}, sid, cat);
    this.asyncOpen.set(`${cat}\0${name}\0${sid}`, { cat, name, id: sid, ts: rec.ts, pid: rec.pid, tid: rec.tid });
    this.dispatch(rec);
  }

  /** End the lifetime begun by asyncBegin(cat, name, id). */
  asyncEnd(cat: string, name: string, id: number | bigint | string, args?: TraceArgs): void {
    if (!this.toSinks(name)) return;
    const sid = traceId(id);
    this.asyncOpen.delete(`${cat}\0${name}\0${sid}`);
    this.dispatch(this.make('e', name, this.clock.now(), args ? { ...args } : {}, sid, cat));
  }

  /** Lifetimes begun and not ended (pins never unpinned, mappings never unmapped...), oldest first. */
  openAsync(): OpenAsync[] {
    return [...this.asyncOpen.values()];
  }

  /**
   * Set counter `name` on the current process: one value (`{ value }`) or several series
   * (`{ private: 10, shared: 2 }`).
   */
  counter(name: string, value: number | Readonly<Record<string, number>>): void {
    if (!this.toSinks(name)) return;
    const args: TraceArgs = typeof value === 'number' ? { value } : { ...value };
    this.dispatch(this.make('C', name, this.clock.now(), args));
  }

  private make(ph: TracePhase, name: string, ts: number, args: TraceArgs, id?: string, cat?: string): TraceRecord {
    const { pid, tid, cpu } = this.track;
    const rec: { -readonly [K in keyof TraceRecord]: TraceRecord[K] } = { ph, name, ts, pid, tid, args };
    if (cpu !== undefined) rec.cpu = cpu;
    if (id !== undefined) rec.id = id;
    if (cat !== undefined) rec.cat = cat;
    return rec;
  }

  private dispatch(rec: TraceRecord): void {
    for (const sink of this.sinks) this.deliver(sink, rec);
    this.report();
  }

  private deliver(sink: TraceSink, rec: TraceRecord): void {
    try {
      sink.record(rec);
    } catch (error) {
      if (this.removeSink(sink)) this.fail({ sink, error, ts: rec.ts });
    }
  }

  private fail(f: TraceFailure): void {
    this.failed.push(f);
    this.unreported.push(f);
  }

  /**
   * Tell the remaining sinks about detached ones. Each report can only detach more sinks or
   * listeners, of which there are finitely many, so this terminates.
   */
  private report(): void {
    let f: TraceFailure | undefined;
    while ((f = this.unreported.shift()) !== undefined) {
      const what = f.sink ? 'a trace sink' : `a listener of ${f.listener}`;
      const message = `${what} threw and was detached: ${f.error instanceof Error ? f.error.message : String(f.error)}`;
      this.emit('cocosim_warn', { kind: 'trace_sink', message });
    }
  }
}
