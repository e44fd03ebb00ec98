/**
 * The scenarios of designs.md §2 on a confidential VM: each runs through kvm/src/cvm.ts, so the
 * design's VMM half (how memory is backed and converted) and the vendor's half (launch, the
 * guest's conversion request) come from the plugins and the scenario reads the same on every
 * platform. cvmScenario() turns a definition into a Scenario: it skips the platforms where no
 * confidential VM can exist (saying why), creates the VM as set-up, and looks the expectation up
 * by the design's row of designs.md.
 */
import { errno_name } from '@cocosim/core';
import type { SigInfo } from '@cocosim/mm';
import {
  DESIGNS, KVM_EXIT_HLT, KVM_EXIT_MEMORY_FAULT, cvm_create, cvm_guest_convert, cvm_run, kvm_exit_reason_name, type CvmDesign, type CvmRunResult,
  type CvmVendor, type CvmVm, type Design, type GuestCode,
} from '@cocosim/kvm';
import { VENDORS } from '../host.js';
import type { Expectation, Outcome, Scenario, ScenarioContext, ScenarioOptions } from './scenario.js';

/** designs.md's abbreviations of §2, by design name (a design without one uses its row, "D4"). */
export const DESIGN_ABBREV: Readonly<Record<string, string>> = {
  kvm_protected: 'PE20',
  hwpoison: 'HWP',
  per_vma: 'PERVMA',
  page_guest: 'PG',
  fd_rfc: 'D4',
  memfd_seal: 'UPMfd',
  mfd_inaccessible: 'UPMfd',
  memfd_restricted: 'UPMfd',
  upstream: 'GM68',
  gmem_inplace: 'GMIP',
  gmem_hugetlb: 'HTLB',
  mktme_encrypt: 'MKTME',
  sev_pinned: 'SEV',
  snp_anon: 'SNPA',
};

/** What a scenario expects of one design: the outcome and the designs.md tag that states it. */
export interface DesignExpectation {
  readonly outcome: Outcome;
  /** `[S]` (stated in a cited source), `(inferred)`, or the kernel function that decides. */
  readonly tag: string;
}

export interface CvmScenarioDef {
  readonly name: string;
  /** S1..S27 */
  readonly ref: string;
  readonly description: string;
  readonly default_size?: number;
  readonly in_default?: boolean;
  /** Page sizes the scenario runs at (default 4 KiB only). */
  readonly page_sizes?: readonly number[];
  /** Host RAM in pages beyond twice the guest memory (default 16384). */
  readonly extra_pages?: number;
  /**
   * The expected verdict per design abbreviation (DESIGN_ABBREV) or design name, from
   * designs.md §2; a function where the vendor decides (the platform layer of S1).
   */
  readonly expected?: Readonly<Record<string, DesignExpectation>> | ((design: string, vendor: string) => DesignExpectation | undefined);
  /** Why this platform cannot run the scenario beyond having a confidential VM; undefined when it can. */
  readonly needs?: (vendor: CvmVendor, design: Design, opts: ScenarioOptions) => string | undefined;
  /** Policy for the VMM (QEMU's discard by default). */
  readonly discard?: boolean;
  run(ctx: ScenarioContext, vm: CvmVm, opts: ScenarioOptions): void;
}

/** The vendor's and design's halves of a platform, or why the platform has no confidential VM. */
export function cvmPlatform(opts: ScenarioOptions): { vendor: CvmVendor; design: Design; vmm: CvmDesign } | string {
  const design = DESIGNS.get(opts.design);
  if (design?.vmm === undefined) return `design ${opts.design} has no VMM side`;
  const own = VENDORS.get(opts.vendor)?.cvm;
  const vendor = design.vmm.vendor_cvm === undefined ? own : design.vmm.vendor_cvm(opts.vendor, own);
  if (vendor === undefined) return `vendor ${opts.vendor} has no VM type with private memory`;
  const why = design.vmm.applies(vendor);
  if (why !== undefined) return why;
  return { vendor, design, vmm: design.vmm };
}

function lookup(def: CvmScenarioDef, opts: ScenarioOptions): DesignExpectation | undefined {
  if (def.expected === undefined) return undefined;
  if (typeof def.expected === 'function') return def.expected(opts.design, opts.vendor);
  return def.expected[opts.design] ?? def.expected[DESIGN_ABBREV[opts.design] ?? ''];
}

/** The C result of cvm_create() as a step outcome. */
function createOutcome(r: CvmVm | number): Outcome {
  return typeof r === 'number' ? `-1 ${errno_name(-r) ?? -r}` : 'VM running';
}

