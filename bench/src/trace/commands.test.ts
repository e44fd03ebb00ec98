import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { main } from '../cli.js';
import { allOps } from './ops.js';
import { formatTraceError } from './parse.js';
import { replay } from './replay.js';

const dir = mkdtempSync(join(tmpdir(), 'cocosim-trace-'));
const samples = fileURLToPath(new URL('../../../test/traces/', import.meta.url));

function file(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Runs the CLI; its exit code, stdout lines and stderr lines. */
function cli(...argv: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(argv, (s) => out.push(s), (s) => err.push(s)) as number;
  return { code, out, err };
}

const passing = file('pass.jsonl', [
  '{"trace": 1, "platform": {"vendor": "none", "design": "upstream"}}',
  '{"op": "open", "path": "/dev/null", "as": "n", "expect": {"ret": 3}}',
  '{"op": "ioctl", "fd": "$n", "req": "0xae00", "expect": {"errno": "ENOTTY"}}',
  '{"op": "close", "fd": "$n", "expect": {"ret": 0}}',
]);

/** Every design, in the order the CLI lists them. */
const DESIGN_LIST = 'upstream, kvm_protected, hwpoison, per_vma, page_guest, fd_rfc, memfd_seal, mfd_inaccessible, memfd_restricted, gmem_inplace, gmem_hugetlb, mktme_encrypt, sev_pinned, snp_anon';

describe('cocosim replay', () => {
  test('exit 0 when every expectation holds; results on stdout', () => {
    const r = cli('replay', passing);
    expect(r).toEqual({
      code: 0,
      out: [
        '{"i":0,"op":"open","ret":3}',
        '{"i":1,"op":"ioctl","ret":-1,"errno":"ENOTTY"}',
        '{"i":2,"op":"close","ret":0}',
      ],
      err: [],
    });
  });

  test('exit 1 on a mismatch, reported on stderr with line and column', () => {
    const path = file('fail.jsonl', [
      '{"op": "close", "fd": 99, "expect": {"errno": "ENOTTY"}}',
      '{"op": "close", "fd": 98, "expect": {"errno": "EBADF"}}',
    ]);
    const r = cli('replay', path);
    expect(r.code).toBe(1);
    expect(r.out).toHaveLength(2);
    expect(r.err).toEqual([
      `${path}:1:47: call 0 (close): errno: expected "ENOTTY", got "EBADF"`,
      `${path}: 1 expectation failed`,
    ]);
  });

  test('--expect-only prints no results', () => {
    expect(cli('replay', passing, '--expect-only')).toEqual({ code: 0, out: [], err: [] });
  });

  test('exit 2 on a trace error, with line:column, and nothing replayed', () => {
    const path = file('bad.jsonl', ['{"op": "close", "fd": 3}', '{"op": "close" "fd": 3}']);
    const r = cli('replay', path);
    expect(r).toEqual({ code: 2, out: [], err: [`${path}:2:16: expected ',' or '}' after a property value, found '"'`] });
  });

  test('exit 2 for an unknown vendor or design, from the header or the command line', () => {
    const path = file('keystone.jsonl', ['{"trace": 1, "platform": {"vendor": "keystone"}}', '{"op": "close", "fd": 3}']);
    expect(cli('replay', path)).toEqual({ code: 2, out: [], err: [`${path}:1:37: unknown vendor "keystone" (known vendors: none, sw_protected, tdx, sev, cca, pkvm, mktme)`] });
    expect(cli('replay', path, '--vendor', 'none').code).toBe(0);
    expect(cli('replay', passing, '--design', 'nope')).toEqual({
      code: 2, out: [], err: [`${passing}: unknown design "nope" (known designs: ${DESIGN_LIST}), given with --design`],
    });
  });

  test('exit 2 without a trace, or with one that cannot be read', () => {
    expect(cli('replay').code).toBe(2);
    const r = cli('replay', join(dir, 'missing.jsonl'));
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^cocosim replay: cannot read .*missing\.jsonl: ENOENT/);
  });

  test('the usage text lists the commands', () => {
    const r = cli('help');
    expect(r.out[0]).toContain('replay TRACE');
    expect(r.out[0]).toContain('ops ');
    expect(r.out[0]).toContain('--expect-only');
  });
});

describe('cocosim ops', () => {
  test('lists every op with its arguments, results and platforms', () => {
    const r = cli('ops');
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe('| op | arguments | returns (`ret`) | platforms | notes |');
    for (const op of allOps()) expect(r.out.some((l) => l.startsWith(`| \`${op.name}\` |`))).toBe(true);
    expect(r.out).toContainEqual(expect.stringMatching(/^\| `close` \| fd: fd \| 0 \| every platform \(98\) \|/));
    expect(r.out).toContainEqual(expect.stringMatching(/^\| `mmap` \| addr: u64 = 0, length: u64, prot: flags PROT_\*, flags: flags MAP_\*, fd: fd = -1, offset: int = 0 \|/));
    expect(r.out).toContainEqual(expect.stringMatching(/^\| `guest_load` \| vcpu: fd, gpa: u64, len: u64 \|.*\| every platform \(98\) \|/));
  });

  test('the generic part of the spec is all there', () => {
    const generic = ['memfd_create', 'close', 'ftruncate', 'fallocate', 'fcntl', 'fstat', 'read', 'pread', 'write', 'pwrite',
      'mmap', 'munmap', 'mprotect', 'madvise', 'mlock', 'munlock', 'load', 'store', 'process_vm_readv', 'process_vm_writev',
      'open', 'ioctl', 'guest_load', 'guest_store'];
    expect(allOps().filter((o) => o.generic).map((o) => o.name).sort()).toEqual([...generic].sort());
  });
});

/*
 * test/traces/simulated/ holds samples that use ops of simulated hardware (a VFIO device and its
 * DMA), which no kernel can record: they stay out of the kernel corpus of test/traces.
 */
describe('the sample traces in test/traces', () => {
  const named = ['fd-basics.trace.jsonl', 'ioctl-basics.trace.jsonl', 'memfd-basics.trace.jsonl', 'mmap-basics.trace.jsonl', 'simulated/vfio-basics.trace.jsonl'];

  test.each(named)('%s replays with every expectation met', (name) => {
    const r = replay(readFileSync(join(samples, name), 'utf8'), { file: name });
    expect(r.errors.map(formatTraceError)).toEqual([]);
    expect(r.mismatches).toEqual([]);
    expect(r.results.length).toBeGreaterThan(5);
  });

  test('they are all there', () => {
    expect(readdirSync(samples, { recursive: true })).toEqual(expect.arrayContaining(named));
  });
});
