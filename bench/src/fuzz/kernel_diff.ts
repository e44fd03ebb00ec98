/**
 * Differential fuzzing against this machine's kernel: generic programs (generate.ts with
 * `generic`: memfd, files, mappings, loads and stores, process_vm_*, no KVM) replayed by the
 * kernel oracle (test/oracle, `--guard`) and by the simulator, their results compared as
 * `cocosim diff-kernel` compares them (values bound with "as" by success only). What differs is a
 * place where the simulator is not Linux, or where the two processes differ in what they hold
 * (see below); each distinct difference is reported once, with the shortest program that shows it.
 *
 * The oracle runs beside its own binary, libraries, heap and stack, where the simulated process
 * has nothing: with --guard it stops at the first call whose range reaches them; such a call is
 * taken out of the program and the program run again (runGuarded()), unless it binds a value,
 * and only the calls before the guard's last stop are compared. Each program starts with a PROT_NONE mapping of BUFFER_BYTES
 * (BUFFER_CALL), made on both sides: it lands right below the oracle's libraries and right below
 * the simulated mmap_base, so that a range running past the program's first mapping meets the same
 * thing on both sides instead of stopping the oracle. Memory differs too: the simulated host has `nr_pages` of RAM,
 * the machine its own, so a difference where either side ran out (ENOMEM, ENOSPC, SIGBUS on
 * a full tmpfs) is counted apart, as an environment difference, and not reported; so is one
 * where a pid exists on one side only (ESRCH), and ENODEV for 1 GiB hugetlb pages on a machine
 * without them (environmental()). The oracle sets its RLIMIT_NOFILE to the simulated process's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { boundCalls, compareResults, formatDifferences, parseResults, type Difference } from '../trace/compare.js';
import { ORACLE_BINARY, ensureOracle } from '../trace/diff_kernel.js';
import { getOp, names, parseTrace, replay, type OpSpec } from '../trace/index.js';
import { GENERIC_OPS, generateProgram, programText } from './generate.js';
import { recordingMachine, withHostMachine, type HostMachine } from '../host_machine.js';

/** The ops a default VM's programs add (KernelDiffOptions.kvm). */
const KVM_GENERIC_OPS: readonly string[] = ['ioctl', 'guest_load', 'guest_store'];

export interface KernelDiffOptions {
  /** Programs to run. */
  readonly programs: number;
  readonly seed: string;
  /** Calls per program (default 40). */
  readonly programLength?: number;
  /** Pages of simulated RAM (default 2^18: 1 GiB, above the oracle's GUARD_BUDGET). */
  readonly nr_pages?: number;
  readonly onProgress?: (done: number, distinct: number) => void;
  /** Also a default VM's calls (GenerateOptions.kvm); the machine needs a usable /dev/kvm. */
  readonly kvm?: boolean;
}

export interface KernelDifference {
  /** op, field and the two values, numbers blanked: what two reports of one disagreement share. */
  readonly signature: string;
  readonly count: number;
  /** The shortest program that showed it, and its differences. */
  readonly program: string;
  readonly details: string[];
}

export interface KernelDiffReport {
  readonly programs: number;
  readonly calls: number;
  /** Calls compared (before the oracle's guard stopped a program). */
  readonly compared: number;
  readonly guarded: number;
  /** Calls taken out of programs because the guard stopped at them (runGuarded()). */
  readonly dropped: number;
  /** Programs the oracle refused (exit 2) or could not finish. */
  readonly refused: number;
  /** Differences where one side ran out of memory. */
  readonly environment: number;
  /** Their signatures and counts, most frequent first, so that a reader can judge them. */
  readonly environmentSignatures: readonly KernelDifference[];
  readonly differences: KernelDifference[];
}

/*
 * Errnos that say more about the machine than about Linux: running out of memory, and a pid that
 * exists on one side only (F_SETOWN: the machine has its own processes and kernel threads).
 */
const OUT_OF_MEMORY = new Set(['ENOMEM', 'ENOSPC', 'EFBIG', 'ESRCH']);

/*
 * The simulated host has 2 MiB and 1 GiB hugetlb page sizes, as x86 servers with pdpe1gb do; a
 * machine without 1 GiB pages says ENODEV to MFD_HUGETLB | MFD_HUGE_1GB (hugetlb_file_setup():
 * no hstate) where the simulator creates the file.
 */
