import { describe, expect, test } from 'vitest';
import {
  F_ADD_SEALS, F_SEAL_GROW, F_SEAL_SHRINK, MAP_SHARED, MFD_ALLOW_SEALING, MFD_CLOEXEC, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE,
} from '@cocosim/mm';
import { createPlatform, type Platform } from '../host.js';
import { replay } from './replay.js';
import { TraceWriter } from './writer.js';

function platform(): Platform {
  return createPlatform({ mm: { nr_pages: 4096 } });
}

describe('TraceWriter: saving what a process did as a trace', () => {
  test('calls become lines; returned fds are bound and later referred to', () => {
    const w = new TraceWriter();
    const p = w.record(platform().process());
    const a = p.open('/dev/null');
    const b = p.open('/dev/zero', O_RDWR | O_CLOEXEC);
    expect(p.ioctl(a, 0x5451)).toBe(0);
    expect(p.close(a)).toBe(0);
    expect(p.close(a)).toBe(-1);
    expect(p.errno).toBe(9);
    p.close(b);
    expect(w.lines()).toEqual([
      '{"trace":1,"platform":{"vendor":"none","design":"upstream"}}',
      '{"op":"open","path":"/dev/null","as":"fd"}',
      '{"op":"open","path":"/dev/zero","flags":"O_RDWR|O_CLOEXEC","as":"fd2"}',
      '{"op":"ioctl","fd":"$fd","req":"FIOCLEX"}',
      '{"op":"close","fd":"$fd"}',
      // Once closed, fd 3 is just a number: a later open may reuse it for another file.
      '{"op":"close","fd":3}',
      '{"op":"close","fd":"$fd2"}',
    ]);
    expect(w.skipped).toEqual([]);
  });

  test('the recorded process behaves exactly as the one it wraps', () => {
    const plain = platform().process();
    const recorded = new TraceWriter().record(platform().process());
    for (const q of [plain, recorded]) {
      expect(q.open('/dev/null')).toBe(3);
      expect(q.close(7)).toBe(-1);
      expect(q.errno).toBe(9);
      q.errno = 0;
      expect(q.errno).toBe(0);
      expect(q.task.files.open_fds()).toEqual([0, 1, 2, 3]);
    }
  });

  test('with expect: true the saved trace is a test that passes when replayed', () => {
    const w = new TraceWriter({ expect: true });
    const p = w.record(platform().process());
    const fd = p.open('/dev/null');
    p.ioctl(fd, 0xae00, { slot: 1, userspace_addr: 0x1000n });
    p.close(fd);
    p.close(fd);
    p.open('/dev/none');
    const text = w.text();
    expect(text.split('\n')[2]).toBe('{"op":"ioctl","fd":"$fd","req":"KVM_GET_API_VERSION","arg":{"slot":1,"userspace_addr":4096},"expect":{"ret":-1,"errno":"ENOTTY"}}');
    const r = replay(text, { file: 'saved.jsonl', platform: platform() });
    expect(r.errors).toEqual([]);
    expect(r.mismatches).toEqual([]);
    expect(r.results.map((x) => x.errno ?? x.ret)).toEqual([3, 'ENOTTY', 0, 'EBADF', 'ENOENT']);
  });

  test('file calls: buffers become counts and data, flags names, long uniform data a fill', () => {
    const w = new TraceWriter({ expect: true });
    const p = w.record(platform().process());
    const fd = p.memfd_create('w', MFD_CLOEXEC | MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, 8192n)).toBe(0);
    expect(p.pwrite(fd, new Uint8Array(4096).fill(0xab), 4096)).toBe(4096);
    expect(p.write(fd, Uint8Array.of(1, 2))).toBe(2);
    const buf = new Uint8Array(4);
    expect(p.read(fd, buf)).toBe(4);
    expect(p.pread(fd, new Uint8Array(2), 4096)).toBe(2);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)).toBe(0);
    const st: Record<string, unknown> = {};
    expect(p.fstat(fd, st)).toBe(0);
    expect(w.lines().slice(1)).toEqual([
      '{"op":"memfd_create","name":"w","flags":"MFD_CLOEXEC|MFD_ALLOW_SEALING","as":"memfd","expect":{"ret":3}}',
      '{"op":"ftruncate","fd":"$memfd","length":8192,"expect":{"ret":0}}',
      '{"op":"pwrite","fd":"$memfd","data":{"fill":171,"len":4096},"offset":4096,"expect":{"ret":4096}}',
      '{"op":"write","fd":"$memfd","data":"0102","expect":{"ret":2}}',
      '{"op":"read","fd":"$memfd","count":4,"expect":{"ret":4,"data":"00000000"}}',
      '{"op":"pread","fd":"$memfd","count":2,"offset":4096,"expect":{"ret":2,"data":"abab"}}',
      '{"op":"fcntl","fd":"$memfd","cmd":"F_ADD_SEALS","arg":"F_SEAL_SHRINK|F_SEAL_GROW","expect":{"ret":0}}',
      '{"op":"fstat","fd":"$memfd","expect":{"ret":0,"stat":{"size":8192,"blocks":16}}}',
    ]);
    const r = replay(w.text(), { platform: platform() });
    expect(r.errors).toEqual([]);
    expect(r.mismatches).toEqual([]);
  });

  test('mappings: addresses are written relative to the mapping they point into', () => {
    const w = new TraceWriter({ expect: true });
    const p = w.record(platform().process());
    const fd = p.memfd_create('m', MFD_ALLOW_SEALING);
    p.ftruncate(fd, 8192);
    const a = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.store(a + 4096n, Uint8Array.of(1, 2))).toBe(0);
    expect(p.load(a + 4096n, 2)).toEqual(Uint8Array.of(1, 2));
    expect(p.load(a + 8192n, 1)).toMatchObject({ signo: 'SIGSEGV' });
    expect(p.munmap(a, 8192)).toBe(0);
    expect(p.load(4096n, 1)).toMatchObject({ signo: 'SIGSEGV' });
    expect(w.lines().slice(3)).toEqual([
      `{"op":"mmap","addr":0,"length":8192,"prot":"PROT_READ|PROT_WRITE","flags":"MAP_SHARED","fd":"$memfd","offset":0,"as":"map","expect":{"ret":${a}}}`,
      '{"op":"store","addr":"$map+0x1000","data":"0102","expect":{"ret":0}}',
      '{"op":"load","addr":"$map+0x1000","len":2,"expect":{"ret":0,"data":"0102"}}',
      '{"op":"load","addr":"$map+0x2000","len":1,"expect":{"ret":-1,"signal":"SIGSEGV","si_code":"SEGV_MAPERR"}}',
      '{"op":"munmap","addr":"$map","length":8192,"expect":{"ret":0}}',
      '{"op":"load","addr":4096,"len":1,"expect":{"ret":-1,"signal":"SIGSEGV","si_code":"SEGV_MAPERR"}}',
    ]);
    const r = replay(w.text(), { platform: platform() });
    expect(r.errors).toEqual([]);
    expect(r.mismatches).toEqual([]);
  });

  test('arguments a trace cannot spell are left out as comments, and listed', () => {
    const w = new TraceWriter();
    const p = w.record(platform().process());
    expect(p.close(1.5)).toBe(-1);
    expect(p.open(42 as unknown as string)).toBe(-1);
    expect(w.skipped).toEqual([
      'close: argument fd = 1.5: an fd is a C int',
      'open: argument path = 42: a path or name is a C string (or null)',
    ]);
    expect(w.lines().slice(1)).toEqual([
      '// not representable in a trace, left out: close: argument fd = 1.5: an fd is a C int',
      '// not representable in a trace, left out: open: argument path = 42: a path or name is a C string (or null)',
    ]);
    expect(replay(w.text()).errors).toEqual([]);
  });

  test('the platform names go into the header', () => {
    expect(new TraceWriter({ vendor: 'tdx', design: 'gmem-v8' }).lines()[0]).toBe('{"trace":1,"platform":{"vendor":"tdx","design":"gmem-v8"}}');
  });
});
