/**
 * pvmfw's measurement of the protected VM's payload (Android Virtualization Framework's pvmfw,
 * guest firmware: it verifies the payload and derives the DICE chain from its hash before
 * jumping to it). pKVM itself measures nothing; the measurement is the guest's. Modelled as the
 * SHA-512 (open-dice's hash) of the payload image as the guest reads it from its own memory, so
 * that the same image always gives the same measurement and a changed byte or page order another
 * (vendor-models.md §5.3: "measurement/attestation is done by pvmfw (DICE chain) (inferred beyond
 * the call name)").
 */
import { createHash } from 'node:crypto';
import { guestLoad, type GuestCode } from '@cocosim/kvm';

/** The payload measurement of `image`. */
export function pvmfw_measure_payload(image: Uint8Array): string {
  return createHash('sha512').update(image).digest('hex');
}

/** Guest code: pvmfw reads the payload at `ipa` (`size` bytes) and measures it. */
export function* pvmfw_measure(ipa: bigint, size: number): GuestCode<string> {
  const image = yield* guestLoad(ipa, size);
  return pvmfw_measure_payload(image);
}
