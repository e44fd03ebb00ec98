/**
 * The bad-input matrix (issue 10, item 4): every op of `cocosim ops` and every KVM ioctl request
 * the trace name table knows, each argument (and each struct field) at each edge value, on a
 * DEBUG_VM host prepared with the resources the op needs (bad_input_table.ts). Each row asserts
 * the kernel's outcome (the table names its source), that no JS exception escaped, and, for a
 * call that failed, that the state digest did not move (DEBUG_VM checks it too, and the
 * invariants after every call).
 *
 * A row that fails leaves the host as it was (that is what the row checks), so the next row of
 * the same vendor reuses it; a row whose call succeeded changed the host, and the next row gets a
 * fresh one.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { failed_call_allows, mm_state_digest, type Kernel, type Process } from '@cocosim/mm';
import { stateDigestDiff, type StateDigest } from '@cocosim/core';
import {
  HOST_PAGES, buildCases, loadBench, resolveValue, resolvedReg, setupResources,
  type Case, type OpResult, type Resources, type Value,
} from './bad_input_table.js';

const { gen, trace, host } = await loadBench();
const reqNumber = (name: string): number => {
  const v = trace.names.get(name);
  if (v === undefined) throw new Error(`no ioctl request ${name}`);
  return Number(v);
};
const cases = buildCases(gen, reqNumber);

interface Host {
  readonly platform: { readonly kernel: object };
  readonly p: Process;
  readonly res: Resources;
  digest: StateDigest;
}

const hosts = new Map<string, Host>();

function freshHost(vendor: string): Host {
  const platform = host.createPlatform({ vendor, design: 'upstream', debugVm: true, mm: { nr_pages: HOST_PAGES } });
  const p = platform.process() as Process;
  const cvm = host.VENDORS.get(vendor)?.cvm;
  const res = setupResources(p as never, reqNumber, cvm?.vm_type ?? 0, cvm !== undefined, vendor !== 'tdx' && vendor !== 'sev');
  return { platform, p, res, digest: mm_state_digest(platform.kernel as Kernel) };
}

/** The system calls that work VMA by VMA and may leave earlier VMAs changed when they fail. */
const RANGE_CALLS = new Set(['madvise', 'mprotect', 'mlock', 'mlock2', 'munlock']);

/** The VMAs [start, start + len) meets and whether it has a hole (debug_vm.ts's range_before()). */
function rangeBefore(p: Process, start: unknown, len: unknown): { vmas: number; hole: boolean } | undefined {
  const s = typeof start === 'bigint' ? start : typeof start === 'number' && Number.isSafeInteger(start) ? BigInt(start) : undefined;
  const l = typeof len === 'bigint' ? len : typeof len === 'number' && Number.isSafeInteger(len) ? BigInt(len) : undefined;
  if (s === undefined || l === undefined || s < 0n || l <= 0n || s + l > 1n << 64n) return undefined;
  const first = Number(s / 4096n);
  const end = s + l - 1n;
  const last = Number((end < 1n << 47n ? end : 1n << 47n) / 4096n);
  let vmas = 0;
  let at = first;
  let hole = false;
  for (let r = p.mm.mm_mt.mt_find(first, last); r !== undefined; r = p.mm.mm_mt.mt_next(r.last, last)) {
    if (r.first > at) hole = true;
    vmas++;
    at = r.last + 1;
    if (r.last >= last) break;
  }
  return { vmas, hole: hole || at <= last };
}

interface RowResult {
  readonly outcome: string;
  readonly exception?: string;
  /** Digest parts a failed call changed that the kernel's partial work does not explain. */
  readonly changed: readonly string[];
}

function outcomeOf(r: OpResult): string {
  if (r.errno !== undefined) return trace.errnoName(r.errno) ?? `errno ${r.errno}`;
  if (r.signal !== undefined) return typeof r.signal.signo === 'number' ? trace.signalName(r.signal.signo) : r.signal.signo;
  if (r.exit !== undefined) return `exit:${String(r.exit.reason)}`;
  return 'ok';
}

/** The baseline's arguments with `arg` set to `value`. */
function rowArgs(c: Case, argNames: readonly string[], res: Resources, vendor: string, arg: string | undefined, value: Value | undefined): unknown[] {
  const args = c.base(res, vendor);
  if (arg === undefined || value === undefined) return args;
  const v = resolveValue(value, res);
  const dot = arg.indexOf('.');
  const at = argNames.indexOf(dot < 0 ? arg : arg.slice(0, dot));
  if (at < 0) throw new Error(`${c.name} has no argument ${arg}`);
  if (dot < 0) args[at] = v;
  else args[at] = { ...(args[at] as Record<string, unknown>), [arg.slice(dot + 1)]: v };
  return args;
}

/** The vendor's current host: the last one, if every call on it since it was made failed. */
function hostFor(vendor: string): Host {
  let h = hosts.get(vendor);
  if (h === undefined) hosts.set(vendor, (h = freshHost(vendor)));
  return h;
}

