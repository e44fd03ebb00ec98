/**
 * The SEV user-space API and the numbers the hardware and firmware use:
 * arch/x86/include/uapi/asm/kvm.h (enum sev_cmd_id, struct kvm_sev_*), include/uapi/linux/kvm.h
 * (KVM_MEMORY_ENCRYPT_REG_REGION), include/uapi/linux/psp-sev.h (sev_ret_code),
 * include/linux/psp-sev.h (SEV_CMD_*), arch/x86/include/asm/sev.h and sev-common.h (RMP
 * instruction return codes, GHCB MSR protocol, PSC), arch/x86/include/uapi/asm/svm.h (exit codes).
 */

/* ---- VM types (arch/x86/include/uapi/asm/kvm.h) ---- */
export const KVM_X86_SEV_VM = 2;
export const KVM_X86_SEV_ES_VM = 3;
export const KVM_X86_SNP_VM = 4;

/* ---- enum sev_cmd_id: the id of struct kvm_sev_cmd ---- */
export const KVM_SEV_INIT = 0;
export const KVM_SEV_ES_INIT = 1;
export const KVM_SEV_LAUNCH_START = 2;
export const KVM_SEV_LAUNCH_UPDATE_DATA = 3;
export const KVM_SEV_LAUNCH_UPDATE_VMSA = 4;
export const KVM_SEV_LAUNCH_SECRET = 5;
export const KVM_SEV_LAUNCH_MEASURE = 6;
export const KVM_SEV_LAUNCH_FINISH = 7;
export const KVM_SEV_SEND_START = 8;
export const KVM_SEV_SEND_UPDATE_DATA = 9;
export const KVM_SEV_SEND_UPDATE_VMSA = 10;
export const KVM_SEV_SEND_FINISH = 11;
export const KVM_SEV_RECEIVE_START = 12;
export const KVM_SEV_RECEIVE_UPDATE_DATA = 13;
export const KVM_SEV_RECEIVE_UPDATE_VMSA = 14;
export const KVM_SEV_RECEIVE_FINISH = 15;
export const KVM_SEV_GUEST_STATUS = 16;
export const KVM_SEV_DBG_DECRYPT = 17;
export const KVM_SEV_DBG_ENCRYPT = 18;
export const KVM_SEV_CERT_EXPORT = 19;
export const KVM_SEV_GET_ATTESTATION_REPORT = 20;
export const KVM_SEV_SEND_CANCEL = 21;
export const KVM_SEV_INIT2 = 22;
export const KVM_SEV_SNP_LAUNCH_START = 100;
export const KVM_SEV_SNP_LAUNCH_UPDATE = 101;
export const KVM_SEV_SNP_LAUNCH_FINISH = 102;

/** KVM_SEV_SNP_PAGE_TYPE_*: "Kept in sync with firmware values for simplicity". */
export const KVM_SEV_SNP_PAGE_TYPE_NORMAL = 0x1;
export const KVM_SEV_SNP_PAGE_TYPE_ZERO = 0x3;
export const KVM_SEV_SNP_PAGE_TYPE_UNMEASURED = 0x4;
export const KVM_SEV_SNP_PAGE_TYPE_SECRETS = 0x5;
export const KVM_SEV_SNP_PAGE_TYPE_CPUID = 0x6;
/** The firmware's page type of a vCPU save area (SNP_PAGE_TYPE_VMSA, include/linux/psp-sev.h). */
export const SNP_PAGE_TYPE_VMSA = 0x2;

export const KVM_SEV_SNP_ID_BLOCK_SIZE = 96;
export const KVM_SEV_SNP_ID_AUTH_SIZE = 4096;
export const KVM_SEV_SNP_FINISH_DATA_SIZE = 32;

