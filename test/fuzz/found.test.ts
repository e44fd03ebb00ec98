/**
 * Every trace the fuzzer found a bug with (test/fuzz/found/NAME.trace.jsonl, minimized, written
 * by `cocosim fuzz`) replays with no exception, no DEBUG_VM violation, no failed call that
 * changed the state and no warning: the bug stays fixed.
 *
 * test/fuzz/found/pending.json lists the traces of bugs not fixed yet (in a package this test
 * cannot fix, with who owns it): each must still show its finding, and once it does not the test
 * fails until the entry goes, so the list stays true.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { describeFindings, loadFuzz } from './fuzz_module.js';

const dir = fileURLToPath(new URL('./found/', import.meta.url));
const fuzz = await loadFuzz();

interface Pending {
  readonly trace: string;
  /** The finding's signature, as the trace's first comment line gives it. */
  readonly signature: string;
  readonly owner: string;
  readonly reason: string;
}

const pending = (JSON.parse(readFileSync(`${dir}pending.json`, 'utf8')) as { pending: Pending[] }).pending;
const traces = readdirSync(dir).filter((f) => f.endsWith('.trace.jsonl')).sort();

describe('the fuzzer\'s findings stay fixed', () => {
  test('pending.json names traces that exist', () => {
    for (const p of pending) expect(traces, p.trace).toContain(p.trace);
  });

  for (const name of traces) {
    test(name, { timeout: 30000 }, () => {
      const text = readFileSync(`${dir}${name}`, 'utf8');
      const out = fuzz.runProgram(text, { file: name, nr_pages: fuzz.savedNrPages(text), pku: fuzz.savedPku(text) });
      const open = pending.find((p) => p.trace === name);
      if (open === undefined) {
        expect(out.findings, describeFindings(out.findings)).toEqual([]);
      } else {
        expect(out.findings.map((f) => f.signature), `${name} is fixed: remove it from pending.json`).toContain(open.signature);
      }
    });
  }
});
