/**
 * The fuzzer: programs of generated calls (generate.ts) on every platform asked for, each run
 * with DEBUG_VM and the failed-call digest check (run.ts) and again to check determinism; a
 * finding is minimized (minimize.ts) and saved as a trace under test/fuzz/found/, where
 * test/fuzz/found.test.ts replays it from then on.
 *
 * Programs are short (100 calls by default) and each runs on a fresh host of 128 MiB, so that
 * a finding's program is small before minimizing and memory runs out now and then. Program k of
 * a run is generated from `SEED:VENDOR/DESIGN:k`, so any finding is reproduced by its program
 * alone.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PlatformChoice } from '../trace/index.js';
import { generateProgram, programText, type FuzzProgram } from './generate.js';
import { minimize } from './minimize.js';
import { jsShapeCalls, runProgram, runTwice, type FindingKind, type FuzzFinding, type RunOptions } from './run.js';

export interface FuzzOptions {
  /** Calls in all, per platform. */
  readonly calls: number;
  readonly seed: string;
  readonly platforms: readonly PlatformChoice[];
  /** Calls per program (default 100). */
  readonly programLength?: number;
  /** Where to save minimized programs (none: do not save). */
  readonly saveDir?: string;
  /** Run each program a second time to compare (default true). */
  readonly determinism?: boolean;
  /** Direct calls with JS shapes no trace can spell, per platform (default calls / 10). */
  readonly jsShapes?: number;
  readonly run?: RunOptions;
  /** Told of progress now and then. */
  readonly progress?: (s: string) => void;
}

export interface FoundBug {
  readonly platform: PlatformChoice;
  readonly finding: FuzzFinding;
  /** How often the signature turned up. */
  count: number;
  /** The minimized program (trace findings), its text and where it was saved. */
  readonly program?: FuzzProgram;
  readonly text?: string;
  readonly saved?: string;
}

export interface FuzzReport {
  readonly calls: number;
  readonly programs: number;
  readonly jsShapeCalls: number;
  readonly ms: number;
  /** CPU time of the run (user + system), which a loaded machine does not inflate as it does wall time. */
  readonly cpuMs: number;
  readonly bugs: FoundBug[];
  readonly byKind: Partial<Record<FindingKind, number>>;
}

/** The comment of a saved program that ran on a host of another size than runProgram()'s default. */
export const NR_PAGES_NOTE = 'fuzz: nr_pages=';

/** The comment of a saved program that ran on a CPU with protection keys. */
export const PKU_NOTE = 'fuzz: pku';

/** The host size a saved program's comments ask for, if any. */
export function savedNrPages(text: string): number | undefined {
  const m = new RegExp(`^// ${NR_PAGES_NOTE}(\\d+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** Whether a saved program's comments ask for a CPU with protection keys. */
export function savedPku(text: string): boolean {
  return new RegExp(`^// ${PKU_NOTE}$`, 'm').test(text);
}

/** The file name of a finding: kind, op and a hash of its signature. */
export function foundName(f: FuzzFinding): string {
  const h = createHash('sha256').update(f.signature).digest('hex').slice(0, 8);
  return `${f.kind}-${f.op === '' ? 'program' : f.op}-${h}`;
}

export function fuzz(opts: FuzzOptions): FuzzReport {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const len = opts.programLength ?? 100;
  const bugs = new Map<string, FoundBug>();
  const byKind: Partial<Record<FindingKind, number>> = {};
  let calls = 0;
  let programs = 0;
  let jsCalls = 0;
  const note = (platform: PlatformChoice, f: FuzzFinding, program?: FuzzProgram, run: RunOptions = opts.run ?? {}): void => {
    byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    const key = `${platform.vendor}/${platform.design} ${f.signature}`;
    const known = bugs.get(key);
    if (known !== undefined) {
      known.count++;
      return;
    }
    if (program === undefined || f.kind === 'trace-error') {
      bugs.set(key, { platform, finding: f, count: 1 });
      return;
    }
    opts.progress?.(`minimizing ${f.signature} (${program.lines.length} calls)`);
    const small = minimize(program, f, run);
    const text = programText(small, [
      `found by cocosim fuzz --seed ${opts.seed} --platform ${platform.vendor}/${platform.design}: ${f.signature}`,
      ...f.message.split('\n').slice(0, 3).map((l) => `  ${l}`),
      ...(run.nr_pages === undefined ? [] : [`${NR_PAGES_NOTE}${run.nr_pages}`]),
      ...(run.pku === true ? [PKU_NOTE] : []),
    ]);
    let saved: string | undefined;
    if (opts.saveDir !== undefined) {
      mkdirSync(opts.saveDir, { recursive: true });
      saved = join(opts.saveDir, `${foundName(f)}.trace.jsonl`);
      writeFileSync(saved, text);
    }
    bugs.set(key, { platform, finding: f, count: 1, program: small, text, saved });
  };
  for (const platform of opts.platforms) {
    const where = `${platform.vendor}/${platform.design}`;
    for (let k = 0, done = 0; done < opts.calls; k++) {
      const seed = `${opts.seed}:${where}:${k}`;
      const n = Math.min(len, opts.calls - done);
      done += n;
      const program = generateProgram(seed, { vendor: platform.vendor, design: platform.design, calls: n });
      const text = programText(program);
      if (programText(generateProgram(seed, { vendor: platform.vendor, design: platform.design, calls: n })) !== text) {
        note(platform, { kind: 'nondeterminism', i: -1, op: '', signature: 'nondeterminism generator', message: `program ${seed} generated twice differs` });
      }
      /*
       * one program in four on a 16 MiB host, where allocations fail and their error paths run;
       * every other one on a CPU with protection keys (execute-only memory)
       */
      const run: RunOptions = { ...opts.run, nr_pages: opts.run?.nr_pages ?? (k % 4 === 3 ? 2 ** 12 : undefined), pku: opts.run?.pku ?? k % 2 === 1 };
      const out = opts.determinism === false ? runProgram(text, run) : runTwice(text, run);
      for (const f of out.findings) note(platform, f, program, run);
      calls += n;
      programs++;
      if (programs % 50 === 0) opts.progress?.(`${where}: ${calls} calls, ${programs} programs, ${bugs.size} distinct findings`);
    }
    const js = opts.jsShapes ?? Math.ceil(opts.calls / 10);
    if (js > 0) {
      for (const f of jsShapeCalls(`${opts.seed}:${where}`, js, { ...opts.run, vendor: platform.vendor })) note(platform, f);
      jsCalls += js;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  return { calls, programs, jsShapeCalls: jsCalls, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, bugs: [...bugs.values()], byKind };
}
