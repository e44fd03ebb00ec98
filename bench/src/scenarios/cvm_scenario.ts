/**
 * The scenarios of designs.md §2 on a confidential VM: each runs through kvm/src/cvm.ts, so the
 * design's VMM half (how memory is backed and converted) and the vendor's half (launch, the
 * guest's conversion request) come from the plugins and the scenario reads the same on every
 * platform. cvmScenario() turns a definition into a Scenario: it skips the platforms where no
 * confidential VM can exist (saying why), creates the VM as set-up, and looks the expectation up
 * by the design's row of designs.md.
 */
import { Errno, errno_name } from '@cocosim/core';
import { pagemap_pfn, type SigInfo } from '@cocosim/mm';
import {
  DESIGNS, KVM_EXIT_HLT, KVM_EXIT_MEMORY_FAULT, cvm_create, cvm_launch, cvm_note_conversion, cvm_guest_convert, cvm_run, guestStore, kvm_exit_reason_name,
  cvm_spte, type CvmDesign, type CvmRunResult,
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
  /**
   * False: the scenario launches the VM itself (cvm_launch with its image); by default the
   * set-up launches it with an empty image, so the VM can run (TDX and SNP finalize, a realm is
   * activated).
   */
  readonly launch?: boolean;
  run(ctx: ScenarioContext, vm: CvmVm, opts: ScenarioOptions): void;
}

/** The vendor's and design's halves of a platform, or why the platform has no confidential VM. */
export function cvmPlatform(opts: ScenarioOptions): { vendor: CvmVendor; design: Design; vmm: CvmDesign } | string {
  const design = DESIGNS.get(opts.design);
  if (design === undefined) return `unknown design ${opts.design}`;
  const own = VENDORS.get(opts.vendor)?.cvm;
  const vendor = design.vmm.vendor_cvm === undefined ? own : design.vmm.vendor_cvm(opts.vendor, own);
  if (vendor === undefined) return `vendor ${opts.vendor} has no VM type with private memory`;
  const why = design.vmm.applies(vendor);
  if (why !== undefined) return why;
  return { vendor, design, vmm: design.vmm };
}