export function cvmScenario(def: CvmScenarioDef): Scenario {
  const pageSizes = def.page_sizes ?? [4096];
  return {
    name: def.name,
    ref: def.ref,
    description: `${def.ref}: ${def.description}`,
    default_size: def.default_size ?? 64 * 1024,
    in_default: def.in_default,
    nr_pages: (opts) => Math.ceil((opts.size * 2) / 4096) + (def.extra_pages ?? 16384),
    applies(opts) {
      if (!pageSizes.includes(opts.page_size)) return `runs at ${pageSizes.map((s) => `${s / 1024}K`).join(', ')} pages`;
      const pf = cvmPlatform(opts);
      if (typeof pf === 'string') return pf;
      return def.needs?.(pf.vendor, pf.design, opts);
    },
    expect(opts): Expectation | undefined {
      const e = lookup(def, opts);
      if (e === undefined) return undefined;
      const abbrev = DESIGN_ABBREV[opts.design] ?? opts.design;
      return { outcome: e.outcome, source: `designs.md §2 ${def.ref} ${abbrev} ${e.tag}` };
    },
    run(ctx, opts) {
      const pf = cvmPlatform(opts);
      if (typeof pf === 'string') throw new RangeError(`${def.name}: ${pf}`);
      const vm = ctx.setupStep(`cvm_create(${pf.vendor.name} VM, ${pf.design.name} memory, ${opts.size} bytes)`,
        'VM running', 'KVM_CREATE_VM of the vendor\'s private type, the design\'s memory, one vCPU',
        () => {
          const r = cvm_create(ctx.p, pf.vendor, pf.vmm, {
            size: BigInt(opts.size), page_size: opts.page_size, policy: { discard: def.discard ?? true },
          });
          return [createOutcome(r), r];
        });
      if (typeof vm === 'number') {
        ctx.verdict(`set-up failed: ${createOutcome(vm)}`);
        return;
      }
      def.run(ctx, vm, opts);
    },
  };
}

/** A user access's outcome: the bytes as hex, or the signal (`SIGBUS BUS_ADRERR`). */
export function userAccessOutcome(r: Uint8Array | 0 | SigInfo): Outcome {
  if (r === 0) return '0';
  if (r instanceof Uint8Array) return Buffer.from(r).toString('hex');
  return `${r.signo} ${r.si_code}`;
}

/** How a guest run ended, when it did not reach the end of its program: the KVM_RUN error or the exit. */
export function guestRunOutcome(r: CvmRunResult): Outcome | undefined {
  if (r.ret < 0) return `KVM_RUN -1 ${errno_name(r.errno) ?? r.errno}${r.exit_reason === KVM_EXIT_MEMORY_FAULT ? ' (KVM_EXIT_MEMORY_FAULT)' : ''}`;
  if (r.exit_reason !== KVM_EXIT_HLT) return kvm_exit_reason_name(r.exit_reason) ?? `exit ${r.exit_reason}`;
  return undefined;
}

/**
 * A step run by the guest: `body` runs on the vCPU through cvm_run (conversion requests answered
 * by the design); the outcome is `body`'s own (a hex read, a status) or how the run ended.
 */
export function guestStep<T>(ctx: ScenarioContext, vm: CvmVm, call: string, expected: Outcome | ((o: Outcome) => boolean) | undefined,
  why: string, body: () => GuestCode<T>, show: (v: T) => Outcome): T | undefined {
  return ctx.step(`guest: ${call}`, expected, why, () => {
    let value: T | undefined;
    let done = false;
    const r = cvm_run(vm, function* () {
      value = yield* body();
      done = true;
    });
    const failed = guestRunOutcome(r);
    if (!done || failed !== undefined) return [failed ?? 'guest stopped', undefined];
    return [show(value as T), value];
  });
}

/** The guest's conversion request for [gpa, gpa + npages pages), as a step: '0' when granted. */
export function guestConvert(ctx: ScenarioContext, vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean, expected: Outcome | undefined = '0'): boolean {
  const what = to_private ? 'private' : 'shared';
  const r = guestStep(ctx, vm, `convert 0x${gpa.toString(16)} (+${npages} pages) to ${what}`, expected,
    `${vm.design.guest_convert === undefined ? vm.vendor.name : vm.design.name}'s conversion request, answered by the ${vm.design.name} design`,
    () => cvm_guest_convert(vm, gpa, npages, to_private), (s) => String(s));
  return r === 0n;
}

/** Eight bytes of `byte`, hex (what the scenarios write and compare). */
export function fill8(byte: number): Uint8Array {
  return new Uint8Array(8).fill(byte);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
