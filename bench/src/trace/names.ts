/**
 * The kernel names a trace may use for flags and enums ("MFD_CLOEXEC|MFD_ALLOW_SEALING",
 * "F_ADD_SEALS", "KVM_CREATE_VM"), and the names results use for errnos, signals and si_codes.
 *
 * The flag table is gathered from the packages' exports rather than written out, so that a
 * constant a package adds is a name traces can use the moment it is exported: a package is one
 * registerNames() line with the prefixes of its uAPI constants. Only uAPI prefixes are listed:
 * kernel-internal constants (FOLL_*, GFP_*) are not something a C program can pass.
 */
import * as mm from '@cocosim/mm';
import * as kvm from '@cocosim/kvm';
import * as vfio from '@cocosim/vfio';
import { BUG_ON, Errno } from '@cocosim/core';

/** Where an unknown name sits in a flags string, for a precise column. */
export interface UnknownName {
  readonly unknown: string;
  /** Offset of the name within the string. */
  readonly offset: number;
}

const INT_RE = /^-?(0[xX][0-9a-fA-F]+|[0-9]+)$/;

/** Levenshtein distance, for "did you mean" on a misspelt name. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The candidate closest to a misspelt name, if one is close enough to be what was meant. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const n of candidates) {
    const d = distance(name, n);
    if (d < bestD) {
      best = n;
      bestD = d;
    }
  }
  return best;
}

function bitCount(v: bigint): number {
  let n = 0;
  for (let x = v; x > 0n; x >>= 1n) if (x & 1n) n++;
  return n;
}

/** Names that are masks, shifts, sentinels or limits, never used to spell a value back into names. */
const NOT_A_FLAG = /(_MASK|_ACCMODE|_FAILED|_TYPE|_SHIFT|_BASE|_MAX|_MAX_LEN)$|_ALL_/;

export class NameTable {
  private readonly values = new Map<string, bigint>();

  /**
   * Adds every exported integer constant of `module` whose name matches `pattern`
   * (`registerNames(mm, /^(MFD|F_SEAL|F|PROT|MAP|MADV|O)_/)`). Two constants with one name and
   * different values are a simulator bug.
   */
  register(module: object, pattern: RegExp): this {
    for (const [name, v] of Object.entries(module)) {
      if (!pattern.test(name)) continue;
      if (typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v))) this.define(name, v);
    }
    return this;
  }

  define(name: string, value: number | bigint): this {
    const v = BigInt(value);
    const old = this.values.get(name);
    BUG_ON(old !== undefined && old !== v, `trace name ${name} registered as ${old} and ${v}`);
    this.values.set(name, v);
    return this;
  }

  get(name: string): bigint | undefined {
    return this.values.get(name);
  }

  /** Every name, sorted; with a prefix, only those starting with it. */
  names(prefix = ''): string[] {
    return [...this.values.keys()].filter((n) => n.startsWith(prefix)).sort();
  }

  /**
   * The value of `"A|B|C"`: the OR of the names. An element may also be an integer ("0x100"),
   * so that a trace can set a bit no name covers (a reserved bit, to test that it is refused).
   */
  resolve(text: string): bigint | UnknownName {
    let v = 0n;
    let offset = 0;
    for (const part of text.split('|')) {
      const name = part.trim();
      const at = offset + (part.length - part.trimStart().length);
      offset += part.length + 1;
      if (INT_RE.test(name)) {
        const neg = name.startsWith('-');
        const n = BigInt(neg ? name.slice(1) : name);
        v |= neg ? BigInt.asUintN(64, -n) : n;
        continue;
      }
      const known = this.values.get(name);
      if (known === undefined) return { unknown: name, offset: at };
      v |= known;
    }
    return v;
  }

  /** The closest known name to a misspelt one, if any is close. */
  suggest(name: string): string | undefined {
    return closest(name, this.values.keys());
  }

  /**
   * `value` spelt with the names starting with `prefix`: one name for an enum, names joined by
   * `|` for a bit mask. Undefined when the names cannot spell it exactly (then write the number).
   */
  spell(value: bigint, prefix: string, kind: 'enum' | 'bits'): string | undefined {
    const candidates = [...this.values].filter(([n]) => n.startsWith(prefix) && !NOT_A_FLAG.test(n));
    // Of aliases (MAP_ANON, MAP_ANONYMOUS), the longer name is the documented one.
    const pick = (list: [string, bigint][]): string | undefined =>
      list.sort((a, b) => b[0].length - a[0].length || (a[0] < b[0] ? -1 : 1))[0]?.[0];
    if (kind === 'enum' || value === 0n) return pick(candidates.filter(([, v]) => v === value));
    const parts: [string, bigint][] = [];
    let rest = value;
    const masks = candidates.filter(([, v]) => v > 0n).sort((a, b) => bitCount(b[1]) - bitCount(a[1]));
    while (rest !== 0n) {
      const fit = masks.filter(([, v]) => (rest & v) === v);
      if (fit.length === 0) return undefined;
      const best = fit.filter(([, v]) => v === fit[0][1]);
      parts.push([pick(best)!, fit[0][1]]);
      rest &= ~fit[0][1];
    }
    return parts.sort((a, b) => (a[1] < b[1] ? -1 : 1)).map(([n]) => n).join('|');
  }
}