/** SNP guest policy bits KVM accepts (arch/x86/kvm/svm/sev.c, "As defined by SEV-SNP Firmware ABI"). */
export const SNP_POLICY_MASK_API_MINOR = 0xffn;
export const SNP_POLICY_MASK_API_MAJOR = 0xff00n;
export const SNP_POLICY_MASK_SMT = 1n << 16n;
export const SNP_POLICY_MASK_RSVD_MBO = 1n << 17n;
export const SNP_POLICY_MASK_DEBUG = 1n << 19n;
export const SNP_POLICY_MASK_SINGLE_SOCKET = 1n << 20n;
export const SNP_POLICY_MASK_VALID =
  SNP_POLICY_MASK_API_MINOR | SNP_POLICY_MASK_API_MAJOR | SNP_POLICY_MASK_SMT | SNP_POLICY_MASK_RSVD_MBO |
  SNP_POLICY_MASK_DEBUG | SNP_POLICY_MASK_SINGLE_SOCKET;

/** Legacy SEV guest policy bit 0: NODBG, debugging (DBG_DECRYPT/ENCRYPT) disallowed (SEV API §3). */
export const SEV_POLICY_NODBG = 1 << 0;
/** Legacy SEV guest policy bit 2: ES, the guest must be an SEV-ES guest. */
export const SEV_POLICY_ES = 1 << 2;

/** INITIAL_VMSA_GPA (arch/x86/kvm/svm/sev.c): the GPA the RMP records for a launch VMSA. */
export const INITIAL_VMSA_GPA = 0xfffffffff000n;

/** GHCB protocol versions KVM supports (GHCB_VERSION_MIN/MAX/DEFAULT). */
export const GHCB_VERSION_MIN = 1;
export const GHCB_VERSION_MAX = 2;
export const GHCB_VERSION_DEFAULT = 2;

/* KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION (struct kvm_enc_region { addr, size }) are kvm's uapi. */
export { KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION } from '@cocosim/kvm';

/* ---- sev_ret_code (include/uapi/linux/psp-sev.h): the firmware status in kvm_sev_cmd.error ---- */
export const SEV_RET_SUCCESS = 0x0000;
export const SEV_RET_INVALID_PLATFORM_STATE = 0x0001;
export const SEV_RET_INVALID_GUEST_STATE = 0x0002;
export const SEV_RET_INAVLID_CONFIG = 0x0003;
export const SEV_RET_INVALID_LEN = 0x0004;
export const SEV_RET_ALREADY_OWNED = 0x0005;
export const SEV_RET_INVALID_CERTIFICATE = 0x0006;
export const SEV_RET_POLICY_FAILURE = 0x0007;
export const SEV_RET_INACTIVE = 0x0008;
export const SEV_RET_INVALID_ADDRESS = 0x0009;
export const SEV_RET_BAD_SIGNATURE = 0x000a;
export const SEV_RET_BAD_MEASUREMENT = 0x000b;
export const SEV_RET_ASID_OWNED = 0x000c;
export const SEV_RET_INVALID_ASID = 0x000d;
export const SEV_RET_WBINVD_REQUIRED = 0x000e;
export const SEV_RET_DFFLUSH_REQUIRED = 0x000f;
export const SEV_RET_INVALID_GUEST = 0x0010;
export const SEV_RET_INVALID_COMMAND = 0x0011;
export const SEV_RET_ACTIVE = 0x0012;
export const SEV_RET_HWSEV_RET_PLATFORM = 0x0013;
export const SEV_RET_HWSEV_RET_UNSAFE = 0x0014;
export const SEV_RET_UNSUPPORTED = 0x0015;
export const SEV_RET_INVALID_PARAM = 0x0016;
export const SEV_RET_RESOURCE_LIMIT = 0x0017;
export const SEV_RET_SECURE_DATA_INVALID = 0x0018;
export const SEV_RET_INVALID_PAGE_SIZE = 0x0019;
export const SEV_RET_INVALID_PAGE_STATE = 0x001a;
export const SEV_RET_INVALID_MDATA_ENTRY = 0x001b;
export const SEV_RET_INVALID_PAGE_OWNER = 0x001c;
export const SEV_RET_AEAD_OFLOW = 0x001d;
export const SEV_RET_RMP_INIT_REQUIRED = 0x0020;
export const SEV_RET_INVALID_KEY = 0x0027;

