/**
 * vitest setupFiles: a WARN_ON from any simulated host fails the test that caused it, unless the
 * test declared it with expectWarning() (test/lib/test_util.ts). The kernel's WARN_ON means "a
 * rule was broken"; a simulator that warns silently cannot be trusted.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { setWarnObserver, type Warning } from '@cocosim/core';
import { takeExpectedWarnings } from '../lib/warnings.js';
import { setCurrentTestContext } from '../lib/test_context.js';

let seen: Warning[] = [];

// vitest parses hook arguments for fixtures: the context must be destructured.
beforeEach(({ skip }) => {
  setCurrentTestContext({ skip });
  seen = [];
  takeExpectedWarnings();
  setWarnObserver((w) => seen.push(w));
});

afterEach(() => {
  setCurrentTestContext(undefined);
  setWarnObserver(undefined);
  const expected = takeExpectedWarnings();
  const unexpected = seen.filter((w) => !expected.some((re) => re.test(w.message)));
  const unmet = expected.filter((re) => !seen.some((w) => re.test(w.message)));
  expect(unexpected.map((w) => `${w.kind}: ${w.message}`), 'unexpected kernel warnings').toEqual([]);
  expect(unmet.map(String), 'expected warnings that never fired').toEqual([]);
});