const HUGE_1G = '/sys/kernel/mm/hugepages/hugepages-1048576kB';

/**
 * munlock() and madvise() other than MADV_POPULATE_READ/WRITE allocate nothing that can run out:
 * their ENOMEM says a part of the range is not mapped, which is Linux's answer, not the machine's.
 */
function unmappedRange(d: Difference, lines: readonly string[]): boolean {
  if (d.op === 'munlock') return true;
  if (d.op !== 'madvise') return false;
  const advice = (JSON.parse(lines[1 + d.i] ?? '{}') as { advice?: unknown }).advice;
  return !['MADV_POPULATE_READ', 'MADV_POPULATE_WRITE', 22, 23, '0x16', '0x17'].includes(advice as string | number);
}

/** A difference that comes from the machine, not from Linux: memory, pids, page sizes. */
function environmental(diffs: readonly Difference[], text: string): boolean {
  const lines = text.split('\n');
  const values = diffs.filter((d) => !unmappedRange(d, lines)).flatMap((d) => [d.left, d.right]).map((x) => String(x));
  if (values.some((x) => OUT_OF_MEMORY.has(x))) return true;
  return diffs.some((d) => (d.op === 'memfd_create' || d.op === 'mmap') && d.left === 'ENODEV') && !existsSync(HUGE_1G);
}

/**
 * A KVM_CHECK_EXTENSION the kernel answers and cocosim answers 0: a capability of a KVM feature
 * cocosim does not model (KVM_CAP_HLT, IRQ routing, Hyper-V...), which it rightly does not claim.
 */
function unmodelledCapability(diffs: readonly Difference[], text: string): boolean {
  const lines = text.split('\n');
  return diffs.every((d) => d.op === 'ioctl' && d.field === 'ret' && d.right === 0 && lines[1 + d.i]?.includes('"req":"KVM_CHECK_EXTENSION"') === true);
}

/**
 * 64 MiB less a page: not a 2 MiB multiple, so that it is not THP-aligned and sits flush under the
 * top on both sides (the oracle makes its top congruent to the simulator's mmap_base modulo 2 MiB).
 */
const BUFFER_BYTES = 64 * 2 ** 20 - 4096;
/** mmap(NULL, BUFFER_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0). */
const BUFFER_CALL = JSON.stringify({ op: 'mmap', length: BUFFER_BYTES, prot: 0, flags: '0x4022', fd: -1, offset: 0, as: 'buffer' });

/** A generated program with BUFFER_CALL after its header line. */
function withBuffer(text: string): string {
  const nl = text.indexOf('\n');
  return `${text.slice(0, nl + 1)}${BUFFER_CALL}\n${text.slice(nl + 1)}`;
}

function signatureOf(d: Difference): string {
  const v = (x: unknown): string => JSON.stringify(x ?? null).replace(/\d+/g, 'N');
  return `${d.op} ${d.field ?? (d.only !== undefined ? `only-${d.only}` : '?')} kernel=${v(d.left)} sim=${v(d.right)}`;
}

