/**
 * The trace corpus against the kernel: every test/traces/NAME.trace.jsonl is replayed on the
 * simulator and compared, by the spec's rules (bench/src/trace/compare.ts), with
 * NAME.kernel.jsonl, what the real kernel said when test/oracle/record.sh replayed it. It needs
 * neither /dev/kvm nor `cc`: the recordings are committed.
 *
 * Two committed lists say where the simulator is known not to agree, and the test holds them to
 * the truth in both directions:
 *   - test/traces/pending.json: traces the simulator cannot replay yet, and why ("needs KVM").
 *     Each must still fail for that reason; when the reason goes, the test fails until the entry
 *     is removed.
 *   - test/traces/disagreements.json: calls of the other traces where the simulator gives
 *     another result than the kernel, with the kernel function responsible and the fix. Exactly
 *     those calls must differ, in exactly those fields and values: a new difference fails, and
 *     so does a fixed one until it is struck from the list.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { TEST_ASSERT } from '../lib/test_util.js';

/*
 * The test package has no project reference to bench (test/tsconfig.json), so the trace tools
 * are loaded from bench's sources at run time, by path: vitest compiles them as it compiles any
 * import. The parts this test uses are declared here.
 */
type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

interface DisagreementKey {
  readonly i: number;
  readonly line: number;
  readonly op: string;
  readonly field: string;
  readonly kernel: JsonValue;
  readonly simulator: JsonValue;
  readonly bound: boolean;
}

interface TraceError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

interface RecordingCheck {
  readonly file: string;
  readonly kernel?: string;
  readonly trace: { readonly calls: readonly unknown[] };
  readonly recordingErrors: readonly string[];
  readonly simulator: { readonly errors: readonly TraceError[]; readonly crash?: { readonly line: number; readonly op: string; readonly error: unknown } };
  readonly differences: readonly unknown[];
  readonly lacks: readonly string[];
}

interface CorpusModule {
  corpusTraces(dir: string): string[];
  checkTraceFile(path: string): RecordingCheck;
  disagreementKeys(check: RecordingCheck): DisagreementKey[];
  readonly LACKS_KVM: string;
}

const corpusSource = fileURLToPath(new URL('../../bench/src/trace/corpus.ts', import.meta.url));
const corpus = (await import(corpusSource)) as CorpusModule;

const tracesDir = fileURLToPath(new URL('../traces/', import.meta.url));

/* ---- the committed lists ---- */

interface Pending {
  readonly trace: string;
  readonly reason: string;
}

interface Disagreement {
  readonly trace: string;
  readonly line: number;
  readonly i: number;
  readonly op: string;
  readonly kernel: Record<string, JsonValue>;
  readonly simulator: Record<string, JsonValue>;
  readonly reason: string;
  readonly kernel_function: string;
  readonly fix: string;
}

function readList<T>(name: string, key: string): T[] {
  const v = JSON.parse(readFileSync(`${tracesDir}${name}`, 'utf8')) as Record<string, unknown>;
  TEST_ASSERT(Array.isArray(v[key]), `test/traces/${name} has a "${key}" array`);
  return v[key] as T[];
}

const pending = readList<Pending>('pending.json', 'pending');
const disagreements = readList<Disagreement>('disagreements.json', 'disagreements');
const traces = corpus.corpusTraces(tracesDir);

/** "needs KVM" -> "KVM", "needs mlock2" -> "mlock2": what simulatorLacks() calls the reason. */
function needed(reason: string): string | undefined {
  return /^needs (\S+)$/.exec(reason)?.[1];
}

/* ---- one call's differences, in the list's form ---- */

/** A bound value compares by success only, so the list records a successful one as "ok". */
function listed(k: DisagreementKey, side: 'kernel' | 'simulator'): JsonValue {
  const v = k[side];
  return k.bound && v !== -1 && v !== null ? 'ok' : v;
}

interface CallDiff {
  readonly line: number;
  readonly i: number;
  readonly op: string;
  readonly kernel: Record<string, JsonValue>;
  readonly simulator: Record<string, JsonValue>;
}

function byCall(keys: readonly DisagreementKey[]): CallDiff[] {
  const calls = new Map<number, CallDiff>();
  for (const k of keys) {
    const c = calls.get(k.i) ?? { line: k.line, i: k.i, op: k.op, kernel: {}, simulator: {} };
    c.kernel[k.field] = listed(k, 'kernel');
    c.simulator[k.field] = listed(k, 'simulator');
    calls.set(k.i, c);
  }
  return [...calls.values()];
}

