/**
 * A confidential VM driven from user space (cocosim plumbing, after the selftests' libraries
 * lib/x86/tdx/tdx_util.c, lib/x86/sev.c and QEMU's confidential-guest-support): a platform is
 * base + design + vendor, and so is the user space that runs a VM on it.
 *
 *   - the vendor's half (CvmVendor): the VM type, the launch ioctls that populate and measure
 *     the initial image, the guest's conversion request (TDG.VP.VMCALL<MapGPA>, the GHCB page
 *     state change, RSI_IPA_STATE_SET, pKVM's share/unshare, KVM_HC_MAP_GPA_RANGE) with its
 *     acceptance, and how the request reaches the VMM (which exit, how it is completed);
 *   - the design's half (CvmDesign): how the VMM backs guest memory (a guest_memfd memslot, a
 *     sealed memfd, anonymous memory protected by mprotect...) and what it does when the guest
 *     asks for a conversion (memory attributes, fallocate/punch, a seal, an mmap over the range);
 *   - cvm_run(): the VMM's KVM_RUN loop joining them, as QEMU's kvm_cpu_exec() handles
 *     KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) by kvm_convert_memory().
 *
 * Scenarios, `cocosim vendors`, `cocosim designs` and the vendor-matrix test drive every
 * platform through these two tables, so one scenario reads the same on TDX and on SNP and the
 * differences come from the plugins, not from the scenario.
 */
import { Errno } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type Process } from '@cocosim/mm';
import type { Kvm, KvmRun, KvmVcpu } from './kvm_host.js';
import type { GuestCode, GuestProgram, GuestPageTables } from './guest.js';
import { vmcall } from './guest.js';
import { kvm_vcpu_set_guest_program } from './x86.js';
import { kvm_has_mirrored_tdp, kvm_tdp_mmu_spte } from './mmu/tdp_mmu.js';
import {
  KVM_CAP_EXIT_HYPERCALL, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_EXIT_HYPERCALL, KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_DECRYPTED, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_RUN, KVM_X86_SW_PROTECTED_VM,
} from './uapi.js';

const PAGE = 4096n;

