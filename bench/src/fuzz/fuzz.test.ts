/**
 * The fuzzer's parts: the generator covers the op table and the registered ioctl requests and is
 * a function of its seed; the runner reports each kind of finding; the minimizer keeps only the
 * calls a finding needs; fuzz() saves what it found as a trace that reproduces it.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Process } from '@cocosim/mm';
import { main } from '../cli.js';
import { allOps, names } from '../trace/index.js';
import { fuzz } from './fuzz.js';
import { generateProgram, ioctlRequestNames, programText, type FuzzProgram } from './generate.js';
import { minimize } from './minimize.js';
import { jsShapeCalls, runProgram, runTwice } from './run.js';

const proto = Process.prototype as unknown as Record<string, unknown>;
const saved = new Map<string, unknown>();

/** Give every simulated process a bug in `method` for the length of one test. */
function plantBug(method: string, impl: (this: Process, ...args: unknown[]) => unknown): void {
  saved.set(method, proto[method]);
  proto[method] = impl;
}

afterEach(() => {
  for (const [m, f] of saved) proto[m] = f;
  saved.clear();
});

const platform = { vendor: 'none', design: 'upstream' };

describe('generateProgram', () => {
  test('is a function of its seed', () => {
    const a = programText(generateProgram('x', { ...platform, calls: 300 }));
    expect(programText(generateProgram('x', { ...platform, calls: 300 }))).toBe(a);
    expect(programText(generateProgram('y', { ...platform, calls: 300 }))).not.toBe(a);
  });

  test('draws every registered op and every registered KVM ioctl request, binding resources', { timeout: 30000 }, () => {
    const p = generateProgram('cover', { vendor: 'sw_protected', design: 'upstream', calls: 24000 });
    const ops = new Set(p.lines.map((l) => l.op));
    for (const op of allOps()) expect(ops, op.name).toContain(op.name);
    const reqs = new Set(p.lines.filter((l) => l.op === 'ioctl').map((l) => l.req));
    const known = ioctlRequestNames();
    expect(known).toContain('KVM_CREATE_VM');
    for (const r of known) expect(reqs, r).toContain(r);
    /* fds and addresses flow: later lines use what earlier lines bound */
    const bound = p.lines.filter((l) => l.as !== undefined).map((l) => `$${l.as}`);
    expect(bound.length).toBeGreaterThan(100);
    expect(p.lines.some((l) => Object.values(l).some((v) => typeof v === 'string' && v.startsWith('$a')))).toBe(true);
    expect(names.get('KVM_CREATE_GUEST_MEMFD')).toBeDefined();
  });

  test('writes only traces the replayer accepts, with integers beyond 2^53 as strings', { timeout: 30000 }, () => {
    for (let k = 0; k < 8; k++) {
      const out = runProgram(programText(generateProgram(`valid:${k}`, { vendor: 'sw_protected', design: 'upstream', calls: 100 })), { invariants: false, digest: false });
      expect(out.findings.filter((f) => f.kind === 'trace-error')).toEqual([]);
    }
  });
});

/** A program of noise around the two calls that matter: a memfd, and fchmod on it. */
function haystack(): FuzzProgram {
  const noise = generateProgram('noise', { ...platform, calls: 300 }).lines
    .filter((l) => l.op !== 'fchmod' && l.as === undefined && !JSON.stringify(l).includes('"$'));
  const lines = [...noise.slice(0, 20), { op: 'memfd_create', name: 'needle', as: 'needle' }, ...noise.slice(20), { op: 'fchmod', fd: '$needle', mode: 0o4777 }, ...noise.slice(0, 5)];
  return { platform, lines };
}

