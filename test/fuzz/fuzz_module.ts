/**
 * The fuzzer's runner (bench/src/fuzz), loaded from bench's sources by path: the test package
 * has no project reference to bench (test/tsconfig.json), so vitest compiles it as it compiles
 * any import, and the parts the fuzz tests use are declared here.
 */
import { fileURLToPath } from 'node:url';

export interface FuzzFinding {
  readonly kind: string;
  readonly i: number;
  readonly op: string;
  readonly signature: string;
  readonly message: string;
}

export interface PlatformChoice {
  readonly vendor: string;
  readonly design: string;
}

export interface FuzzReport {
  readonly calls: number;
  readonly programs: number;
  readonly jsShapeCalls: number;
  readonly ms: number;
  readonly bugs: readonly { readonly platform: PlatformChoice; readonly finding: FuzzFinding; readonly count: number; readonly text?: string }[];
}

export interface FuzzModule {
  runProgram(text: string, opts?: { readonly file?: string; readonly nr_pages?: number; readonly pku?: boolean }): { readonly findings: FuzzFinding[]; readonly results: string[] };
  /** The host size a saved program's comments ask for. */
  savedNrPages(text: string): number | undefined;
  /** Whether a saved program's comments ask for a CPU with protection keys. */
  savedPku(text: string): boolean;
  fuzz(opts: {
    readonly calls: number;
    readonly seed: string;
    readonly platforms: readonly PlatformChoice[];
    readonly programLength?: number;
    readonly jsShapes?: number;
  }): FuzzReport;
  platformChoices(): PlatformChoice[];
}

const source = fileURLToPath(new URL('../../bench/src/fuzz/index.ts', import.meta.url));
const trace = fileURLToPath(new URL('../../bench/src/trace/platforms.ts', import.meta.url));

/** The fuzzer, from bench's sources. */
export async function loadFuzz(): Promise<FuzzModule> {
  const m = (await import(source)) as Omit<FuzzModule, 'platformChoices'>;
  const p = (await import(trace)) as Pick<FuzzModule, 'platformChoices'>;
  return { ...m, platformChoices: p.platformChoices };
}

/** One line per finding, for an assertion message. */
export function describeFindings(findings: readonly FuzzFinding[]): string {
  return findings.map((f) => `call ${f.i} (${f.op}): ${f.message}`).join('\n');
}
