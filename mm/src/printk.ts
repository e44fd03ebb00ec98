/**
 * The kernel log (kernel/printk/printk.c, include/linux/printk.h): pr_err(), pr_info() and
 * friends. A simulated host has no dmesg buffer; each message goes to the tracer as the kernel's
 * `console` tracepoint (include/trace/events/printk.h), one record per line, without the
 * trailing newline. Messages are not WarnSink warnings: they are what the kernel prints, not
 * simulator findings. No rate limiting is modelled (a ratelimited message is always printed).
 */
import type { Kernel } from './kernel.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** A printk() line. @see include/trace/events/printk.h TRACE_EVENT(console) */
    console: { msg: string };
  }
}

/** printk() of one message line (the caller has applied its pr_fmt() prefix). */
export function printk(kernel: Kernel, msg: string): void {
  if (kernel.tracer.enabled('console')) kernel.tracer.emit('console', { msg });
}

/** pr_err(). */
export const pr_err = printk;
/** pr_info(). */
export const pr_info = printk;
/** pr_warn(). */
export const pr_warn = printk;

/** The kernel's "%#lx" of an unsigned long: 0x-prefixed lowercase hex ("0" for zero). */
export function hex_lx(v: number): string {
  return v === 0 ? '0' : `0x${v.toString(16)}`;
}
