import { describe, expect, test } from 'vitest';
import { Errno } from '@cocosim/core';
import { File, Inode, Process, S_IFCHR, open_fmode, type FileOperations } from '@cocosim/mm';
import { createPlatform, type Platform } from '../host.js';
import { defineOp, getOp, registerIoctl, runOp } from './ops.js';
import { formatTraceError } from './parse.js';
import { compileTrace, formatCrash, formatWarning, replay } from './replay.js';
import { formatMismatch, makeResult } from './results.js';
import { parseTrace } from './parse.js';

function platform(): Platform {
  return createPlatform({ mm: { nr_pages: 4096 } });
}

/** Replays trace lines (no header) on a small platform. */
function run(lines: string[], p: Platform = platform()) {
  return replay(`${lines.join('\n')}\n`, { file: 't.jsonl', platform: p });
}

/**
 * /dev/cocosim-test: a device whose ioctl 0x1234 fills struct out-fields (the shape of
 * KVM_CHECK_EXTENSION-like calls), so that struct arguments can be tested before KVM lands.
 */
function withTestDevice(p: Platform): Platform {
  const fops: FileOperations = {
    unlocked_ioctl: (_file, cmd, arg) => {
      if (cmd === 0x1235) return -Errno.EOPNOTSUPP;
      if (cmd === 0x1237) return 0;
      if (cmd === 0x1236) {
        // A warning as WarnSink.record() stores it, without the test harness's strict observer.
        p.kernel.warn.warnings.push({ kind: 'WARN_ON_ONCE', message: 'test device: odd request', ts: 0 });
        return 0;
      }
      if (cmd !== 0x1234) return -Errno.ENOTTY;
      if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
      const s = arg as Record<string, unknown>;
      if (s.reserved !== undefined && s.reserved !== 0) return -Errno.EINVAL;
      s.out = typeof s.in === 'number' ? s.in * 2 : 0;
      s.big = 0xffff_ffff_ffff_f000n;
      return 7;
    },
  };
  p.kernel.register_device('/dev/cocosim-test', (kernel, flags) => {
    const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, fops, kernel.next_mapping_id());
    return new File(inode, fops, flags, open_fmode(flags));
  });
  return p;
}

describe('replaying open, close and ioctl', () => {
  test('results as C sees them: EBADF and ENOTTY by name', () => {
    const r = run([
      '{"op": "open", "path": "/dev/null", "as": "n"}',
      '{"op": "ioctl", "fd": "$n", "req": "0xae00"}',
      '{"op": "ioctl", "fd": "$n", "req": "FIOCLEX"}',
      '{"op": "close", "fd": "$n"}',
      '{"op": "close", "fd": "$n"}',
      '{"op": "ioctl", "fd": -1, "req": 1}',
    ]);
    expect(r.errors).toEqual([]);
    expect(r.results).toEqual([
      { i: 0, op: 'open', ret: 3 },
      { i: 1, op: 'ioctl', ret: -1, errno: 'ENOTTY' },
      { i: 2, op: 'ioctl', ret: 0 },
      { i: 3, op: 'close', ret: 0 },
      { i: 4, op: 'close', ret: -1, errno: 'EBADF' },
      { i: 5, op: 'ioctl', ret: -1, errno: 'EBADF' },
    ]);
    expect(r.platform).toEqual({ vendor: 'none', design: 'upstream' });
  });

  test('a failed call binds -1, as the C variable would hold it', () => {
    const r = run([
      '{"op": "open", "path": "/dev/nonexistent", "as": "x"}',
      '{"op": "close", "fd": "$x"}',
    ]);
    expect(r.results[1]).toEqual({ i: 1, op: 'close', ret: -1, errno: 'EBADF' });
  });

  test('defaults: open\'s flags are O_RDWR', () => {
    const p = platform();
    run(['{"op": "open", "path": "/dev/null"}', '{"op": "open", "path": "/dev/null", "flags": "O_RDWR|O_CLOEXEC"}'], p);
    // Each replay has its own process; the platform is shared, so a second process sees its own fds.
    const q = p.process();
    expect(q.task.files.open_fds()).toEqual([0, 1, 2]);
  });

  test('struct arguments: out-fields the call wrote come back in "arg"', () => {
    const r = run([
      '{"op": "open", "path": "/dev/cocosim-test", "as": "t"}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1234", "arg": {"in": 21, "flags": "O_CLOEXEC"}}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1234", "arg": {"in": 1, "reserved": 1}}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1234", "arg": 0}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1234", "arg": {"in": 2}, "expect": {"ret": 7, "arg": {"out": 4}}}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1234", "arg": {"in": 2}, "expect": {"arg": {"out": 5}}}',
    ], withTestDevice(platform()));
    expect(r.results.slice(1, 4)).toEqual([
      { i: 1, op: 'ioctl', ret: 7, arg: { out: 42, big: '0xfffffffffffff000' } },
      { i: 2, op: 'ioctl', ret: -1, errno: 'EINVAL' },
      { i: 3, op: 'ioctl', ret: -1, errno: 'EFAULT' },
    ]);
    expect(r.mismatches.map(formatMismatch)).toEqual([
      't.jsonl:6:82: call 5 (ioctl): arg: expected {"out":5}, got {"out":4,"big":"0xfffffffffffff000"}',
    ]);
  });
});

