import { describe, expect, test } from 'vitest';
import { VirtualClock } from '../clock.js';
import { Gpa, Pfn } from '../types.js';
import { ChromeTraceSink, toChromeEvent, toChromeTrace, type ChromeTrace } from './chrome_json.js';
import { RingSink } from './ring.js';
import { HOST_PID, Tracer, vmTrackPid } from './tracer.js';

/**
 * The shape ui.perfetto.dev needs, checked strictly. Returns the list of violations.
 */
function validate(trace: unknown): string[] {
  const bad: string[] = [];
  const t = trace as ChromeTrace;
  if (typeof t !== 'object' || t === null) return ['not an object'];
  if (t.displayTimeUnit !== 'ns') bad.push('displayTimeUnit');
  if (!Array.isArray(t.traceEvents)) return [...bad, 'traceEvents'];
  const open = new Map<string, string>();
  const slices = new Map<string, [number, number, string][]>();
  t.traceEvents.forEach((e, i) => {
    const at = `event ${i} (${e.ph} ${e.name})`;
    if (typeof e.name !== 'string' || e.name === '') bad.push(`${at}: name`);
    if (!['i', 'X', 'b', 'e', 'C', 'M'].includes(e.ph)) bad.push(`${at}: ph`);
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts) || e.ts < 0) bad.push(`${at}: ts`);
    if (!Number.isInteger(e.pid) || !Number.isInteger(e.tid)) bad.push(`${at}: pid/tid`);
    for (const v of Object.values(e.args ?? {})) {
      if (!['number', 'string', 'boolean'].includes(typeof v)) bad.push(`${at}: arg type ${typeof v}`);
    }
    switch (e.ph) {
      case 'X': {
        if (typeof e.dur !== 'number' || !(e.dur >= 0)) bad.push(`${at}: dur`);
        // Compared in ns, as Perfetto does once it has read the µs values: in µs, 1.25 + 1.743
        // is 2.9930000000000003, which would make a slice that ends at 2.993 overlap the next.
        const k = `${e.pid}:${e.tid}`;
        const start = Math.round(e.ts * 1000);
        slices.set(k, [...(slices.get(k) ?? []), [start, start + Math.round((e.dur ?? 0) * 1000), e.name]]);
        break;
      }
      case 'i':
        if (e.s !== 't') bad.push(`${at}: scope`);
        break;
      case 'b':
      case 'e': {
        if (typeof e.id !== 'string' || e.id === '') bad.push(`${at}: id`);
        if (typeof e.cat !== 'string' || e.cat === '') bad.push(`${at}: cat`);
        const k = `${e.name}\0${e.id}`;
        if (e.ph === 'b') {
          if (open.has(k)) bad.push(`${at}: begun twice`);
          open.set(k, e.cat!);
        } else {
          if (open.get(k) !== e.cat) bad.push(`${at}: no matching b with cat ${e.cat}`);
          open.delete(k);
        }
        break;
      }
      case 'C':
        if (Object.keys(e.args ?? {}).length === 0) bad.push(`${at}: no counter values`);
        for (const v of Object.values(e.args ?? {})) if (typeof v !== 'number' || !Number.isFinite(v)) bad.push(`${at}: counter value`);
        break;
      case 'M':
        if (e.name !== 'process_name' && e.name !== 'thread_name') bad.push(`${at}: metadata name`);
        if (typeof e.args?.name !== 'string') bad.push(`${at}: args.name`);
        break;
    }
  });
  // Slices on one thread must nest: any two are disjoint or one contains the other.
  for (const [k, list] of slices) {
    for (const [s1, e1, n1] of list) {
      for (const [s2, e2, n2] of list) {
        const disjoint = e1 <= s2 || e2 <= s1;
        const nested = (s1 <= s2 && e2 <= e1) || (s2 <= s1 && e1 <= e2);
        if (!disjoint && !nested) bad.push(`track ${k}: ${n1} and ${n2} overlap without nesting`);
      }
    }
  }
  return bad;
}

function buildTrace() {
  const clock = new VirtualClock();
  const tracer = new Tracer(clock);
  const sink = new ChromeTraceSink();
  const ring = new RingSink();
  tracer.addSink(sink);
  tracer.addSink(ring);
  tracer.nameProcess(HOST_PID, 'host');
  tracer.nameProcess(vmTrackPid(1), 'vm1');
  tracer.nameThread(vmTrackPid(1), 0, 'vcpu0');
  tracer.nameThread(HOST_PID, 10, 'kvm-mmu');
  tracer.setTrack({ pid: vmTrackPid(1), tid: 0 });
  tracer.span('vcpu_run', { vcpu_id: 0 }, () => {
    clock.advance(1000);
    tracer.emit('kvm_page_fault', { vcpu_id: 0, fault_address: Gpa(0xffff_ffff_f000n), error_code: 0x2_0000_0000_0004n });
    tracer.span('kvm_mmu_page_fault', undefined, () => {
      clock.advance(250);
      tracer.span('kvm_gmem_get_pfn', { gfn: 0xfffffffff }, () => clock.advance(1743));
      tracer.span('kvm_tdp_mmu_map', undefined, () => clock.advance(80));
    });
    tracer.asyncBegin('conversion', 'kvm_convert', 0xfffffffff, { to: 'shared' });
    clock.advance(12_500);
  });
  tracer.setTrack({ pid: HOST_PID, tid: 10 });
  tracer.asyncBegin('gup', 'pin', 0x8f2a1);
  tracer.counter('nr_pinned', 1);
  tracer.counter('vm1_pages', { private: 511, shared: 1, huge: 2n as unknown as number, bad: NaN });
  clock.advance(0.5);
  tracer.asyncEnd('gup', 'pin', 0x8f2a1);
  tracer.asyncEnd('conversion', 'kvm_convert', 0xfffffffff);
  tracer.emit('memory_failure_event', { pfn: Pfn(0x8f2a1), type: 'guest_memfd page', result: 'Delayed' });
  tracer.emit('cocosim_warn', { kind: 'x', message: `ratio ${Infinity}` });
  return { sink, ring };
}