/* ---- SEV_CMD_* (include/linux/psp-sev.h): the AMD-SP mailbox commands ---- */
export const SEV_CMD_DF_FLUSH = 0x00a;
export const SEV_CMD_DECOMMISSION = 0x020;
export const SEV_CMD_ACTIVATE = 0x021;
export const SEV_CMD_DEACTIVATE = 0x022;
export const SEV_CMD_GUEST_STATUS = 0x023;
export const SEV_CMD_LAUNCH_START = 0x030;
export const SEV_CMD_LAUNCH_UPDATE_DATA = 0x031;
export const SEV_CMD_LAUNCH_UPDATE_VMSA = 0x032;
export const SEV_CMD_LAUNCH_MEASURE = 0x033;
export const SEV_CMD_LAUNCH_UPDATE_SECRET = 0x034;
export const SEV_CMD_LAUNCH_FINISH = 0x035;
export const SEV_CMD_DBG_DECRYPT = 0x060;
export const SEV_CMD_DBG_ENCRYPT = 0x061;
export const SEV_CMD_SNP_DF_FLUSH = 0x084;
export const SEV_CMD_SNP_DECOMMISSION = 0x090;
export const SEV_CMD_SNP_ACTIVATE = 0x091;
export const SEV_CMD_SNP_GCTX_CREATE = 0x093;
export const SEV_CMD_SNP_LAUNCH_START = 0x0a0;
export const SEV_CMD_SNP_LAUNCH_UPDATE = 0x0a1;
export const SEV_CMD_SNP_LAUNCH_FINISH = 0x0a2;
export const SEV_CMD_SNP_PAGE_RECLAIM = 0x0c7;

/** The names of the commands above, for traces and cost breakdowns. */
export const SEV_CMD_NAMES: ReadonlyMap<number, string> = new Map([
  [SEV_CMD_DF_FLUSH, 'DF_FLUSH'], [SEV_CMD_DECOMMISSION, 'DECOMMISSION'], [SEV_CMD_ACTIVATE, 'ACTIVATE'],
  [SEV_CMD_DEACTIVATE, 'DEACTIVATE'], [SEV_CMD_GUEST_STATUS, 'GUEST_STATUS'], [SEV_CMD_LAUNCH_START, 'LAUNCH_START'],
  [SEV_CMD_LAUNCH_UPDATE_DATA, 'LAUNCH_UPDATE_DATA'], [SEV_CMD_LAUNCH_UPDATE_VMSA, 'LAUNCH_UPDATE_VMSA'],
  [SEV_CMD_LAUNCH_MEASURE, 'LAUNCH_MEASURE'], [SEV_CMD_LAUNCH_UPDATE_SECRET, 'LAUNCH_UPDATE_SECRET'],
  [SEV_CMD_LAUNCH_FINISH, 'LAUNCH_FINISH'], [SEV_CMD_DBG_DECRYPT, 'DBG_DECRYPT'], [SEV_CMD_DBG_ENCRYPT, 'DBG_ENCRYPT'],
  [SEV_CMD_SNP_DF_FLUSH, 'SNP_DF_FLUSH'], [SEV_CMD_SNP_DECOMMISSION, 'SNP_DECOMMISSION'], [SEV_CMD_SNP_ACTIVATE, 'SNP_ACTIVATE'],
  [SEV_CMD_SNP_GCTX_CREATE, 'SNP_GCTX_CREATE'], [SEV_CMD_SNP_LAUNCH_START, 'SNP_LAUNCH_START'],
  [SEV_CMD_SNP_LAUNCH_UPDATE, 'SNP_LAUNCH_UPDATE'], [SEV_CMD_SNP_LAUNCH_FINISH, 'SNP_LAUNCH_FINISH'],
  [SEV_CMD_SNP_PAGE_RECLAIM, 'SNP_PAGE_RECLAIM'],
]);

