/**
 * The kernel oracle (test/oracle/oracle.c): builds it with the system `cc`, checks its replayer
 * errors and value forms on any Linux machine, and replays test/traces/oracle-selftest.trace.jsonl
 * on the real kernel where /dev/kvm is usable, failing on any `expect` the kernel does not meet.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { TEST_ASSERT, TEST_ASSERT_EQ, TEST_REQUIRE } from '../lib/test_util.js';

const oracleDir = fileURLToPath(new URL('.', import.meta.url));
const binary = `${oracleDir}build/cocosim-oracle`;
const selftest = fileURLToPath(new URL('../traces/oracle-selftest.trace.jsonl', import.meta.url));

function haveCc(): boolean {
  return process.platform === 'linux' && spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
}

function haveKvm(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

let built: SpawnSyncReturns<string> | undefined;

/** Build once per run (test/oracle/build.sh); skip the calling test where `cc` is missing. */
function buildOracle(): SpawnSyncReturns<string> {
  TEST_REQUIRE(haveCc(), 'no C compiler `cc` on this machine: the kernel oracle cannot be built');
  built ??= spawnSync('bash', [`${oracleDir}build.sh`], { encoding: 'utf8' });
  TEST_ASSERT(built.status === 0 && existsSync(binary), `test/oracle/build.sh failed:\n${built.stderr}`);
  return built;
}

function runOracle(input: string, args: string[] = []): SpawnSyncReturns<string> {
  buildOracle();
  return spawnSync(binary, args, { input, encoding: 'utf8', timeout: 60_000 });
}

interface Result {
  i: number;
  op: string;
  ret: number;
  errno?: string;
  signal?: string;
  si_code?: string;
  data?: string | { sha256: string; len: number };
  exit?: Record<string, unknown>;
  arg?: Record<string, unknown>;
  stat?: { size: number; blocks: number };
}

function results(r: SpawnSyncReturns<string>): Result[] {
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Result);
}

const trace = (...calls: object[]): string => calls.map((c) => JSON.stringify(c)).join('\n') + '\n';

