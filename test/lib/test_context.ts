/**
 * The running vitest test's context, recorded by test/setup/strict-warn.ts in beforeEach, so that
 * TEST_REQUIRE can skip the test from anywhere inside it (C selftests exit with KSFT_SKIP).
 */
export interface SkippableContext {
  skip(note?: string): never;
}

let current: SkippableContext | undefined;

export function setCurrentTestContext(ctx: SkippableContext | undefined): void {
  current = ctx;
}

export function currentTestContext(): SkippableContext | undefined {
  return current;
}
