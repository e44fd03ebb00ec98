/**
 * TDX module status codes (the u64 a SEAMCALL or TDCALL returns in RAX), as the TDX module
 * defines them (intel/tdx-module include/auto_gen/tdx_error_codes_defs.h; Linux copies the ones
 * KVM tests in arch/x86/kvm/vmx/tdx_errno.h). Bit 63 is the error bit, bit 62 "non-recoverable";
 * bits 31:0 carry a detail, usually the id of the operand at fault (api_error_with_operand_id()).
 */

/** TDX_SEAMCALL_STATUS_MASK: the status class, without the operand detail. */
export const TDX_SEAMCALL_STATUS_MASK = 0xffff_ffff_0000_0000n;
/** TDX_ERROR (bit 63) and TDX_NON_RECOVERABLE (bit 62) (arch/x86/include/asm/tdx.h). */
export const TDX_ERROR = 1n << 63n;
export const TDX_NON_RECOVERABLE = 1n << 62n;

export const TDX_SUCCESS = 0n;
export const TDX_NON_RECOVERABLE_VCPU = 0x4000_0001_0000_0000n;
export const TDX_NON_RECOVERABLE_TD = 0x6000_0002_0000_0000n;
export const TDX_INTERRUPTED_RESUMABLE = 0x8000_0003_0000_0000n;
export const TDX_OPERAND_INVALID = 0xc000_0100_0000_0000n;
export const TDX_OPERAND_BUSY = 0x8000_0200_0000_0000n;
export const TDX_PREVIOUS_TLB_EPOCH_BUSY = 0x8000_0201_0000_0000n;
export const TDX_RND_NO_ENTROPY = 0x8000_0203_0000_0000n;
export const TDX_PAGE_METADATA_INCORRECT = 0xc000_0300_0000_0000n;
export const TDX_PAGE_NOT_OWNED_BY_TD = 0xc000_0302_0000_0000n;
export const TDX_TD_ASSOCIATED_PAGES_EXIST = 0xc000_0400_0000_0000n;
export const TDX_TD_FATAL = 0xe000_0604_0000_0000n;
export const TDX_TDCS_NOT_ALLOCATED = 0xc000_0606_0000_0000n;
export const TDX_LIFECYCLE_STATE_INCORRECT = 0xc000_0607_0000_0000n;
export const TDX_OP_STATE_INCORRECT = 0xc000_0608_0000_0000n;
export const TDX_NO_VCPUS = 0xc000_0609_0000_0000n;
export const TDX_TDCX_NUM_INCORRECT = 0xc000_0610_0000_0000n;
export const TDX_VCPU_STATE_INCORRECT = 0xc000_0700_0000_0000n;
export const TDX_TD_KEYS_NOT_CONFIGURED = 0x8000_0810_0000_0000n;
export const TDX_KEY_STATE_INCORRECT = 0xc000_0811_0000_0000n;
export const TDX_KEY_CONFIGURED = 0x0000_0815_0000_0000n;
export const TDX_WBCACHE_NOT_COMPLETE = 0x8000_0817_0000_0000n;
export const TDX_HKID_NOT_FREE = 0xc000_0820_0000_0000n;
export const TDX_NO_HKID_READY_TO_WBCACHE = 0x0000_0821_0000_0000n;
export const TDX_FLUSHVP_NOT_DONE = 0x8000_0824_0000_0000n;
export const TDX_EPT_WALK_FAILED = 0xc000_0b00_0000_0000n;
export const TDX_EPT_ENTRY_FREE = 0xc000_0b01_0000_0000n;
export const TDX_EPT_ENTRY_NOT_FREE = 0xc000_0b02_0000_0000n;
export const TDX_EPT_ENTRY_NOT_PRESENT = 0xc000_0b03_0000_0000n;
export const TDX_GPA_RANGE_NOT_BLOCKED = 0xc000_0b06_0000_0000n;
export const TDX_GPA_RANGE_ALREADY_BLOCKED = 0x0000_0b07_0000_0000n;
export const TDX_TLB_TRACKING_NOT_DONE = 0xc000_0b08_0000_0000n;
export const TDX_PAGE_ALREADY_ACCEPTED = 0x0000_0b0a_0000_0000n;
export const TDX_PAGE_SIZE_MISMATCH = 0xc000_0b0b_0000_0000n;
export const TDX_EPT_ENTRY_STATE_INCORRECT = 0xc000_0b0d_0000_0000n;

/* Operand ids (the status's bits 31:0: api_error_with_operand_id()). */
export const TDX_OPERAND_ID_RCX = 1n;
export const TDX_OPERAND_ID_RDX = 2n;
export const TDX_OPERAND_ID_R8 = 8n;
export const TDX_OPERAND_ID_R9 = 9n;
export const TDX_OPERAND_ID_ATTRIBUTES = 64n;
export const TDX_OPERAND_ID_XFAM = 65n;
export const TDX_OPERAND_ID_EPTP_CONTROLS = 67n;
export const TDX_OPERAND_ID_TDR = 0x80n;