describe('kernel oracle', () => {
  test('builds with cc -Wall -Wextra without a warning', () => {
    const r = buildOracle();
    TEST_ASSERT_EQ(/warning/i.test(r.stderr), false, `no compiler warnings (stderr: ${r.stderr})`);
  }, 120_000);

  test('a replayer error names the line and column and exits 2', () => {
    const bad = runOracle('{"op":"memfd_create","name":"x"}\n\n{"op": "close", "fd": 3 "x": 1}\n');
    TEST_ASSERT_EQ(bad.status, 2);
    expect(bad.stderr).toContain("line 3, column 25: expected ',' or '}'");
    TEST_ASSERT_EQ(bad.stdout, '', 'nothing runs before the whole trace is validated');

    const unknown = runOracle(trace({ op: 'mmap', length: 4096, prot: 'PROT_READ|PROT_FOO', flags: 'MAP_PRIVATE|MAP_ANONYMOUS' }));
    TEST_ASSERT_EQ(unknown.status, 2);
    expect(unknown.stderr).toMatch(/line 1, column \d+: unknown name "PROT_FOO" in "prot"/);

    const unbound = runOracle(trace({ op: 'close', fd: '$nope' }));
    TEST_ASSERT_EQ(unbound.status, 2);
    expect(unbound.stderr).toContain('reference "$nope" is not bound');

    const missing = runOracle(trace({ op: 'munmap', addr: 0, lenght: 4096 }));
    TEST_ASSERT_EQ(missing.status, 2);
    expect(missing.stderr).toContain('op "munmap" needs "length"');

    const extra = runOracle(trace({ op: 'munmap', addr: 0, length: 4096, advice: 'MADV_DONTNEED' }));
    TEST_ASSERT_EQ(extra.status, 2);
    expect(extra.stderr).toContain('op "munmap" has no argument "advice"');
  }, 120_000);

  test('memfd, mmap, load/store with signals, and the sha256 form of long data', () => {
    const r = runOracle(trace(
      { op: 'memfd_create', name: 'oracle-test', flags: 'MFD_CLOEXEC|MFD_ALLOW_SEALING', as: 'fd' },
      { op: 'ftruncate', fd: '$fd', length: '0x2000' },
      { op: 'mmap', length: 12288, prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_SHARED', fd: '$fd', as: 'p' },
      { op: 'store', addr: '$p', data: { fill: 0xab, len: 8192 } },
      { op: 'load', addr: '$p', len: 8192 },
      { op: 'load', addr: '$p+4094', len: 4 },
      { op: 'store', addr: '$p+8190', data: '01020304' },
      { op: 'pread', fd: '$fd', count: 16, offset: 8190 },
      { op: 'fstat', fd: '$fd' },
      { op: 'fcntl', fd: '$fd', cmd: 'F_ADD_SEALS', arg: 'F_SEAL_GROW' },
      { op: 'fcntl', fd: '$fd', cmd: 'F_GET_SEALS' },
      { op: 'close', fd: -1 },
      { op: 'close', fd: '$fd', expect: { ret: 0 } },
    ), ['--header']);
    TEST_ASSERT_EQ(r.status, 0, `oracle exit status (stderr: ${r.stderr})`);
    const [header, ...res] = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    TEST_ASSERT(typeof header.kernel === 'string', '--header prints {"kernel": <uname -r>} first');
    const byOp = res as unknown as Result[];
    TEST_ASSERT_EQ(byOp.map((x) => x.i), [...Array(13).keys()]);
    TEST_ASSERT(byOp[0].ret >= 0);
    TEST_ASSERT_EQ(byOp[4].data, { sha256: createHash('sha256').update(Buffer.alloc(8192, 0xab)).digest('hex'), len: 8192 });
    TEST_ASSERT_EQ(byOp[5], { i: 5, op: 'load', ret: 0, data: 'abababab' });
    TEST_ASSERT_EQ(byOp[6], { i: 6, op: 'store', ret: -1, signal: 'SIGBUS', si_code: 'BUS_ADRERR' });
    TEST_ASSERT_EQ(byOp[7], { i: 7, op: 'pread', ret: 2, data: '0102' }, 'bytes before the faulting page are stored');
    TEST_ASSERT_EQ(byOp[8].stat, { size: 8192, blocks: 16 });
    TEST_ASSERT_EQ(byOp[10].ret, 4);
    TEST_ASSERT_EQ(byOp[11], { i: 11, op: 'close', ret: -1, errno: 'EBADF' });
  }, 120_000);

  test('an expectation the kernel does not meet is reported and exits 1', () => {
    const r = runOracle(trace({ op: 'close', fd: -1, expect: { ret: 0 } }));
    TEST_ASSERT_EQ(r.status, 1);
    TEST_ASSERT_EQ(results(r), [{ i: 0, op: 'close', ret: -1, errno: 'EBADF' }]);
    expect(r.stderr).toContain('line 1 (i=0, close): expect.ret is 0, the kernel said -1');
  }, 120_000);

  test('replays oracle-selftest.trace.jsonl on this kernel and meets every expectation', () => {
    TEST_REQUIRE(haveKvm(), '/dev/kvm is not usable here: the KVM part of the oracle self-test needs it');
    /* the trace was recorded on a KVM with guest_memfd; a KVM built without it (no
     * CONFIG_KVM_GUEST_MEMFD: KVM_CAP_GUEST_MEMFD is 0, KVM_CREATE_GUEST_MEMFD is ENOTTY) is
     * another kernel, not a disagreement */
    const cap = results(runOracle(trace(
      { op: 'open', path: '/dev/kvm', as: 'kvm' },
      { op: 'ioctl', fd: '$kvm', req: 'KVM_CHECK_EXTENSION', arg: 'KVM_CAP_GUEST_MEMFD' },
    )));
    TEST_REQUIRE(cap[1]?.ret === 1, 'this kernel\'s KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0): the oracle self-test was recorded on one that has');
    const text = readFileSync(selftest, 'utf8');
    const calls = text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('//') && !l.includes('"trace"'));
    const r = runOracle(text);
    TEST_ASSERT_EQ(r.status, 0, `oracle exit status (stderr: ${r.stderr})`);
    const res = results(r);
    TEST_ASSERT_EQ(res.length, calls.length, 'one result line per call');
    TEST_ASSERT(res.some((x) => x.op === 'guest_load' && x.data !== undefined), 'the guest ran');
  }, 120_000);
});