/* ---- RMP instructions (arch/x86/include/asm/sev.h; AMD APM Vol. 3) ---- */
/** Return codes in EAX of RMPUPDATE, PSMASH, PVALIDATE and RMPADJUST. */
export const RMP_SUCCESS = 0;
export const FAIL_INPUT = 1;
export const FAIL_PERMISSION = 2;
export const FAIL_INUSE = 3;
/** RMPUPDATE_FAIL_OVERLAP: "RMPUPDATE detected 4K page and 2MB page overlap". */
export const RMPUPDATE_FAIL_OVERLAP = 4;
/** PSMASH_FAIL_INUSE: "PSMASH failed due to concurrent access by another CPU". */
export const PSMASH_FAIL_INUSE = 3;
/** PVALIDATE_FAIL_SIZEMISMATCH / RMPADJUST: the RMP entry is 4K, the request 2M. */
export const FAIL_SIZEMISMATCH = 6;
/** PVALIDATE_FAIL_NOUPDATE: software-defined, rFLAGS.CF = 1 (the Validated bit already had the value). */
export const PVALIDATE_FAIL_NOUPDATE = 255;
/** RMP page sizes (RMP_PG_SIZE_4K / RMP_PG_SIZE_2M). */
export const RMP_PG_SIZE_4K = 0;
export const RMP_PG_SIZE_2M = 1;

/* ---- exit codes and exceptions (arch/x86/include/uapi/asm/svm.h, asm/trapnr.h) ---- */
export const SVM_EXIT_NPF = 0x400;
export const SVM_EXIT_VMGEXIT = 0x403;
/** The #VC error code of an access to a page that is not validated. */
export const SVM_EXIT_NOT_VALIDATED = 0x404;
export const SVM_VMGEXIT_PSC = 0x80000010n;
/** X86_TRAP_VC: the VMM communication exception. */
export const X86_TRAP_VC = 29;
/** PFERR_GUEST_RMP_MASK / PFERR_GUEST_SIZEM_MASK / PFERR_GUEST_ENC_MASK of an #NPF (bits 31, 35, 34). */
export const PFERR_GUEST_RMP_MASK = 1n << 31n;
export const PFERR_GUEST_ENC_MASK = 1n << 34n;
export const PFERR_GUEST_SIZEM_MASK = 1n << 35n;

/* ---- GHCB MSR protocol (arch/x86/include/asm/sev-common.h) ---- */
export const GHCB_MSR_INFO_MASK = 0xfffn;
export const GHCB_MSR_PSC_REQ = 0x014n;
export const GHCB_MSR_PSC_RESP = 0x015n;
export const GHCB_MSR_TERM_REQ = 0x100n;
/** SNP_PAGE_STATE_PRIVATE / SNP_PAGE_STATE_SHARED: the PSC operations. */
export const SNP_PAGE_STATE_PRIVATE = 1n;
export const SNP_PAGE_STATE_SHARED = 2n;
/** GHCB_MSR_PSC_REQ_GFN(gfn, op): gfn in bits 12..51, op in 52..55. */
export function GHCB_MSR_PSC_REQ_GFN(gfn: bigint, op: bigint): bigint {
  return ((op & 0xfn) << 52n) | ((gfn & 0xffffffffffn) << 12n) | GHCB_MSR_PSC_REQ;
}
export const GHCB_MSR_PSC_REQ_TO_GFN = (msr: bigint): bigint => (msr >> 12n) & 0xffffffffffn;
export const GHCB_MSR_PSC_REQ_TO_OP = (msr: bigint): bigint => (msr >> 52n) & 0xfn;
/** GHCB_MSR_PSC_RESP_ERROR: the response with a non-zero error field (bits 32..63). */
export const GHCB_MSR_PSC_RESP_ERROR = (0x1n << 32n) | GHCB_MSR_PSC_RESP;
/** GHCB_SEV_TERM_REASON(set, code): the reason fields of GHCB_MSR_TERM_REQ. */
export function GHCB_MSR_TERM(reason_set: number, reason_code: number): bigint {
  return (BigInt(reason_code & 0xff) << 16n) | (BigInt(reason_set & 0xf) << 12n) | GHCB_MSR_TERM_REQ;
}
/** SEV_TERM_SET_GEN / GHCB_SEV_ES_GEN_REQ: the general "request termination" reason. */
export const SEV_TERM_SET_GEN = 0;
export const GHCB_SEV_ES_GEN_REQ = 0;

