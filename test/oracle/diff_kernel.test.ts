/**
 * `cocosim diff-kernel TRACE` (bench/src/trace/diff_kernel.ts): the simulator against the live
 * kernel, side by side. Where /dev/kvm or `cc` is missing the comparisons are skipped
 * (TEST_REQUIRE), but the refusal itself is checked everywhere: the command must never pretend
 * to agree when there is no kernel to ask.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { TEST_ASSERT_EQ, TEST_REQUIRE } from '../lib/test_util.js';

/* The test package has no project reference to bench: its sources are loaded by path (see corpus.test.ts). */
type Out = (s: string) => void;

interface DiffKernelModule {
  diffKernelCommand(opts: { trace: string | undefined; kvmDevice?: string }, out: Out, err: Out): number;
  kernelOracleProblems(): string[];
  readonly EXIT_NO_KERNEL: number;
}

const source = fileURLToPath(new URL('../../bench/src/trace/diff_kernel.ts', import.meta.url));
const dk = (await import(source)) as DiffKernelModule;

const dir = mkdtempSync(join(tmpdir(), 'cocosim-diff-kernel-'));

function traceFile(name: string, calls: object[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${calls.map((c) => JSON.stringify(c)).join('\n')}\n`);
  return path;
}

function run(trace: string, kvmDevice?: string): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = dk.diffKernelCommand({ trace, kvmDevice }, (s) => out.push(s), (s) => err.push(s));
  return { code, out, err };
}

function requireKernel(): void {
  const problems = dk.kernelOracleProblems();
  TEST_REQUIRE(problems.length === 0, `no live kernel to compare with: ${problems.join('; ')}`);
}

const agreeing = traceFile('agree.trace.jsonl', [
  { op: 'memfd_create', name: 'diff-kernel', flags: 'MFD_ALLOW_SEALING', as: 'fd' },
  { op: 'ftruncate', fd: '$fd', length: 8192 },
  { op: 'mmap', length: 12288, prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_SHARED', fd: '$fd', as: 'p' },
  { op: 'store', addr: '$p+4094', data: '01020304' },
  { op: 'load', addr: '$p+8192', len: 1 },
  { op: 'fstat', fd: '$fd' },
  { op: 'close', fd: '$fd' },
  { op: 'close', fd: '$fd' },
]);

describe('cocosim diff-kernel', () => {
  test('without a KVM device it says so and exits 4, comparing nothing', () => {
    const r = run(agreeing, '/dev/cocosim-no-kvm');
    TEST_ASSERT_EQ(r.code, dk.EXIT_NO_KERNEL);
    TEST_ASSERT_EQ(r.out, [], 'no table, no agreement summary');
    expect(r.err[0]).toContain('/dev/cocosim-no-kvm is missing or not readable and writable');
    expect(r.err.join('\n')).toContain('nothing was compared');
  });

  test('no trace, or an unreadable one, is a usage error (exit 2)', () => {
    TEST_ASSERT_EQ(dk.diffKernelCommand({ trace: undefined }, () => {}, () => {}), 2);
    TEST_ASSERT_EQ(run(join(dir, 'missing.trace.jsonl')).code, 2);
  });

  test('a trace both sides agree on: every row, then "all N calls agree", exit 0', () => {
    requireKernel();
    const r = run(agreeing);
    TEST_ASSERT_EQ(r.code, 0, `exit status (stderr: ${r.err.join('\n')})`);
    expect(r.out[0]).toMatch(/agree\.trace\.jsonl: kernel \S+ \(live, test\/oracle\) against the simulator \(none\/upstream\)/);
    expect(r.out).toContainEqual(expect.stringMatching(/^ +\d+ +4 +load +-1 SIGBUS BUS_ADRERR +-1 SIGBUS BUS_ADRERR$/));
    expect(r.out).toContainEqual(expect.stringMatching(/^ +\d+ +5 +fstat +0 size 8192 blocks 16 +0 size 8192 blocks 16$/));
    expect(r.out.at(-1)).toBe('agreement: all 8 calls agree');
  }, 120_000);

  test('a difference is marked in its row, spelt out, and counted; exit 1', () => {
    requireKernel();
    // An address not bound with "as" compares exactly, and the kernel's is randomized: it always differs.
    const path = traceFile('differ.trace.jsonl', [
      { op: 'mmap', length: 4096, prot: 'PROT_READ', flags: 'MAP_PRIVATE|MAP_ANONYMOUS' },
      { op: 'close', fd: -1 },
    ]);
    const r = run(path);
    TEST_ASSERT_EQ(r.code, 1);
    expect(r.out).toContainEqual(expect.stringMatching(/^! +1 +0 +mmap +0x[0-9a-f]+ +0x[0-9a-f]+$/));
    expect(r.out).toContainEqual(expect.stringMatching(/^ +2 +1 +close +-1 EBADF +-1 EBADF$/));
    expect(r.out).toContain('differences (kernel first):');
    expect(r.out).toContainEqual(expect.stringMatching(/^ +ret: kernel \d+, simulator \d+$/));
    expect(r.out.at(-1)).toBe('agreement: 1 of 2 calls agree (50%); 1 differ: calls 0 (line 1)');
  }, 120_000);

  test('a trace the oracle refuses is a trace error (exit 2), with the oracle\'s words', () => {
    requireKernel();
    const r = run(traceFile('refused.trace.jsonl', [{ op: 'frobnicate' }]));
    TEST_ASSERT_EQ(r.code, 2);
    expect(r.err.join('\n')).toMatch(/the kernel oracle refused the trace:[\s\S]*frobnicate/);
  }, 120_000);
});
