/**
 * Minimizing a failing program: delta debugging (Zeller's ddmin) on its list of calls, keeping
 * a subset as long as it still shows a finding with the same signature. A subset whose lines use
 * a handle no remaining line binds is refused by the replayer (a trace error), so it simply does
 * not count as failing, and the calls that make the resources a bug needs stay in.
 */
import { programText, type FuzzLine, type FuzzProgram } from './generate.js';
import { runProgram, runTwice, type FuzzFinding, type RunOptions } from './run.js';

/** Whether `p` still shows a finding with `signature`. */
export function stillFails(p: FuzzProgram, signature: string, opts: RunOptions): boolean {
  const text = programText(p);
  const out = signature.startsWith('nondeterminism') ? runTwice(text, opts) : runProgram(text, opts);
  return out.findings.some((f) => f.signature === signature);
}

/**
 * The smallest program (1-minimal: no single call can go) that still shows `finding`, with at
 * most `budget` runs.
 */
export function minimize(p: FuzzProgram, finding: FuzzFinding, opts: RunOptions, budget = 400): FuzzProgram {
  let runs = 0;
  const test = (lines: readonly FuzzLine[]): boolean => {
    if (runs >= budget) return false;
    runs++;
    return stillFails({ ...p, lines }, finding.signature, opts);
  };
  /* the calls after the failing one cannot matter (except for nondeterminism, found at the end) */
  let lines: readonly FuzzLine[] = finding.i >= 0 && finding.kind !== 'nondeterminism' ? p.lines.slice(0, finding.i + 1) : p.lines;
  if (!test(lines)) lines = p.lines;
  let n = 2;
  while (lines.length >= 2 && runs < budget) {
    const chunk = Math.ceil(lines.length / n);
    let reduced = false;
    for (let start = 0; start < lines.length; start += chunk) {
      const complement = [...lines.slice(0, start), ...lines.slice(start + chunk)];
      if (complement.length > 0 && test(complement)) {
        lines = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= lines.length) break;
      n = Math.min(lines.length, n * 2);
    }
  }
  return { ...p, lines };
}
