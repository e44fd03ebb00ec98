/**
 * The two project rules the linter enforces (eslint.config.mjs): only the composition root
 * imports tsyringe's global container, and every constructor parameter of a decorated class has
 * an explicit @inject(TOKEN).
 */
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

async function lint(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${file}` });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('project lint rules', () => {
  test('importing the global container outside the composition root is an error', async () => {
    const code = "import { container } from 'tsyringe';\nexport const c = container;\n";
    expect((await lint(code, 'mm/src/example.ts')).join('\n')).toMatch(/no-restricted-imports.*composition root/);
    expect(await lint(code, 'core/src/di/compose.ts')).toEqual([]);
    expect(await lint("import { inject, injectable } from 'tsyringe';\nexport { inject, injectable };\n", 'mm/src/example.ts')).toEqual([]);
  });

  test('a decorated class whose constructor parameter lacks @inject is an error', async () => {
    const bad = [
      "import { inject, injectable } from 'tsyringe';",
      "const A = Symbol('A');",
      '@injectable()',
      'export class Gup {',
      '  constructor(@inject(A) readonly a: unknown, readonly store: unknown) {}',
      '}',
    ].join('\n');
    expect(await lint(bad, 'mm/src/example.ts')).toEqual([
      "cocosim/inject-every-param: constructor parameter 'store' of decorated class 'Gup' has no @inject(TOKEN)",
    ]);
    const good = bad.replace('readonly store: unknown', '@inject(A) readonly store: unknown');
    expect(await lint(good, 'mm/src/example.ts')).toEqual([]);
  });
});
