import { afterEach, describe, expect, test, vi } from 'vitest';
import { CLOCK_MAX_NS, VirtualClock } from './clock.js';
import { CostModel } from './cost.js';
import { Gpa, Pfn } from './types.js';
import { ChromeTraceSink } from './trace/chrome_json.js';
import { FtraceTextSink } from './trace/ftrace_text.js';
import { RingSink } from './trace/ring.js';
import { HOST_PID, Tracer, vmTrackPid } from './trace/tracer.js';

describe('VirtualClock', () => {
  test('starts at 0 (or the given start) and advances by exactly what it is told', () => {
    const c = new VirtualClock();
    expect(c.now()).toBe(0);
    expect(c.advance(1500)).toBe(1500);
    expect(c.advance(0)).toBe(1500);
    expect(c.advance(299)).toBe(1799);
    expect(c.now()).toBe(1799);
    expect(new VirtualClock(42).now()).toBe(42);
    expect(Object.is(new VirtualClock(-0).now(), 0)).toBe(true);
  });

  test.each([-1, -Number.MIN_VALUE, NaN, Infinity, -Infinity, '5', undefined, 1n])(
    'advance(%s) throws RangeError and leaves time unchanged',
    (bad) => {
      const c = new VirtualClock(10);
      expect(() => c.advance(bad as number)).toThrow(RangeError);
      expect(c.now()).toBe(10);
    },
  );

  test('a negative or non-finite start is refused', () => {
    expect(() => new VirtualClock(-5)).toThrow(RangeError);
    expect(() => new VirtualClock(NaN)).toThrow(RangeError);
    expect(() => new VirtualClock(CLOCK_MAX_NS + 2)).toThrow(RangeError);
  });

  test('exact up to 2^53 - 1 ns, and refuses to go beyond instead of rounding', () => {
    expect(CLOCK_MAX_NS).toBe(2 ** 53 - 1);
    const c = new VirtualClock(2 ** 53 - 3);
    expect(c.advance(1)).toBe(2 ** 53 - 2);
    expect(c.advance(1)).toBe(2 ** 53 - 1);
    expect(() => c.advance(1)).toThrow(/exceeds/);
    expect(c.now()).toBe(2 ** 53 - 1);
    expect(() => new VirtualClock().advance(2 ** 53)).toThrow(RangeError);
  });

  test('about 104 days of simulated time fit', () => {
    const day = 86_400e9;
    expect(CLOCK_MAX_NS / day).toBeGreaterThan(104);
    expect(CLOCK_MAX_NS / day).toBeLessThan(105);
  });
});

/** A small scenario touching the clock, the cost model and every sink. */
function scenario() {
  const cost = new CostModel();
  const tracer = new Tracer(cost.clock);
  const ring = new RingSink(1000);
  const chrome = new ChromeTraceSink();
  const ftrace = new FtraceTextSink();
  tracer.addSink(ring);
  tracer.addSink(chrome);
  tracer.addSink(ftrace);
  tracer.nameProcess(HOST_PID, 'host');
  tracer.nameProcess(vmTrackPid(1), 'vm1');
  tracer.nameThread(vmTrackPid(1), 0, 'vcpu0');
  tracer.setTrack({ pid: vmTrackPid(1), tid: 0 });
  const { cost: breakdown } = cost.measure('fault', () =>
    tracer.span('kvm_mmu_page_fault', { gfn: 0x100 }, () => {
      cost.charge('kvm_exit_roundtrip');
      tracer.emit('kvm_page_fault', { vcpu_id: 0, fault_address: Gpa(0x100000n), error_code: 0x100000004n });
      cost.charge('page_alloc');
      cost.charge('page_zero_4k');
      tracer.emit('mm_page_alloc', { pfn: Pfn(0x1234), order: 0, gfp_flags: 0xcc0, migratetype: 1 });
      cost.charge('spte_set');
      tracer.asyncBegin('gup', 'pin', 0x1234);
      cost.charge('gup_pin_per_page', 3);
      tracer.asyncEnd('gup', 'pin', 0x1234);
      tracer.counter('nr_free_pages', 1000);
    }),
  );
  return {
    now: cost.clock.now(),
    breakdown: JSON.stringify(breakdown),
    ring: JSON.stringify(ring.events(), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
    chrome: chrome.serialize(),
    ftrace: ftrace.text(),
  };
}

describe('determinism', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  test('two identical runs give identical time, costs and traces', () => {
    const a = scenario();
    const b = scenario();
    expect(a.now).toBeGreaterThan(0);
    expect(a.ftrace.split('\n').length).toBeGreaterThan(2);
    expect(b).toEqual(a);
  });

  test('nothing reads wall time', () => {
    const wall = () => {
      throw new Error('wall time read');
    };
    vi.spyOn(Date, 'now').mockImplementation(wall);
    vi.spyOn(performance, 'now').mockImplementation(wall);
    vi.spyOn(process, 'hrtime').mockImplementation(wall as never);
    expect(() => scenario()).not.toThrow();
  });
});
