/**
 * The TDX uAPI and guest ABI: KVM's TDX commands (arch/x86/include/uapi/asm/kvm.h, enum
 * kvm_tdx_cmd_id and the structs KVM_MEMORY_ENCRYPT_OP points at), KVM_HC_MAP_GPA_RANGE's
 * attributes (include/uapi/linux/kvm_para.h), the TDCALL / TDG.VP.VMCALL leaves and statuses
 * (arch/x86/include/asm/shared/tdx.h), and the VMX exit reasons TDX adds
 * (arch/x86/include/uapi/asm/vmx.h).
 *
 * Structs arrive as plain objects with the kernel's field names. `struct kvm_tdx_cmd` is
 *
 *     { id: KVM_TDX_*, flags, data, hw_error }
 *
 * where `data` is a pointer in C: here the object it points to (struct kvm_tdx_capabilities,
 * kvm_tdx_init_vm, kvm_tdx_init_mem_region), or a plain u64 where the command takes a value
 * (KVM_TDX_INIT_VCPU: the vCPU's initial RCX). hw_error is written back (the SEAMCALL status).
 */

/* enum kvm_tdx_cmd_id */
export const KVM_TDX_CAPABILITIES = 0;
export const KVM_TDX_INIT_VM = 1;
export const KVM_TDX_INIT_VCPU = 2;
export const KVM_TDX_INIT_MEM_REGION = 3;
export const KVM_TDX_FINALIZE_VM = 4;
export const KVM_TDX_GET_CPUID = 5;

/** KVM_TDX_MEASURE_MEMORY_REGION: KVM_TDX_INIT_MEM_REGION also extends MRTD (TDH.MR.EXTEND). */
export const KVM_TDX_MEASURE_MEMORY_REGION = 1;

/** KVM_MAX_CPUID_ENTRIES (arch/x86/include/asm/kvm_host.h). */
export const KVM_MAX_CPUID_ENTRIES = 256;
/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry's index matters (kvm_find_cpuid_entry2()). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/* TD attributes (arch/x86/include/asm/shared/tdx.h) */
export const TDX_TD_ATTR_DEBUG = 1n << 0n;
/** SEPT_VE_DISABLE: an access to a PENDING page exits to the VMM instead of raising #VE in the TD. */
export const TDX_TD_ATTR_SEPT_VE_DISABLE = 1n << 28n;

/* TDCALL leaves (RAX) the guest uses (arch/x86/include/asm/shared/tdx.h) */
export const TDG_VP_VMCALL = 0n;
export const TDG_VP_INFO = 1n;
export const TDG_MEM_PAGE_ACCEPT = 6n;

/* TDG.VP.VMCALL sub-functions (R11) */
export const TDVMCALL_GET_TD_VM_CALL_INFO = 0x10000n;
export const TDVMCALL_MAP_GPA = 0x10001n;
export const TDVMCALL_GET_QUOTE = 0x10002n;
export const TDVMCALL_REPORT_FATAL_ERROR = 0x10003n;

/* TDG.VP.VMCALL statuses (R10) */
export const TDVMCALL_STATUS_SUCCESS = 0x0n;
export const TDVMCALL_STATUS_RETRY = 0x1n;
export const TDVMCALL_STATUS_INVALID_OPERAND = 0x8000_0000_0000_0000n;
export const TDVMCALL_STATUS_ALIGN_ERROR = 0x8000_0000_0000_0002n;
export const TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED = 0x8000_0000_0000_0003n;

/* The page-size field of a TDCALL/SEAMCALL GPA operand (bits 2:0): TDX SEPT levels. */
export const TDX_PS_4K = 0;
export const TDX_PS_2M = 1;
export const TDX_PS_1G = 2;

/* VMX exit reasons (arch/x86/include/uapi/asm/vmx.h) */
export const EXIT_REASON_OTHER_SMI = 6;
export const EXIT_REASON_TDCALL = 77;

/** KVM_SYSTEM_EVENT_TDX_FATAL: a TD's TDG.VP.VMCALL<ReportFatalError> (include/uapi/linux/kvm.h). */
export const KVM_SYSTEM_EVENT_TDX_FATAL = 7;

/** KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON (include/uapi/linux/kvm.h). */
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

/** The shared bit of a TD's GPAs: bit 47 with 4-level EPT (GPAW 48), bit 51 with 5-level (GPAW 52). */
export const TDX_SHARED_BIT_PWL_4 = 1n << 47n;
export const TDX_SHARED_BIT_PWL_5 = 1n << 51n;

/** struct kvm_cpuid_entry2. */
export interface KvmCpuidEntry2 {
  function?: number | bigint;
  index?: number | bigint;
  flags?: number | bigint;
  eax?: number | bigint;
  ebx?: number | bigint;
  ecx?: number | bigint;
  edx?: number | bigint;
}

/** struct kvm_cpuid2: nent entries follow the header. */
export interface KvmCpuid2 {
  nent?: number | bigint;
  padding?: number | bigint;
  entries?: KvmCpuidEntry2[];
}

/** struct kvm_tdx_capabilities (out: supported_attrs, supported_xfam, cpuid). */
export interface KvmTdxCapabilities {
  supported_attrs?: number | bigint;
  supported_xfam?: number | bigint;
  reserved?: (number | bigint)[];
  cpuid?: KvmCpuid2;
}

/** struct kvm_tdx_init_vm: 256 bytes of TD_PARAMS input, then the CPUID configuration. */
export interface KvmTdxInitVm {
  attributes?: number | bigint;
  xfam?: number | bigint;
  mrconfigid?: (number | bigint)[];
  mrowner?: (number | bigint)[];
  mrownerconfig?: (number | bigint)[];
  reserved?: (number | bigint)[];
  cpuid?: KvmCpuid2;
}

/** struct kvm_tdx_init_mem_region (in/out: advanced past the pages done). */
export interface KvmTdxInitMemRegion {
  source_addr?: number | bigint;
  gpa?: number | bigint;
  nr_pages?: number | bigint;
}

/** struct kvm_tdx_cmd. */
export interface KvmTdxCmd {
  id?: number | bigint;
  flags?: number | bigint;
  data?: unknown;
  hw_error?: number | bigint;
}

/** KVM_HC_MAP_GPA_RANGE's attribute bits: the generic x86 ones (include/uapi/linux/kvm_para.h). */
export { KVM_MAP_GPA_RANGE_PAGE_SZ_4K, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAP_GPA_RANGE_DECRYPTED } from '@cocosim/kvm';
