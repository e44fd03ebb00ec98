/**
 * The properties of a machine that Linux's answers to a trace depend on: protection keys
 * (X86_FEATURE_OSPKE: with them PROT_EXEC-only memory is execute-only and a data access there is
 * SIGSEGV SEGV_PKUERR, without them x86 maps it readable; mm/src/pkeys.ts), how many CPUs are
 * online (KVM_CAP_NR_VCPUS), and whether its kernel was built with CONFIG_KVM_GUEST_MEMFD. The
 * simulated host has what it is given (MmHostOptions, PlatformOptions.kvm); the commands that
 * stand for "Linux on this machine" (replay, diff-kernel, the differential fuzzer) give it the
 * machine's, or those of the machine a recording was made on (its header).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { PlatformOptions } from './host.js';

export interface HostMachine {
  /** X86_FEATURE_OSPKE. */
  readonly pku: boolean;
  /** num_online_cpus(); undefined: the simulator's default. */
  readonly nr_cpus?: number;
  /** CONFIG_KVM_GUEST_MEMFD (KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD)); undefined: the simulator's default, built in. */
  readonly guest_memfd?: boolean;
}

/** Whether the machine cocosim runs on has OSPKE: "ospke" among the flags of /proc/cpuinfo (false elsewhere). */
export function machinePku(): boolean {
  try {
    return /^flags\s*:.*\bospke\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** The machine cocosim runs on (its kernel's build is not read: guest_memfd as the default). */
export function thisMachine(): HostMachine {
  const n = cpus().length;
  return { pku: machinePku(), nr_cpus: n > 0 ? n : undefined };
}

/**
 * The machine a kernel recording was made on, from its header (the kernel oracle writes "pku",
 * "cpus" and "guest_memfd"): recordings from before it wrote them come from machines without
 * protection keys; their CPU count and KVM build are unknown (the simulator's defaults).
 */
export function recordingMachine(meta: Readonly<Record<string, unknown>>): HostMachine {
  const n = meta.cpus;
  return {
    pku: meta.pku === true,
    nr_cpus: typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined,
    guest_memfd: typeof meta.guest_memfd === 'boolean' ? meta.guest_memfd : undefined,
  };
}

/** `opts` with the simulated host made like `machine`. */
export function withHostMachine(opts: PlatformOptions | undefined, machine: HostMachine): PlatformOptions {
  return {
    ...opts,
    mm: { ...opts?.mm, pku: machine.pku, ...(machine.nr_cpus !== undefined && { nr_cpus: machine.nr_cpus }) },
    ...(machine.guest_memfd !== undefined && { kvm: { ...opts?.kvm, guest_memfd: machine.guest_memfd } }),
  };
}
