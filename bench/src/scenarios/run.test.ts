import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../cli.js';
import { vendorNames } from '../trace/platforms.js';
import { parseSize } from './command.js';
import { memfdGuestRam } from './memfd_guest_ram.js';
import { runScenario } from './run.js';

describe('cocosim run: the built-in scenario', () => {
  test('every step gives the outcome Linux gives, and the costs are charged where the work is', () => {
    const run = runScenario(memfdGuestRam, { size: 2 * 1024 * 1024 });
    const { steps } = run.result;
    expect(steps.filter((s) => !s.ok).map((s) => `${s.call}: ${s.outcome} (Linux: ${s.expected})`)).toEqual([]);
    const faultIn = steps.find((s) => s.call.startsWith('store 8 bytes'))!;
    expect(faultIn.cost.items.find((i) => i.name === 'page_zero_4k')?.count).toBe(512);
    expect(faultIn.cost.items.find((i) => i.name === 'page_fault_user')?.count).toBe(512);
    const punch = steps.find((s) => s.call.startsWith('fallocate(fd, PUNCH_HOLE') && s.ok && s.outcome === '0')!;
    expect(punch.cost.items.find((i) => i.name === 'pte_zap')?.count).toBe(256);
    expect(run.result.total_ns).toBe(steps.reduce((a, s) => a + s.cost.total_ns, 0));
  });

  test('the same seed gives the same result, to the nanosecond', () => {
    const a = runScenario(memfdGuestRam, { size: 1024 * 1024 }).result;
    const b = runScenario(memfdGuestRam, { size: 1024 * 1024 }).result;
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  test('--out writes the result and a trace Perfetto opens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-run-'));
    const lines: string[] = [];
    expect(main(['run', '--size', '1M', '--out', dir], (s) => lines.push(s), (s) => lines.push(s))).toBe(0);
    expect(lines.join('\n')).toMatch(/18\/18 steps as Linux/);
    const result = JSON.parse(readFileSync(join(dir, 'memfd-guest-ram.result.json'), 'utf8'));
    expect(result.steps).toHaveLength(18);
    const trace = JSON.parse(readFileSync(join(dir, 'memfd-guest-ram.perfetto.json'), 'utf8'));
    expect(trace.traceEvents.length).toBeGreaterThan(0);
    for (const e of trace.traceEvents) {
      expect(typeof e.name).toBe('string');
      expect(typeof e.ts).toBe('number');
    }
    expect(readFileSync(join(dir, 'memfd-guest-ram.ftrace.txt'), 'utf8')).toMatch(/mm_filemap_delete_from_page_cache: /);
  });

  test('bad arguments are reported with exit code 2', () => {
    const err: string[] = [];
    expect(main(['run', 'no-such-scenario'], () => {}, (s) => err.push(s))).toBe(2);
    expect(main(['run', '--size', '3'], () => {}, (s) => err.push(s))).toBe(2);
    expect(err.join('\n')).toMatch(/unknown scenario "no-such-scenario"[\s\S]*--size 3/);
  });

  test('--vendor picks the platform; a vendor that does not exist is a usage error', () => {
    const out: string[] = [];
    const err: string[] = [];
    expect(main(['run', 'vm-types', '--vendor', 'sw_protected'], (s) => out.push(s), (s) => err.push(s))).toBe(0);
    const text = out.join('\n');
    expect(text).toMatch(/design upstream, vendor sw_protected[\s\S]*KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM\) +4 /);
    expect(text).toContain('outcome: DEFAULT, SW_PROTECTED; as expected "DEFAULT, SW_PROTECTED" (arch/x86/kvm/x86.c: ');
    expect(main(['run', 'vm-types', '--vendor', 'no-such-vendor'], () => {}, (s) => err.push(s))).toBe(2);
    expect(err).toEqual([`cocosim: unknown vendor "no-such-vendor" (have: ${vendorNames().join(', ')})`]);
  });

  test('sizes', () => {
    expect(parseSize('64M')).toBe(64 * 2 ** 20);
    expect(parseSize('1g')).toBe(2 ** 30);
    expect(parseSize('8192')).toBe(8192);
    for (const bad of ['0', '4096', '1.5M', '-8K', 'M', '']) expect(parseSize(bad)).toBeUndefined();
  });
});
