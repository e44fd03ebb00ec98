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
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './uapi.js';

/** What a host access to a page that a VM owns does (cocosim: the hardware's answer). */
export type HostAccessOutcome =
  /** The access proceeds on the page's bytes. */
  | { readonly kind: 'ok' }
  /** The access proceeds but reads ciphertext or writes are lost/poison (MKTME, SEV without SNP). */
  | { readonly kind: 'ciphertext' }
  /** The CPU faults (SNP RMP #PF, CCA GPF): the host kernel oopses, user space gets SIGBUS. */
  | { readonly kind: 'fault'; readonly reason: string }
  /** A machine check (TDX: poison on a TD private page read with the wrong KeyID). */
  | { readonly kind: 'mce'; readonly reason: string };

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

  /** kvm_arch_gmem_prepare(): make a freshly zeroed gmem folio private to the VM (SNP: RMPUPDATE). */
  gmem_prepare?(kvm: Kvm, pfn: number, gfn: number, max_order: number): number;
  /** kvm_arch_gmem_invalidate(): gmem pages [start, end) are being freed (SNP: back to hypervisor). */
  gmem_invalidate?(kvm: Kvm, start_pfn: number, end_pfn: number): void;
  /** kvm_x86_ops.gmem_max_mapping_level (private_max_mapping_level): 0 means no limit. */
  gmem_max_mapping_level?(kvm: Kvm, pfn: number, is_private: boolean): number;

  /** kvm_x86_ops.set_external_spte: TDX's mirror SPTE installs the S-EPT entry (TDH.MEM.PAGE.AUG). */
  set_external_spte?(kvm: Kvm, gfn: number, level: number, pfn: number): number;
  /** kvm_x86_ops.remove_external_spte: TDX removes the S-EPT entry (TDH.MEM.RANGE.BLOCK, REMOVE). */
  remove_external_spte?(kvm: Kvm, gfn: number, level: number, pfn: number): number;

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
  /** cocosim: a host CPU access (kernel or user) to a pfn the VM may own privately. */
  host_access?(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome;
  /** cocosim: a device DMA to a pfn the VM may own privately. */
  dma_access?(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome;
}

/** The merged table: every hook present. */
export type MergedKvmX86Ops = Required<Omit<KvmX86Ops, 'gfn_attr_mask'>> & { readonly gfn_attr_mask: number };

const OK: HostAccessOutcome = { kind: 'ok' };

/**
 * The defaults, as the kernel's static calls behave when a vendor leaves a hook NULL
 * (KVM_X86_OP_OPTIONAL_RET0 returns 0; KVM_X86_OP_OPTIONAL does nothing).
 */
const DEFAULT_OPS: Omit<MergedKvmX86Ops, 'name' | 'supported_vm_types' | 'tdp_enabled'> = {
  gfn_attr_mask: 0,
  vm_init: () => 0,
  vm_destroy: () => undefined,
  vcpu_create: () => 0,
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
  host_access: () => OK,
  dma_access: () => OK,
};

/**
 * The SW_PROTECTED rule of kvm_mmu_page_fault(): on a VM with private memory whose hardware
 * has no private bit, the gfn's attribute is the source of truth for the access.
 */
function default_guest_access_is_private(vcpu: KvmVcpu, gpa: bigint): boolean {
  const kvm = vcpu.kvm;
  return kvm.arch.has_private_mem && ((kvm.mem_attr_array.mtree_load(Number(gpa >> 12n)) ?? 0) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
}

/** Fills the hooks `ops` leaves out with the kernel's defaults. */
export function kvm_x86_ops_merge(ops: KvmX86Ops): MergedKvmX86Ops {
  const merged: Record<string, unknown> = { ...DEFAULT_OPS };
  for (const [k, v] of Object.entries(ops)) if (v !== undefined) merged[k] = v;
  return merged as MergedKvmX86Ops;
}