describe('ioctls described with registerIoctl', () => {
  test('their out-fields come back after every call, failed or not, as the oracle reports them', () => {
    registerIoctl(0x1235, { outFields: ['gpa', 'size'] });
    const r = run([
      '{"op": "open", "path": "/dev/cocosim-test", "as": "t"}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1235", "arg": {"gpa": 4096, "flags": 0}}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1235", "arg": 3}',
    ], withTestDevice(platform()));
    expect(r.results.slice(1)).toEqual([
      { i: 1, op: 'ioctl', ret: -1, errno: 'EOPNOTSUPP', arg: { gpa: 4096, size: 0 } },
      { i: 2, op: 'ioctl', ret: -1, errno: 'EOPNOTSUPP' },
    ]);
  });

  test('an exit hook adds the vCPU exit (KVM_RUN), after ret and errno', () => {
    registerIoctl(0x1237, { exit: (_p, fd) => ({ reason: 'KVM_EXIT_MMIO', mmio: { fd, data: Uint8Array.of(0xab) } }) });
    const r = run([
      '{"op": "open", "path": "/dev/cocosim-test", "as": "t"}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1237"}',
    ], withTestDevice(platform()));
    expect(r.results[1]).toEqual({ i: 1, op: 'ioctl', ret: 0, exit: { reason: 'KVM_EXIT_MMIO', mmio: { fd: 3, data: 'ab' } } });
    expect(Object.keys(r.results[1])).toEqual(['i', 'op', 'ret', 'exit']);
  });
});

describe('kernel warnings', () => {
  test('are reported with the call that raised them', () => {
    const r = run([
      '{"op": "open", "path": "/dev/cocosim-test", "as": "t"}',
      '{"op": "ioctl", "fd": "$t", "req": "0x1236"}',
    ], withTestDevice(platform()));
    expect(r.warnings.map(formatWarning)).toEqual(['t.jsonl:2: call 1 (ioctl): kernel warning: WARN_ON_ONCE: test device: odd request']);
  });
});