/** api_error_with_operand_id(): a status with the id of the operand at fault in bits 31:0. */
export function api_error_with_operand_id(code: bigint, operand: bigint): bigint {
  return code | operand;
}

/** tdx_operand_busy() (arch/x86/kvm/vmx/tdx.c): the status is TDX_OPERAND_BUSY, whatever the operand. */
export function tdx_operand_busy(err: bigint): boolean {
  return (err & TDX_SEAMCALL_STATUS_MASK) === TDX_OPERAND_BUSY;
}

/** The names of the statuses above, for messages and traces ("TDX_EPT_WALK_FAILED|rcx"). */
const STATUS_NAMES = new Map<bigint, string>([
  [TDX_SUCCESS, 'TDX_SUCCESS'], [TDX_NON_RECOVERABLE_VCPU, 'TDX_NON_RECOVERABLE_VCPU'],
  [TDX_NON_RECOVERABLE_TD, 'TDX_NON_RECOVERABLE_TD'], [TDX_INTERRUPTED_RESUMABLE, 'TDX_INTERRUPTED_RESUMABLE'],
  [TDX_OPERAND_INVALID, 'TDX_OPERAND_INVALID'], [TDX_OPERAND_BUSY, 'TDX_OPERAND_BUSY'],
  [TDX_PREVIOUS_TLB_EPOCH_BUSY, 'TDX_PREVIOUS_TLB_EPOCH_BUSY'], [TDX_RND_NO_ENTROPY, 'TDX_RND_NO_ENTROPY'],
  [TDX_PAGE_METADATA_INCORRECT, 'TDX_PAGE_METADATA_INCORRECT'], [TDX_PAGE_NOT_OWNED_BY_TD, 'TDX_PAGE_NOT_OWNED_BY_TD'],
  [TDX_TD_ASSOCIATED_PAGES_EXIST, 'TDX_TD_ASSOCIATED_PAGES_EXIST'], [TDX_TD_FATAL, 'TDX_TD_FATAL'],
  [TDX_TDCS_NOT_ALLOCATED, 'TDX_TDCS_NOT_ALLOCATED'], [TDX_LIFECYCLE_STATE_INCORRECT, 'TDX_LIFECYCLE_STATE_INCORRECT'],
  [TDX_OP_STATE_INCORRECT, 'TDX_OP_STATE_INCORRECT'], [TDX_NO_VCPUS, 'TDX_NO_VCPUS'],
  [TDX_TDCX_NUM_INCORRECT, 'TDX_TDCX_NUM_INCORRECT'], [TDX_VCPU_STATE_INCORRECT, 'TDX_VCPU_STATE_INCORRECT'],
  [TDX_TD_KEYS_NOT_CONFIGURED, 'TDX_TD_KEYS_NOT_CONFIGURED'], [TDX_KEY_STATE_INCORRECT, 'TDX_KEY_STATE_INCORRECT'],
  [TDX_KEY_CONFIGURED, 'TDX_KEY_CONFIGURED'], [TDX_WBCACHE_NOT_COMPLETE, 'TDX_WBCACHE_NOT_COMPLETE'],
  [TDX_HKID_NOT_FREE, 'TDX_HKID_NOT_FREE'], [TDX_NO_HKID_READY_TO_WBCACHE, 'TDX_NO_HKID_READY_TO_WBCACHE'],
  [TDX_FLUSHVP_NOT_DONE, 'TDX_FLUSHVP_NOT_DONE'], [TDX_EPT_WALK_FAILED, 'TDX_EPT_WALK_FAILED'],
  [TDX_EPT_ENTRY_FREE, 'TDX_EPT_ENTRY_FREE'], [TDX_EPT_ENTRY_NOT_FREE, 'TDX_EPT_ENTRY_NOT_FREE'],
  [TDX_EPT_ENTRY_NOT_PRESENT, 'TDX_EPT_ENTRY_NOT_PRESENT'], [TDX_GPA_RANGE_NOT_BLOCKED, 'TDX_GPA_RANGE_NOT_BLOCKED'],
  [TDX_GPA_RANGE_ALREADY_BLOCKED, 'TDX_GPA_RANGE_ALREADY_BLOCKED'], [TDX_TLB_TRACKING_NOT_DONE, 'TDX_TLB_TRACKING_NOT_DONE'],
  [TDX_PAGE_ALREADY_ACCEPTED, 'TDX_PAGE_ALREADY_ACCEPTED'], [TDX_PAGE_SIZE_MISMATCH, 'TDX_PAGE_SIZE_MISMATCH'],
  [TDX_EPT_ENTRY_STATE_INCORRECT, 'TDX_EPT_ENTRY_STATE_INCORRECT'],
]);

/** "TDX_EPT_WALK_FAILED|0x1", or the hex of an unknown status. */
export function tdx_status_name(err: bigint): string {
  const name = STATUS_NAMES.get(err & TDX_SEAMCALL_STATUS_MASK);
  if (name === undefined) return `0x${err.toString(16)}`;
  const detail = err & 0xffff_ffffn;
  return detail === 0n ? name : `${name}|0x${detail.toString(16)}`;
}
