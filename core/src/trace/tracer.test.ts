import { describe, expect, test } from 'vitest';
import { KernelBug } from '../bug.js';
import { VirtualClock } from '../clock.js';
import { Gpa, Pfn } from '../types.js';
import { RingSink } from './ring.js';
import { HOST_PID, Tracer, traceId, vmTrackPid, type TraceRecord, type TraceSink } from './tracer.js';

function setup() {
  const clock = new VirtualClock();
  const tracer = new Tracer(clock);
  const ring = new RingSink();
  tracer.addSink(ring);
  return { clock, tracer, ring };
}

describe('tracepoints', () => {
  test('emit records the virtual time, the current track and a copy of the fields', () => {
    const { clock, tracer, ring } = setup();
    clock.advance(1234);
    tracer.setTrack({ pid: vmTrackPid(2), tid: 3, cpu: 5 });
    const fields = { pfn: Pfn(0x42), order: 0 };
    tracer.emit('mm_page_free', fields);
    fields.order = 9;
    expect(ring.events()).toEqual([{ ph: 'i', name: 'mm_page_free', ts: 1234, pid: 102, tid: 3, cpu: 5, args: { pfn: 0x42, order: 0 } }]);
  });

  test('enabled() is false with nothing attached, and follows the filter', () => {
    const tracer = new Tracer(new VirtualClock());
    expect(tracer.enabled('kvm_page_fault')).toBe(false);
    tracer.emit('kvm_page_fault', { vcpu_id: 0, fault_address: Gpa(0), error_code: 0n });
    const ring = new RingSink();
    tracer.addSink(ring);
    expect(tracer.enabled('kvm_page_fault')).toBe(true);
    tracer.setFilter(['memory_failure_event']);
    expect(tracer.enabled('kvm_page_fault')).toBe(false);
    expect(tracer.enabled('memory_failure_event')).toBe(true);
    tracer.emit('kvm_page_fault', { vcpu_id: 0, fault_address: Gpa(0), error_code: 0n });
    tracer.emit('memory_failure_event', { pfn: Pfn(7), type: 'free buddy page', result: 'Recovered' });
    expect(ring.events().map((r) => r.name)).toEqual(['memory_failure_event']);
    tracer.setFilter(undefined);
    expect(tracer.enabled('kvm_page_fault')).toBe(true);
    expect(tracer.removeSink(ring)).toBe(true);
    expect(tracer.removeSink(ring)).toBe(false);
    expect(tracer.enabled('kvm_page_fault')).toBe(false);
  });

  test('typed listeners see the fields and the record, and can unsubscribe', () => {
    const tracer = new Tracer(new VirtualClock(5));
    const seen: [number, number][] = [];
    const off = tracer.on('tlb_flush', (f, rec) => seen.push([f.pages, rec.ts]));
    expect(tracer.enabled('tlb_flush')).toBe(true);
    expect(tracer.enabled('mm_page_free')).toBe(false);
    tracer.emit('tlb_flush', { reason: 1, pages: 8 });
    off();
    tracer.emit('tlb_flush', { reason: 1, pages: 9 });
    expect(seen).toEqual([[8, 5]]);
    expect(tracer.enabled('tlb_flush')).toBe(false);
  });

  test('with no sink, enabled() follows the listeners as they come and go, however they go', () => {
    const tracer = new Tracer(new VirtualClock());
    const offA = tracer.on('tlb_flush', () => undefined);
    const offB = tracer.on('tlb_flush', () => undefined);
    offA();
    offA();
    expect(tracer.enabled('tlb_flush')).toBe(true);
    offB();
    expect(tracer.enabled('tlb_flush')).toBe(false);
    let calls = 0;
    const offC = tracer.on('mm_page_free', () => {
      calls++;
      throw new Error('listener bug');
    });
    expect(tracer.enabled('mm_page_free')).toBe(true);
    tracer.emit('mm_page_free', { pfn: Pfn(1), order: 0 });
    expect(tracer.enabled('mm_page_free')).toBe(false);
    offC();
    const seen: number[] = [];
    tracer.on('mm_page_free', (f) => seen.push(f.pfn));
    tracer.emit('mm_page_free', { pfn: Pfn(2), order: 0 });
    expect([calls, seen]).toEqual([1, [2]]);
  });

  test('names given before a sink attaches are replayed to it', () => {
    const tracer = new Tracer(new VirtualClock());
    tracer.nameProcess(HOST_PID, 'host');
    tracer.nameThread(HOST_PID, 7, 'kvm-mmu');
    tracer.nameThread(HOST_PID, 7, 'kvm-mmu2');
    const ring = new RingSink();
    tracer.addSink(ring);
    tracer.addSink(ring);
    expect(ring.events().map((r) => [r.ph, r.name, r.args.name])).toEqual([
      ['M', 'process_name', 'host'],
      ['M', 'thread_name', 'kvm-mmu2'],
    ]);
  });

  test('withTrack restores the previous track, also when fn throws', () => {
    const { tracer, ring } = setup();
    const vcpu = { pid: vmTrackPid(1), tid: 0 };
    expect(() =>
      tracer.withTrack(vcpu, () => {
        tracer.emit('tlb_flush', { reason: 0, pages: -1 });
        throw new Error('x');
      }),
    ).toThrow('x');
    expect(tracer.currentTrack).toEqual({ pid: HOST_PID, tid: 0 });
    expect(ring.events()[0]).toMatchObject({ pid: 101, tid: 0 });
  });
});