describe('guest accesses', () => {
  test('an exit comes back in "exit", with data as hex; a failed KVM_RUN keeps its errno', () => {
    const p = platform().process();
    const op = getOp('guest_store')!;
    const mmio = { reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 0x100000, len: 4, is_write: 1, data: Uint8Array.of(0x11, 0x22, 0x33, 0x44) } };
    expect(makeResult(0, 'guest_store', op.toResult(mmio, p, [], []))).toEqual({
      i: 0, op: 'guest_store', ret: 0, exit: { reason: 'KVM_EXIT_MMIO', mmio: { phys_addr: 1048576, len: 4, is_write: 1, data: '11223344' } },
    });
    p.errno = Errno.EFAULT;
    const fault = { ret: -1, exit: { reason: 'KVM_EXIT_MEMORY_FAULT', memory_fault: { flags: 0, gpa: 4096n, size: 4096n } } };
    expect(makeResult(1, 'guest_load', getOp('guest_load')!.toResult(fault, p, [], []))).toEqual({
      i: 1, op: 'guest_load', ret: -1, errno: 'EFAULT', exit: { reason: 'KVM_EXIT_MEMORY_FAULT', memory_fault: { flags: 0, gpa: 4096, size: 4096 } },
    });
    expect(makeResult(2, 'guest_load', getOp('guest_load')!.toResult(Uint8Array.of(0x5a), p, [], []))).toEqual({ i: 2, op: 'guest_load', ret: 0, data: '5a' });
  });
});

describe('loads and stores', () => {
  test('a signal record is a signal: ret -1 with signal and si_code names', () => {
    const p = platform().process();
    const r = getOp('load')!.toResult({ signo: 7, si_code: 2, si_addr: 0x7f0000003000n }, p, [], []);
    expect(makeResult(0, 'load', r)).toEqual({ i: 0, op: 'load', ret: -1, signal: 'SIGBUS', si_code: 'BUS_ADRERR' });
    const named = getOp('load')!.toResult({ signo: 'SIGSEGV', si_code: 'SEGV_MAPERR', si_addr: 0n }, p, [], []);
    expect(makeResult(0, 'load', named)).toEqual({ i: 0, op: 'load', ret: -1, signal: 'SIGSEGV', si_code: 'SEGV_MAPERR' });
    expect(makeResult(1, 'store', getOp('store')!.toResult(0, p, [], []))).toEqual({ i: 1, op: 'store', ret: 0 });
  });
});

describe('expectations', () => {
  test('that hold: no mismatches', () => {
    const r = run([
      '{"op": "open", "path": "/dev/null", "as": "n", "expect": {"ret": 3}}',
      '{"op": "close", "fd": "$n", "expect": {"ret": 0, "errno": null, "signal": null}}',
      '{"op": "close", "fd": "$n", "expect": {"ret": "-1", "errno": "EBADF"}}',
      '{"op": "close", "fd": 99, "expect": {"errno": "EBADF", "op": "close", "i": 3}}',
    ]);
    expect(r.mismatches).toEqual([]);
  });

  test('that fail: each mismatch with its line, column, field, expected and got', () => {
    const r = run([
      '{"op": "open", "path": "/dev/null", "as": "n"}',
      '{"op": "close", "fd": 99, "expect": {"ret": 0, "errno": "ENOTTY"}}',
      '{"op": "close", "fd": "$n", "expect": {"errno": "EBADF"}}',
    ]);
    expect(r.mismatches.map(formatMismatch)).toEqual([
      't.jsonl:2:45: call 1 (close): ret: expected 0, got -1 (errno EBADF)',
      't.jsonl:2:57: call 1 (close): errno: expected "ENOTTY", got "EBADF"',
      't.jsonl:3:49: call 2 (close): errno: expected "EBADF", got nothing',
    ]);
    expect(r.mismatches[0]).toMatchObject({ line: 2, field: 'ret', expected: 0, got: -1 });
  });

  test('bound values are compared by success only', () => {
    const r = run([
      '{"op": "open", "path": "/dev/null", "as": "a", "expect": {"ret": 1000}}',
      '{"op": "open", "path": "/dev/null", "as": "b", "expect": {"ret": -1}}',
      '{"op": "open", "path": "/dev/nope", "as": "c", "expect": {"ret": 5}}',
      '{"op": "open", "path": "/dev/null", "expect": {"ret": 1000}}',
    ]);
    expect(r.mismatches.map(formatMismatch)).toEqual([
      't.jsonl:2:66: call 1 (open): ret: expected failure (-1; a bound value is compared by success only), got 4',
      't.jsonl:3:66: call 2 (open): ret: expected success (5; a bound value is compared by success only), got -1 (errno ENOENT)',
      't.jsonl:4:55: call 3 (open): ret: expected 1000, got 5',
    ]);
  });

  test('data expectations compare hex, fill and digests alike', () => {
    const long = new Uint8Array(5000).fill(0xaa);
    const res = makeResult(0, 'load', { ret: 0, data: long });
    expect(res.data).toEqual({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), len: 5000 });
    expect(makeResult(0, 'load', { ret: 0, data: Uint8Array.of(1, 0xff) }).data).toBe('01ff');
    expect(makeResult(0, 'load', { ret: 0, data: new Uint8Array(4096) }).data).toBe('00'.repeat(4096));
  });
});

