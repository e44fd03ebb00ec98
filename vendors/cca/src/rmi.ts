/**
 * The Realm Management Interface and Realm Services Interface ABI of the Arm CCA RMM, version
 * 1.0 (TF-RMM tag rmm-spec-v1.0-rel0: lib/smc/include/smc-rmi.h, smc-rsi.h,
 * lib/granule/include/granule_types.h, lib/s2tt/include/ripas.h), as the host
 * (arch/arm64/include/asm/rmi_smc.h of the CCA host series) and the realm (mainline
 * arch/arm64/include/asm/rsi_smc.h, rsi_cmds.h) call it.
 */

/** ARM_SMCCC_CALL_VAL(ARM_SMCCC_FAST_CALL, ARM_SMCCC_SMC_64, ARM_SMCCC_OWNER_STANDARD, n). */
function SMC64_STD(n: number): bigint {
  return 0xc4000000n | BigInt(n);
}

/* RMI function ids (SMC_RMI_FID(n), rmi_smc.h) */
export const SMC_RMI_VERSION = SMC64_STD(0x150);
export const SMC_RMI_GRANULE_DELEGATE = SMC64_STD(0x151);
export const SMC_RMI_GRANULE_UNDELEGATE = SMC64_STD(0x152);
export const SMC_RMI_DATA_CREATE = SMC64_STD(0x153);
export const SMC_RMI_DATA_CREATE_UNKNOWN = SMC64_STD(0x154);
export const SMC_RMI_DATA_DESTROY = SMC64_STD(0x155);
export const SMC_RMI_REALM_ACTIVATE = SMC64_STD(0x157);
export const SMC_RMI_REALM_CREATE = SMC64_STD(0x158);
export const SMC_RMI_REALM_DESTROY = SMC64_STD(0x159);
export const SMC_RMI_REC_CREATE = SMC64_STD(0x15a);
export const SMC_RMI_REC_DESTROY = SMC64_STD(0x15b);
export const SMC_RMI_REC_ENTER = SMC64_STD(0x15c);
export const SMC_RMI_RTT_CREATE = SMC64_STD(0x15d);
export const SMC_RMI_RTT_DESTROY = SMC64_STD(0x15e);
export const SMC_RMI_RTT_MAP_UNPROTECTED = SMC64_STD(0x15f);
export const SMC_RMI_RTT_READ_ENTRY = SMC64_STD(0x161);
export const SMC_RMI_RTT_UNMAP_UNPROTECTED = SMC64_STD(0x162);
export const SMC_RMI_RTT_FOLD = SMC64_STD(0x166);
export const SMC_RMI_REC_AUX_COUNT = SMC64_STD(0x167);
export const SMC_RMI_RTT_INIT_RIPAS = SMC64_STD(0x168);
export const SMC_RMI_RTT_SET_RIPAS = SMC64_STD(0x169);

/* RMI status codes (smc-rmi.h: RMI_SUCCESS..RMI_ERROR_RTT) */
export const RMI_SUCCESS = 0;
/** An input parameter is not valid (alignment, range, granule state of an argument). */
export const RMI_ERROR_INPUT = 1;
/** The realm is in the wrong state for the command (e.g. DATA_CREATE after REALM_ACTIVATE). */
export const RMI_ERROR_REALM = 2;
/** The REC is in the wrong state. */
export const RMI_ERROR_REC = 3;
/** An RTT walk ended above the level needed, or the entry there is in the wrong state; index = that level. */
export const RMI_ERROR_RTT = 4;

/** pack_return_code(): status in bits 7:0, index in bits 15:8. */
export function pack_return_code(status: number, index = 0): number {
  return status | (index << 8);
}
/** RMI_RETURN_STATUS() (rmi_smc.h). */
export function RMI_RETURN_STATUS(ret: number): number {
  return ret & 0xff;
}
/** RMI_RETURN_INDEX() (rmi_smc.h). */
export function RMI_RETURN_INDEX(ret: number): number {
  return (ret >> 8) & 0xff;
}

/** The result registers of an RMI command: x0 (packed status) and the outputs x1, x2. */
export interface RmiResult {
  readonly ret: number;
  readonly x1: bigint;
  readonly x2: bigint;
}

/* RMI_DATA_CREATE flags */
export const RMI_NO_MEASURE_CONTENT = 0n;
export const RMI_MEASURE_CONTENT = 1n;

/* RmiHashAlgorithm (RMI_HASH_SHA_256 / _512) */
export const RMI_HASH_SHA_256 = 0;
export const RMI_HASH_SHA_512 = 1;

/* RmiRipas / RsiRipas (ripas.h, rsi_cmds.h enum ripas) */
export const RIPAS_EMPTY = 0;
export const RIPAS_RAM = 1;
export const RIPAS_DESTROYED = 2;
export type Ripas = typeof RIPAS_EMPTY | typeof RIPAS_RAM | typeof RIPAS_DESTROYED;

