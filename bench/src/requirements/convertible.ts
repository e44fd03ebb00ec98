/**
 * David Hildenbrand's fourth requirement (designs.md §D4): "private can be replaced by shared and
 * back". Violated when a guest's conversion request is refused for good (the design has no such
 * conversion, or rejects it) rather than for a reason the VMM can clear (EAGAIN while pinned,
 * EBUSY).
 */
import type { Requirement } from '../compare/requirements.js';

const CONVERT = /^guest: convert /;
const TRANSIENT = /\((VMM: )?(EAGAIN|EBUSY)\)/;

export const convertible: Requirement = {
  id: 'convertible',
  description: 'private can be replaced by shared and back (Hildenbrand)',
  relevant: (input) => input.steps.some((s) => CONVERT.test(s.call)),
  check(input) {
    const i = input.steps.findIndex((s) => CONVERT.test(s.call) && s.outcome !== '0' && !TRANSIENT.test(s.outcome));
    if (i < 0) return [];
    const s = input.steps[i]!;
    return [`step ${i + 1} (${s.call}) was refused: ${s.outcome}`];
  },
};