function runRow(c: Case, vendor: string, arg?: string, value?: Value): RowResult {
  const op = trace.getOp(c.op)!;
  const h = hostFor(vendor);
  const args = rowArgs(c, op.args.map((a) => a.name), h.res, vendor, arg, value);
  const range = RANGE_CALLS.has(c.op) ? rangeBefore(h.p, args[0], args[1]) : undefined;
  let r: OpResult;
  try {
    r = trace.runOp(op, { platform: h.platform, process: h.p }, args);
  } catch (e) {
    hosts.delete(vendor);
    return { outcome: 'exception', exception: e instanceof Error ? `${e.name}: ${e.message}` : String(e), changed: [] };
  }
  const outcome = outcomeOf(r);
  if (r.errno === undefined) {
    if (c.keepHostOnSuccess === true) h.digest = mm_state_digest(h.platform.kernel as Kernel);
    else hosts.delete(vendor);
    return { outcome, changed: [] };
  }
  const after = mm_state_digest(h.platform.kernel as Kernel);
  const parts = stateDigestDiff(h.digest, after);
  h.digest = after;
  const method = c.op === 'mlock' && args[2] !== undefined ? 'mlock2' : op.name === 'ioctl' ? 'ioctl' : c.op;
  const allowed = parts.length === 0 ? [] : failed_call_allows(h.platform.kernel as Kernel, method, r.errno, args, range);
  return { outcome, changed: allowed === 'all' ? [] : parts.filter((x) => !allowed.includes(x)) };
}

interface Row {
  readonly vendor: string;
  readonly arg: string;
  readonly label: string;
  readonly value: Value;
}

function rowsOf(c: Case): Row[] {
  return c.vendors.flatMap((vendor) =>
    Object.entries(c.args).flatMap(([arg, rows]) => rows.values.map((value) => ({ vendor, arg, label: value.label, value }))));
}

describe.each(cases.map((c) => ({ name: c.name, c })))('$name', ({ c }) => {
  /* each case starts on new hosts, so that no case depends on what another left */
  beforeAll(() => hosts.clear());

  test.each(c.vendors.map((vendor) => ({ vendor })))('baseline on $vendor', ({ vendor }) => {
    const want = c.baseExpect({ vendor, res: hostFor(vendor).res });
    const got = runRow(c, vendor);
    expect(got.exception, 'no JS exception').toBeUndefined();
    expect(got.outcome, want.src).toBe(want.outcome);
    expect(got.changed, 'a failed call changed nothing').toEqual([]);
  });

  test.each(rowsOf(c))('$vendor: $arg = $label', ({ vendor, arg, value }) => {
    const { res } = hostFor(vendor);
    const want = c.args[arg].rule(value, resolvedReg(value, res), { vendor, res });
    const got = runRow(c, vendor, arg, value);
    expect(got.exception, 'no JS exception').toBeUndefined();
    expect(got.outcome, want.src).toBe(want.outcome);
    expect(got.changed, 'a failed call changed nothing').toEqual([]);
  });
});

/* ---- the table covers every call of `cocosim ops` ---- */

describe('coverage', () => {
  test('every op of allOps() has a case, with rows for each of its arguments', () => {
    for (const op of trace.allOps()) {
      const own = cases.filter((c) => c.op === op.name && c.req === undefined);
      expect(own.length, `op ${op.name} has no case`).toBeGreaterThan(0);
      /* an ioctl's arg is a different struct per request: the request cases give its rows */
      for (const a of op.args.filter((x) => op.name !== 'ioctl' || x.name !== 'arg')) {
        expect(own.some((c) => a.name in c.args), `op ${op.name}: no rows for argument ${a.name}`).toBe(true);
      }
    }
  });

  test('every ioctl request of the name table has a case, with rows for its fd, its arg and each struct field', () => {
    const requests = gen.ioctlRequestNames();
    expect(requests).toEqual(expect.arrayContaining(['KVM_CREATE_VM', 'KVM_CREATE_VCPU', 'KVM_CREATE_GUEST_MEMFD', 'KVM_PRE_FAULT_MEMORY', 'KVM_RUN']));
    for (const name of requests) {
      const own = cases.filter((c) => c.req === name);
      expect(own.length, `ioctl ${name} has no case`).toBeGreaterThan(0);
      for (const key of ['fd', 'arg']) expect(own.some((c) => key in c.args), `ioctl ${name}: no rows for ${key}`).toBe(true);
      const fields = [...Object.keys(gen.STRUCTS[name] ?? {}), ...(gen.RESERVED_ARRAYS[name] === undefined ? [] : [gen.RESERVED_ARRAYS[name][0]])];
      for (const f of fields) expect(own.some((c) => `arg.${f}` in c.args), `ioctl ${name}: no rows for field ${f}`).toBe(true);
    }
  });

  test('every case is a call of the op table, with rows only for arguments the op has', () => {
    for (const c of cases) {
      const op = trace.getOp(c.op);
      expect(op, c.name).toBeDefined();
      if (c.req !== undefined) expect(trace.names.get(c.req), c.name).toBeDefined();
      for (const arg of Object.keys(c.args)) expect(op!.args.map((a) => a.name), `${c.name}: ${arg}`).toContain(arg.split('.')[0]);
    }
  });
});
