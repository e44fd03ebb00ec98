import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { boundCalls, compareResults, formatDifferences, parseResults } from './compare.js';
import { names } from './names.js';
import { formatTraceError, parseTrace } from './parse.js';
import { sameField, sameValue, type TraceResult } from './results.js';

const sim: TraceResult[] = [
  { i: 0, op: 'memfd_create', ret: 3 },
  { i: 1, op: 'ftruncate', ret: 0 },
  { i: 2, op: 'mmap', ret: '0x7f0000000000' },
  { i: 3, op: 'close', ret: -1, errno: 'EBADF' },
];

describe('comparing result streams', () => {
  test('identical streams have no differences', () => {
    expect(compareResults(sim, sim)).toEqual([]);
  });

  test('bound values by success only; everything else exactly', () => {
    const kernel: TraceResult[] = [
      { i: 0, op: 'memfd_create', ret: 5 },
      { i: 1, op: 'ftruncate', ret: 0 },
      { i: 2, op: 'mmap', ret: '0x7ff3c1200000' },
      { i: 3, op: 'close', ret: -1, errno: 'EINVAL' },
    ];
    expect(compareResults(sim, kernel, { bound: new Set([0, 2]) })).toEqual([
      { i: 3, op: 'close', field: 'errno', left: 'EBADF', right: 'EINVAL', bound: false },
    ]);
    const unbound = compareResults(sim, kernel);
    expect(unbound.map((d) => `${d.i}:${d.field}`)).toEqual(['0:ret', '2:ret', '3:errno']);
  });

  test('a bound call that fails on one side differs', () => {
    const kernel: TraceResult[] = [{ i: 0, op: 'memfd_create', ret: -1, errno: 'EINVAL' }];
    expect(compareResults(sim.slice(0, 1), kernel, { bound: new Set([0]) })).toEqual([
      { i: 0, op: 'memfd_create', field: 'ret', left: 3, right: -1, bound: true },
      { i: 0, op: 'memfd_create', field: 'errno', left: undefined, right: 'EINVAL', bound: false },
    ]);
  });

  test('integers compare by value however spelt; names equal the numbers they name', () => {
    expect(sameValue(4096, '0x1000', false)).toBe(true);
    expect(sameValue('4096', 4096, false)).toBe(true);
    expect(sameValue({ size: 4096, blocks: 8 }, { blocks: '8', size: '0x1000' }, false)).toBe(true);
    expect(sameValue({ size: 4096 }, { size: 4096, blocks: 8 }, false)).toBe(false);
    expect(sameValue({ size: 4096 }, { size: 4096, blocks: 8 }, true)).toBe(true);
    expect(sameValue('O_CLOEXEC', 0o2000000, false, names)).toBe(true);
    expect(sameValue('O_CLOEXEC', 0o2000000, false)).toBe(false);
    expect(sameValue([1, 2], [1, 2, 3], true)).toBe(false);
    expect(sameValue('EBADF', 'EBADF', false)).toBe(true);
  });

  test('data: hex in either case; long data by digest, whichever side spells it out', () => {
    const opts = { subset: false, bound: false };
    expect(sameField('data', 'DEADbeef', 'deadbeef', opts)).toBe(true);
    expect(sameField('data', 'deadbeef', 'deadbee0', opts)).toBe(false);
    const bytes = new Uint8Array(5000).fill(7);
    const digest = { sha256: createHash('sha256').update(bytes).digest('hex'), len: 5000 };
    expect(sameField('data', Buffer.from(bytes).toString('hex'), digest, opts)).toBe(true);
    expect(sameField('data', digest, { ...digest, len: 4999 }, opts)).toBe(false);
    expect(sameField('data', undefined, '00', opts)).toBe(false);
  });

  test('a call only one stream has, paired by i', () => {
    const d = compareResults(sim, sim.slice(0, 2));
    expect(d).toEqual([
      { i: 2, op: 'mmap', bound: false, only: 'left' },
      { i: 3, op: 'close', bound: false, only: 'left' },
    ]);
  });

  test('the readable diff names the call, its line, each field and both sides', () => {
    const trace = parseTrace([
      '{"op": "memfd_create", "name": "x", "flags": 0, "as": "m"}',
      '{"op": "ftruncate", "fd": "$m", "length": 4096}',
      '{"op": "mmap", "length": 4096, "prot": 3, "flags": 1, "fd": "$m", "as": "a"}',
      '{"op": "close", "fd": 99}',
    ].join('\n'));
    const kernel: TraceResult[] = [
      { i: 0, op: 'memfd_create', ret: 4 },
      { i: 1, op: 'ftruncate', ret: -1, errno: 'EPERM' },
      { i: 3, op: 'close', ret: -1, errno: 'EBADF' },
    ];
    const diffs = compareResults(sim, kernel, { bound: boundCalls(trace) });
    expect(formatDifferences(diffs, { left: 'simulator', right: 'kernel' }, trace)).toEqual([
      'call 1 (ftruncate), line 2:',
      '  ret: simulator 0, kernel -1',
      '  errno: simulator nothing, kernel "EPERM"',
      'call 2 (mmap), line 3: only in the simulator results',
    ]);
  });
});

describe('result files', () => {
  test('parse result lines; bad lines are errors with positions', () => {
    const { results, meta, errors } = parseResults('{"kernel": "6.18.0-pvm"}\n{"i": 0, "op": "close", "ret": -1, "errno": "EBADF"}\n// recorded on Linux 6.18\n{"i": 1}\n[]\n', 'r.jsonl');
    expect(results).toEqual([{ i: 0, op: 'close', ret: -1, errno: 'EBADF' }]);
    expect(meta).toEqual({ kernel: '6.18.0-pvm' });
    expect(errors.map(formatTraceError)).toEqual([
      'r.jsonl:4:1: expected a result {"i": N, "op": NAME, "ret": N, ...}',
      'r.jsonl:5:1: expected a result object on each line, found an array',
    ]);
  });
});
