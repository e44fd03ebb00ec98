/**
 * The properties of the machine's CPUs that Linux's answers to a trace depend on: protection keys
 * (X86_FEATURE_OSPKE: with them PROT_EXEC-only memory is execute-only and a data access there is
 * SIGSEGV SEGV_PKUERR, without them x86 maps it readable; mm/src/pkeys.ts) and how many CPUs are
 * online (KVM_CAP_NR_VCPUS). The simulated host has what it is given (MmHostOptions); the commands
 * that stand for "Linux on this machine" (replay, diff-kernel, the differential fuzzer) give it
 * the machine's, or those of the machine a recording was made on (its header).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { PlatformOptions } from './host.js';

export interface HostCpu {
  /** X86_FEATURE_OSPKE. */
  readonly pku: boolean;
  /** num_online_cpus(); undefined: the simulator's default. */
  readonly nr_cpus?: number;
}

/** Whether the machine cocosim runs on has OSPKE: "ospke" among the flags of /proc/cpuinfo (false elsewhere). */
export function machinePku(): boolean {
  try {
    return /^flags\s*:.*\bospke\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** The CPUs of the machine cocosim runs on. */
export function machineCpu(): HostCpu {
  const n = cpus().length;
  return { pku: machinePku(), nr_cpus: n > 0 ? n : undefined };
}

/**
 * The CPUs of the machine a kernel recording was made on, from its header (the kernel oracle
 * writes "pku" and "cpus"): recordings from before it wrote them come from machines without
 * protection keys; their CPU count is unknown (the simulator's default).
 */
export function recordingCpu(meta: Readonly<Record<string, unknown>>): HostCpu {
  const n = meta.cpus;
  return { pku: meta.pku === true, nr_cpus: typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined };
}

/** `opts` with the simulated host's CPUs set to `cpu`. */
export function withHostCpu(opts: PlatformOptions | undefined, cpu: HostCpu): PlatformOptions {
  return { ...opts, mm: { ...opts?.mm, pku: cpu.pku, ...(cpu.nr_cpus !== undefined && { nr_cpus: cpu.nr_cpus }) } };
}
