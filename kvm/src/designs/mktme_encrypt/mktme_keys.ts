/**
 * The "mktme" key type of the kernel key service: security/keys/mktme_keys.c of the MKTME RFC
 * (Alison Schofield; "[PATCH, RFC 00/62] Intel MKTME enabling", 8 May 2019,
 * 20190508144422.13171-1-kirill.shutemov@linux.intel.com, patches 33-44; the API first posted as
 * an "updated RFC on the API's to support MKTME", 3 Dec 2018), with the parts of
 * security/keys/keyctl.c (add_key(2), keyctl(2) REVOKE/INVALIDATE, lookup_user_key()) it is
 * reached through. A key owns one hardware KeyID for its life (1:1 "mktme_map"), programmed
 * with PCONFIG when the key is instantiated:
 *
 *   type=cpu algorithm=aes-xts-128 [key=<32 hex> tweak=<32 hex>]   SET_KEY_RANDOM (the optional
 *                                                                  fields are extra entropy)
 *   type=user algorithm=aes-xts-128 key=<32 hex> tweak=<32 hex>    SET_KEY_DIRECT
 *   type=no-encrypt                                                NO_ENCRYPT
 *
 * Errors (mktme_keys.rst): EINVAL for a payload that does not match, ENOKEY when no KeyID is
 * free or the hardware refuses the key; EACCES without CAP_SYS_RESOURCE is not modelled (cocosim
 * processes run as root). A revoked or invalidated key frees its KeyID only once no page uses it
 * (the RFC's percpu_ref encrypt_count): then the KeyID is programmed CLEAR_KEY and reused.
 * Key serials are cocosim's: sequential from 1 per host (the kernel draws random ones).
 */
import { Errno } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import { mktme_arch_of, type MktmeArch } from './mktme.js';
import {
  KEYCTL_INVALIDATE, KEYCTL_REVOKE, MKTME_AES_XTS_128, MKTME_AES_XTS_SIZE, MKTME_KEYID_CLEAR_KEY, MKTME_KEYID_NO_ENCRYPT,
  MKTME_KEYID_SET_KEY_DIRECT, MKTME_KEYID_SET_KEY_RANDOM,
} from './uapi.js';

/** A user-space key of type "mktme". */
export class MktmeKey {
  revoked = false;
  constructor(readonly serial: number, readonly description: string, readonly keyid: number) {}
}

/** enum mktme_keyid_state. */
type KeyidState = 'assigned' | 'ref_killed';

/** The key service's state of one host: keys by serial, KeyIDs by number (mktme_map). */
class MktmeKeyService {
  next_serial = 1;
  readonly keys = new Map<number, MktmeKey>();
  readonly keyids = new Map<number, KeyidState>();
  constructor(readonly arch: MktmeArch) {}
}

const services = new WeakMap<Kernel, MktmeKeyService>();

/** The key service of `kernel`, or undefined where the host has no MKTME (no "mktme" key type). */
function key_service(kernel: Kernel): MktmeKeyService | undefined {
  let s = services.get(kernel);
  if (s === undefined) {
    const arch = mktme_arch_of(kernel);
    if (arch === undefined) return undefined;
    services.set(kernel, (s = new MktmeKeyService(arch)));
  }
  return s;
}

/** struct mktme_payload: what mktme_preparse_payload() made of the options. */
interface MktmePayload {
  readonly keyid_ctrl: number;
  readonly data_key?: Uint8Array;
  readonly tweak_key?: Uint8Array;
}

/** mktme_get_key_hex(): exactly 32 hex digits, the 16 bytes of an AES-XTS-128 key. */
function parse_hex_key(v: string): Uint8Array | undefined {
  if (v.length !== 2 * MKTME_AES_XTS_SIZE || !/^[0-9a-fA-F]+$/.test(v)) return undefined;
  return Uint8Array.from(Buffer.from(v, 'hex'));
}

/**
 * mktme_preparse_payload(): the space-separated options. -EINVAL for an empty payload, an unknown
 * or repeated token, an unknown type or algorithm, a malformed key or tweak, a field the type
 * does not take or a field it needs missing.
 */
