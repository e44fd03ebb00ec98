/**
 * BUG_ON and WARN_ON (include/asm-generic/bug.h).
 *
 * BUG_ON is a simulator bug: cocosim reached a state the kernel promises never happens, so the
 * run cannot be trusted; it throws KernelBug. WARN_ON is the kernel's "this should not happen but
 * we carry on": it returns the condition, as in the kernel (`if (WARN_ON(x)) return -EINVAL;`),
 * and records a Warning in the host's WarnSink. Tests fail on a warning they did not expect
 * (test/setup/strict-warn.ts).
 */
export class KernelBug extends Error {
  override readonly name = 'KernelBug';
}

export function BUG(msg = 'BUG'): never {
  throw new KernelBug(msg);
}

/** BUG_ON(cond): throws KernelBug when cond holds. VM_BUG_ON and KVM_BUG_ON's BUG side alias it. */
export function BUG_ON(cond: unknown, msg = 'BUG_ON'): void {
  if (cond) throw new KernelBug(msg);
}

export const VM_BUG_ON = BUG_ON;

export interface Warning {
  /** `WARN_ON`, `WARN_ON_ONCE`, `KVM_BUG_ON`... */
  readonly kind: string;
  readonly message: string;
  /** Virtual time (ns) when it fired, if the sink has a clock. */
  readonly ts?: number;
}

/**
 * Sees every warning of every sink (test/setup/strict-warn.ts installs one per test, so that a
 * warning from any simulated host fails the test unless the test said it expects it).
 */
export type WarnObserver = (w: Warning) => void;
let observer: WarnObserver | undefined;

/** For the test setup only: observe every warning; returns the previous observer. */
export function setWarnObserver(o: WarnObserver | undefined): WarnObserver | undefined {
  const prev = observer;
  observer = o;
  return prev;
}

/** The per-host record of warnings. */
export class WarnSink {
  readonly warnings: Warning[] = [];
  private readonly once = new Set<string>();

  /**
   * @param now virtual time for the record
   * @param onWarn also told of every warning (the host routes it to the `cocosim_warn` tracepoint)
   */
  constructor(
    private readonly now: () => number = () => 0,
    private readonly onWarn?: (w: Warning) => void,
  ) {}

  /** WARN_ON(cond): records when cond holds; returns whether it held. */
  WARN_ON(cond: unknown, message = 'WARN_ON'): boolean {
    if (cond) this.record('WARN_ON', message);
    return Boolean(cond);
  }

  /**
   * WARN_ON_ONCE(cond): records only the first time for `site` on this host (the kernel keeps a
   * static flag per call site, per boot). Always returns the condition.
   */
  WARN_ON_ONCE(cond: unknown, site: string, message = site): boolean {
    if (cond && !this.once.has(site)) {
      this.once.add(site);
      this.record('WARN_ON_ONCE', message);
    }
    return Boolean(cond);
  }

  /** Any other warning-class report (KVM_BUG_ON's warning, pr_warn_once of a broken rule...). */
  record(kind: string, message: string): void {
    const w: Warning = { kind, message, ts: this.now() };
    this.warnings.push(w);
    observer?.(w);
    this.onWarn?.(w);
  }
}
