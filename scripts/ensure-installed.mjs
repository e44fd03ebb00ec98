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
