import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ORACLE_BINARY, ccAvailable, ensureOracle } from '../trace/diff_kernel.js';
import { kernelDiff } from './kernel_diff.js';

/* The kernel oracle runs without /dev/kvm for generic programs: it needs Linux and a C compiler. */
const canRun = process.platform === 'linux' && ccAvailable();

describe.skipIf(!canRun)('fuzz --kernel-diff: generic programs on this kernel and on the simulator', () => {
  it('the oracle stops (guarded) at a call that would unmap its own libraries, after the calls before it', () => {
    expect(ensureOracle()).toBeUndefined();
    const trace = [
      '{"trace":1,"platform":{"vendor":"none","design":"upstream"}}',
      '{"op":"mmap","addr":0,"length":4096,"prot":"PROT_READ","flags":"MAP_PRIVATE|MAP_ANONYMOUS","as":"a"}',
      /* 16 MiB up from the first mapping reaches the libraries (right above it; below TASK_SIZE, as --guard runs without ASLR) */
      '{"op":"munmap","addr":"$a","length":"0x1000000"}',
      '{"op":"load","addr":"$a","len":1}',
    ].join('\n');
    const o = spawnSync(ORACLE_BINARY, ['--guard', '--no-check', '-'], { input: trace, encoding: 'utf8' });
    expect(o.status).toBe(0);
    const lines = o.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toEqual({ i: 1, op: 'munmap', guarded: true });
  });

  it('the oracle stops at an allocation beyond its budget instead of running the machine out of memory', () => {
    const trace = [
      '{"trace":1,"platform":{"vendor":"none","design":"upstream"}}',
      '{"op":"memfd_create","name":"big","flags":0,"as":"m"}',
      '{"op":"fallocate","fd":"$m","mode":0,"offset":0,"len":"0x10000000000"}',
    ].join('\n');
    const o = spawnSync(ORACLE_BINARY, ['--guard', '--no-check', '-'], { input: trace, encoding: 'utf8' });
    expect(o.stdout.trim().split('\n').pop()).toBe('{"i":1,"op":"fallocate","guarded":true}');
  });

  it('a fixed seed: every compared call agrees with the kernel', () => {
    const r = kernelDiff({ programs: 40, seed: 'kernel-diff-test', programLength: 40 });
    if (typeof r === 'string') throw new Error(r);
    expect(r.refused).toBe(0);
    /* 40 programs of 41 calls: with guarded calls taken out, nearly all are compared (1620 of 1640 on Linux 6.18.44) */
    expect(r.compared).toBeGreaterThan(1400);
    expect(r.differences.map((d) => `${d.signature}\n${d.details.join('\n')}\n${d.program}`)).toEqual([]);
  }, 120_000);
});
