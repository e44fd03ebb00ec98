/**
 * The vendor seam: struct kvm_x86_ops (arch/x86/include/asm/kvm_host.h,
 * arch/x86/include/asm/kvm-x86-ops.h). A vendor plugin (TDX, SEV-SNP, CCA, pKVM...) fills a
 * partial table; kvm_x86_ops_merge() fills every hook it left out with the default the kernel
 * uses for an absent static call (KVM_X86_OP_OPTIONAL_RET0: return 0; KVM_X86_OP_OPTIONAL:
 * nothing), and generic code always calls through the merged table, so it never asks which
 * vendor is active.
 *
 * Hooks the kernel does not have are marked "cocosim": they are the places where hardware (not
 * KVM) decides what happens, such as a host access to a private page.
 */
import type { Kvm, KvmVcpu } from './kvm_host.js';
import { kvm_mem_is_private } from './kvm_mem_attributes.js';

/** What a host access to a page that a VM owns does (cocosim: the hardware's answer). */
export type HostAccessOutcome =
  /** The access proceeds on the page's bytes. */
  | { readonly kind: 'ok' }
  /** The access proceeds but reads ciphertext or writes are lost/poison (MKTME, SEV without SNP). */
  | { readonly kind: 'ciphertext' }
  /** The CPU faults (SNP RMP #PF, CCA GPF): the host kernel oopses, user space gets SIGBUS. */
  | { readonly kind: 'fault'; readonly reason: string }
  /** A machine check (TDX: poison on a TD private page read with the wrong KeyID). */
  | { readonly kind: 'mce'; readonly reason: string }
  /** A read returns zeros without faulting (TDX under Logical Integrity); a write proceeds. */
  | { readonly kind: 'zeros' };

/** Who makes a host access (mm's HostAccessActor): user-mode code or the kernel. */
export type HostAccessActorKind = 'user' | 'kernel';

/**
 * What a guest access to a page does (cocosim: the hardware's answer after the SPTE translated
 * the gpa to `pfn`).
 */
export type GuestMemAccess =
  /** The access goes to memory through memory-encryption key `key` (0: plaintext, the host's key). */
  | { readonly kind: 'ok'; readonly key: number }
  /**
   * An exception delivered to the guest (SNP #VC for a page not validated, TDX #VE for a PENDING
   * page). The guest programs have no IDT, so it ends as a triple fault (KVM_EXIT_SHUTDOWN).
   */
  | { readonly kind: 'exception'; readonly vector: number; readonly name: string; readonly error_code: bigint }
  /**
   * A VM exit that the vendor handled in KVM (SNP's #NPF with the RMP bit: sev_handle_rmp_fault()):
   * `ret` as an exit handler returns it (EXIT_REASON_VENDOR): 1 re-enters the guest (the access
   * is executed again), 0 exits to user space with vcpu->run filled, -errno fails KVM_RUN.
   */
  | { readonly kind: 'exit'; readonly ret: number };

/**
 * What the platform's trusted firmware answers a guest's call to it (cocosim: guest_fwcall): the
 * call retires with the registers it returns (x0.. / rax..); the vCPU first takes a stage-2 fault
 * at `gpa`, which KVM handles, and then executes the call again; or the call exits to user space
 * (the vendor filled vcpu->run; KVM_RUN returns `ret`: 0, or -errno such as -EFAULT with
 * KVM_EXIT_MEMORY_FAULT) and is executed again at the next KVM_RUN.
 */
export type GuestFwcallOutcome =
  | { readonly kind: 'ret'; readonly regs: readonly bigint[] }
  | { readonly kind: 'fault'; readonly gpa: bigint; readonly write: boolean }
  | { readonly kind: 'exit'; readonly ret: number };

/**
 * What the hardware does with a guest access before KVM's stage-2 tables are walked (cocosim:
 * guest_access_fault): 'inject' delivers a synchronous exception to the guest (Arm CCA: an SEA for
 * an IPA whose RIPAS is EMPTY), which the guest model, having no exception vectors, takes as a
 * triple fault (KVM_EXIT_SHUTDOWN); 'exit' leaves to user space with vcpu->run filled by the
 * vendor (KVM_RUN returns `ret`).
 */