function show(c: CallDiff): string {
  return `line ${c.line} (call ${c.i}, ${c.op}): kernel ${JSON.stringify(c.kernel)}, simulator ${JSON.stringify(c.simulator)}`;
}

function formatError(e: TraceError): string {
  return `${e.file}:${e.line}:${e.col}: ${e.message}`;
}

const check = new Map<string, RecordingCheck>();
function checked(name: string): RecordingCheck {
  let c = check.get(name);
  if (c === undefined) {
    c = corpus.checkTraceFile(`${tracesDir}${name}`);
    check.set(name, c);
  }
  return c;
}

describe('the trace corpus against its kernel recordings', () => {
  test('the lists name traces of the corpus, each at most once, with a reason', () => {
    expect(traces.length).toBeGreaterThan(0);
    for (const p of pending) {
      TEST_ASSERT(traces.includes(p.trace), `test/traces/pending.json: ${p.trace} is not a trace of the corpus`);
      TEST_ASSERT(needed(p.reason) !== undefined, `test/traces/pending.json: ${p.trace}: the reason must read "needs X", not "${p.reason}"`);
    }
    expect(new Set(pending.map((p) => p.trace)).size, 'a trace is pending once').toBe(pending.length);
    for (const d of disagreements) {
      TEST_ASSERT(traces.includes(d.trace), `test/traces/disagreements.json: ${d.trace} is not a trace of the corpus`);
      TEST_ASSERT(!pending.some((p) => p.trace === d.trace), `${d.trace} is pending: its calls cannot also be listed disagreements`);
      TEST_ASSERT([d.reason, d.kernel_function, d.fix].every((s) => typeof s === 'string' && s !== ''),
        `test/traces/disagreements.json: ${d.trace} line ${d.line}: each disagreement says why, which kernel function, and the fix`);
    }
  });

  test.each(traces)('%s: recorded on a kernel, one result per call', (name) => {
    TEST_ASSERT(existsSync(`${tracesDir}${name.replace(/\.trace\.jsonl$/, '.kernel.jsonl')}`), `${name} has no recording: run test/oracle/record.sh`);
    const c = checked(name);
    expect(c.recordingErrors).toEqual([]);
    expect(typeof c.kernel).toBe('string');
  });

  test.each(traces)('%s: the simulator agrees with the kernel, or the lists say how not', (name) => {
    const c = checked(name);
    const p = pending.find((x) => x.trace === name);
    if (p !== undefined) {
      const lack = needed(p.reason)!;
      const stillFails = c.simulator.errors.length > 0 || c.simulator.crash !== undefined || c.differences.length > 0;
      TEST_ASSERT(c.lacks.includes(lack) && stillFails,
        `${name} is pending in test/traces/pending.json ("${p.reason}"), but the simulator ${c.lacks.includes(lack) ? 'now agrees with the kernel' : `no longer lacks ${lack}`}: ` +
        `remove it from the list; from then on it must agree with its recording (or list its disagreements)`);
      return;
    }
    TEST_ASSERT(c.simulator.errors.length === 0,
      `the simulator cannot replay ${name} (pending? add it to test/traces/pending.json with the reason):\n${c.simulator.errors.slice(0, 10).map(formatError).join('\n')}`);
    TEST_ASSERT(c.simulator.crash === undefined,
      `the simulator threw at ${name}:${c.simulator.crash?.line} (${c.simulator.crash?.op}): ${String(c.simulator.crash?.error)}`);
    const got = byCall(corpus.disagreementKeys(c));
    const known = disagreements.filter((d) => d.trace === name)
      .map((d) => ({ line: d.line, i: d.i, op: d.op, kernel: d.kernel, simulator: d.simulator }));
    const same = (a: CallDiff, b: CallDiff): boolean => JSON.stringify(a) === JSON.stringify(b);
    const fresh = got.filter((g) => !known.some((k) => same(g, k))).map(show);
    const gone = known.filter((k) => !got.some((g) => same(g, k))).map(show);
    expect(fresh, `${name}: the simulator differs from the kernel here, and test/traces/disagreements.json does not say so`).toEqual([]);
    expect(gone, `${name}: these listed disagreements no longer occur as listed (fixed? update test/traces/disagreements.json)`).toEqual([]);
  });
});