/** Runs the oracle on one program: its result lines, cut at a guarded call; undefined if it refused. */
function runOracle(text: string): { out: string; guarded: boolean; cpu: HostMachine } | undefined {
  const o = spawnSync(ORACLE_BINARY, ['--guard', '--header', '--no-check', '-'], { input: text, encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL', maxBuffer: 1 << 28 });
  if (o.status !== 0 && o.status !== 1) return undefined;
  const lines = o.stdout.split('\n').filter((l) => l !== '');
  /* the header line: the machine's CPUs, which the simulated host then has too */
  const header = lines.shift();
  const cpu = recordingMachine(header === undefined ? {} : JSON.parse(header) as Record<string, unknown>);
  const guarded = lines.length > 0 && lines[lines.length - 1].includes('"guarded":true');
  return { out: (guarded ? lines.slice(0, -1) : lines).join('\n') + '\n', guarded, cpu };
}

/** The programs that showed one signature: how many, and the shortest with its differences. */
interface Kept {
  count: number;
  program: string;
  details: string[];
}

/** Counts one more program showing `sig`, keeping the shortest (the first of equal length). */
function keepShortest(map: Map<string, Kept>, sig: string, program: string, details: () => string[]): void {
  const prior = map.get(sig);
  if (prior !== undefined && prior.program.length <= program.length) {
    prior.count++;
    return;
  }
  map.set(sig, { count: (prior?.count ?? 0) + 1, program, details: details() });
}

/** How many guarded calls runGuarded() takes out of one program before it settles for the cut. */
const MAX_DROPS = 16;

/**
 * Runs `text` on the oracle; while the guard stops it at a call that binds nothing ("as"), takes
 * that call out of the program and runs it again from the start, so that the calls after it are
 * compared too (the same text then goes to the simulator). A guarded call that binds a value, or
 * the MAX_DROPS-th, ends the program there, as the guard does.
 */
function runGuarded(text: string): { text: string; kernel: { out: string; guarded: boolean; cpu: HostMachine }; dropped: number } | undefined {
  let dropped = 0;
  for (;;) {
    const kernel = runOracle(text);
    if (kernel === undefined) return undefined;
    if (!kernel.guarded || dropped === MAX_DROPS) return { text, kernel, dropped };
    const lines = text.split('\n');
    /* results before the guarded call, each a call after the header line */
    const i = kernel.out.split('\n').filter((l) => l !== '').length;
    const call = lines[1 + i];
    if (call === undefined || (JSON.parse(call) as { as?: unknown }).as !== undefined) return { text, kernel, dropped };
    lines.splice(1 + i, 1);
    text = lines.join('\n');
    dropped++;
  }
}

export function kernelDiff(opts: KernelDiffOptions): KernelDiffReport | string {
  const problem = ensureOracle();
  if (problem !== undefined) return problem;
  const ops = [...GENERIC_OPS, ...(opts.kvm === true ? KVM_GENERIC_OPS : [])].map((n) => getOp(n)).filter((o): o is OpSpec => o !== undefined);
  const len = opts.programLength ?? 40;
  const found = new Map<string, Kept>();
  let calls = 0;
  let compared = 0;
  let guarded = 0;
  let refused = 0;
  let dropped = 0;
  const setAside = new Map<string, Kept>();
  for (let k = 0; k < opts.programs; k++) {
    const generated = withBuffer(programText(generateProgram(`${opts.seed}:${k}`, { vendor: 'none', design: 'upstream', calls: len, ops, generic: true, kvm: opts.kvm })));
    calls += len;
    const run = runGuarded(generated);
    if (run === undefined) {
      refused++;
      continue;
    }
    const { text, kernel } = run;
    dropped += run.dropped;
    if (kernel.guarded) guarded++;
    const rec = parseResults(kernel.out, 'kernel');
    const trace = parseTrace(text, 'fuzz');
    const sim = replay(trace, { platformOptions: withHostMachine({ mm: { nr_pages: opts.nr_pages ?? 2 ** 18 } }, kernel.cpu) });
    const upto = rec.results.length;
    compared += upto;
    const simResults = sim.results.filter((r) => r.i < upto);
    let diffs = compareResults(rec.results, simResults, { bound: boundCalls(trace), names });
    /* after the first difference the two processes hold different things: only it counts */
    if (diffs.length > 0) diffs = diffs.filter((d) => d.i === diffs[0].i);
    if (diffs.length === 0) continue;
    const sig = diffs.map(signatureOf).join('; ');
    const cut = text.split('\n').slice(0, 2 + diffs[0].i).join('\n') + '\n';
    keepShortest(environmental(diffs, text) || unmodelledCapability(diffs, text) ? setAside : found, sig, cut, () => formatDifferences(diffs, { left: 'kernel', right: 'simulator' }, trace));
    opts.onProgress?.(k + 1, found.size);
  }
  const differences = [...found].map(([signature, f]) => ({ signature, ...f })).sort((a, b) => b.count - a.count);
  const environmentSignatures = [...setAside].map(([signature, e]) => ({ signature, ...e })).sort((a, b) => b.count - a.count);
  const environment = environmentSignatures.reduce((n, e) => n + e.count, 0);
  return { programs: opts.programs, calls, compared, guarded, dropped, refused, environment, environmentSignatures, differences };
}
