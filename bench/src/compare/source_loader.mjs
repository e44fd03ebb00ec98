/*
 * Module hooks (node:module register) that run the workspace from its TypeScript sources, like
 * vitest.config.ts does: `@cocosim/<pkg>` resolves to `<pkg>/src/index.ts`, a relative `./x.js`
 * import from a .ts file to `./x.ts` when that exists, and each .ts file is compiled on its own
 * with the compiler vitest itself uses (vite's transformWithOxc: legacy decorators as in
 * tsconfig.base.json, their helpers left to globalThis.babelHelpers, which source_worker.mjs
 * defines).
 */
import { existsSync, readFileSync } from 'node:fs';
import { URL, fileURLToPath } from 'node:url';
import { transformWithOxc } from 'vite';

const root = new URL('../../../', import.meta.url);
const PACKAGE = /^@cocosim\/(core|mm|kvm|vfio)$/;
const VENDOR = /^@cocosim\/vendor-([A-Za-z0-9_.-]+)$/;

export async function resolve(specifier, context, next) {
  const pkg = PACKAGE.exec(specifier);
  if (pkg !== null) return { url: new URL(`${pkg[1]}/src/index.ts`, root).href, format: 'module', shortCircuit: true };
  const vendor = VENDOR.exec(specifier);
  if (vendor !== null) return { url: new URL(`vendors/${vendor[1]}/src/index.ts`, root).href, format: 'module', shortCircuit: true };
  if (/^\.\.?\//.test(specifier) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const url = new URL(`${specifier.slice(0, -3)}.ts`, context.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const out = await transformWithOxc(readFileSync(fileName, 'utf8'), fileName, {
    lang: 'ts',
    target: 'es2022',
    decorator: { legacy: true },
    helpers: { mode: 'External' },
    sourcemap: false,
  });
  return { format: 'module', source: out.code, shortCircuit: true };
}
