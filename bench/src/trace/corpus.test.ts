import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import { main } from '../cli.js';
import { createPlatform } from '../host.js';
import { checkRecording, corpusTraces, disagreementKeys, recordingOf } from './corpus.js';
import { replay } from './replay.js';
import { TraceWriter } from './writer.js';

const dir = mkdtempSync(join(tmpdir(), 'cocosim-corpus-'));
const samples = fileURLToPath(new URL('../../../test/traces/', import.meta.url));

const lines = (...objs: object[]): string => `${objs.map((o) => JSON.stringify(o)).join('\n')}\n`;

function cli(...argv: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(argv, (s) => out.push(s), (s) => err.push(s)) as number;
  return { code, out, err };
}

const trace = lines(
  { op: 'open', path: '/dev/null', as: 'n' },
  { op: 'close', fd: '$n' },
  { op: 'close', fd: '$n' },
);

describe('the corpus: a trace against its kernel recording', () => {
  test('NAME.trace.jsonl is recorded as NAME.kernel.jsonl; the corpus lists traces only', () => {
    expect(recordingOf('test/traces/memfd-seals.trace.jsonl')).toBe('test/traces/memfd-seals.kernel.jsonl');
    const traces = corpusTraces(samples);
    expect(traces).toContain('fd-basics.trace.jsonl');
    expect(traces.every((t) => t.endsWith('.trace.jsonl'))).toBe(true);
  });

  test('agreement: bound values by success only, everything else exactly', () => {
    const rec = lines({ kernel: '6.18.0' }, { i: 0, op: 'open', ret: 17 }, { i: 1, op: 'close', ret: 0 }, { i: 2, op: 'close', ret: -1, errno: 'EBADF' });
    const c = checkRecording(trace, rec, { file: 't.trace.jsonl' });
    expect(c.kernel).toBe('6.18.0');
    expect(c.recordingErrors).toEqual([]);
    expect(c.differences).toEqual([]);
    expect(c.lacks).toEqual([]);
  });

  test('a difference comes back with its line and both values', () => {
    const rec = lines({ kernel: '6.18.0' }, { i: 0, op: 'open', ret: 3 }, { i: 1, op: 'close', ret: 0 }, { i: 2, op: 'close', ret: -1, errno: 'EINTR' });
    const c = checkRecording(trace, rec, { file: 't.trace.jsonl' });
    expect(disagreementKeys(c)).toEqual([{ i: 2, line: 3, op: 'close', field: 'errno', kernel: 'EINTR', simulator: 'EBADF', bound: false }]);
  });

  test('a stale or headless recording is reported, not compared silently', () => {
    const c = checkRecording(trace, lines({ i: 0, op: 'open', ret: 3 }, { i: 1, op: 'mmap', ret: 0 }), { file: 't.trace.jsonl' });
    expect(c.recordingErrors).toEqual([
      't.kernel.jsonl: no {"kernel": "<uname -r>"} line before the results (record it with test/oracle/record.sh)',
      "t.kernel.jsonl: 2 results for the trace's 3 calls: the recording is stale (re-record it with test/oracle/record.sh)",
      't.kernel.jsonl: result 1 is of op "mmap" but call 1 of the trace is "close": the recording is stale',
    ]);
  });
});

describe('cocosim replay --compare', () => {
  test('agreeing with a recording: exit 0, results on stdout, nothing on stderr', () => {
    const r = cli('replay', join(samples, 'fd-basics.trace.jsonl'), '--compare', join(samples, 'fd-basics.kernel.jsonl'));
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out.length).toBe(8);
  });

  test('a difference: each on stderr, named after the recording\'s kernel; exit 1', () => {
    const t = join(dir, 'd.trace.jsonl');
    const k = join(dir, 'd.kernel.jsonl');
    writeFileSync(t, trace);
    writeFileSync(k, lines({ kernel: '6.18.0' }, { i: 0, op: 'open', ret: 3 }, { i: 1, op: 'close', ret: 0 }, { i: 2, op: 'close', ret: 0 }));
    const r = cli('replay', t, '--compare', k);
    expect(r.code).toBe(1);
    expect(r.err).toEqual([
      `${t}: call 2 (close), line 3:`,
      `${t}:   ret: simulator -1, kernel 6.18.0 0`,
      `${t}:   errno: simulator "EBADF", kernel 6.18.0 nothing`,
      `${t}: 1 of 3 calls differ from ${k}`,
    ]);
  });

  test('an unreadable or malformed result file is an error (exit 2)', () => {
    const t = join(dir, 'e.trace.jsonl');
    writeFileSync(t, trace);
    expect(cli('replay', t, '--compare', join(dir, 'none.jsonl')).code).toBe(2);
    const bad = join(dir, 'bad.kernel.jsonl');
    writeFileSync(bad, '{"i": 0, "op": "open", "ret": 3\n');
    expect(cli('replay', t, '--compare', bad).code).toBe(2);
  });
});

describe('process_vm_readv / process_vm_writev ops: the own process, one iovec each side', () => {
  test('replayed through the C signature of the Process methods', () => {
    const r = replay(lines(
      { op: 'mmap', length: 8192, prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_PRIVATE|MAP_ANONYMOUS', as: 'a' },
      { op: 'process_vm_writev', addr: '$a+4094', data: '11223344' },
      { op: 'process_vm_readv', addr: '$a+4093', len: 6 },
      { op: 'process_vm_readv', addr: '$a+8192', len: 1 },
      { op: 'process_vm_readv', addr: '$a', len: 0 },
    ));
    expect(r.errors).toEqual([]);
    expect(r.results.slice(1)).toEqual([
      { i: 1, op: 'process_vm_writev', ret: 4 },
      { i: 2, op: 'process_vm_readv', ret: 6, data: '001122334400' },
      { i: 3, op: 'process_vm_readv', ret: -1, errno: 'EFAULT' },
      { i: 4, op: 'process_vm_readv', ret: 0, data: '' },
    ]);
  });

  test('the trace writer records the single-iovec form, and says when a call has no trace form', () => {
    const w = new TraceWriter();
    const p = w.record(createPlatform({ mm: { nr_pages: 4096 } }).process());
    const a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const buf = new Uint8Array(2);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: a, iov_len: 2 }], 1, 0)).toBe(2);
    expect(p.process_vm_writev(p, [Uint8Array.of(7)], 1, [{ iov_base: a, iov_len: 1 }], 1, 0)).toBe(1);
    expect(p.process_vm_readv(p, [new Uint8Array(1), new Uint8Array(1)], 2, [{ iov_base: a, iov_len: 2 }], 1, 0)).toBe(2);
    const out = w.lines().slice(1);
    expect(out.slice(1, 3)).toEqual([
      '{"op":"process_vm_readv","addr":"$map","len":2}',
      '{"op":"process_vm_writev","addr":"$map","data":"07"}',
    ]);
    expect(out[3]).toMatch(/^\/\/ not representable in a trace, left out: process_vm_readv: argument addr = an array/);
  });

  test('the process-vm trace of the corpus reads what the kernel read', () => {
    const t = readFileSync(join(samples, 'process-vm.trace.jsonl'), 'utf8');
    const c = checkRecording(t, readFileSync(join(samples, 'process-vm.kernel.jsonl'), 'utf8'));
    expect(c.differences).toEqual([]);
  });
});