export type GuestAccessFault =
  | { readonly kind: 'inject'; readonly name: string }
  | { readonly kind: 'exit'; readonly ret: number };

export interface KvmX86Ops {
  /** The vendor's name ("vmx", "svm", "tdx"...), as cocosim's --vendor names it. */
  readonly name: string;
  /**
   * kvm_caps.supported_vm_types: the KVM_X86_*_VM types this host accepts (bit per type).
   * KVM_X86_DEFAULT_VM is always supported.
   */
  readonly supported_vm_types: number;
  /**
   * tdp_enabled (and tdp_mmu_enabled): the MMU maps guest memory with two-dimensional paging.
   * false models a host like this machine's PVM one (shadow paging: no KVM_PRE_FAULT_MEMORY,
   * KVM_RUN without memslots fails); the MMU's data structures are the same either way.
   */
  readonly tdp_enabled: boolean;
  /** The gfn bits the guest uses as an attribute (TDX's shared bit): cleared before lookup. */
  readonly gfn_attr_mask?: number;

  /**
   * kvm_arch_init_vm()'s vendor part: kvm_x86_ops.vm_init. The generic part has already set
   * kvm->arch.has_private_mem for SW_PROTECTED; the vendor sets it (and has_protected_state)
   * for its own types. Returns 0 or -errno.
   */
  vm_init?(kvm: Kvm): number;
  /** kvm_x86_ops.vm_destroy: the last reference went. */
  vm_destroy?(kvm: Kvm): void;
  /** kvm_x86_ops.vcpu_create. */
  vcpu_create?(vcpu: KvmVcpu): number;
  /**
   * kvm_x86_ops.vcpu_pre_run: asked by KVM_RUN before entering the guest (TDX: the TD must be
   * initialized; Arm CCA's kvm_rec_pre_enter(): the realm must be active, a pending RIPAS change is
   * completed). 1 enters the guest; 0 or -errno is what KVM_RUN returns. Default 1.
   */
  vcpu_pre_run?(vcpu: KvmVcpu): number;

  /**
   * cocosim: KVM_CREATE_VM's `type` argument as the architecture reads it (kvm_arch_init_vm()),
   * turned into the vm_type index that supported_vm_types and kvm->arch.vm_type use. The default
   * is x86's: the argument is the index. arm64 vendors decode KVM_VM_TYPE_ARM_IPA_SIZE and the
   * machine type bits (KVM_VM_TYPE_ARM_REALM, KVM_VM_TYPE_ARM_PROTECTED) and document their index.
   * Returns the index, or -EINVAL.
   */
  vm_type_decode?(type: bigint): number;
  /**
   * The vendor part of KVM_ENABLE_CAP on the VM fd (arm64's kvm_vm_ioctl_enable_cap():
   * KVM_CAP_ARM_RME -> kvm_realm_enable_cap(); ACK's KVM_CAP_ARM_PROTECTED_VM), for a capability
   * the generic code does not know. The vendor checks `flags` itself (arm64 refuses non-zero flags
   * except for KVM_CAP_ARM_PROTECTED_VM, whose subcommand they are). `args` is struct
   * kvm_enable_cap's args[] as given (a pointer argument is the struct it points to). Default -EINVAL.
   */
  vm_enable_cap?(kvm: Kvm, cap: bigint, flags: bigint, args: readonly unknown[]): number;
  /** The vendor part of KVM_CHECK_EXTENSION (KVM_CAP_ARM_RME...): 0 for a capability it does not have. */
  check_extension?(cap: number): number;
  /**
   * kvm_has_mirrored_tdp(): the VM's private mappings live in a mirror root whose leaves are
   * propagated to the vendor's page tables (set_external_spte / remove_external_spte). Default: none; TDX
   * (its S-EPT, as the kernel's vm_type test) and Arm CCA realms (the RMM's RTTs) opt in.
   */
  has_mirrored_tdp?(kvm: Kvm): boolean;
  /**
   * cocosim: every leaf of the VM's direct root is also propagated through set_external_spte /
   * remove_external_spte, because the guest's stage-2 belongs to a hypervisor below KVM (pKVM:
   * pkvm_pgtable_stage2_map() / pkvm_pgtable_stage2_unmap() are hypercalls). Default false.
   */
  external_direct_root?(kvm: Kvm): boolean;