export function mktme_preparse_payload(payload: string): MktmePayload | number {
  const opts = new Map<string, string>();
  for (const tok of payload.split(/[ \t\n]+/).filter((t) => t.length > 0)) {
    const eq = tok.indexOf('=');
    const name = eq < 0 ? tok : tok.slice(0, eq);
    if (eq < 0 || !['type', 'algorithm', 'key', 'tweak'].includes(name) || opts.has(name)) return -Errno.EINVAL;
    opts.set(name, tok.slice(eq + 1));
  }
  const type = opts.get('type');
  const alg = opts.get('algorithm');
  const key = opts.get('key');
  const tweak = opts.get('tweak');
  if (alg !== undefined && alg !== 'aes-xts-128') return -Errno.EINVAL;
  const data_key = key === undefined ? undefined : parse_hex_key(key);
  const tweak_key = tweak === undefined ? undefined : parse_hex_key(tweak);
  if ((key !== undefined && data_key === undefined) || (tweak !== undefined && tweak_key === undefined)) return -Errno.EINVAL;
  switch (type) {
    case 'cpu':
      // The CPU generates the key; a key/tweak given is mixed in as entropy.
      if (alg === undefined) return -Errno.EINVAL;
      return { keyid_ctrl: MKTME_KEYID_SET_KEY_RANDOM | MKTME_AES_XTS_128, data_key, tweak_key };
    case 'user':
      if (alg === undefined || data_key === undefined || tweak_key === undefined) return -Errno.EINVAL;
      return { keyid_ctrl: MKTME_KEYID_SET_KEY_DIRECT | MKTME_AES_XTS_128, data_key, tweak_key };
    case 'no-encrypt':
      if (alg !== undefined || key !== undefined || tweak !== undefined) return -Errno.EINVAL;
      return { keyid_ctrl: MKTME_KEYID_NO_ENCRYPT };
    default:
      return -Errno.EINVAL;
  }
}

/** mktme_reserve_keyid(): the lowest KeyID no key holds, or 0. */
function mktme_reserve_keyid(s: MktmeKeyService): number {
  for (let k = 1; k <= s.arch.max_keyid; k++) {
    if (!s.keyids.has(k)) {
      s.keyids.set(k, 'assigned');
      return k;
    }
  }
  return 0;
}

/**
 * mktme_instantiate_key() -> mktme_get_key(): reserve a KeyID and program it on every package;
 * -ENOKEY when none is free or the programming fails (the KeyID is released again).
 */
function mktme_instantiate_key(s: MktmeKeyService, payload: MktmePayload): number {
  const keyid = mktme_reserve_keyid(s);
  if (!keyid) return -Errno.ENOKEY;
  const r = s.arch.mktme_key_program({ keyid, keyid_ctrl: payload.keyid_ctrl, key_field_1: payload.data_key, key_field_2: payload.tweak_key });
  if (r) {
    s.keyids.delete(keyid);
    return -Errno.ENOKEY;
  }
  return keyid;
}

/**
 * add_key(2) (security/keys/keyctl.c) for `type` "mktme": the type name (-EINVAL empty, -EPERM for
 * a "." name), the description (-EINVAL empty), the payload (-EINVAL at 1 MiB), the type
 * (-ENODEV: none but "mktme" here, and none on a host without MKTME), then preparse and
 * instantiate. Returns the new key's serial or -errno. The keyring argument is not modelled.
 */
export function sys_add_key(kernel: Kernel, type: unknown, description: unknown, payload: unknown): number {
  if (typeof type !== 'string' || typeof description !== 'string') return -Errno.EFAULT;
  if (type.length === 0) return -Errno.EINVAL;
  if (type.startsWith('.')) return -Errno.EPERM;
  if (description.length === 0) return -Errno.EINVAL;
  const text = typeof payload === 'string' ? payload : payload instanceof Uint8Array ? Buffer.from(payload).toString('latin1') : undefined;
  if (text === undefined) return -Errno.EFAULT;
  if (text.length > 1024 * 1024 - 1) return -Errno.EINVAL;
  const s = key_service(kernel);
  if (type !== 'mktme' || s === undefined) return -Errno.ENODEV;
  const p = mktme_preparse_payload(text);
  if (typeof p === 'number') return p;
  const keyid = mktme_instantiate_key(s, p);
  if (keyid < 0) return keyid;
  const key = new MktmeKey(s.next_serial++, description, keyid);
  s.keys.set(key.serial, key);
  return key.serial;
}