describe('a throwing sink never changes simulation control flow', () => {
  test('it is caught, detached and reported; the other sinks and the caller carry on', () => {
    const { tracer, ring } = setup();
    let calls = 0;
    const bad: TraceSink = {
      record() {
        calls++;
        throw new Error('disk full');
      },
    };
    tracer.addSink(bad);
    const after = new RingSink();
    tracer.addSink(after);
    let reached = false;
    const r = tracer.span('kvm_mmu_page_fault', undefined, () => {
      tracer.emit('mm_page_free', { pfn: Pfn(1), order: 0 });
      tracer.emit('mm_page_free', { pfn: Pfn(2), order: 0 });
      reached = true;
      return 42;
    });
    expect(r).toBe(42);
    expect(reached).toBe(true);
    expect(calls).toBe(1);
    expect(tracer.failures).toHaveLength(1);
    expect(tracer.failures[0]!.sink).toBe(bad);
    expect((tracer.failures[0]!.error as Error).message).toBe('disk full');
    for (const sink of [ring, after]) {
      expect(sink.events().map((e) => e.name)).toEqual(['mm_page_free', 'cocosim_warn', 'mm_page_free', 'kvm_mmu_page_fault']);
      expect(sink.find('cocosim_warn', { kind: 'trace_sink' })[0]!.args.message).toBe('a trace sink threw and was detached: disk full');
    }
  });

  test('a sink that throws on the metadata replay is detached at once', () => {
    const tracer = new Tracer(new VirtualClock());
    tracer.nameProcess(1, 'host');
    tracer.addSink({
      record() {
        throw 'not even an Error';
      },
    });
    expect(tracer.failures).toHaveLength(1);
    expect(tracer.enabled('x')).toBe(false);
  });

  test('a throwing listener is detached; other listeners and sinks still get the event', () => {
    const { tracer, ring } = setup();
    const got: number[] = [];
    tracer.on('mm_page_free', () => {
      throw new Error('listener bug');
    });
    tracer.on('mm_page_free', (f) => got.push(f.pfn));
    tracer.emit('mm_page_free', { pfn: Pfn(1), order: 0 });
    tracer.emit('mm_page_free', { pfn: Pfn(2), order: 0 });
    expect(got).toEqual([1, 2]);
    expect(tracer.failures.map((f) => f.listener)).toEqual(['mm_page_free']);
    expect(ring.find('cocosim_warn')[0]!.args.message).toBe('a listener of mm_page_free threw and was detached: listener bug');
    expect(ring.events('mm_page_free')).toHaveLength(2);
  });

  test('every sink throwing still leaves the caller untouched', () => {
    const tracer = new Tracer(new VirtualClock());
    for (let i = 0; i < 3; i++) {
      tracer.addSink({
        record() {
          throw new Error(`sink ${i}`);
        },
      });
    }
    expect(() => tracer.emit('tlb_flush', { reason: 2, pages: 1 })).not.toThrow();
    expect(tracer.failures.map((f) => (f.error as Error).message)).toEqual(['sink 0', 'sink 1', 'sink 2']);
    expect(tracer.enabled('tlb_flush')).toBe(false);
  });
});