  /** kvm_arch_gmem_prepare(): make a freshly zeroed gmem folio private to the VM (SNP: RMPUPDATE). */
  gmem_prepare?(kvm: Kvm, pfn: number, gfn: number, max_order: number): number;
  /** kvm_arch_gmem_invalidate(): gmem pages [start, end) are being freed (SNP: back to hypervisor). */
  gmem_invalidate?(kvm: Kvm, start_pfn: number, end_pfn: number): void;
  /** kvm_x86_ops.gmem_max_mapping_level (private_max_mapping_level): 0 means no limit. */
  gmem_max_mapping_level?(kvm: Kvm, pfn: number, is_private: boolean): number;

  /**
   * kvm_x86_ops.set_external_spte: TDX's mirror SPTE installs the S-EPT entry (TDH.MEM.PAGE.AUG).
   * `is_private` (cocosim): the leaf is the mirror root's, not the direct root's (external_direct_root).
   */
  set_external_spte?(kvm: Kvm, gfn: number, level: number, pfn: number, is_private?: boolean): number;
  /** kvm_x86_ops.remove_external_spte: TDX removes the S-EPT entry (TDH.MEM.RANGE.BLOCK, REMOVE). `is_private` as above. */
  remove_external_spte?(kvm: Kvm, gfn: number, level: number, pfn: number, is_private?: boolean): number;

  /** kvm_x86_ops.mem_enc_ioctl: KVM_MEMORY_ENCRYPT_OP on the VM fd (launch flows). */
  mem_enc_ioctl?(kvm: Kvm, arg: unknown): number;
  /** kvm_x86_ops.vcpu_mem_enc_ioctl: KVM_MEMORY_ENCRYPT_OP on a vCPU fd (TDX init vCPU...). */
  vcpu_mem_enc_ioctl?(vcpu: KvmVcpu, arg: unknown): number;

