/**
 * Warnings a test expects (used with test/setup/strict-warn.ts). Module state lives for one test:
 * the setup file takes and clears it around every test.
 */
let expected: RegExp[] = [];

/** Declare that this test expects a WARN_ON whose message matches `pattern`. */
export function expectWarning(pattern: RegExp | string): void {
  expected.push(typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern);
}

/** Returns and clears the expected warnings. */
export function takeExpectedWarnings(): RegExp[] {
  const e = expected;
  expected = [];
  return e;
}