/** The table the replayer and the trace writer use. */
export const names = new NameTable();

/** Adds a package's uAPI constants: `registerNames(kvm, /^(KVM|GUEST_MEMFD)_/)`. */
export function registerNames(module: object, pattern: RegExp): void {
  names.register(module, pattern);
}

registerNames(mm, /^(MFD|F_SEAL|F|FD|FALLOC_FL|PROT|MAP|MADV|MCL|MLOCK|O|SEEK|FS_IOC)_|^FIO[A-Z]+$|^FI(BMAP|GETBSZ|FREEZE|THAW|CLONE|CLONERANGE|DEDUPERANGE)$/);
registerNames(kvm, /^(KVM|GUEST_MEMFD)_/);
/*
 * include/uapi/linux/vfio.h and iommufd.h. The vfio package also exports kernel-internal names
 * (IOMMU_READ, IOMMUFD_OBJ_*, enum vfio_group_type's VFIO_IOMMU, its module parameter default)
 * and struct sizes (_SIZE, _MINSZ): none is a uAPI macro, so they are left out.
 */
registerNames(vfio, /^(VFIO_(?!(DEFAULT_DMA_ENTRY_LIMIT|EMULATED_IOMMU|IOMMU|NO_IOMMU)$)|IOMMUFD_(CMD_|TYPE$)|IOMMU_(DESTROY|IOAS_|OPTION))(?!.*_(SIZE|MINSZ)$)/);

/* ---- errno, signal and si_code names, as results spell them ---- */

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Errno).map(([name, n]) => [n, name]),
);

/** The errno's kernel name ("EINVAL"); undefined for a number Linux gives no name. */
export function errnoName(errno: number): string | undefined {
  return ERRNO_NAMES.get(errno);
}

export function errnoByName(name: string): number | undefined {
  return Object.hasOwn(Errno, name) ? Errno[name as keyof typeof Errno] : undefined;
}

/* include/uapi/asm-generic/signal.h (x86-64, arm64) */
const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPWR: 30, SIGSYS: 31,
};

/* include/uapi/asm-generic/siginfo.h: si_code values are per signal, SI_* for any. */
const SI_CODES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  SIGBUS: { BUS_ADRALN: 1, BUS_ADRERR: 2, BUS_OBJERR: 3, BUS_MCEERR_AR: 4, BUS_MCEERR_AO: 5 },
  SIGSEGV: {
    SEGV_MAPERR: 1, SEGV_ACCERR: 2, SEGV_BNDERR: 3, SEGV_PKUERR: 4, SEGV_ACCADI: 5, SEGV_ADIDERR: 6,
    SEGV_ADIPERR: 7, SEGV_MTEAERR: 8, SEGV_MTESERR: 9, SEGV_CPERR: 10,
  },
  '*': { SI_USER: 0, SI_KERNEL: 0x80, SI_QUEUE: -1, SI_TIMER: -2, SI_MESGQ: -3, SI_ASYNCIO: -4, SI_SIGIO: -5, SI_TKILL: -6 },
};

export function signalName(signo: number): string {
  return Object.keys(SIGNALS).find((k) => SIGNALS[k] === signo) ?? `SIG${signo}`;
}

export function signalByName(name: string): number | undefined {
  return Object.hasOwn(SIGNALS, name) ? SIGNALS[name] : undefined;
}

/** The si_code's name for this signal ("BUS_ADRERR"), or its number as a string. */
export function siCodeName(signo: number, code: number): string {
  for (const table of [SI_CODES[signalName(signo)] ?? {}, SI_CODES['*']]) {
    const name = Object.keys(table).find((k) => table[k] === code);
    if (name !== undefined) return name;
  }
  return String(code);
}

/** True when `name` is an si_code name of any signal. */
export function isSiCodeName(name: string): boolean {
  return Object.values(SI_CODES).some((t) => Object.hasOwn(t, name));
}
