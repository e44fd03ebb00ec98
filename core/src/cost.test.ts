import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { KernelBug } from './bug.js';
import { VirtualClock } from './clock.js';
import { COST_PROVENANCES, CostModel, CostOverrideError, costId, type CostEntry } from './cost.js';
import { DEFAULT_COST_ENTRIES } from './cost_table.js';

const dir = mkdtempSync(join(tmpdir(), 'cocosim-cost-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let nfile = 0;
function writeTemp(text: string): string {
  const p = join(dir, `override-${nfile++}.json`);
  writeFileSync(p, text);
  return p;
}

/** The CostOverrideError that fn throws. */
function overrideError(fn: () => void): CostOverrideError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CostOverrideError);
    expect(e).not.toBeInstanceOf(KernelBug);
    return e as CostOverrideError;
  }
  throw new Error('expected a CostOverrideError');
}

const entry = (name: string, value: number, provenance: CostEntry['provenance'] = 'estimate'): CostEntry => ({
  name,
  unit: 'ns',
  value,
  provenance,
  source: 'test',
  description: `one ${name}`,
});

describe('default cost table', () => {
  test('has the generic mm / KVM / IOMMU entries, each well-formed', () => {
    const names = DEFAULT_COST_ENTRIES.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const want of [
      'tlb_shootdown_ipi', 'tlb_flush_local', 'pte_zap', 'spte_zap', 'rmap_walk_per_mapping', 'page_zero_4k',
      'page_copy_4k', 'page_fault_user', 'kvm_exit_roundtrip', 'mmu_notifier_invalidate', 'iommu_map_4k',
      'iommu_unmap_4k', 'iotlb_flush', 'gup_pin_per_page', 'syscall_entry',
    ]) {
      expect(names).toContain(want);
    }
    for (const e of DEFAULT_COST_ENTRIES) {
      expect(e.name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(e.unit).toBe('ns');
      expect(Number.isInteger(e.value) && e.value > 0, e.name).toBe(true);
      expect(COST_PROVENANCES).toContain(e.provenance);
      expect(e.source.length, e.name).toBeGreaterThan(10);
      expect(e.description.length, e.name).toBeGreaterThan(5);
    }
  });

  test('vendor-specific costs are left to the vendor packages', () => {
    for (const e of DEFAULT_COST_ENTRIES) expect(e.name).not.toMatch(/seamcall|tdh_|rmpupdate|pvalidate|psmash|rmi_|psp|granule/);
  });

  test('figures are the published ones, derived as their sources say', () => {
    const m = new CostModel();
    // 4096 B at 13.7 GB/s, derived from a published bandwidth.
    expect(m.get('page_zero_4k')).toMatchObject({ value: Math.round(4096 / 13.7), provenance: 'derived' });
    expect(m.get('page_zero_2m')!.value).toBe(Math.round((2 * 1024 * 1024) / 15.1));
    expect(m.get('gmem_populate_4k')!.value).toBe(Math.round(1371e6 / ((3 * 2 ** 30) / 4096)));
    expect(m.get('tlb_shootdown_ipi')).toMatchObject({ value: 1500, provenance: 'published' });
    expect(m.get('tlb_shootdown_ipi')!.source).toMatch(/EuroSys 2020/);
    expect(m.get('wbinvd')).toMatchObject({ value: 550_000, provenance: 'estimate' });
    expect(m.get('kvm_userspace_exit_roundtrip')).toMatchObject({ value: 12_500, provenance: 'estimate' });
    for (const e of m.entries()) if (e.provenance === 'estimate') expect(e.source, e.name).toMatch(/estimate/);
  });

  test('entries() is sorted by name and the entries cannot be mutated', () => {
    const list = new CostModel().entries();
    const names = list.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    expect(() => {
      (list[0] as { value: number }).value = 1;
    }).toThrow(TypeError);
  });
});

