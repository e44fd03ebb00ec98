import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import injectEveryParam from './eslint-rules/inject-every-param.mjs';

/*
 * typescript-eslint rather than Biome: the two cocosim rules need the TypeScript AST with
 * parameter decorators (a ten-line local rule here), and ESLint's no-restricted-imports can ban
 * one named import (`container`) while allowing the rest of tsyringe. Biome has no custom rules
 * short of GritQL plugins, which cannot yet express the decorator check.
 */
export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'out/**', 'bench/results/**', 'test/oracle/build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { cocosim: { rules: { 'inject-every-param': injectEveryParam } } },
    rules: {
      'cocosim/inject-every-param': 'error',
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'tsyringe',
              importNames: ['container'],
              message: 'Only the composition root (core/src/di/compose.ts) touches the global container.',
            },
          ],
          // Packages sit below test/ (ARCHITECTURE.md: dependencies point down): a package's own
          // tests cannot import the test package, which is built after them.
          patterns: [{ group: ['@cocosim/test', '@cocosim/test/*'], message: 'test/ depends on the packages, not the other way round.' }],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['core/src/di/compose.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/*.mjs', 'scripts/**', 'test/oracle/**'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