describe('trace errors: nothing runs', () => {
  test('unknown op, unknown flag name, bad reference, bad argument: all reported with line:column', () => {
    const r = run([
      '{"op": "open", "path": "/dev/null", "flags": "O_RDWR|O_CLOXEC", "as": "n"}',
      '{"op": "clsoe", "fd": 3}',
      '{"op": "close", "fd": "$m"}',
      '{"op": "close", "fd": "$n+x"}',
      '{"op": "close", "fdd": 3}',
      '{"op": "close", "fd": 3, "expect": {"errno": "EWHAT", "rett": 0}}',
    ]);
    expect(r.results).toEqual([]);
    expect(r.errors.map(formatTraceError)).toEqual([
      't.jsonl:1:54: unknown name "O_CLOXEC" (did you mean O_CLOEXEC?)',
      't.jsonl:2:8: unknown op "clsoe" (did you mean close?); `cocosim ops` lists them',
      't.jsonl:3:23: unknown handle "$m": no earlier line has "as": "m" (bound so far: $n)',
      't.jsonl:4:23: bad reference "$n+x": expected "$name", "$name+N" or "$name-N" (the offset of $n is +N or -N, N in decimal or 0x hex)',
      't.jsonl:5:8: missing argument "fd" of close',
      't.jsonl:5:17: unknown argument "fdd" of close (did you mean fd? its arguments: fd)',
      't.jsonl:6:46: expected an errno name such as "EINVAL" for "errno", found "EWHAT"',
      't.jsonl:6:55: unknown result field "rett" in expect (result fields: "i", "op", "ret", "errno", "signal", "si_code", "data", "exit", "arg", "stat")',
    ]);
  });

  test('a buffer the replayer would have to allocate beyond 1 GiB', () => {
    const r = run(['{"op": "read", "fd": 3, "count": "0x100000000000"}']);
    expect(r.errors.map(formatTraceError)).toEqual(['t.jsonl:1:34: count 17592186044416 is larger than the replayer allocates (1073741824 bytes)']);
  });

  test('a line with an unknown op still binds its handle, so its users are not errors too', () => {
    const r = run(['{"op": "memfd_craete", "name": "x", "flags": 0, "as": "m"}', '{"op": "close", "fd": "$m"}']);
    expect(r.errors.map(formatTraceError)).toEqual(['t.jsonl:1:8: unknown op "memfd_craete" (did you mean memfd_create?); `cocosim ops` lists them']);
  });

  test('a handle is usable only after the line that binds it', () => {
    const r = run(['{"op": "close", "fd": "$n"}', '{"op": "open", "path": "/dev/null", "as": "n"}']);
    expect(r.errors.map(formatTraceError)).toEqual([
      't.jsonl:1:23: unknown handle "$n": no earlier line has "as": "n" (no earlier line binds a handle)',
    ]);
  });

  test('unknown vendor or design, from the header or the options', () => {
    const t = parseTrace('{"trace": 1, "platform": {"vendor": "keystone", "design": "upstream"}}\n{"op": "close", "fd": 3}\n', 'h.jsonl');
    expect(compileTrace(t).errors.map(formatTraceError)).toEqual(['h.jsonl:1:37: unknown vendor "keystone" (known vendors: none, sw_protected, tdx, sev, cca, pkvm, mktme)']);
    expect(compileTrace(t, { vendor: 'none' }).errors).toEqual([]);
    expect(compileTrace(t, { vendor: 'none', design: 'gmem-v8' }).errors.map(formatTraceError)).toEqual([
      'h.jsonl: unknown design "gmem-v8" (known designs: upstream, kvm_protected, hwpoison, per_vma, page_guest, fd_rfc, memfd_seal, mfd_inaccessible, memfd_restricted, gmem_inplace, gmem_hugetlb, mktme_encrypt, sev_pinned, snp_anon), given with --design',
    ]);
  });
});