function lookup(def: CvmScenarioDef, opts: ScenarioOptions): DesignExpectation | undefined {
  if (def.expected === undefined) return undefined;
  const pf = cvmPlatform(opts);
  if (typeof pf === 'string' || pf.vendor.protects_in_hypervisor === true) return undefined;
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
      // Not every design can back every vendor's VM (a KVM_MEM_PRIVATE slot on pKVM): a failure
      // here is the platform's answer, shown as the verdict rather than as a difference.
      const vm = ctx.setupStep(`cvm_create(${pf.vendor.name} VM, ${pf.design.name} memory, ${opts.size} bytes)`,
        undefined, 'KVM_CREATE_VM of the vendor\'s private type, the design\'s memory, one vCPU',
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
      ctx.cvms.push(vm);
      if (def.launch !== false) {
        const r = ctx.setupStep('launch (no image): the vendor\'s finish', '0', 'TDX finalize, SNP LAUNCH_FINISH, realm activation',
          () => { const x = cvm_launch(vm, vm.base, new Uint8Array(0)); return [x < 0 ? `-1 ${errno_name(ctx.p.errno) ?? ctx.p.errno}` : '0', x]; });
        if (r < 0) {
          ctx.verdict(`set-up failed: launch -1 ${errno_name(ctx.p.errno) ?? ctx.p.errno}`);
          return;
        }
      }
      if (vm.vendor.initially_private === true) {
        const c = guestConvert(ctx, vm, vm.base, vm.size / 4096n, false);
        ctx.steps[ctx.steps.length - 1] = { ...ctx.steps[ctx.steps.length - 1]!, setup: true };
        if (!c.ok) {
          ctx.verdict('set-up failed: the guest cannot share its memory');
          return;
        }
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
  why: string, body: () => GuestCode<T>, show: (v: T) => Outcome): GuestStepResult<T> {
  return ctx.step<GuestStepResult<T>>(`guest: ${call}`, expected, why, () => {
    let value: T | undefined;
    let done = false;
    const r = cvm_run(vm, function* () {
      value = yield* body();
      done = true;
    });
    const failed = guestRunOutcome(r);
    if (!done || failed !== undefined) return [failed ?? 'guest stopped', { done: false }];
    return [show(value as T), { done: true, value: value as T }];
  });
}

/** What a guest step gives back: whether the guest code ran to its end, and its result. */
export type GuestStepResult<T> = { readonly done: true; readonly value: T } | { readonly done: false };

/** How a guest's conversion request went: granted, or the errno the design's VMM call failed with. */
export interface ConvertResult {
  readonly ok: boolean;
  /** The errno of the VMM's first failed conversion call (0 when none failed). */
  readonly errno: number;
  /** The errno of the VMM's last conversion call (0 when it worked or there was none). */
  readonly last_errno: number;
}

/**
 * The outcome of a conversion the guest's platform completed although the VMM's part of it failed
 * with `errno`: on CCA the host completes a RIPAS change at the next REC entry whatever the VMM
 * did (kvm_complete_ripas_change()), so the error reaches only the VMM, and the guest's next
 * access to the page exits to it again.
 */
export function vmmOnlyRefusal(errno: number): Outcome {
  return `to-private fails in the VMM only: ${errno_name(errno) ?? errno}; the guest's request completes, its next access exits`;
}

/**
 * A scenario's expectations by design where a refusal (`refused('EAGAIN')`, designs.md's VMM-side
 * view) is vmmOnlyRefusal(EAGAIN) on a vendor whose guest request completes whatever the VMM
 * answers (CvmVendor.vmm_cannot_refuse: CCA's RSI_IPA_STATE_SET; inferred from the vendor's host
 * series, not stated by designs.md).
 */
export function refusalExpected(table: Readonly<Record<string, DesignExpectation>>, refused: (e: string) => Outcome):
  (design: string, vendor: string) => DesignExpectation | undefined {
  return (design, vendor) => {
    const e = table[design] ?? table[DESIGN_ABBREV[design] ?? ''];
    if (e === undefined || VENDORS.get(vendor)?.cvm?.vmm_cannot_refuse !== true || e.outcome !== refused('EAGAIN')) return e;
    return {
      outcome: vmmOnlyRefusal(Errno.EAGAIN),
      tag: `${e.tag}; on ${vendor} (inferred: the guest's request completes whatever the VMM did)`,
    };
  };
}

/**
 * The guest's conversion request for [gpa, gpa + npages pages), as a step: '0' when granted,
 * with ` (VMM: ERRNO)` when a conversion call of the VMM failed on the way (also when the guest's
 * platform granted the request anyway: vmmOnlyRefusal()).
 */
export function guestConvert(ctx: ScenarioContext, vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean,
  expected: Outcome | null = '0'): ConvertResult {
  const what = to_private ? 'private' : 'shared';
  const who = vm.design.guest_convert === undefined ? vm.vendor.name : vm.design.name;
  return ctx.step(`guest: convert 0x${gpa.toString(16)} (+${npages} pages) to ${what}`, expected ?? undefined,
    `${who}'s conversion request, answered by the ${vm.design.name} design`, () => {
      let status: bigint | undefined;
      const r = cvm_run(vm, function* () {
        status = yield* cvm_guest_convert(vm, gpa, npages, to_private);
      });
      const errno = r.conversions.find((c) => c.ret < 0)?.errno ?? 0;
      const last_errno = r.conversions.at(-1)?.errno ?? 0;
      const failed = guestRunOutcome(r);
      if (failed !== undefined || status === undefined) return [failed ?? 'guest stopped', { ok: false, errno, last_errno }];
      const vmm = errno === 0 ? '' : ` (VMM: ${errno_name(errno) ?? errno})`;
      if (status === 0n) cvm_note_conversion(vm, gpa, npages, to_private);
      // rax as the guest's C code reads it: a long (-KVM_ENOSYS is -1000, not 2^64 - 1000).
      const signed = status >= 1n << 63n ? status - (1n << 64n) : status;
      return [`${signed}${vmm}`, { ok: status === 0n, errno, last_errno }];
    });
}

/** The address the guest uses for `gpa`'s shared view (TDX's shared bit, CCA's top IPA bit). */
export function sharedGpa(vm: CvmVm, gpa: bigint): bigint {
  return vm.vendor.shared_gpa(vm, gpa);
}

/** Eight bytes of `byte`, hex (what the scenarios write and compare). */
export function fill8(byte: number): Uint8Array {
  return new Uint8Array(8).fill(byte);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/**
 * The pfn the guest's access to `gpa` goes to: the leaf SPTE of its gfn (the mirror root of a
 * VM with mirrored TDP when the gfn is private), undefined when KVM maps nothing there.
 */
export function guestPfn(vm: CvmVm, gpa: bigint, is_private: boolean): number | undefined {
  return cvm_spte(vm, gpa, is_private)?.pfn;
}

/** The pfn the VMM's PTE at `hva` maps (/proc/self/pagemap), undefined when none is present. */
export function vmmPfn(vm: CvmVm, hva: bigint): number | undefined {
  return pagemap_pfn(vm.p.mm, hva);
}

/** The guest converts [gpa, +npages) to private and writes `byte` over its first 8 bytes: true when both worked. */
export function guestMakeSecret(ctx: ScenarioContext, vm: CvmVm, gpa: bigint, byte: number): boolean {
  if (!guestConvert(ctx, vm, gpa, 1n, true).ok) return false;
  return guestStep(ctx, vm, `store 0x${byte.toString(16).repeat(8)} at 0x${gpa.toString(16)}`, 'done', 'the guest writes its private page',
    () => guestStore(gpa, fill8(byte)), () => 'done').done;
}
