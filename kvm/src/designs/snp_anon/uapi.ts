/**
 * The uAPI of D14 (SEV-SNP on anonymous memory, the pre-UPM host series 2021-2023; designs.md
 * D14). The series added no memory uAPI of its own: guest RAM is an ordinary memslot
 * (KVM_SET_USER_MEMORY_REGION) over anonymous memory, pinned with KVM_MEMORY_ENCRYPT_REG_REGION,
 * and the SNP launch commands of KVM_MEMORY_ENCRYPT_OP. The SNP command ids sit in
 * vendors/sev/src/uapi.ts; kvm cannot import a vendor package, so the ones the VMM sends are
 * repeated here with their include/uapi/linux/kvm.h values (6.18 numbering: the RFC series
 * numbered KVM_SEV_SNP_* after KVM_SEV_GET_ATTESTATION_REPORT, the merged ABI from 100).
 */
export {
  KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION, KVM_X86_SNP_VM, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE,
} from '../../uapi.js';

/* enum sev_cmd_id (include/uapi/linux/kvm.h) */
export const KVM_SEV_INIT2 = 22;
export const KVM_SEV_SNP_LAUNCH_START = 100;
export const KVM_SEV_SNP_LAUNCH_FINISH = 102;

/** The guest policy the VMM starts with: SMT allowed (bit 16) and the must-be-one bit 17 (SNP ABI). */
export const SNP_POLICY_DEFAULT = (1n << 16n) | (1n << 17n);

/* The GHCB MSR protocol's page state change (arch/x86/include/asm/sev-common.h). */
/** SVM_EXIT_VMGEXIT: the exit code of VMGEXIT. */
export const SVM_EXIT_VMGEXIT = 0x403;
export const GHCB_MSR_PSC_REQ = 0x014n;
export const GHCB_MSR_PSC_RESP = 0x015n;
export const SNP_PAGE_STATE_PRIVATE = 1n;
export const SNP_PAGE_STATE_SHARED = 2n;
/** GHCB_MSR_PSC_REQ_GFN(gfn, op): gfn in bits 12..51, op in 52..55. */
export function GHCB_MSR_PSC_REQ_GFN(gfn: bigint, op: bigint): bigint {
  return ((op & 0xfn) << 52n) | ((gfn & 0xffffffffffn) << 12n) | GHCB_MSR_PSC_REQ;
}
/** The error field (bits 32..63) of a GHCB_MSR_PSC_RESP. */
export function GHCB_MSR_PSC_RESP_VAL(msr: bigint): bigint {
  return msr >> 32n;
}
