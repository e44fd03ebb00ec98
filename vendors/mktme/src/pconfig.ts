/**
 * PCONFIG and its MKTME_KEY_PROGRAM leaf, by the kernel's names: arch/x86/include/asm/intel_pconfig.h
 * (torvalds/linux, merged with the MKTME preparation in 2018 and still in tree) and the Intel SDM
 * entry for PCONFIG. The TME activation MSR layout is IA32_TME_ACTIVATE (MSR 0x982), as the removed
 * detect_tme() in arch/x86/kernel/cpu/intel.c read it.
 */

/** enum pconfig_target: the targets CPUID leaf 0x1b enumerates. */
export const INVALID_TARGET = 0;
export const MKTME_TARGET = 1;

/** enum pconfig_leaf (RAX on entry). */
export const MKTME_KEY_PROGRAM = 0;
export const PCONFIG_LEAF_INVALID = 1;

/* mktme_key_program::keyid_ctrl COMMAND, bits [7:0] */
export const MKTME_KEYID_SET_KEY_DIRECT = 0;
export const MKTME_KEYID_SET_KEY_RANDOM = 1;
export const MKTME_KEYID_CLEAR_KEY = 2;
export const MKTME_KEYID_NO_ENCRYPT = 3;

/* mktme_key_program::keyid_ctrl ENC_ALG, bits [23:8] */
export const MKTME_AES_XTS_128 = 1 << 8;

/* Return codes from the PCONFIG MKTME_KEY_PROGRAM (RAX on exit) */
export const MKTME_PROG_SUCCESS = 0;
export const MKTME_INVALID_PROG_CMD = 1;
export const MKTME_ENTROPY_ERROR = 2;
export const MKTME_INVALID_KEYID = 3;
export const MKTME_INVALID_ENC_ALG = 4;
export const MKTME_DEVICE_BUSY = 5;

/**
 * struct mktme_key_program (__packed __aligned(256)): keyid, keyid_ctrl (command | enc_alg), 58
 * reserved bytes, key_field_1 (the data key, or the software entropy for SET_KEY_RANDOM) and
 * key_field_2 (the tweak key). `address` is where the structure lies: the SDM's #GP(0) when it is
 * not 256-byte aligned (the header's comment: "Hardware requires the structure to be 256 byte
 * aligned. Otherwise #GP(0).").
 */
export interface MktmeKeyProgram {
  readonly keyid: number;
  readonly keyid_ctrl: number;
  readonly key_field_1?: Uint8Array;
  readonly key_field_2?: Uint8Array;
  readonly address?: bigint;
}

/** What executing PCONFIG does: it retires with RAX (a status above), or raises #GP(0)/#UD. */
export type PconfigResult =
  | { readonly kind: 'ret'; readonly rax: number }
  | { readonly kind: 'exception'; readonly name: '#GP(0)' | '#UD'; readonly reason: string };

/** The COMMAND field (bits 7:0) of keyid_ctrl. */
export function mktme_keyid_ctrl_command(keyid_ctrl: number): number {
  return keyid_ctrl & 0xff;
}

/** The ENC_ALG field (bits 23:8) of keyid_ctrl. */
export function mktme_keyid_ctrl_enc_alg(keyid_ctrl: number): number {
  return keyid_ctrl & 0xffff00;
}

/** IA32_TME_ACTIVATE (SDM; the removed arch/x86/kernel/cpu/intel.c TME_ACTIVATE_* macros). */
export const MSR_IA32_TME_ACTIVATE = 0x982;
/** TME_ACTIVATE_LOCKED(x): bit 0. */
export const TME_ACTIVATE_LOCKED = 1n << 0n;
/** TME_ACTIVATE_ENABLED(x): bit 1. */
export const TME_ACTIVATE_ENABLED = 1n << 1n;
/** TME_ACTIVATE_KEYID_BITS(x): bits 35:32, the number of physical-address bits used for KeyIDs. */
export function tme_activate_keyid_bits(msr: bigint): number {
  return Number((msr >> 32n) & 0xfn);
}
/** TME_ACTIVATE_CRYPTO_ALGS(x): bits 63:48, the algorithms enabled for MKTME (bit 0: AES-XTS-128). */
export function tme_activate_crypto_algs(msr: bigint): number {
  return Number((msr >> 48n) & 0xffffn);
}