/** The name of a RIPAS value, for messages. */
export function ripas_name(r: number): string {
  return r === RIPAS_EMPTY ? 'EMPTY' : r === RIPAS_RAM ? 'RAM' : r === RIPAS_DESTROYED ? 'DESTROYED' : `ripas ${r}`;
}

/* RmiRecExitReason (rmi_smc.h) */
export const RMI_EXIT_SYNC = 0;
export const RMI_EXIT_IRQ = 1;
export const RMI_EXIT_FIQ = 2;
export const RMI_EXIT_PSCI = 3;
export const RMI_EXIT_RIPAS_CHANGE = 4;
export const RMI_EXIT_HOST_CALL = 5;
export const RMI_EXIT_SERROR = 6;

/** REC_ENTER_FLAG_RIPAS_RESPONSE (RmiRecEnterFlags): the host rejects the RIPAS change. */
export const REC_ENTER_FLAG_RIPAS_RESPONSE = 1;

/* Granule states (granule_types.h enum granule_state) */
export const GRANULE_STATE_NS = 0;
export const GRANULE_STATE_DELEGATED = 1;
export const GRANULE_STATE_RD = 2;
export const GRANULE_STATE_REC = 3;
export const GRANULE_STATE_REC_AUX = 4;
export const GRANULE_STATE_DATA = 5;
export const GRANULE_STATE_RTT = 6;
export type GranuleState = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** The name of a granule state, for messages. */
export function granule_state_name(s: number): string {
  return ['NS', 'DELEGATED', 'RD', 'REC', 'REC_AUX', 'DATA', 'RTT'][s] ?? `state ${s}`;
}

/* RSI function ids (rsi_smc.h SMC_RSI_FID(n)) */
export const SMC_RSI_ABI_VERSION = SMC64_STD(0x190);
export const SMC_RSI_FEATURES = SMC64_STD(0x191);
export const SMC_RSI_MEASUREMENT_READ = SMC64_STD(0x192);
export const SMC_RSI_MEASUREMENT_EXTEND = SMC64_STD(0x193);
export const SMC_RSI_REALM_CONFIG = SMC64_STD(0x196);
export const SMC_RSI_IPA_STATE_SET = SMC64_STD(0x197);
export const SMC_RSI_IPA_STATE_GET = SMC64_STD(0x198);
export const SMC_RSI_HOST_CALL = SMC64_STD(0x199);

/* RSI status codes (rsi_smc.h) */
export const RSI_SUCCESS = 0n;
export const RSI_ERROR_INPUT = 1n;
export const RSI_ERROR_STATE = 2n;
export const RSI_INCOMPLETE = 3n;
export const RSI_ERROR_UNKNOWN = 4n;

/** RSI_ABI_VERSION 1.0 ((major << 16) | minor). */
export const RSI_ABI_VERSION = (1n << 16n) | 0n;

/* RSI_IPA_STATE_SET flags and response */
export const RSI_NO_CHANGE_DESTROYED = 0n;
export const RSI_CHANGE_DESTROYED = 1n;
export const RSI_ACCEPT = 0n;
export const RSI_REJECT = 1n;

/** SMCCC_RET_NOT_SUPPORTED (include/linux/arm-smccc.h) as the u64 in x0. */
export const SMCCC_RET_NOT_SUPPORTED = BigInt.asUintN(64, -1n);

/** The RMM's granule: 4 KiB (GRANULE_SHIFT 12). */
export const GRANULE_SHIFT = 12;
export const GRANULE_SIZE = 1 << GRANULE_SHIFT;

/** RMM_RTT_MAX_LEVEL / RMM_RTT_BLOCK_LEVEL (rme.c). */
export const RMM_RTT_MAX_LEVEL = 3;
export const RMM_RTT_BLOCK_LEVEL = 2;

/** RMM_RTT_LEVEL_SHIFT(l): ((12 - 3) * (4 - l) + 3), the address bits one entry of level l maps. */
export function RMM_RTT_LEVEL_SHIFT(level: number): number {
  return 9 * (4 - level) + 3;
}

/** rmi_rtt_level_mapsize(): the bytes one entry of `level` maps (level 3: 4 KiB, 2: 2 MiB, 1: 1 GiB). */
export function rmi_rtt_level_mapsize(level: number): bigint {
  return 1n << BigInt(RMM_RTT_LEVEL_SHIFT(level));
}

/** get_start_level(): the root RTT level of an ia_bits-wide IPA space with 4 KiB granules. */
export function rtt_start_level(ia_bits: number): number {
  return 4 - Math.floor((ia_bits - 8) / 9);
}

/** realm_num_root_rtts(): the concatenated root tables an ia_bits-wide IPA space needs. */
export function realm_num_root_rtts(ia_bits: number): number {
  const levels = 4 - rtt_start_level(ia_bits);
  const sl_ipa_bits = levels * 9 + GRANULE_SHIFT;
  return sl_ipa_bits >= ia_bits ? 1 : 2 ** (ia_bits - sl_ipa_bits);
}
