/**
 * The virtual clock: simulated time in nanoseconds.
 *
 * Nothing in cocosim reads wall time. Time moves only when the simulator says an operation took
 * time (the cost model charges it, or a test advances it), so two runs of the same scenario give
 * the same timestamps, the same traces and the same costs on any machine.
 *
 * Time is a JavaScript number of nanoseconds. Integers are exact up to Number.MAX_SAFE_INTEGER
 * (2^53 - 1 ns, about 104 days of simulated time); advance() refuses to go past it rather than
 * let time silently round. Fractional advances are allowed (a cost derived from a bandwidth is
 * rarely a whole number of ns); they are summed in double precision, which is deterministic for
 * the same sequence of advances but not associative, so do not expect (a + b) + c === a + (b + c)
 * for fractional steps.
 */
import type { InjectionToken } from 'tsyringe';

/** What consumers of time need: read it. The Tracer and WarnSink take this, not the class. */
export interface Clock {
  /** Current virtual time in ns. */
  now(): number;
}

/** DI token for the host's Clock (the VirtualClock, read-only view). */
export const Clock: InjectionToken<Clock> = Symbol.for('cocosim:core/Clock');

/** Largest exact virtual time, in ns (2^53 - 1, about 104 days). */
export const CLOCK_MAX_NS = Number.MAX_SAFE_INTEGER;

/** Deterministic, monotonic virtual time. */
export class VirtualClock implements Clock {
  private ns: number;

  /** @param start initial time in ns (default 0); same rules as advance(). */
  constructor(start = 0) {
    checkNs(start, 'VirtualClock start');
    this.ns = start + 0; // normalizes -0
  }

  now(): number {
    return this.ns;
  }

  /**
   * Move time forward by `ns` and return the new time. `ns` must be a finite number >= 0, and the
   * result must stay within CLOCK_MAX_NS; anything else is a simulator bug in the caller and
   * throws RangeError (time never goes backwards, and never becomes inexact).
   */
  advance(ns: number): number {
    checkNs(ns, 'VirtualClock.advance');
    const next = this.ns + ns;
    if (next > CLOCK_MAX_NS) {
      throw new RangeError(`VirtualClock.advance(${ns}): time ${next} ns exceeds ${CLOCK_MAX_NS} ns, the exact range`);
    }
    this.ns = next;
    return next;
  }
}

function checkNs(ns: number, what: string): void {
  if (typeof ns !== 'number' || !Number.isFinite(ns) || ns < 0) {
    throw new RangeError(`${what}(${String(ns)}): need a finite number of ns >= 0`);
  }
  if (ns > CLOCK_MAX_NS) throw new RangeError(`${what}(${ns}): exceeds ${CLOCK_MAX_NS} ns, the exact range`);
}
