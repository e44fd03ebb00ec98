/**
 * The host-wide SEV state: what one machine's hardware and firmware hold for all its VMs (the
 * RMP, the PSP firmware) and what KVM keeps for all of them in arch/x86/kvm/svm/sev.c (the ASID
 * bitmaps, min/max_sev_asid, sev_enc_bit), plus the host's /dev/sev (drivers/crypto/ccp/sev-dev.c,
 * which only has to exist and be opened: KVM checks that kvm_sev_cmd.sev_fd is that file).
 *
 * One SevHost per Kernel, made by sevHostRegistrar() or on first use (sev_host()), never global.
 */
import { HostOptions, type HostRegistrar } from '@cocosim/core';
import { File, Inode, Kernel, S_IFCHR, open_fmode, type FileOperations } from '@cocosim/mm';
import type { Gpa, Pfn } from '@cocosim/core';
import { define_sev_costs } from './costs.js';
import { SevFirmware } from './psp.js';
import { Rmp } from './rmp.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** An AMD-SP firmware command completed (cocosim: the PSP mailbox has no tracepoint). */
    cocosim_sev_cmd: { cmd: string; error: number };
    /** An RMPUPDATE succeeded (cocosim: arch/x86/virt/svm/sev.c has no tracepoint). */
    cocosim_snp_rmpupdate: { pfn: number; assigned: boolean; pagesize: number; immutable: boolean; gpa: bigint; asid: number };
    /** kvm_rmp_fault (arch/x86/kvm/trace.h): an #NPF with the RMP bit, after sev_handle_rmp_fault(). */
    kvm_rmp_fault: { vcpu_id: number; gpa: Gpa; pfn: Pfn; error_code: bigint; rmp_level: number; psmash_ret: number };
    /** An exception the platform delivered to the guest (cocosim: #VC for a page not validated). */
    cocosim_sev_guest_exception: { vcpu_id: number; vector: number; error_code: bigint; gpa: Gpa };
  }
}

/** The host's SEV configuration: CPUID 0x8000001F and the module parameters. */
export interface SevHostOptions {
  /** kvm_amd.sev, kvm_amd.sev_es, kvm_amd.sev_snp (default all on). */
  readonly sev?: boolean;
  readonly sev_es?: boolean;
  readonly sev_snp?: boolean;
  /**
   * CPUID 0x8000001F EDX (min_sev_asid) and ECX (max_sev_asid): SEV guests get min..max, SEV-ES
   * and SNP guests 1..min-1. Default 100 and 509 (an EPYC with 509 ASIDs, 99 for SEV-ES/SNP).
   */
  readonly min_sev_asid?: number;
  readonly max_sev_asid?: number;
  /** CPUID 0x8000001F EBX[5:0]: the C-bit position (default 51). */
  readonly c_bit?: number;
  /** X86_FEATURE_SME_COHERENT: C-bit aliases are cache coherent, so no clflush is needed (default false). */
  readonly sme_coherent?: boolean;
}

type ResolvedOptions = Required<SevHostOptions>;

const DEFAULTS: ResolvedOptions = { sev: true, sev_es: true, sev_snp: true, min_sev_asid: 100, max_sev_asid: 509, c_bit: 51, sme_coherent: false };

/** The SEV hardware, firmware and KVM host state of one Kernel. */
export class SevHost {
  readonly opts: ResolvedOptions;
  readonly rmp: Rmp;
  readonly fw: SevFirmware;
  /** sev_asid_bitmap: ASIDs KVM has handed out. */
  readonly asid_bitmap = new Set<number>();
  /** sev_reclaim_asid_bitmap: ASIDs freed and not yet flushed (DF_FLUSH) for reuse. */
  readonly reclaim_asid_bitmap = new Set<number>();
  /** 2 MiB direct-map regions adjust_direct_map() has split to 4 KiB. */
  readonly direct_map_split = new Set<number>();
  /** snp_leaked_pages_list. */
  readonly leaked = new Set<number>();
  /** Mixed into the firmware's deterministic secrets (the host seed). */
  readonly seed_tag: string;

  constructor(readonly kernel: Kernel, opts: SevHostOptions = {}, seed_tag = 'cocosim') {
    this.opts = { ...DEFAULTS, ...opts };
    const store = kernel.store;
    this.rmp = new Rmp(store.base_pfn, store.base_pfn + store.nr_pages - 1);
    this.fw = new SevFirmware(this);
    this.seed_tag = seed_tag;
    define_sev_costs(kernel.cost);
  }

  /** sev_me_mask: the C-bit as a physical-address mask. */
  get sev_me_mask(): bigint {
    return 1n << BigInt(this.opts.c_bit);
  }

  /** Guests the host runs as SEV-SNP (cc_platform_has(CC_ATTR_HOST_SEV_SNP)). */
  get snp_enabled(): boolean {
    return this.opts.sev_snp && this.opts.sev_es;
  }
}

const hosts = new WeakMap<Kernel, SevHost>();

/** The SEV state of `kernel`'s host, created with the defaults on first use if no registrar made it. */
export function sev_host(kernel: Kernel): SevHost {
  let h = hosts.get(kernel);
  if (h === undefined) {
    h = new SevHost(kernel);
    hosts.set(kernel, h);
  }
  return h;
}

/** /dev/sev's file operations: the file KVM accepts as kvm_sev_cmd.sev_fd (no ioctls are modelled). */
export const sev_fops: FileOperations = {};

/** sev_misc_init(): open /dev/sev. */
function sev_dev_open(kernel: Kernel, flags: number): File {
  const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o600, {}, sev_fops, kernel.next_mapping_id());
  const file = new File(inode, sev_fops, flags, open_fmode(flags));
  file.private_data = sev_host(kernel);
  return file;
}

/**
 * The SEV host registrar: the host's SEV state with `opts`, its cost entries and /dev/sev. Goes
 * after mmRegistrar (which provides the Kernel); the vendor table goes to kvmRegistrar.
 */
export function sevHostRegistrar(opts: SevHostOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    const seed = root.isRegistered(HostOptions) ? root.resolve(HostOptions).seed : undefined;
    hosts.set(kernel, new SevHost(kernel, opts, seed === undefined ? 'cocosim' : String(seed)));
    kernel.register_device('/dev/sev', (k, flags) => sev_dev_open(k, flags));
  };
}
