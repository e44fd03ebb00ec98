/**
 * What the requirement checks share: naming the step a finding was made after, and whether a
 * run gave a requirement anything to judge.
 */
import type { RequirementInput } from '../compare/requirements.js';
import type { StateSnapshot } from './snapshot.js';

/** `after step 4 (guest: convert ...)`, for a violation's message. */
export function afterStep(s: StateSnapshot): string {
  return `after step ${s.step + 1} (${s.call})`;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** True when some step left a private gfn mapped in some VM. */
export function anyPrivateMapped(input: RequirementInput): boolean {
  return input.snapshots.some((s) => s.vms.some((v) => v.private.size > 0));
}
