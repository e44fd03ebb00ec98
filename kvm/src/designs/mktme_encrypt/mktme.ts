/**
 * The arch half D12 calls: arch/x86/mm/mktme.c of Kirill Shutemov's "[PATCH, RFC 00/62] Intel
 * MKTME enabling" (8 May 2019, 20190508144422.13171-1-kirill.shutemov@linux.intel.com) and the
 * PCONFIG key programming of arch/x86/include/asm/intel_pconfig.h. The MKTME hardware and that
 * arch code are the vendor's (vendors/mktme: MktmePlatform); kvm cannot import a vendor package,
 * so the vendor registers its implementation here when it installs the host's hardware
 * (mktmeRegistrar()), as arch code provides what generic mm and the key service call. A host
 * without MKTME has none: the key type then refuses keys and encrypt_mprotect() finds no KeyID.
 */
import type { Kernel } from '@cocosim/mm';

/** struct mktme_key_program, as the key service fills it (intel_pconfig.h). */
export interface MktmeKeyProgramArgs {
  readonly keyid: number;
  /** COMMAND (bits 7:0) | ENC_ALG (bits 23:8). */
  readonly keyid_ctrl: number;
  readonly key_field_1?: Uint8Array;
  readonly key_field_2?: Uint8Array;
}

/** What the MKTME arch code gives generic code (the vendor's MktmePlatform has these methods). */
export interface MktmeArch {
  /** mktme_nr_keyids(): the highest KeyID (KeyID 0 is TME's). */
  readonly max_keyid: number;
  /** mktme_program_all_keytables(): PCONFIG on every package. 0, -EBUSY (KeyID in use), -EAGAIN, -EIO. */
  mktme_key_program(prog: MktmeKeyProgramArgs): number;
  /** prep_encrypted_page(): flush the KeyID-0 lines, page_ext->keyid = keyid, zero through it. 0 or -errno. */
  prep_encrypted_page(pfn: number, keyid: number): number;
  /** free_encrypted_page(): flush the KeyID's lines, KeyID back to 0. 0 or -EINVAL (no KeyID). */
  free_encrypted_page(pfn: number): number;
  /** page_keyid(). */
  page_keyid(pfn: number): number;
  /** The PhysMem key an access through `keyid` uses (0 for TME and NO_ENCRYPT KeyIDs). */
  phys_key(keyid: number): number;
  /** Pages using the KeyID (the refcount that keeps a KeyID from being reprogrammed). */
  keyid_refcount(keyid: number): number;
}

const arches = new WeakMap<Kernel, MktmeArch>();

/** The vendor's registration of `kernel`'s MKTME arch code. */
export function mktme_arch_register(kernel: Kernel, arch: MktmeArch): void {
  arches.set(kernel, arch);
}

/** `kernel`'s MKTME arch code, or undefined on a host without MKTME. */
export function mktme_arch_of(kernel: Kernel): MktmeArch | undefined {
  return arches.get(kernel);
}
