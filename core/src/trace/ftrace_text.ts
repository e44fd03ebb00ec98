/**
 * trace-cmd-report-like text, for people and for golden-file diffs:
 *
 *     vcpu0-0 [000] 0.001234: kvm_page_fault: vcpu_id=0 fault_address=0x100000 error_code=0x100000000
 *
 * - `TASK-PID`: TASK is the thread's name (Tracer.nameThread), else its process's name, else
 *   `<...>` as ftrace prints for an unknown comm; PID is the track's tid.
 * - `[CPU]`: the track's cpu, 0 when it has none, three digits.
 * - TIMESTAMP: virtual time in seconds with 6 decimals (µs, truncated like ftrace's ns2usecs).
 * - then `name: k=v k=v`, fields in the order they were emitted. Fields the kernel's TP_printk
 *   prints in hex (FTRACE_HEX_FIELDS: pfn, gfn, spte...) and every bigint are printed 0x-hex,
 *   other numbers in decimal, booleans as 1/0, strings as they are (newlines escaped), absent
 *   optional fields not at all.
 *
 * Only tracepoints (instant records) become lines: spans, async lifetimes and counters are for
 * the Chrome JSON writer (chrome_json.ts), which can draw them.
 */
import type { TraceArgs, TraceValue } from './events.js';
import type { TraceRecord, TraceSink } from './tracer.js';

/**
 * Field names the kernel prints in hex in every tracepoint cocosim mirrors (`pfn=0x%lx` in
 * kmem.h and filemap.h, `%#lx` in ras_event.h, `gfn %llx` in mmutrace.h, `ino %lx`...).
 */
export const FTRACE_HEX_FIELDS: ReadonlySet<string> = new Set([
  'pfn',
  'gfn',
  'i_ino',
  'gfp_flags',
  'error_code',
  'fault_address',
  'guest_rip',
  'rip',
  'info1',
  'info2',
  'intr_info',
  'requests',
  'spte',
  'sptep',
  'old_spte',
  'new_spte',
  'nr',
  'a0',
  'a1',
  'a2',
  'a3',
  'attr',
  'start',
  'end',
  'flags',
]);

export interface FtraceTextOptions {
  /** More field names to print in hex (a vendor's tracepoints), added to FTRACE_HEX_FIELDS. */
  readonly hexFields?: Iterable<string>;
}

/** Virtual ns as ftrace's `seconds.micros` (6 decimals, truncated). */
export function formatFtraceTimestamp(ns: number): string {
  const sec = Math.floor(ns / 1e9);
  const usec = Math.floor((ns - sec * 1e9) / 1000);
  return `${sec}.${String(usec).padStart(6, '0')}`;
}

function formatValue(key: string, v: TraceValue, hex: ReadonlySet<string>): string {
  switch (typeof v) {
    case 'bigint':
      return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
    case 'number':
      return hex.has(key) && Number.isSafeInteger(v) && v >= 0 ? `0x${v.toString(16)}` : String(v);
    case 'boolean':
      return v ? '1' : '0';
    default:
      return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  }
}

/** `k=v k=v` for a record's fields. */
export function formatFtraceArgs(args: TraceArgs, hex: ReadonlySet<string> = FTRACE_HEX_FIELDS): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(args)) if (v !== undefined) parts.push(`${k}=${formatValue(k, v, hex)}`);
  return parts.join(' ');
}

function threeDigits(n: number): string {
  return String(n).padStart(3, '0');
}

/**
 * Turns records into lines. Keeps the process and thread names it has seen ('M' records) to
 * print TASK; use it as a Tracer sink, or feed it records from a ring.
 */
export class FtraceTextSink implements TraceSink {
  readonly lines: string[] = [];
  private readonly hex: ReadonlySet<string>;
  private readonly processNames = new Map<number, string>();
  private readonly threadNames = new Map<string, string>();

  constructor(opts: FtraceTextOptions = {}) {
    this.hex = opts.hexFields ? new Set([...FTRACE_HEX_FIELDS, ...opts.hexFields]) : FTRACE_HEX_FIELDS;
  }

  record(rec: TraceRecord): void {
    const line = this.format(rec);
    if (line !== undefined) this.lines.push(line);
  }

  /** The line for `rec` (updating the names for 'M' records), or undefined if it has none. */
  format(rec: TraceRecord): string | undefined {
    if (rec.ph === 'M') {
      const name = String(rec.args.name);
      if (rec.name === 'process_name') this.processNames.set(rec.pid, name);
      else if (rec.name === 'thread_name') this.threadNames.set(`${rec.pid}:${rec.tid}`, name);
      return undefined;
    }
    if (rec.ph !== 'i') return undefined;
    const task = this.threadNames.get(`${rec.pid}:${rec.tid}`) ?? this.processNames.get(rec.pid) ?? '<...>';
    const args = formatFtraceArgs(rec.args, this.hex);
    const head = `${task}-${rec.tid} [${threeDigits(rec.cpu ?? 0)}] ${formatFtraceTimestamp(rec.ts)}: ${rec.name}:`;
    return args === '' ? head : `${head} ${args}`;
  }

  /** All lines, each ending in a newline. */
  text(): string {
    return this.lines.map((l) => `${l}\n`).join('');
  }
}

/** The ftrace text of `records` (e.g. a RingSink's events()). */
export function toFtraceText(records: Iterable<TraceRecord>, opts?: FtraceTextOptions): string {
  const sink = new FtraceTextSink(opts);
  for (const r of records) sink.record(r);
  return sink.text();
}