describe('runProgram, runTwice, minimize', () => {
  test('a JS exception is a crash, and minimizes to the calls that cause it', () => {
    const original = proto.fchmod as (this: Process, ...a: unknown[]) => unknown;
    plantBug('fchmod', function (this: Process, fd: unknown, mode: unknown) {
      if (mode === 0o4777 && this.task.files.lookup(fd) !== undefined) throw new TypeError('planted');
      return original.call(this, fd, mode);
    });
    const p = haystack();
    const out = runProgram(programText(p));
    const crash = out.findings.find((f) => f.kind === 'crash')!;
    expect(crash).toMatchObject({ op: 'fchmod', i: p.lines.length - 6 });
    expect(p.lines.length).toBeGreaterThan(15);
    expect(crash.signature).toBe('crash fchmod TypeError: planted');
    expect(minimize(p, crash, {}).lines).toEqual([{ op: 'memfd_create', name: 'needle', as: 'needle' }, { op: 'fchmod', fd: '$needle', mode: 0o4777 }]);
  });

  test('a failed call that changed the state is found, naming the parts', () => {
    plantBug('fchmod', function (this: Process, fd: unknown) {
      this.ftruncate(fd, 4096);
      this.errno = 1;
      return -1;
    });
    const out = runProgram(programText({ platform, lines: [{ op: 'memfd_create', name: 'm', as: 'm' }, { op: 'fchmod', fd: '$m', mode: 0 }] }));
    expect(out.findings).toEqual([expect.objectContaining({ kind: 'failed-call-changed-state', i: 1, op: 'fchmod', signature: 'failed-call-changed-state fchmod 1 mm.tasks' })]);
  });

  test('a program leaves nothing queued that holds its host (a million calls run in one synchronous loop)', () => {
    /*
     * tsyringe's dispose() is async: each call queued a continuation holding the whole host,
     * and a long fuzz run, which never lets the event loop turn, ran out of heap.
     */
    const containerProto = Object.getPrototypeOf(createRootContainer()) as { dispose: () => Promise<void> };
    const dispose = vi.spyOn(containerProto, 'dispose');
    try {
      expect(runProgram(programText({ platform, lines: [{ op: 'memfd_create', name: 'x', flags: 0 }] })).findings).toEqual([]);
      expect(jsShapeCalls('leak', 5)).toEqual([]);
      expect(dispose).not.toHaveBeenCalled();
    } finally {
      dispose.mockRestore();
    }
  });

  test('a second run that differs is nondeterminism', () => {
    let calls = 0;
    plantBug('fstat', function (this: Process) {
      return calls++ === 0 ? 0 : -1;
    });
    const out = runTwice(programText({ platform, lines: [{ op: 'fstat', fd: 0 }] }));
    expect(out.findings).toEqual([expect.objectContaining({ kind: 'nondeterminism', i: 0, signature: 'nondeterminism results' })]);
  });

  test('fuzz() reports each bug once, minimized and saved as a trace that reproduces it', { timeout: 60000 }, () => {
    const original = proto.ftruncate as (this: Process, ...a: unknown[]) => unknown;
    plantBug('ftruncate', function (this: Process, fd: unknown, len: unknown) {
      if (len === 4096 * 3) throw new RangeError('planted at three pages');
      return original.call(this, fd, len);
    });
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-found-'));
    const report = fuzz({ calls: 1200, seed: 'planted', platforms: [platform], saveDir: dir, jsShapes: 0, determinism: false });
    const crashes = report.bugs.filter((b) => b.finding.kind === 'crash');
    expect(crashes.map((b) => b.finding.signature)).toEqual(['crash ftruncate RangeError: planted at three pages']);
    expect(crashes[0].count).toBeGreaterThan(1);
    const files = readdirSync(dir);
    expect(files).toEqual([expect.stringMatching(/^crash-ftruncate-[0-9a-f]{8}\.trace\.jsonl$/)]);
    const text = readFileSync(join(dir, files[0]), 'utf8');
    expect(text.split('\n').filter((l) => l.startsWith('{"op"')).length).toBeLessThanOrEqual(3);
    expect(runProgram(text).findings.map((f) => f.signature)).toContain('crash ftruncate RangeError: planted at three pages');
  });
});

describe('the CLI', () => {
  const cli = (...argv: string[]): { code: number; out: string[]; err: string[] } => {
    const out: string[] = [];
    const err: string[] = [];
    const code = main(argv, (x) => out.push(x), (x) => err.push(x)) as number;
    return { code, out, err };
  };

  test('cocosim fuzz runs, reports and exits 0 when it finds nothing; bad options are exit 2', { timeout: 60000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-fuzz-'));
    const r = cli('fuzz', '--calls', '150', '--seed', '7', '--platform', 'none/upstream', '--js-shapes', '50', '--save', dir);
    expect(r.out.at(-1)).toMatch(/^fuzz: 150 calls in 2 programs and 50 direct calls on none\/upstream: .* 0 distinct findings$/);
    expect(r.code).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    expect(cli('fuzz', '--platform', 'nope').code).toBe(2);
    expect(cli('fuzz', '--calls', '-3').code).toBe(2);
  });

  test('cocosim replay --debug-vm: a failed call that changed the state is a simulator bug (exit 3)', () => {
    plantBug('fchmod', function (this: Process, fd: unknown) {
      this.ftruncate(fd, 8192);
      this.errno = 1;
      return -1;
    });
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-dvm-'));
    const file = join(dir, 't.trace.jsonl');
    writeFileSync(file, programText({ platform, lines: [{ op: 'memfd_create', name: 'm', as: 'm' }, { op: 'fchmod', fd: '$m', mode: 0 }] }));
    expect(cli('replay', file).code).toBe(0);
    const r = cli('replay', '--debug-vm', file);
    expect(r.code).toBe(3);
    expect(r.err.join('\n')).toMatch(/fchmod\(3, 0\) failed \(errno 1\) and changed the state: mm.tasks/);
  });
});
