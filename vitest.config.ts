import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/*
 * One vitest project per workspace package. Workspace packages are aliased to their TypeScript
 * sources so that tests never run a stale `dist`; `tsc -b` is the
 * separate typecheck and build.
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const vendorDirs = existsSync(`${root}vendors`)
  ? readdirSync(`${root}vendors`, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(`${root}vendors/${d.name}/package.json`))
      .map((d) => `vendors/${d.name}`)
  : [];
const packageDirs = ['core', 'mm', 'kvm', 'vfio', ...vendorDirs, 'bench'];

const alias = [
  ...['core', 'mm', 'kvm', 'vfio'].map((p) => ({
    find: new RegExp(`^@cocosim/${p}$`),
    replacement: `${root}${p}/src/index.ts`,
  })),
  ...vendorDirs.map((dir) => ({
    find: new RegExp(`^@cocosim/vendor-${dir.slice('vendors/'.length)}$`),
    replacement: `${root}${dir}/src/index.ts`,
  })),
  { find: /^@cocosim\/test\/lib\/(.*)$/, replacement: `${root}test/lib/$1.ts` },
];

const setupFiles = ['reflect-metadata', `${root}test/setup/strict-warn.ts`];

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      ...packageDirs.map((dir) => ({
        resolve: { alias },
        test: { name: dir, root: `${root}${dir}`, include: ['src/**/*.test.ts'], setupFiles },
      })),
      {
        resolve: { alias },
        test: { name: 'test', root: `${root}test`, include: ['**/*.test.ts'], exclude: ['dist/**', 'node_modules/**'], setupFiles },
      },
    ],
  },
});