/** lookup_user_key(): the key, -ENOKEY for no such key, -EKEYREVOKED for a revoked one. */
export function lookup_user_key(kernel: Kernel, serial: unknown): MktmeKey | number {
  const key = typeof serial === 'number' ? services.get(kernel)?.keys.get(serial) : undefined;
  if (key === undefined) return -Errno.ENOKEY;
  if (key.revoked) return -Errno.EKEYREVOKED;
  return key;
}

/** mktme_keyid_from_key(): the KeyID of a live key, 0 once it was removed. */
export function mktme_keyid_from_key(kernel: Kernel, key: MktmeKey): number {
  const s = services.get(kernel);
  return s !== undefined && s.keyids.get(key.keyid) === 'assigned' && !key.revoked ? key.keyid : 0;
}

/**
 * mktme_percpu_ref_release() -> mktme_clear_hardware_keyid(): a removed key's KeyID with no page
 * left is programmed CLEAR_KEY (its old data no longer decrypts) and becomes free.
 */
export function mktme_release_keyid_if_unused(kernel: Kernel, keyid: number): void {
  const s = services.get(kernel);
  if (s === undefined || s.keyids.get(keyid) !== 'ref_killed' || s.arch.keyid_refcount(keyid) > 0) return;
  s.arch.mktme_key_program({ keyid, keyid_ctrl: MKTME_KEYID_CLEAR_KEY });
  s.keyids.delete(keyid);
}

/** mktme_remove_key() (the type's ->revoke and ->destroy): the KeyID is killed, freed when unused. */
function mktme_remove_key(kernel: Kernel, s: MktmeKeyService, key: MktmeKey): void {
  key.revoked = true;
  s.keyids.set(key.keyid, 'ref_killed');
  mktme_release_keyid_if_unused(kernel, key.keyid);
}

/**
 * keyctl(2) KEYCTL_REVOKE and KEYCTL_INVALIDATE of an "mktme" key: lookup_user_key()'s errors,
 * then the key is revoked (its serial still names it: -EKEYREVOKED) or invalidated (gone:
 * -ENOKEY). Other commands: -EOPNOTSUPP.
 */
export function sys_keyctl(kernel: Kernel, cmd: unknown, serial: unknown): number {
  if (cmd !== KEYCTL_REVOKE && cmd !== KEYCTL_INVALIDATE) return -Errno.EOPNOTSUPP;
  const key = lookup_user_key(kernel, serial);
  if (typeof key === 'number') return key;
  const s = services.get(kernel)!;
  mktme_remove_key(kernel, s, key);
  if (cmd === KEYCTL_INVALIDATE) s.keys.delete(key.serial);
  return 0;
}

/**
 * A KeyID for /dev/mktme (Andy Lutomirski's "you open /dev/mktme and you get your own key"): a
 * CPU-generated key outside the key service's serials. The KeyID or -errno as mktme_get_key().
 */
export function mktme_get_anonymous_keyid(kernel: Kernel): number {
  const s = key_service(kernel);
  if (s === undefined) return -Errno.ENODEV;
  return mktme_instantiate_key(s, { keyid_ctrl: MKTME_KEYID_SET_KEY_RANDOM | MKTME_AES_XTS_128 });
}

/** The /dev/mktme file is released: its KeyID is freed once no page uses it. */
export function mktme_put_anonymous_keyid(kernel: Kernel, keyid: number): void {
  const s = services.get(kernel);
  if (s === undefined || !s.keyids.has(keyid)) return;
  s.keyids.set(keyid, 'ref_killed');
  mktme_release_keyid_if_unused(kernel, keyid);
}

/** The host's MKTME arch code, for the other files of the design. */
export function mktme_keys_arch(kernel: Kernel): MktmeArch | undefined {
  return key_service(kernel)?.arch;
}