describe('spans', () => {
  test('span() records an X slice with the virtual duration; nested spans close first', () => {
    const { clock, tracer, ring } = setup();
    clock.advance(10);
    const v = tracer.span('kvm_mmu_page_fault', { gfn: 0x100 }, () => {
      clock.advance(5);
      tracer.span('kvm_gmem_get_pfn', undefined, () => clock.advance(300));
      clock.advance(1);
      return 'done';
    });
    expect(v).toBe('done');
    expect(ring.events()).toEqual([
      { ph: 'X', name: 'kvm_gmem_get_pfn', ts: 15, dur: 300, pid: 1, tid: 0, args: {} },
      { ph: 'X', name: 'kvm_mmu_page_fault', ts: 10, dur: 306, pid: 1, tid: 0, args: { gfn: 0x100 } },
    ]);
  });

  test('begin/end pair up; end() without begin or with the wrong name is a bug, traced or not', () => {
    const traced = setup().tracer;
    const silent = new Tracer(new VirtualClock());
    for (const t of [traced, silent]) {
      expect(() => t.end()).toThrow(KernelBug);
      t.begin('a');
      t.begin('b');
      expect(() => t.end('a')).toThrow(/innermost open span is "b"/);
      t.end('b');
      t.end('a');
      expect(t.spanDepth).toBe(0);
    }
  });

  test('when fn throws, the open spans are closed at the throw and the exception propagates', () => {
    const { clock, tracer, ring } = setup();
    expect(() =>
      tracer.span('outer', undefined, () => {
        clock.advance(2);
        tracer.begin('inner');
        clock.advance(3);
        throw new Error('EFAULT path');
      }),
    ).toThrow('EFAULT path');
    expect(tracer.spanDepth).toBe(0);
    expect(ring.events().map((r) => [r.name, r.ts, r.dur])).toEqual([
      ['inner', 2, 3],
      ['outer', 0, 5],
    ]);
  });

  test('a span begun on one track is drawn on it even if the track changes inside', () => {
    const { tracer, ring } = setup();
    tracer.span('vcpu_run', undefined, () => tracer.setTrack({ pid: 101, tid: 1 }));
    expect(ring.events()[0]).toMatchObject({ pid: 1, tid: 0 });
  });
});

describe('async lifetimes and counters', () => {
  test('b/e carry cat and a hex id; openAsync lists what is still open', () => {
    const { clock, tracer, ring } = setup();
    tracer.asyncBegin('gup', 'pin', 0x1234, { npages: 1 });
    clock.advance(50);
    tracer.asyncBegin('vfio', 'vfio_dma', 0xfee00000n);
    tracer.asyncEnd('gup', 'pin', 0x1234);
    expect(ring.events().map((r) => [r.ph, r.name, r.cat, r.id, r.ts])).toEqual([
      ['b', 'pin', 'gup', '0x1234', 0],
      ['b', 'vfio_dma', 'vfio', '0xfee00000', 50],
      ['e', 'pin', 'gup', '0x1234', 50],
    ]);
    expect(tracer.openAsync()).toEqual([{ cat: 'vfio', name: 'vfio_dma', id: '0xfee00000', ts: 50, pid: 1, tid: 0 }]);
  });

  test('traceId: numbers and bigints as hex, strings as given', () => {
    expect(traceId(0)).toBe('0x0');
    expect(traceId(2 ** 52 - 1)).toBe('0xfffffffffffff');
    expect(traceId(0xffff_ffff_ffff_ffffn)).toBe('0xffffffffffffffff');
    expect(traceId(-1n)).toBe('-0x1');
    expect(traceId(1.5)).toBe('1.5');
    expect(traceId('conv-7')).toBe('conv-7');
  });

  test('counters: one value or several series', () => {
    const { tracer, ring } = setup();
    tracer.counter('nr_free_pages', 1024);
    tracer.counter('vm1_pages', { private: 10, shared: 2 });
    expect(ring.events().map((r) => [r.ph, r.name, r.args])).toEqual([
      ['C', 'nr_free_pages', { value: 1024 }],
      ['C', 'vm1_pages', { private: 10, shared: 2 }],
    ]);
  });

  test('nothing is recorded or tracked while disabled', () => {
    const tracer = new Tracer(new VirtualClock());
    tracer.asyncBegin('gup', 'pin', 1);
    tracer.counter('nr_pinned', 1);
    expect(tracer.openAsync()).toEqual([]);
    const recs: TraceRecord[] = [];
    tracer.addSink({ record: (r) => recs.push(r) });
    expect(recs).toEqual([]);
  });
});