describe('Chrome Trace Event JSON', () => {
  test('the output has the strict shape Perfetto needs and round-trips through JSON.parse', () => {
    const { sink } = buildTrace();
    const text = sink.serialize();
    const parsed = JSON.parse(text) as ChromeTrace;
    expect(parsed).toEqual(sink.toJSON());
    expect(validate(parsed)).toEqual([]);
    expect(parsed.traceEvents.length).toBeGreaterThan(10);
    const phases = new Set(parsed.traceEvents.map((e) => e.ph));
    expect([...phases].sort()).toEqual(['C', 'M', 'X', 'b', 'e', 'i']);
  });

  test('the validator catches what Perfetto would reject', () => {
    const ok = { name: 'a', ph: 'X', ts: 0, dur: 10, pid: 1, tid: 0 };
    expect(validate({ traceEvents: [ok], displayTimeUnit: 'ns' })).toEqual([]);
    expect(validate({ traceEvents: [ok, { ...ok, name: 'b', ts: 5 }], displayTimeUnit: 'ns' })).toHaveLength(2);
    expect(validate({ traceEvents: [{ ...ok, ts: -1 }], displayTimeUnit: 'ns' })).toHaveLength(1);
    expect(validate({ traceEvents: [{ name: 'p', ph: 'e', ts: 0, pid: 1, tid: 0, id: '0x1', cat: 'gup' }], displayTimeUnit: 'ns' })).toHaveLength(1);
    expect(validate({ traceEvents: [{ name: 'process_name', ph: 'M', ts: 0, pid: 1, tid: 0, args: {} }], displayTimeUnit: 'ns' })).toHaveLength(1);
  });

  test('times are µs, metadata names tracks, instants are thread-scoped', () => {
    const { sink } = buildTrace();
    const ev = sink.toJSON().traceEvents;
    expect(ev.filter((e) => e.ph === 'M').map((e) => [e.name, e.pid, e.tid, e.args!.name])).toEqual([
      ['process_name', 1, 0, 'host'],
      ['process_name', 101, 0, 'vm1'],
      ['thread_name', 101, 0, 'vcpu0'],
      ['thread_name', 1, 10, 'kvm-mmu'],
    ]);
    expect(ev.find((e) => e.name === 'kvm_gmem_get_pfn')).toEqual({
      name: 'kvm_gmem_get_pfn', ph: 'X', ts: 1.25, dur: 1.743, pid: 101, tid: 0, args: { gfn: 0xfffffffff },
    });
    expect(ev.find((e) => e.name === 'vcpu_run')).toMatchObject({ ts: 0, dur: (1000 + 250 + 1743 + 80 + 12_500) / 1000 });
    expect(ev.find((e) => e.name === 'kvm_page_fault')).toEqual({
      name: 'kvm_page_fault', ph: 'i', s: 't', ts: 1, pid: 101, tid: 0,
      args: { vcpu_id: 0, fault_address: '0xfffffffff000', error_code: '0x2000000000004' },
    });
  });

  test('async lifetimes carry id and cat; counters carry numbers only', () => {
    const { sink } = buildTrace();
    const ev = sink.toJSON().traceEvents;
    expect(ev.filter((e) => e.name === 'pin').map((e) => [e.ph, e.id, e.cat, e.ts])).toEqual([
      ['b', '0x8f2a1', 'gup', 15.573],
      ['e', '0x8f2a1', 'gup', 15.5735],
    ]);
    expect(ev.find((e) => e.name === 'kvm_convert')).toMatchObject({ ph: 'b', id: '0xfffffffff', cat: 'conversion', args: { to: 'shared' } });
    expect(ev.find((e) => e.name === 'nr_pinned')).toMatchObject({ ph: 'C', args: { value: 1 } });
    expect(ev.find((e) => e.name === 'vm1_pages')!.args).toEqual({ private: 511, shared: 1, huge: 2 });
    expect(ev.find((e) => e.name === 'cocosim_warn')!.args).toEqual({ kind: 'x', message: 'ratio Infinity' });
  });

  test('bigints become hex strings and non-finite numbers strings, so JSON.stringify never throws', () => {
    const e = toChromeEvent({
      ph: 'i', name: 'x', ts: 2500, pid: 1, tid: 0,
      args: { big: 0xffff_ffff_ffff_ffffn, neg: -16n, inf: -Infinity, nan: NaN, ok: 3, flag: false, gone: undefined },
    });
    expect(e.args).toEqual({ big: '0xffffffffffffffff', neg: '-0x10', inf: '-Infinity', nan: 'NaN', ok: 3, flag: false });
    expect(() => JSON.stringify(e)).not.toThrow();
    expect(e.ts).toBe(2.5);
  });

  test('toChromeTrace over a ring gives the same events as the live sink', () => {
    const { sink, ring } = buildTrace();
    expect(toChromeTrace(ring.events())).toEqual(sink.toJSON());
  });
});