/* ---- PSC NAE event (struct psc_hdr, struct psc_entry) ---- */
export const VMGEXIT_PSC_MAX_ENTRY = 253;
export const VMGEXIT_PSC_MAX_COUNT = 253;
export const VMGEXIT_PSC_OP_PRIVATE = 1;
export const VMGEXIT_PSC_OP_SHARED = 2;
/** The PSC errors in sw_exit_info_2 (GHCB spec; arch/x86/include/asm/sev-common.h). */
export const VMGEXIT_PSC_ERROR_GENERIC = 0x100n << 32n;
export const VMGEXIT_PSC_ERROR_INVALID_HDR = (1n << 32n) | 1n;
export const VMGEXIT_PSC_ERROR_INVALID_ENTRY = (1n << 32n) | 2n;
/** sizeof(struct psc_hdr) and of one struct psc_entry. */
export const PSC_HDR_SIZE = 8;
export const PSC_ENTRY_SIZE = 8;

/** One struct psc_entry: cur_page:12, gfn:40, operation:4, pagesize:1, reserved:7. */
export interface PscEntry {
  cur_page: number;
  gfn: bigint;
  operation: number;
  pagesize: number;
}

/** Encode a PSC buffer (struct psc_hdr + entries) as the guest writes it in memory. */
export function psc_buffer_encode(cur_entry: number, end_entry: number, entries: readonly PscEntry[]): Uint8Array {
  const out = new Uint8Array(PSC_HDR_SIZE + PSC_ENTRY_SIZE * entries.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, cur_entry, true);
  v.setUint16(2, end_entry, true);
  entries.forEach((e, i) => {
    const raw = (BigInt(e.cur_page) & 0xfffn) | ((e.gfn & 0xffffffffffn) << 12n) | (BigInt(e.operation & 0xf) << 52n) | (BigInt(e.pagesize & 1) << 56n);
    v.setBigUint64(PSC_HDR_SIZE + PSC_ENTRY_SIZE * i, raw, true);
  });
  return out;
}

/** Decode a PSC buffer of `n` entries. */
export function psc_buffer_decode(buf: Uint8Array, n: number): { cur_entry: number; end_entry: number; entries: PscEntry[] } {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const entries: PscEntry[] = [];
  for (let i = 0; i < n; i++) {
    const raw = v.getBigUint64(PSC_HDR_SIZE + PSC_ENTRY_SIZE * i, true);
    entries.push({ cur_page: Number(raw & 0xfffn), gfn: (raw >> 12n) & 0xffffffffffn, operation: Number((raw >> 52n) & 0xfn), pagesize: Number((raw >> 56n) & 1n) });
  }
  return { cur_entry: v.getUint16(0, true), end_entry: v.getUint16(2, true), entries };
}

/* ---- KVM_HC_MAP_GPA_RANGE attributes (include/uapi/linux/kvm_para.h) ---- */

/** KVM_SYSTEM_EVENT_SEV_TERM (include/uapi/linux/kvm.h): the guest asked to be terminated. */
export const KVM_SYSTEM_EVENT_SEV_TERM = 6;

/** KVM_HC_MAP_GPA_RANGE's attribute bits: the generic x86 ones (include/uapi/linux/kvm_para.h). */
export { KVM_MAP_GPA_RANGE_PAGE_SZ_4K, KVM_MAP_GPA_RANGE_PAGE_SZ_2M, KVM_MAP_GPA_RANGE_ENCRYPTED, KVM_MAP_GPA_RANGE_DECRYPTED } from '@cocosim/kvm';