  /**
   * cocosim: whether a guest access at `gpa` is private. The default is x86's for
   * SW_PROTECTED (kvm_mmu_page_fault: the gfn's PRIVATE attribute decides); TDX answers by the
   * shared bit, SNP by the C-bit of the guest's page tables.
   */
  guest_access_is_private?(vcpu: KvmVcpu, gpa: bigint): boolean;
  /**
   * cocosim: the guest accepts/validates private pages after a conversion (TDG.MEM.PAGE.ACCEPT,
   * PVALIDATE, RSI_IPA_STATE_SET). 0 or -errno for the guest's view of failure.
   */
  guest_accept?(vcpu: KvmVcpu, gpa: bigint, npages: number, to_private: boolean): number;
  /**
   * cocosim: a guest call to the platform's trusted firmware (Arm SMCCC SMC/HVC: RSI calls, pKVM's
   * MEM_SHARE/MEM_UNSHARE; TDX TDCALL), `fn` the function id (x0 / rax), `args` x1.. . Default:
   * SMCCC_RET_NOT_SUPPORTED (-1) in x0.
   */
  guest_fwcall?(vcpu: KvmVcpu, fn: bigint, args: readonly bigint[]): GuestFwcallOutcome;
  /**
   * cocosim: what the hardware does with a guest access of `gpa` before KVM's stage-2 is walked;
   * undefined (the default) lets the access go on.
   */
  guest_access_fault?(vcpu: KvmVcpu, gpa: bigint, write: boolean): GuestAccessFault | undefined;
  /**
   * cocosim: a host CPU access (kernel or user) of `len` bytes at `offset` in a pfn the VM's
   * guest_memfd holds (mm's MmHooks.host_access, routed by kvm_host_access.ts).
   */
  host_access?(kvm: Kvm, pfn: number, write: boolean, actor?: HostAccessActorKind, offset?: number, len?: number): HostAccessOutcome;
  /** cocosim: a device DMA to a pfn the VM may own privately. */
  dma_access?(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome;
  /**
   * cocosim: a guest load/store at `gpa` that the SPTE translated to `pfn` (`is_private`: the
   * access is private per guest_access_is_private; `len`: the bytes it touches in the page, from
   * gpa's offset, so that a vendor can check its cache lines: TDX's TD-owner bit). The default:
   * plaintext, no check.
   */
  guest_mem_access?(vcpu: KvmVcpu, gpa: bigint, pfn: number, write: boolean, is_private: boolean, len?: number): GuestMemAccess;
  /**
   * kvm_x86_ops.mem_enc_register_region / mem_enc_unregister_region: KVM_MEMORY_ENCRYPT_REG_REGION
   * and KVM_MEMORY_ENCRYPT_UNREG_REGION on the VM fd (legacy SEV pins the range). Default -ENOTTY.
   */
  mem_enc_register_region?(kvm: Kvm, arg: unknown): number;
  mem_enc_unregister_region?(kvm: Kvm, arg: unknown): number;
}

/** The merged table: every hook present. */
export type MergedKvmX86Ops = Required<Omit<KvmX86Ops, 'gfn_attr_mask'>> & { readonly gfn_attr_mask: number };

const OK: HostAccessOutcome = { kind: 'ok' };
const PLAINTEXT: GuestMemAccess = { kind: 'ok', key: 0 };
/** SMCCC_RET_NOT_SUPPORTED (include/linux/arm-smccc.h) as the u64 in x0. */
const FWCALL_NOT_SUPPORTED: GuestFwcallOutcome = { kind: 'ret', regs: [BigInt.asUintN(64, -1n)] };

/**
 * The defaults, as the kernel's static calls behave when a vendor leaves a hook NULL
 * (KVM_X86_OP_OPTIONAL_RET0 returns 0; KVM_X86_OP_OPTIONAL does nothing).
 */
const DEFAULT_OPS: Omit<MergedKvmX86Ops, 'name' | 'supported_vm_types' | 'tdp_enabled'> = {
  gfn_attr_mask: 0,
  vm_init: () => 0,
  vm_destroy: () => undefined,
  vcpu_create: () => 0,
  vcpu_pre_run: () => 1,
  // kvm_dev_ioctl_create_vm(): an x86 type is its own index; one beyond the mask is refused later.
  vm_type_decode: (type) => (type < 32n ? Number(type) : -22),
  vm_enable_cap: () => -22,
  check_extension: () => 0,
  has_mirrored_tdp: () => false,
  external_direct_root: () => false,
  gmem_prepare: () => 0,
  gmem_invalidate: () => undefined,
  gmem_max_mapping_level: () => 0,
  set_external_spte: () => 0,
  remove_external_spte: () => 0,
  // kvm_arch_vm_ioctl: KVM_MEMORY_ENCRYPT_OP without a vendor hook is -ENOTTY (x86.c).
  mem_enc_ioctl: () => -25,
  vcpu_mem_enc_ioctl: () => -25,
  guest_access_is_private: (vcpu, gpa) => default_guest_access_is_private(vcpu, gpa),
  guest_accept: () => 0,
  guest_fwcall: () => FWCALL_NOT_SUPPORTED,
  guest_access_fault: () => undefined,
  host_access: () => OK,
  dma_access: () => OK,
  guest_mem_access: () => PLAINTEXT,
  // kvm_arch_vm_ioctl(): without the vendor hooks the REG_REGION ioctls are -ENOTTY.
  mem_enc_register_region: () => -25,
  mem_enc_unregister_region: () => -25,
};

/**
 * The SW_PROTECTED rule of kvm_mmu_page_fault(): on a VM with private memory whose hardware
 * has no private bit, the gfn's attribute (kvm_mem_is_private()) is the source of truth for the access.
 */
function default_guest_access_is_private(vcpu: KvmVcpu, gpa: bigint): boolean {
  const kvm = vcpu.kvm;
  return kvm.arch.has_private_mem && kvm_mem_is_private(kvm, Number(gpa >> 12n));
}

/** Fills the hooks `ops` leaves out with the kernel's defaults. */
export function kvm_x86_ops_merge(ops: KvmX86Ops): MergedKvmX86Ops {
  const merged: Record<string, unknown> = { ...DEFAULT_OPS };
  for (const [k, v] of Object.entries(ops)) if (v !== undefined) merged[k] = v;
  return merged as MergedKvmX86Ops;
}
