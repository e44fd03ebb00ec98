import { describe, expect, test } from 'vitest';
import { VirtualClock } from '../clock.js';
import { Gpa, Pfn } from '../types.js';
import { RingSink, findEvent, findEvents, matchesFields } from './ring.js';
import { Tracer, type TraceRecord } from './tracer.js';

const rec = (name: string, args: TraceRecord['args'] = {}, ts = 0): TraceRecord => ({ ph: 'i', name, ts, pid: 1, tid: 0, args });

describe('RingSink', () => {
  test('keeps the newest `capacity` records, oldest first, and counts what it dropped', () => {
    const ring = new RingSink(3);
    for (let i = 0; i < 3; i++) ring.record(rec('e', { i }));
    expect(ring.events().map((r) => r.args.i)).toEqual([0, 1, 2]);
    expect(ring.dropped).toBe(0);
    for (let i = 3; i < 8; i++) ring.record(rec('e', { i }));
    expect(ring.size).toBe(3);
    expect(ring.events().map((r) => r.args.i)).toEqual([5, 6, 7]);
    expect(ring.dropped).toBe(5);
  });

  test('capacity 1 keeps only the last record', () => {
    const ring = new RingSink(1);
    ring.record(rec('a'));
    ring.record(rec('b'));
    expect(ring.events().map((r) => r.name)).toEqual(['b']);
    expect(ring.dropped).toBe(1);
  });

  test.each([0, -1, 1.5, NaN, Infinity])('capacity %s is a RangeError', (c) => {
    expect(() => new RingSink(c)).toThrow(RangeError);
  });

  test('events(name) filters; clear() forgets records and the dropped count', () => {
    const ring = new RingSink(2);
    ring.record(rec('a'));
    ring.record(rec('b'));
    ring.record(rec('a'));
    expect(ring.events('a')).toHaveLength(1);
    expect(ring.events('b')).toHaveLength(1);
    ring.clear();
    expect(ring.events()).toEqual([]);
    expect(ring.dropped).toBe(0);
    ring.record(rec('c'));
    expect(ring.events().map((r) => r.name)).toEqual(['c']);
  });

  test('events() returns a copy', () => {
    const ring = new RingSink(4);
    ring.record(rec('a'));
    ring.events().pop();
    expect(ring.size).toBe(1);
  });
});

describe('finding events by name and field subset', () => {
  test('matches on every given field, by value, with bigints exact', () => {
    const tracer = new Tracer(new VirtualClock());
    const ring = new RingSink();
    tracer.addSink(ring);
    tracer.emit('memory_failure_event', { pfn: Pfn(0x10), type: 'dirty LRU page', result: 'Recovered' });
    tracer.emit('memory_failure_event', { pfn: Pfn(0x11), type: 'guest_memfd page', result: 'Delayed' });
    tracer.emit('kvm_page_fault', { vcpu_id: 1, fault_address: Gpa(0x1_0000_0000n), error_code: 0x2_0000_0000_0004n });

    expect(ring.find('memory_failure_event')).toHaveLength(2);
    expect(ring.find('memory_failure_event', { result: 'Delayed' }).map((r) => r.args.pfn)).toEqual([0x11]);
    expect(ring.find('memory_failure_event', { result: 'Delayed', pfn: Pfn(0x10) })).toEqual([]);
    expect(ring.find('kvm_page_fault', { fault_address: Gpa(0x1_0000_0000n) })).toHaveLength(1);
    expect(findEvent(ring.events(), 'kvm_page_fault', { error_code: 0x2_0000_0000_0004n })?.args.vcpu_id).toBe(1);
    expect(findEvent(ring.events(), 'kvm_page_fault', { error_code: 0x2_0000_0000_0005n })).toBeUndefined();
    expect(findEvents(ring.events(), 'tlb_flush')).toEqual([]);
  });

  test('an absent field does not match, even against undefined-valued arguments', () => {
    const r = rec('kvm_page_fault', { vcpu_id: 0 });
    expect(matchesFields(r, { vcpu_id: 0 })).toBe(true);
    expect(matchesFields(r, { guest_rip: 0n })).toBe(false);
    expect(matchesFields(r, { guest_rip: undefined })).toBe(true);
    expect(matchesFields(r, { vcpu_id: '0' })).toBe(false);
    expect(matchesFields(rec('x', { n: 1n }), { n: 1 })).toBe(false);
    expect(matchesFields(r, { toString: 'x' })).toBe(false);
  });
});
