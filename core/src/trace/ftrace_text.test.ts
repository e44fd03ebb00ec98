import { describe, expect, test } from 'vitest';
import { VirtualClock } from '../clock.js';
import { Gfn, Gpa, Hva, Pfn, PgOff } from '../types.js';
import { FtraceTextSink, formatFtraceArgs, formatFtraceTimestamp, toFtraceText } from './ftrace_text.js';
import { RingSink } from './ring.js';
import { HOST_PID, Tracer, vmTrackPid } from './tracer.js';

describe('timestamps', () => {
  test.each([
    [0, '0.000000'],
    [999, '0.000000'],
    [1000, '0.000001'],
    [1999, '0.000001'],
    [999_999_999, '0.999999'],
    [1e9, '1.000000'],
    [123_456_789_012, '123.456789'],
    [2 ** 53 - 1, '9007199.254740'],
    [1500.5, '0.000001'],
  ])('%s ns -> %s', (ns, want) => {
    expect(formatFtraceTimestamp(ns)).toBe(want);
  });
});

describe('fields', () => {
  test('hex where the kernel prints hex, bigints always hex, the rest decimal', () => {
    expect(formatFtraceArgs({ pfn: 0x1234, order: 9, index: 16, i_ino: 255 })).toBe('pfn=0x1234 order=9 index=16 i_ino=0xff');
    expect(formatFtraceArgs({ size: 0x200000n, neg: -5n, errno: -14 })).toBe('size=0x200000 neg=-0x5 errno=-14');
    expect(formatFtraceArgs({ pfn: -1 })).toBe('pfn=-1');
    expect(formatFtraceArgs({ r: true, x: false, skip: undefined })).toBe('r=1 x=0');
    expect(formatFtraceArgs({ message: 'line one\nline two' })).toBe('message=line one\\nline two');
    expect(formatFtraceArgs({})).toBe('');
  });
});

describe('ftrace text', () => {
  test('golden lines', () => {
    const clock = new VirtualClock();
    const tracer = new Tracer(clock);
    const ring = new RingSink();
    tracer.addSink(ring);
    tracer.nameProcess(HOST_PID, 'host');
    tracer.nameProcess(vmTrackPid(1), 'vm1');
    tracer.nameThread(vmTrackPid(1), 0, 'vcpu0');
    tracer.nameThread(HOST_PID, 10, 'kvm-mmu');

    tracer.setTrack({ pid: vmTrackPid(1), tid: 0 });
    clock.advance(1_234_567);
    tracer.emit('kvm_page_fault', { vcpu_id: 0, guest_rip: 0xfff0n, fault_address: Gpa(0x1_0000_0000n), error_code: 0x2_0000_0000_0182n });
    tracer.setTrack({ pid: HOST_PID, tid: 10, cpu: 3 });
    clock.advance(2_000);
    tracer.span('kvm_mmu_page_fault', undefined, () => {
      tracer.emit('kvm_mmu_spte_requested', { gfn: Gfn(0x100000), pfn: Pfn(0x8f2a1), level: 1 });
      tracer.emit('kvm_tdp_mmu_spte_changed', { as_id: 0, gfn: Gfn(0x100000), level: 1, old_spte: 0n, new_spte: 0x8f2a1e77n });
    });
    tracer.setTrack({ pid: HOST_PID, tid: 99 });
    clock.advance(1e9);
    tracer.emit('mm_filemap_add_to_page_cache', { pfn: Pfn(0x8f2a1), i_ino: 0x2a, index: PgOff(512), order: 9 });
    tracer.emit('memory_failure_event', { pfn: Pfn(0x8f2a1), type: 'guest_memfd page', result: 'Delayed' });
    tracer.emit('kvm_unmap_hva_range', { start: Hva(0x7f0000000000n), end: Hva(0x7f0000200000n) });
    tracer.setTrack({ pid: 555, tid: 4 });
    tracer.emit('tlb_flush', { reason: 1, pages: -1 });
    tracer.asyncBegin('gup', 'pin', 1);
    tracer.counter('nr_pinned', 1);

    expect(toFtraceText(ring.events())).toBe(
      [
        'vcpu0-0 [000] 0.001234: kvm_page_fault: vcpu_id=0 guest_rip=0xfff0 fault_address=0x100000000 error_code=0x2000000000182',
        'kvm-mmu-10 [003] 0.001236: kvm_mmu_spte_requested: gfn=0x100000 pfn=0x8f2a1 level=1',
        'kvm-mmu-10 [003] 0.001236: kvm_tdp_mmu_spte_changed: as_id=0 gfn=0x100000 level=1 old_spte=0x0 new_spte=0x8f2a1e77',
        'host-99 [000] 1.001236: mm_filemap_add_to_page_cache: pfn=0x8f2a1 i_ino=0x2a index=512 order=9',
        'host-99 [000] 1.001236: memory_failure_event: pfn=0x8f2a1 type=guest_memfd page result=Delayed',
        'host-99 [000] 1.001236: kvm_unmap_hva_range: start=0x7f0000000000 end=0x7f0000200000',
        '<...>-4 [000] 1.001236: tlb_flush: reason=1 pages=-1',
        '',
      ].join('\n'),
    );
  });

  test('as a live sink; extra hex fields for a vendor; a line with no fields', () => {
    const tracer = new Tracer(new VirtualClock(5_000));
    const sink = new FtraceTextSink({ hexFields: ['gpa'] });
    tracer.addSink(sink);
    tracer.emit('cocosim_warn', { kind: 'WARN_ON', message: 'pincount > refcount' });
    const anyTracer = tracer as unknown as { emit(name: string, fields: object): void };
    anyTracer.emit('tdh_mem_page_aug', { gpa: 4096, level: 0 });
    anyTracer.emit('cocosim_nothing', {});
    expect(sink.lines).toEqual([
      '<...>-0 [000] 0.000005: cocosim_warn: kind=WARN_ON message=pincount > refcount',
      '<...>-0 [000] 0.000005: tdh_mem_page_aug: gpa=0x1000 level=0',
      '<...>-0 [000] 0.000005: cocosim_nothing:',
    ]);
  });
});
