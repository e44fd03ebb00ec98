/**
 * The Realm Initial Measurement (TF-RMM rmm-spec-v1.0-rel0 lib/measurement/src/rim.c and
 * lib/measurement/include/measurement_descs.h; RMM specification 1.0 A7.1 "Realm measurement").
 *
 * The RIM starts as the hash of the measured realm parameters (RMI_REALM_CREATE); every
 * RMI_DATA_CREATE, RMI_RTT_INIT_RIPAS entry and RMI_REC_CREATE then replaces it by the hash of a
 * descriptor that holds the previous RIM:
 *
 *   RIM' = H(desc),  desc = { desc_type, len, RIM, ...the operation's fields }
 *
 * so the same image populated in the same order always gives the same RIM, and a changed byte
 * (with RMI_MEASURE_CONTENT), a changed IPA or a changed order gives another. H is SHA-256 or
 * SHA-512 (RmiHashAlgorithm); the RIM slot is 64 bytes, of which the hash's size is used.
 *
 * Descriptor layouts (SET_MEMBER(type, start, end) pads each member to [start, end)):
 *   data  (type 0, 0x100 bytes): type @0x0, len @0x8, rim[64] @0x10, ipa @0x50, flags @0x58,
 *                                content[64] @0x60 (hash of the granule, or zeros unmeasured)
 *   rec   (type 1, 0x90 bytes):  type @0x0, len @0x8, rim[64] @0x10, content[64] @0x50 (hash of
 *                                the measured RmiRecParams)
 *   ripas (type 2, 0x60 bytes):  type @0x0, len @0x8, rim[64] @0x10, base @0x50, top @0x58
 */
import { createHash } from 'node:crypto';
import { RMI_HASH_SHA_512, RMI_MEASURE_CONTENT } from './rmi.js';

/** MAX_MEASUREMENT_SIZE: a measurement slot holds up to a SHA-512 digest. */
export const MAX_MEASUREMENT_SIZE = 64;

const MEASURE_DESC_TYPE_DATA = 0;
const MEASURE_DESC_TYPE_REC = 1;
const MEASURE_DESC_TYPE_RIPAS = 2;

/** measurement_get_size(): the digest size of the algorithm. */
export function measurement_get_size(algo: number): number {
  return algo === RMI_HASH_SHA_512 ? 64 : 32;
}

/**
 * measurement_hash_compute(): H(data) into a zero-padded 64-byte measurement slot.
 */
export function measurement_hash_compute(algo: number, data: Uint8Array): Uint8Array {
  const digest = createHash(algo === RMI_HASH_SHA_512 ? 'sha512' : 'sha256').update(data).digest();
  const out = new Uint8Array(MAX_MEASUREMENT_SIZE);
  out.set(digest);
  return out;
}

function desc(size: number, type: number, rim: Uint8Array, algo: number): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  buf[0] = type;
  view.setBigUint64(0x8, BigInt(size), true);
  buf.set(rim.subarray(0, measurement_get_size(algo)), 0x10);
  return { buf, view };
}

/** The measured fields of RmiRealmParams (RMM 1.0 B3.4.17): what REALM_CREATE hashes into the initial RIM. */
export interface MeasuredRealmParams {
  readonly flags: bigint;
  readonly s2sz: number;
  readonly sve_vl: number;
  readonly num_bps: number;
  readonly num_wps: number;
  readonly pmu_num_ctrs: number;
  readonly hash_algo: number;
}

/**
 * measurement_realm_params_measure(): the initial RIM, H() of a zero-filled 4 KiB RmiRealmParams
 * holding only the measured fields (flags @0x0, s2sz @0x8, sve_vl @0x10, num_bps @0x18, num_wps
 * @0x20, pmu_num_ctrs @0x28, hash_algo @0x30); the RPV, VMID and RTT base are not measured.
 */
export function measurement_realm_params_measure(algo: number, p: MeasuredRealmParams): Uint8Array {
  const buf = new Uint8Array(0x1000);
  const view = new DataView(buf.buffer);
  view.setBigUint64(0x0, BigInt.asUintN(64, p.flags), true);
  buf[0x8] = p.s2sz;
  buf[0x10] = p.sve_vl;
  buf[0x18] = p.num_bps;
  buf[0x20] = p.num_wps;
  buf[0x28] = p.pmu_num_ctrs;
  buf[0x30] = p.hash_algo;
  return measurement_hash_compute(algo, buf);
}

/**
 * measurement_data_granule_measure(): the RIM after RMI_DATA_CREATE of `data` at `ipa`; the
 * content hash only with RMI_MEASURE_CONTENT, zeros otherwise.
 */
export function measurement_data_granule_measure(rim: Uint8Array, algo: number, data: Uint8Array, ipa: bigint, flags: bigint): Uint8Array {
  const { buf, view } = desc(0x100, MEASURE_DESC_TYPE_DATA, rim, algo);
  view.setBigUint64(0x50, ipa, true);
  view.setBigUint64(0x58, flags, true);
  if (flags === RMI_MEASURE_CONTENT) buf.set(measurement_hash_compute(algo, data).subarray(0, measurement_get_size(algo)), 0x60);
  return measurement_hash_compute(algo, buf);
}

/** The measured fields of RmiRecParams: flags, pc and the eight argument registers. */
export interface MeasuredRecParams {
  readonly flags: bigint;
  readonly pc: bigint;
  readonly gprs: readonly bigint[];
}

/**
 * measurement_rec_params_measure(): the RIM after RMI_REC_CREATE: the content is H() of a
 * zero-filled 4 KiB RmiRecParams with flags @0x0, pc @0x200 and gprs[8] @0x300 (MPIDR and the
 * auxiliary granules are not measured).
 */
export function measurement_rec_params_measure(rim: Uint8Array, algo: number, p: MeasuredRecParams): Uint8Array {
  const params = new Uint8Array(0x1000);
  const pv = new DataView(params.buffer);
  pv.setBigUint64(0x0, BigInt.asUintN(64, p.flags), true);
  pv.setBigUint64(0x200, BigInt.asUintN(64, p.pc), true);
  for (let i = 0; i < 8; i++) pv.setBigUint64(0x300 + 8 * i, BigInt.asUintN(64, p.gprs[i] ?? 0n), true);
  const { buf } = desc(0x90, MEASURE_DESC_TYPE_REC, rim, algo);
  buf.set(measurement_hash_compute(algo, params).subarray(0, measurement_get_size(algo)), 0x50);
  return measurement_hash_compute(algo, buf);
}

/** measurement_init_ripas_measure(): the RIM after RMI_RTT_INIT_RIPAS made [base, top) RAM (one entry). */
export function measurement_init_ripas_measure(rim: Uint8Array, algo: number, base: bigint, top: bigint): Uint8Array {
  const { buf, view } = desc(0x60, MEASURE_DESC_TYPE_RIPAS, rim, algo);
  view.setBigUint64(0x50, base, true);
  view.setBigUint64(0x58, top, true);
  return measurement_hash_compute(algo, buf);
}
