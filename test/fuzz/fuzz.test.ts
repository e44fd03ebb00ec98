/**
 * A short fuzz run, part of every test run: a fixed seed, every registered platform, the
 * invariant checks after every call, the digest check of every failed call, each program run
 * twice for determinism, and direct calls with JS values no trace can spell. It must find
 * nothing; a finding comes with its program, minimized (save it with `cocosim fuzz --seed suite`
 * to add it to test/fuzz/found).
 */
import { expect, test } from 'vitest';
import { loadFuzz } from './fuzz_module.js';

const fuzz = await loadFuzz();

// 98 platforms (14 designs x 7 vendors): 200 calls each keeps the run to seconds per platform;
// the long runs (`cocosim fuzz --calls N`) go deeper.
test('cocosim fuzz --seed suite --calls 200, on every platform, finds nothing', { timeout: 300000 }, () => {
  const platforms = fuzz.platformChoices();
  expect(platforms.length).toBeGreaterThanOrEqual(2);
  const report = fuzz.fuzz({ calls: 200, seed: 'suite', platforms, programLength: 100, jsShapes: 100 });
  expect(report.calls).toBe(200 * platforms.length);
  const found = report.bugs.map((b) => `${b.platform.vendor}/${b.platform.design}: ${b.finding.signature}\n${b.finding.message}\n${b.text ?? ''}`);
  expect(found).toEqual([]);
});
