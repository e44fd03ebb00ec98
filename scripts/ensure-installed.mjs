/*
 * First step of `npm start`, `npm test` and `npm run bench`: on a fresh clone (or after the
 * lockfile changed) install the workspace from package-lock.json with `npm ci`, so that each
 * README command works by itself. It does nothing when node_modules matches the lockfile.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

const stamp = 'node_modules/.cocosim-lock-hash';
const hash = createHash('sha256').update(readFileSync('package-lock.json')).digest('hex');
const installed = existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === hash;
if (!installed) {
  console.error('cocosim: installing dependencies from package-lock.json (npm ci)...');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  writeFileSync(stamp, `${hash}\n`);
}

/*
 * `--chromium` (npm test): the report's browser test drives Debian's Chromium
 * (/usr/bin/chromium). Where it is missing and apt-get can run (root), install it once; where
 * that fails, the browser test skips and says why. A stamp keeps a failed attempt from being
 * retried on every run.
 */
if (process.argv.includes('--chromium') && !existsSync('/usr/bin/chromium')) {
  const tried = 'node_modules/.cocosim-chromium-tried';
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (root && !existsSync(tried) && spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0) {
    console.error('cocosim: installing Debian chromium for the report browser test (apt-get)...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const ok = spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq chromium'], { stdio: 'inherit', env }).status === 0;
    if (!ok) {
      writeFileSync(tried, 'apt-get install chromium failed\n');
      console.error('cocosim: chromium could not be installed; the browser test will be skipped');
    }
  }
}
