/**
 * The one property of the machine's CPU that Linux's answers to a trace depend on: protection keys
 * (X86_FEATURE_OSPKE). With them, PROT_EXEC-only memory is execute-only and a data access there is
 * SIGSEGV SEGV_PKUERR; without them x86 maps it readable (mm/src/pkeys.ts). The simulated host
 * has them when asked (vm_sysctl().pku); the commands that stand for "Linux on this machine"
 * (replay, diff-kernel, the differential fuzzer) ask as the machine or the recording says.
 */
import { readFileSync } from 'node:fs';
import type { PlatformOptions } from './host.js';

/** Whether the machine cocosim runs on has OSPKE: "ospke" among the flags of /proc/cpuinfo (false elsewhere). */
export function machinePku(): boolean {
  try {
    return /^flags\s*:.*\bospke\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The OSPKE of the machine a kernel recording was made on: its header's "pku" (the kernel oracle
 * writes it); recordings from before it was written come from machines without (false).
 */
export function recordingPku(meta: Readonly<Record<string, unknown>>): boolean {
  return meta.pku === true;
}

/** `opts` with the simulated CPU's protection keys set to `pku`. */
export function withPku(opts: PlatformOptions | undefined, pku: boolean): PlatformOptions {
  return { ...opts, mm: { ...opts?.mm, pku } };
}