/** What the VMM does beyond the conversion itself (QEMU's defaults unless a scenario changes them). */
export interface CvmPolicy {
  /**
   * Discard the side a conversion leaves (QEMU's ram_block_discard_range() of the shared memory on
   * to-private, of the guest_memfd range on to-shared). False is the VMM of S16 that never frees
   * the copy it no longer uses.
   */
  discard: boolean;
  /**
   * The VMM's listener around each conversion (QEMU's RamDiscardManager listeners, e.g. VFIO's
   * vfio_ram_discard_notify_discard/_populate): `before` runs before the design converts (unmap
   * DMA of a range going private), `after` once it converted (map a range that became shared).
   * A negative return fails the conversion with p.errno.
   */
  listener?: {
    before?(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number;
    after?(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number;
  };
}

/** One confidential VM as the VMM holds it. */
export interface CvmVm {
  readonly p: Process;
  readonly kvm_fd: number;
  readonly vm_fd: number;
  /** The kernel's VM behind vm_fd (what a scenario inspects after a step). */
  readonly kvm: Kvm;
  vcpu_fd: number;
  vcpu: KvmVcpu | null;
  /** Guest memory: [base, base + size), backed with pages of `page_size` bytes where the design can. */
  readonly base: bigint;
  readonly size: bigint;
  readonly page_size: number;
  readonly policy: CvmPolicy;
  readonly vendor: CvmVendor;
  readonly design: CvmDesign;
  /** What the design and the vendor keep per VM (fds, mappings, handles), under their own keys. */
  readonly state: Map<string, unknown>;
  /**
   * The gfns the guest holds private: what it launched private and converted since
   * (cvm_note_conversion). The requirement checks ask which pages these map to.
   */
  readonly guest_private: Set<number>;
}

/** Record that the guest now holds [gpa, gpa + npages pages) private (or shared). */
export function cvm_note_conversion(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): void {
  const first = Number(gpa / PAGE);
  for (let i = 0; i < Number(npages); i++) {
    if (to_private) vm.guest_private.add(first + i);
    else vm.guest_private.delete(first + i);
  }
}

/** A guest's request to convert [gpa, gpa + npages pages), as the VMM decodes it from an exit. */
export interface CvmConversion {
  readonly gpa: bigint;
  readonly npages: bigint;
  readonly to_private: boolean;
}

/** The vendor's half of a confidential VM. Every call returns 0 or -1 with p.errno, as C does. */
export interface CvmVendor {
  readonly name: string;
  /** The KVM_CREATE_VM type of a VM with private memory. */
  readonly vm_type: number;
  /**
   * Guest memory starts private for the guest (pKVM: a protected guest owns every page it
   * touches until it shares it), so a guest that wants shared memory asks for it first.
   */
  readonly initially_private?: boolean;
  /**
   * The vendor's hypervisor, not the host kernel's design, decides what the host can reach
   * (pKVM's stage-2 page ownership): the per-design outcomes of designs.md, written for x86 and
   * CCA hosts where the host kernel's design hides private memory, do not apply to it.
   */
  readonly protects_in_hypervisor?: boolean;
  /**
   * The guest physical address the guest uses for the shared view of `gpa` (TDX sets the shared
   * bit, CCA the top IPA bit; SNP and SW_PROTECTED keep the GPA: the C-bit lives in the guest's
   * page tables, and KVM's attributes decide).
   */
  shared_gpa(vm: CvmVm, gpa: bigint): bigint;
  /** The guest's page tables (every GVA the guest uses, shared aliases included). */
  readonly page_tables?: GuestPageTables;
  /** After KVM_CREATE_VM, before memory: KVM_TDX_INIT_VM, KVM_SEV_INIT2, realm configuration... */
  vm_init(vm: CvmVm): number;
  /** After KVM_CREATE_VCPU: KVM_TDX_INIT_VCPU, REC creation... */
  vcpu_init(vm: CvmVm): number;
  /**
   * Populate and measure [gpa, gpa + len) of private memory from the user buffer at `src`
   * (KVM_TDX_INIT_MEM_REGION, KVM_SEV_SNP_LAUNCH_UPDATE, the realm's DATA_CREATE...). Undefined
   * where the vendor has no launch flow: the guest writes its own memory after it starts.
   */
  launch_update?(vm: CvmVm, gpa: bigint, src: bigint, len: bigint): number;
  /** KVM_TDX_FINALIZE_VM, KVM_SEV_SNP_LAUNCH_FINISH, realm activation. */
  launch_finish?(vm: CvmVm): number;
  /** The launch measurement (MRTD, the SNP launch digest, the RIM) as hex. */
  measurement?(vm: CvmVm): string;
  /**
   * Guest code converting [gpa, gpa + npages pages): the vendor's request to the host and, on
   * to-private, the acceptance (TDG.MEM.PAGE.ACCEPT, PVALIDATE...). Returns 0 on success, the
   * vendor's error otherwise.
   */
  guest_convert(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint>;
  /** The conversion request an exit carries, or undefined when the exit is something else. */
  conversion_exit(vm: CvmVm, run: KvmRun): CvmConversion | undefined;
  /** Tell the guest how its request went (hypercall.ret, the GHCB's result...). */
  complete_conversion(vm: CvmVm, run: KvmRun, ok: boolean): void;
  /**
   * The errno of a failed KVM_RUN that still carries this vendor's conversion request (the Arm
   * CCA series: the REC's RIPAS change exit is KVM_EXIT_MEMORY_FAULT with -EFAULT, which QEMU's
   * kvm_cpu_exec() answers with kvm_convert_memory()); cvm_run() then asks conversion_exit()
   * about such runs too. Undefined: only a KVM_RUN that returns 0 carries a request.
   */
  readonly conversion_errno?: number;
  /**
   * The guest's conversion request completes whatever the VMM answered (the Arm CCA series:
   * kvm_complete_ripas_change() at the next REC entry; complete_conversion() has nothing to tell
   * the guest), so a VMM refusal reaches the VMM only. Undefined: the VMM's answer is the guest's.
   */
  readonly vmm_cannot_refuse?: boolean;
  /**
   * What the vendor's own tracker says of `pfn`, the page KVM maps at the VM's private `gpa`:
   * 'guest' when the hardware holds it as this VM's private page at that GPA (TDX: S-EPT leaf
   * MAPPED there and PAMT PT_REG of this TD; SNP: RMP assigned to this VM's ASID at that GPA and
   * validated; CCA: a DATA granule the realm's RTT maps there with RIPAS RAM; pKVM: guest-owned in
   * this VM's stage-2 and host NOPAGE), else a short description of what it is instead
   * ('host-owned', 'RMP assigned to ASID 3 at gpa 0x...'). Read-only: charges nothing. Undefined
   * where the vendor keeps no such tracker (SW_PROTECTED, MKTME).
   */
  private_owner?(vm: CvmVm, gpa: bigint, pfn: number): string;
}

/** The design's half: how the VMM backs guest memory and converts it. */
export interface CvmDesign {
  readonly name: string;
  /**
   * The vendor half this design runs with on vendor `vendor_name`, whose own half is `cvm`
   * (undefined where the vendor has no private VM type). Designs tied to one vendor use it:
   * D12 keys a default VM's memory on MKTME, D13 runs KVM_X86_SEV_VM with its legacy launch on
   * an SEV host, D14 SNP on anonymous memory. Undefined: the vendor's own half.
   */
  vendor_cvm?(vendor_name: string, cvm: CvmVendor | undefined): CvmVendor | undefined;
  /** Why this design cannot back a confidential VM of `vendor`; undefined when it can. */
  applies(vendor: CvmVendor): string | undefined;
  /** Back [vm.base, vm.base + vm.size) with memory, all of it shared. */
  add_memory(vm: CvmVm): number;
  /** The VMM's answer to a conversion of [gpa, gpa + len), as the design's uAPI does it. */
  convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number;
  /**
   * The VMM's user address for `gpa` (the mapping it had before any conversion, which a
   * malicious or buggy VMM still holds), or undefined where the design gives none.
   */
  hva(vm: CvmVm, gpa: bigint): bigint | undefined;
  /**
   * The guest's conversion request where the design brings its own (D1's and D2's hypercalls,
   * handled inside KVM); the vendor's is used where this is undefined.
   */
  guest_convert?(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint>;
  /**
   * The fd and offset holding `gpa`'s private memory (a guest_memfd, a sealed or restricted
   * memfd), for the scenarios that act on the file (punch hole, a second VM binding it);
   * undefined where private memory is no file of the VMM's.
   */
  private_fd?(vm: CvmVm, gpa: bigint): { readonly fd: number; readonly offset: bigint } | undefined;
  /**
   * The fd and offset a second process maps to share `gpa`'s shared memory (vhost-user, a
   * debugger); undefined where the shared memory is anonymous.
   */
  shared_fd?(vm: CvmVm, gpa: bigint): { readonly fd: number; readonly offset: bigint } | undefined;
}

/** What cvm_create() takes. */
export interface CvmOptions {
  readonly base?: bigint;
  readonly size: bigint;
  readonly page_size?: number;
  readonly policy?: Partial<CvmPolicy>;
}

/**
 * KVM_CREATE_VM of the vendor's private type, the vendor's VM initialisation, the design's guest
 * memory (all shared), one vCPU. Returns the VM, or a negative errno (and p.errno) at the step
 * that failed; the fds opened so far stay open, as in a VMM that exits on the error.
 */
export function cvm_create(p: Process, vendor: CvmVendor, design: CvmDesign, opts: CvmOptions): CvmVm | number {
  const kvm_fd = p.open('/dev/kvm', O_RDWR);
  if (kvm_fd < 0) return -p.errno;
  const vm_fd = p.ioctl(kvm_fd, KVM_CREATE_VM, vendor.vm_type);
  if (vm_fd < 0) return -p.errno;
  const kvm = p.task.files.lookup(vm_fd)!.private_data as Kvm;
  const vm: CvmVm = {
    p, kvm_fd, vm_fd, kvm, vcpu_fd: -1, vcpu: null,
    base: opts.base ?? 1n << 32n, size: opts.size, page_size: opts.page_size ?? 4096,
    policy: { discard: true, ...opts.policy }, vendor, design, state: new Map(), guest_private: new Set(),
  };
  if (vendor.vm_init(vm) < 0) return -p.errno;
  if (design.add_memory(vm) < 0) return -p.errno;
  const vcpu_fd = p.ioctl(vm_fd, KVM_CREATE_VCPU, 0);
  if (vcpu_fd < 0) return -p.errno;
  vm.vcpu_fd = vcpu_fd;
  vm.vcpu = p.task.files.lookup(vcpu_fd)!.private_data as KvmVcpu;
  if (vendor.vcpu_init(vm) < 0) return -p.errno;
  if (vendor.initially_private === true) cvm_note_conversion(vm, vm.base, vm.size / PAGE, true);
  return vm;
}

/**
 * The initial image: `image` copied to a user buffer, [gpa, gpa + image.length) converted to
 * private by the design, then the vendor's launch_update over it and launch_finish. Vendors
 * without a launch flow get the design's conversion only (the guest fills its memory itself).
 */
export function cvm_launch(vm: CvmVm, gpa: bigint, image: Uint8Array): number {
  const { p } = vm;
  const len = BigInt(Math.ceil(image.length / 4096) * 4096);
  if (len > 0n) {
    // A guest whose memory starts private (pKVM) gets its image loaded where it already is.
    if (vm.vendor.initially_private !== true) {
      if (vm.design.convert(vm, gpa, len, true) < 0) return -1;
      cvm_note_conversion(vm, gpa, len / PAGE, true);
    }
    if (vm.vendor.launch_update !== undefined) {
      const src = p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (src === MAP_FAILED) return -1;
      if (p.store(src, image) !== 0) {
        p.errno = Errno.EFAULT;
        return -1;
      }
      const r = vm.vendor.launch_update(vm, gpa, src, len);
      p.munmap(src, len);
      if (r < 0) return -1;
    }
  }
  return vm.vendor.launch_finish === undefined ? 0 : vm.vendor.launch_finish(vm);
}

/** Guest code converting [gpa, gpa + npages pages): the design's request if it has one, else the vendor's. */
export function cvm_guest_convert(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  return (vm.design.guest_convert ?? vm.vendor.guest_convert)(vm, gpa, npages, to_private);
}

/**
 * KVM's leaf SPTE for `gpa` as the guest reaches it: a private gfn on the mirror root of a VM
 * with mirrored TDP (TDX), else the direct root; a shared gfn at its alias as given, or, where the
 * direct root indexes gfns without the vendor's shared bit, at the GPA without it.
 */
export function cvm_spte(vm: CvmVm, gpa: bigint, is_private: boolean): { spte: bigint; level: number; pfn: number } | undefined {
  const mirrored = kvm_has_mirrored_tdp(vm.kvm);
  const s = kvm_tdp_mmu_spte(vm.kvm, Number(gpa / PAGE), is_private && mirrored);
  if (s !== undefined || is_private) return s;
  const bits = vm.vendor.shared_gpa(vm, vm.base) - vm.base;
  return bits > 0n && (gpa & bits) === bits ? kvm_tdp_mmu_spte(vm.kvm, Number((gpa - bits) / PAGE), false) : undefined;
}

/** How a cvm_run() ended. */
export interface CvmRunResult {
  /** KVM_RUN's C result: 0, or -1 with errno. */
  readonly ret: number;
  readonly errno: number;
  /** The exit that ended the run (KVM_EXIT_HLT when the guest program finished). */
  readonly exit_reason: number;
  /** The conversions the VMM handled on the way, with the design's result for each. */
  readonly conversions: readonly (CvmConversion & { readonly ret: number; readonly errno: number })[];
}

/**
 * Run `program` on the VM's vCPU: KVM_RUN until an exit the VMM does not handle, answering each
 * conversion request with the design's convert(), as QEMU's kvm_convert_memory() does.
 */
export function cvm_run(vm: CvmVm, program: GuestProgram): CvmRunResult {
  const { p } = vm;
  kvm_vcpu_set_guest_program(vm.vcpu!, program, vm.vendor.page_tables === undefined ? {} : { page_tables: vm.vendor.page_tables });
  const run = vm.vcpu!.run;
  const conversions: (CvmConversion & { ret: number; errno: number })[] = [];
  for (;;) {
    const r = p.ioctl(vm.vcpu_fd, KVM_RUN, 0);
    const errno = r < 0 ? p.errno : 0;
    if (r < 0 && (vm.vendor.conversion_errno === undefined || errno !== vm.vendor.conversion_errno)) {
      return { ret: r, errno, exit_reason: run.exit_reason, conversions };
    }
    const req = vm.vendor.conversion_exit(vm, run);
    if (req === undefined) return { ret: r < 0 ? r : 0, errno, exit_reason: run.exit_reason, conversions };
    const len = req.npages * PAGE;
    const l = vm.policy.listener;
    let ret = l?.before === undefined ? 0 : l.before(vm, req.gpa, len, req.to_private);
    if (ret >= 0) ret = vm.design.convert(vm, req.gpa, len, req.to_private);
    if (ret >= 0 && l?.after !== undefined) ret = l.after(vm, req.gpa, len, req.to_private);
    conversions.push({ ...req, ret, errno: ret < 0 ? p.errno : 0 });
    vm.vendor.complete_conversion(vm, run, ret >= 0);
  }
}

/**
 * The generic x86 request: KVM_HC_MAP_GPA_RANGE(gpa, npages, attrs), forwarded to user space
 * with KVM_CAP_EXIT_HYPERCALL (arch/x86/kvm/x86.c kvm_emulate_hypercall, complete_hypercall_exit);
 * what the SW_PROTECTED selftest guests use and what TDX and SNP requests become in KVM.
 */
export function map_gpa_range_exit(run: KvmRun): CvmConversion | undefined {
  if (run.exit_reason !== KVM_EXIT_HYPERCALL || run.hypercall.nr !== BigInt(KVM_HC_MAP_GPA_RANGE)) return undefined;
  const [gpa, npages, attrs] = run.hypercall.args as [bigint, bigint, bigint];
  return { gpa, npages, to_private: (attrs & KVM_MAP_GPA_RANGE_ENCRYPTED) !== 0n };
}

/** Enable KVM_HC_MAP_GPA_RANGE exits on the VM (what QEMU does for every confidential VM type). */
export function cvm_enable_map_gpa_range(vm: CvmVm): number {
  return vm.p.ioctl(vm.vm_fd, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << KVM_HC_MAP_GPA_RANGE] }) < 0 ? -1 : 0;
}

/**
 * KVM_X86_SW_PROTECTED_VM: private memory with no hardware behind it (the selftests' platform):
 * no launch flow, the guest asks with KVM_HC_MAP_GPA_RANGE and accepts nothing.
 */
export const sw_protected_cvm: CvmVendor = {
  name: 'sw_protected',
  vm_type: KVM_X86_SW_PROTECTED_VM,
  shared_gpa: (_vm, gpa) => gpa,
  vm_init: cvm_enable_map_gpa_range,
  vcpu_init: () => 0,
  *guest_convert(_vm, gpa, npages, to_private) {
    return yield* vmcall(KVM_HC_MAP_GPA_RANGE, gpa, npages, to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : KVM_MAP_GPA_RANGE_DECRYPTED);
  },
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    // A non-zero ret is what the guest's hypercall returns (QEMU sets -EINVAL... as a positive 1).
    run.hypercall.ret = ok ? 0n : 1n;
  },
};