describe('charge', () => {
  test('advances the clock by value * count and returns the ns charged', () => {
    const m = new CostModel({ clock: new VirtualClock(100) });
    expect(m.charge('tlb_shootdown_ipi')).toBe(1500);
    expect(m.clock.now()).toBe(1600);
    expect(m.charge('pte_zap', 512)).toBe(50 * 512);
    expect(m.clock.now()).toBe(1600 + 25_600);
    expect(m.charge('pte_zap', 0)).toBe(0);
    expect(m.clock.now()).toBe(27_200);
  });

  test('an unknown name is a simulator bug, with the nearest name suggested; time does not move', () => {
    const m = new CostModel();
    expect(() => m.charge('tlb_shootdwon_ipi')).toThrow(KernelBug);
    expect(() => m.charge('tlb_shootdwon_ipi')).toThrow('charge of unknown cost entry "tlb_shootdwon_ipi" (did you mean "tlb_shootdown_ipi"?)');
    expect(() => m.charge('zzzzzzzz')).toThrow(/^charge of unknown cost entry "zzzzzzzz"$/);
    expect(() => m.charge('toString')).toThrow(KernelBug);
    expect(m.clock.now()).toBe(0);
  });

  test('chargeId(costId(name)) is charge(name): the same time, breakdown and errors, in every model', () => {
    const id = costId('pte_zap');
    expect(costId('pte_zap')).toBe(id);
    const byName = new CostModel();
    const byId = new CostModel();
    byName.begin('op');
    byId.begin('op');
    expect([byName.charge('pte_zap', 3), byName.charge('pte_zap')]).toEqual([byId.chargeId(id, 3), byId.chargeId(id)]);
    expect(byId.clock.now()).toBe(byName.clock.now());
    expect(byId.end()).toEqual(byName.end());
    /* an override of the entry applies to charges by id */
    byId.applyCostOverrides({ entries: { pte_zap: 7 } }, 'test');
    expect(byId.chargeId(id, 2)).toBe(14);
    /* a name no model defines, and one that only another model defines */
    expect(() => byId.chargeId(costId('tlb_shootdwon_ipi'))).toThrow('charge of unknown cost entry "tlb_shootdwon_ipi" (did you mean "tlb_shootdown_ipi"?)');
    const own = new CostModel({ entries: [entry('only_here', 5)] });
    expect(own.chargeId(costId('only_here'))).toBe(5);
    expect(() => byId.chargeId(costId('only_here'))).toThrow(KernelBug);
    expect(() => own.chargeId(id)).toThrow('charge of unknown cost entry "pte_zap"');
    expect(() => byId.chargeId(id, -1)).toThrow(RangeError);
  });

  test.each([-1, NaN, Infinity])('count %s is a RangeError and charges nothing', (n) => {
    const m = new CostModel();
    m.begin('op');
    expect(() => m.charge('pte_zap', n)).toThrow(RangeError);
    expect(m.clock.now()).toBe(0);
    expect(m.end().items).toEqual([]);
  });
});

