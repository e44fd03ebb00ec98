import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { CostModel, CostOverrideError, PhysMem, Pfn, Tracer, VirtualClock, WarnSink, createVmContainer } from '@cocosim/core';
import { createSimHost, test } from '../lib/fixtures.js';
import { expectWarning } from '../lib/test_util.js';

describe('simulated host composition', () => {
  test('each test gets its own host: nothing leaks from one to the next', ({ host }) => {
    expect(host.clock.now()).toBe(0);
    host.cost.charge('tlb_flush_local', 3);
    expect(host.clock.now()).toBeGreaterThan(0);
    const other = createSimHost();
    expect(other.clock.now()).toBe(0);
    expect(other.container.resolve(VirtualClock)).not.toBe(host.clock);
  });

  test('host services are singletons of the host, shared by its VMs', ({ host }) => {
    const vm1 = createVmContainer(host.container);
    const vm2 = createVmContainer(host.container);
    expect(vm1.resolve(Tracer)).toBe(host.tracer);
    expect(vm2.resolve(CostModel)).toBe(host.cost);
    expect(vm1.resolve(PhysMem)).toBe(vm2.resolve(PhysMem));
  });

  test('the same seed gives the same memory contents; another seed does not', () => {
    const a = createSimHost({ seed: 42 }).phys.read(Pfn(7), 0, 64);
    const b = createSimHost({ seed: 42 }).phys.read(Pfn(7), 0, 64);
    const c = createSimHost({ seed: 43 }).phys.read(Pfn(7), 0, 64);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  test('a WARN_ON reaches the trace as cocosim_warn', ({ host }) => {
    expectWarning('bad page state');
    host.container.resolve(WarnSink).WARN_ON(true, 'bad page state');
    expect(host.trace.find('cocosim_warn', { kind: 'WARN_ON', message: 'bad page state' })).toBeDefined();
  });

  test('a cost override file is applied to the host, and a bad one names the file and the entry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-costs-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ entries: { tlb_flush_local: 1234 } }));
    const host = createSimHost({ costOverrides: good });
    expect(host.cost.get('tlb_flush_local')?.value).toBe(1234);

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ entries: { tlb_flush_locall: 1 } }));
    expect(() => createSimHost({ costOverrides: bad })).toThrow(CostOverrideError);
    expect(() => createSimHost({ costOverrides: bad })).toThrow(/bad\.json[\s\S]*tlb_flush_locall/);
  });
});