describe('a platform without an op answers as a kernel without it', () => {
  test('a process lacking the method: ENOSYS, never a crash', () => {
    const p = platform();
    const op = defineOp({ name: 'frobnicate', args: [], returns: '0', doc: 'a syscall no platform has' });
    expect(runOp(op, { platform: p, process: p.process() }, [])).toEqual({ ret: -1, errno: Errno.ENOSYS });
  });
});

describe('ops beyond the generic table', () => {
  test('lseek moves the position read uses; fchmod', () => {
    const r = run([
      '{"op": "memfd_create", "name": "m", "flags": 0, "as": "m"}',
      '{"op": "write", "fd": "$m", "data": "0102030405"}',
      '{"op": "lseek", "fd": "$m", "offset": 1, "whence": "SEEK_SET", "expect": {"ret": 1}}',
      '{"op": "read", "fd": "$m", "count": 2, "expect": {"ret": 2, "data": "0203"}}',
      '{"op": "lseek", "fd": "$m", "offset": -1, "whence": "SEEK_SET", "expect": {"ret": -1, "errno": "EINVAL"}}',
      '{"op": "fchmod", "fd": "$m", "mode": 420, "expect": {"ret": 0}}',
    ]);
    expect(r.errors).toEqual([]);
    expect(r.mismatches.map(formatMismatch)).toEqual([]);
  });
});

describe('an op whose arguments pick the method', () => {
  test('mlock without flags is mlock(2), with flags mlock2(2); a process without mlock2 answers ENOSYS', () => {
    const calls: unknown[][] = [];
    const base = platform();
    const withMlock = (both: boolean): Platform => ({
      ...base,
      process: () => Object.assign(base.process(), {
        mlock: (...a: unknown[]) => (calls.push(['mlock', ...a]), 0),
        // A platform whose process lacks mlock2 (an older kernel): the own property hides the method.
        mlock2: both ? (...a: unknown[]) => (calls.push(['mlock2', ...a]), 0) : undefined,
      }),
    });
    const lines = ['{"op": "mlock", "addr": 4096, "length": 8192}', '{"op": "mlock", "addr": 4096, "length": 8192, "flags": 1}'];
    expect(run(lines, withMlock(true)).results.map((r) => r.ret)).toEqual([0, 0]);
    expect(calls).toEqual([['mlock', 4096, 8192], ['mlock2', 4096, 8192, 1]]);
    expect(run(lines, withMlock(false)).results[1]).toEqual({ i: 1, op: 'mlock', ret: -1, errno: 'ENOSYS' });
  });
});

describe('a simulator exception is a crash, not a trace error', () => {
  test('the replay stops at the call and reports it', () => {
    class Broken extends Process {
      override close(): number {
        throw new Error('boom');
      }
    }
    const base = platform();
    const p: Platform = { ...base, process: () => new Broken(base.kernel) };
    const r = run(['{"op": "open", "path": "/dev/null"}', '{"op": "close", "fd": 3}', '{"op": "close", "fd": 3}'], p);
    expect(r.results).toHaveLength(1);
    expect(r.crash).toMatchObject({ line: 2, i: 1, op: 'close' });
    expect(formatCrash(r.crash!)).toMatch(/^t\.jsonl:2: call 1 \(close\): the simulator threw \(a simulator bug, not a trace error\):\nError: boom/);
  });
});