describe('breakdowns', () => {
  const model = () =>
    new CostModel({
      entries: [entry('b_measured', 100, 'published'), entry('a_guess', 7), entry('c_derived', 30, 'derived')],
    });

  test('items sorted by name, with counts, ns, provenance, totals and dependencies', () => {
    const m = model();
    m.charge('a_guess'); // before the breakdown: not in it
    m.begin('convert');
    m.charge('b_measured', 2);
    m.charge('a_guess', 3);
    m.charge('b_measured');
    m.charge('c_derived', 0);
    const b = m.end('convert');
    expect(b).toEqual({
      op: 'convert',
      total_ns: 321,
      items: [
        { name: 'a_guess', count: 3, ns: 21, provenance: 'estimate' },
        { name: 'b_measured', count: 3, ns: 300, provenance: 'published' },
      ],
      estimated_ns: 21,
      depends_on: ['a_guess', 'b_measured'],
    });
    expect(m.clock.now()).toBe(7 + 321);
    expect(JSON.parse(JSON.stringify(b))).toEqual(b);
  });

  test('nested breakdowns: the outer one includes the inner charges, the inner only its own', () => {
    const m = model();
    m.begin('outer');
    m.charge('b_measured');
    const { result, cost: inner } = m.measure('inner', () => {
      m.charge('a_guess', 2);
      m.charge('c_derived');
      return 'ok';
    });
    m.charge('c_derived');
    const outer = m.end();
    expect(result).toBe('ok');
    expect(inner).toMatchObject({ op: 'inner', total_ns: 44, estimated_ns: 14, depends_on: ['a_guess', 'c_derived'] });
    expect(outer).toMatchObject({ op: 'outer', total_ns: 100 + 44 + 30, estimated_ns: 14 });
    expect(outer.items).toEqual([
      { name: 'a_guess', count: 2, ns: 14, provenance: 'estimate' },
      { name: 'b_measured', count: 1, ns: 100, provenance: 'published' },
      { name: 'c_derived', count: 2, ns: 60, provenance: 'derived' },
    ]);
    expect(m.depth).toBe(0);
  });

  test('end() without begin, or naming the wrong breakdown, is a simulator bug', () => {
    const m = model();
    expect(() => m.end()).toThrow(KernelBug);
    m.begin('a');
    expect(() => m.end('b')).toThrow(/innermost open breakdown is "a"/);
    expect(m.end('a').op).toBe('a');
  });

  test('measure() drops its breakdown when fn throws; the charges stay on the clock', () => {
    const m = model();
    m.begin('outer');
    expect(() =>
      m.measure('inner', () => {
        m.charge('b_measured');
        m.begin('left-open');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(m.depth).toBe(1);
    expect(m.clock.now()).toBe(100);
    expect(m.end('outer').total_ns).toBe(100);
  });

  test('measure() whose fn leaves a breakdown open is reported, not mis-attributed', () => {
    const m = model();
    expect(() => m.measure('op', () => m.begin('dangling'))).toThrow(KernelBug);
  });
});

describe('define', () => {
  test('vendor packages add entries; redefining a name throws', () => {
    const m = new CostModel();
    m.define(entry('seamcall_roundtrip', 1250));
    expect(m.charge('seamcall_roundtrip', 2)).toBe(2500);
    expect(() => m.define(entry('seamcall_roundtrip', 1))).toThrow(KernelBug);
    expect(() => m.define(entry('page_zero_4k', 1))).toThrow('cost entry "page_zero_4k" is already defined');
    expect(m.get('page_zero_4k')!.value).toBe(299);
  });

  test.each([
    ['a name that is not snake_case', { ...entry('x', 1), name: 'TlbFlush' }],
    ['a negative value', entry('neg', -1)],
    ['a NaN value', entry('nan', NaN)],
    ['another unit', { ...entry('us', 1), unit: 'us' }],
    ['an unknown provenance', { ...entry('p', 1), provenance: 'guess' }],
    ['no source', { ...entry('nosrc', 1), source: '' }],
  ])('refuses %s', (_what, e) => {
    const m = new CostModel();
    expect(() => m.define(e as CostEntry)).toThrow(KernelBug);
  });

  test('a model can start from its own table', () => {
    const m = new CostModel({ entries: [entry('only', 3)] });
    expect(m.entries().map((e) => e.name)).toEqual(['only']);
    expect(() => m.charge('page_zero_4k')).toThrow(KernelBug);
  });
});

describe('cost overrides', () => {
  test('an override file changes what later charges cost, and marks the entry an estimate', () => {
    const m = new CostModel();
    const p = writeTemp(JSON.stringify({ entries: { tlb_shootdown_ipi: 1200, page_zero_4k: { value: 250.5, source: 'perf bench on box 7' } } }));
    m.loadCostOverrides(p);
    expect(m.get('tlb_shootdown_ipi')).toMatchObject({ value: 1200, provenance: 'estimate', source: `override from ${p}` });
    expect(m.get('page_zero_4k')).toMatchObject({ value: 250.5, provenance: 'estimate', source: 'perf bench on box 7' });
    expect(m.get('page_zero_4k')!.description).toBe('zero one 4 KiB page (clear_page)');
    m.begin('op');
    m.charge('tlb_shootdown_ipi', 4);
    m.charge('page_zero_4k', 2);
    expect(m.end()).toMatchObject({ total_ns: 4800 + 501, estimated_ns: 4800 + 501 });
    expect(m.clock.now()).toBe(5301);
  });

  test('an override can say its figure is published', () => {
    const m = new CostModel();
    m.applyCostOverrides({ entries: { iotlb_flush: { value: 900, provenance: 'published', source: 'our paper' } } }, 'inline');
    expect(m.get('iotlb_flush')).toMatchObject({ value: 900, provenance: 'published', source: 'our paper' });
    m.begin('op');
    m.charge('iotlb_flush');
    expect(m.end().estimated_ns).toBe(0);
  });

  test('an empty entries object is valid and changes nothing', () => {
    const m = new CostModel();
    const before = m.entries();
    m.loadCostOverrides(writeTemp('{ "description": "nothing yet", "entries": {} }'));
    expect(m.entries()).toEqual(before);
  });

  test('malformed JSON: the message names the file and carries the parse error', () => {
    const text = '{ "entries": { "pte_zap": 10, } }';
    const p = writeTemp(text);
    let parseMsg = '';
    try {
      JSON.parse(text);
    } catch (e) {
      parseMsg = (e as Error).message;
    }
    const e = overrideError(() => new CostModel().loadCostOverrides(p));
    expect(e.message).toBe(`cost override file ${p}: malformed JSON: ${parseMsg}`);
    expect(e.sourceName).toBe(p);
  });

  test('a missing file names the file', () => {
    const p = join(dir, 'does-not-exist.json');
    const e = overrideError(() => new CostModel().loadCostOverrides(p));
    expect(e.message).toMatch(new RegExp(`^cost override file ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read: .*ENOENT`));
  });

  test('an unknown entry names the file and the entry, and suggests the nearest name', () => {
    const p = writeTemp('{ "entries": { "tlb_shootdwon": 1000 } }');
    const e = overrideError(() => new CostModel().loadCostOverrides(p));
    expect(e.message).toBe(`cost override file ${p}: unknown cost entry "tlb_shootdwon" (did you mean "tlb_shootdown_ipi"?)`);
    const far = overrideError(() => new CostModel().applyCostOverrides({ entries: { frobnicate_widgets: 1 } }, '/x/y.json'));
    expect(far.message).toBe('cost override file /x/y.json: unknown cost entry "frobnicate_widgets"');
  });

  test('a negative value names the file and the entry', () => {
    const p = writeTemp('{ "entries": { "pte_zap": -5 } }');
    const e = overrideError(() => new CostModel().loadCostOverrides(p));
    expect(e.message).toBe(`cost override file ${p}: cost entry "pte_zap": value must be a finite number of ns >= 0, got -5`);
  });

  test('non-finite values are refused (possible through applyCostOverrides)', () => {
    for (const v of [Infinity, NaN]) {
      const e = overrideError(() => new CostModel().applyCostOverrides({ entries: { pte_zap: v } }, 'cli'));
      expect(e.message).toBe(`cost override file cli: cost entry "pte_zap": value must be a finite number of ns >= 0, got ${v}`);
    }
  });

  test.each([
    ['an array at the top', '[1, 2]', /: expected a JSON object \{ "entries": \{ \.\.\. \} \}, got an array$/],
    ['null at the top', 'null', /got null$/],
    ['no "entries"', '{ "pte_zap": 5 }', /unknown top-level key "pte_zap"[^]*"entries" must be an object mapping cost entry names to values, got undefined/],
    ['"entries" as an array', '{ "entries": [ 5 ] }', /"entries" must be an object .* got an array$/],
    ['a string value', '{ "entries": { "pte_zap": "5" } }', /cost entry "pte_zap": expected a number of ns or \{ "value": <ns>.*got the string "5"$/],
    ['an object without value', '{ "entries": { "pte_zap": { "source": "x" } } }', /cost entry "pte_zap": missing "value"$/],
    ['an unknown key in an entry', '{ "entries": { "pte_zap": { "value": 5, "valeu": 6 } } }', /cost entry "pte_zap": unknown key "valeu"/],
    ['an unknown provenance', '{ "entries": { "pte_zap": { "value": 5, "provenance": "measured" } } }', /cost entry "pte_zap": unknown provenance the string "measured" \(expected "published", "derived", "estimate"\)$/],
    ['a non-string source', '{ "entries": { "pte_zap": { "value": 5, "source": 7 } } }', /cost entry "pte_zap": "source" must be a string, got 7$/],
    ['a non-string description', '{ "description": 3, "entries": {} }', /"description" must be a string, got 3$/],
  ])('wrong shape: %s', (_what, text, re) => {
    const p = writeTemp(text);
    const e = overrideError(() => new CostModel().loadCostOverrides(p));
    for (const line of e.problems) expect(line.startsWith(`cost override file ${p}: `)).toBe(true);
    expect(e.message).toMatch(re);
  });

  test('every problem is reported, and an invalid file changes nothing', () => {
    const m = new CostModel();
    const before = JSON.stringify(m.entries());
    const p = writeTemp(JSON.stringify({ entries: { pte_zap: 1, spte_zap: -1, page_zero_4k: 2, nope: 3 } }));
    const e = overrideError(() => m.loadCostOverrides(p));
    expect(e.problems).toEqual([
      `cost override file ${p}: cost entry "spte_zap": value must be a finite number of ns >= 0, got -1`,
      `cost override file ${p}: unknown cost entry "nope"`,
    ]);
    expect(e.message).toBe(e.problems.join('\n'));
    expect(JSON.stringify(m.entries())).toBe(before);
    expect(m.charge('pte_zap')).toBe(50);
  });

  test('only defined entries can be overridden: vendor entries after define()', () => {
    const m = new CostModel();
    const p = writeTemp('{ "entries": { "rmpupdate": 800 } }');
    expect(() => m.loadCostOverrides(p)).toThrow(CostOverrideError);
    m.define(entry('rmpupdate', 1250));
    m.loadCostOverrides(p);
    expect(m.charge('rmpupdate')).toBe(800);
  });
});
