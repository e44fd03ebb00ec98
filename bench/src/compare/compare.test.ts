import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BUG } from '@cocosim/core';
import { main } from '../cli.js';
import { findScenario, registerScenario, SCENARIOS } from '../scenarios/index.js';
import { designNames, vendorNames } from '../trace/platforms.js';
import { sysOutcome, type Scenario } from '../scenarios/scenario.js';
import { costCategory, COST_CATEGORIES } from './categories.js';
import type { RanCell } from './cell.js';
import { compareCommand, type CompareCommandOptions } from './command.js';
import { buildMatrix, FALLBACK_SIZE, parseShard, registerPlatformRule, shardCells, type Matrix } from './matrix.js';
import { Progress } from './progress.js';
import { registerRequirement } from './requirements.js';
import { htmlReport, STEPS_FOR_ALL_UP_TO } from './html.js';
import { assemble, identity, readResults, type CompareResults } from './results.js';

/*
 * Scenarios of this file only (in_default false keeps them out of the built-in selection):
 * one whose verdict differs from its expectation on sw_protected, one that needs private
 * memory, one that hits a simulator bug.
 */
const verdictScenario: Scenario = {
  name: 'test-verdict',
  description: 'a verdict that is wrong on one vendor',
  in_default: false,
  default_size: 8192,
  nr_pages: () => 1024,
  expect: (o) => ({ outcome: o.vendor === 'none' ? 'seven' : 'eight', source: 'this test' }),
  run(ctx, o) {
    const { p } = ctx;
    ctx.setupStep('getpid()', undefined, 'set-up', () => ['1', undefined]);
    ctx.step('close(99)', o.vendor === 'none' ? '-1 EBADF' : '0', 'close_fd: no such fd',
      () => [sysOutcome(p, p.close(99)), undefined]);
    ctx.verdict('seven');
  },
};
const skipScenario: Scenario = {
  name: 'test-skip',
  description: 'needs private memory',
  in_default: false,
  nr_pages: () => 1024,
  applies: (o) => (o.vendor === 'none' ? 'vendor none has no VM type with private memory' : undefined),
  run(ctx) {
    ctx.step('nothing', '0', 'trivial', () => ['0', undefined]);
  },
};
const crashScenario: Scenario = {
  name: 'test-crash',
  description: 'hits a BUG_ON on sw_protected',
  in_default: false,
  nr_pages: () => 1024,
  run(ctx, o) {
    ctx.step('first', '0', 'fine', () => ['0', undefined]);
    if (o.vendor === 'sw_protected') BUG('simulated BUG_ON');
  },
};
registerScenario(verdictScenario);
registerScenario(skipScenario);
registerScenario(crashScenario);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'cocosim-compare-'));
}

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  readonly dir: string;
  readonly results: CompareResults;
}

async function compare(o: Partial<CompareCommandOptions>): Promise<Run> {
  const dir = o.out ?? tmp();
  const out: string[] = [];
  const err: string[] = [];
  const code = await compareCommand({ seed: '0', out: dir, ...PINNED, ...o }, (s) => out.push(s), (s) => err.push(s), { isTTY: false, write: () => true });
  const r = readResults(dir);
  return { code, out: out.join('\n'), err: err.join('\n'), dir, results: 'error' in r ? (undefined as never) : r };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const QUICK = { scenarios: 'memfd-guest-ram,vm-types', size: '1M' };
/* The platforms of these tests: the ones that exist now (designs and vendors registered later stay out). */
const PINNED = { designs: 'upstream', vendors: 'none,sw_protected' };
const PLATFORMS = { designs: ['upstream'], vendors: ['none', 'sw_protected'] };

describe('cocosim compare: the matrix', () => {
  test('cells come in a stable order, every design x vendor of every scenario, with ids', () => {
    const m = buildMatrix({ scenarios: ['vm-types', 'memfd-guest-ram'], seed: '0', sizes: [1 << 20], ...PLATFORMS }) as Matrix;
    expect(m.cells.map((c) => c.id)).toEqual([
      'vm-types/upstream/none/1M/4K', 'vm-types/upstream/sw_protected/1M/4K',
      'memfd-guest-ram/upstream/none/1M/4K', 'memfd-guest-ram/upstream/sw_protected/1M/4K',
    ]);
    expect(m.cells.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(m.spec.cells).toBe(4);
  });

  test('the built-in selection is every registered scenario but those marked in_default: false, each at its own size, on every platform', () => {
    const m = buildMatrix({ seed: '0' }) as Matrix;
    expect(m.spec.scenarios.map((s) => s.name)).toEqual(SCENARIOS.filter((s) => s.in_default !== false).map((s) => s.name));
    expect(m.spec.scenarios.map((s) => s.name)).not.toContain('test-verdict');
    expect(m.spec.scenarios.map((s) => s.name)).toEqual(expect.arrayContaining(['memfd-guest-ram', 'vm-types']));
    expect(m.spec.sizes).toBeNull();
    expect(m.spec.designs).toEqual(designNames());
    expect(m.spec.vendors).toEqual(vendorNames());
    expect(m.cells).toHaveLength(m.spec.scenarios.length * designNames().length * vendorNames().length);
    for (const c of m.cells) expect(c.size).toBe(findScenario(c.scenario)!.default_size ?? FALLBACK_SIZE);
    expect(m.cells.find((c) => c.scenario === 'memfd-guest-ram')!.size).toBe(2 << 20);
  });

  test('shards partition the cells, interleaved', () => {
    const m = buildMatrix({ seed: '0', scenarios: ['vm-types', 'memfd-guest-ram'], page_sizes: [4096, 2 << 20], sizes: [1 << 20], ...PLATFORMS }) as Matrix;
    const shards = [1, 2, 3].map((i) => shardCells(m.cells, { i, n: 3 }).map((c) => c.index));
    expect(shards).toEqual([[0, 3, 6], [1, 4, 7], [2, 5]]);
    expect(parseShard('2/3')).toEqual({ i: 2, n: 3 });
    for (const bad of ['0/2', '3/2', '1', '1/0', 'a/b', '-1/2']) expect(parseShard(bad)).toBeUndefined();
  });

  test('unknown names and empty lists are errors naming what exists', () => {
    const r = buildMatrix({ seed: '0', scenarios: ['nope'], vendors: ['no-such-vendor'], designs: [], page_sizes: [8192] });
    expect('errors' in r && r.errors).toEqual([
      `unknown scenario "nope" (have: ${SCENARIOS.map((s) => s.name).join(', ')})`,
      `unknown vendor "no-such-vendor" (have: ${vendorNames().join(', ')})`,
      'unsupported page size 8192 (have: 4K, 2M, 1G)',
      'no designs selected',
    ]);
  });
});

describe('cocosim compare: skips, expectations, crashes', () => {
  test('a cell that cannot exist is skipped with its reason, in the JSON, the CSV and the table', async () => {
    const r = await compare({ scenarios: 'test-skip,memfd-guest-ram', size: '1M', pageSize: '4K,2M' });
    expect(r.code).toBe(0);
    const skipped = r.results.cells.filter((c) => c.status === 'skipped').map((c) => [c.id, c.status === 'skipped' && c.skip_reason]);
    expect(skipped).toEqual([
      ['test-skip/upstream/none/1M/4K', 'vendor none has no VM type with private memory'],
      ['test-skip/upstream/none/1M/2M', 'vendor none has no VM type with private memory'],
      ['memfd-guest-ram/upstream/none/1M/2M', 'maps 4 KiB shmem pages: shmem THP is not part of this scenario'],
      ['memfd-guest-ram/upstream/sw_protected/1M/2M', 'maps 4 KiB shmem pages: shmem THP is not part of this scenario'],
    ]);
    expect(r.results.summary).toMatchObject({ cells: 8, skipped: 4, ran: 4 });
    expect(r.out).toMatch(/^ {2}upstream\/none +skipped: vendor none has no VM type with private memory$/m);
    // An all-skipped table keeps its columns aligned: "skipped" starts where "outcome" does.
    const blocks = r.out.split('\n\n');
    const rows = blocks[blocks.findIndex((b) => b.startsWith('memfd-guest-ram') && b.includes('page size 2M')) + 1]!.split('\n');
    expect(rows).toHaveLength(3);
    for (const row of rows.slice(1)) expect(row.indexOf('skipped')).toBe(rows[0]!.indexOf('outcome'));
    const csv = readFileSync(join(r.dir, 'results.csv'), 'utf8');
    expect(csv).toContain(',skipped,');
    expect(csv).toContain('vendor none has no VM type with private memory');
  });

  test('a platform rule skips a design x vendor pair for every scenario', () => {
    const remove = registerPlatformRule((c) => (c.vendor === 'none' ? 'rule of this test: vendor none is out' : undefined));
    try {
      const m = buildMatrix({ seed: '0', scenarios: ['vm-types', 'test-verdict'], ...PLATFORMS }) as Matrix;
      expect(m.cells.map((c) => [c.vendor, c.skip])).toEqual([
        ['none', 'rule of this test: vendor none is out'], ['sw_protected', undefined],
        ['none', 'rule of this test: vendor none is out'], ['sw_protected', undefined],
      ]);
    } finally {
      remove();
    }
    expect((buildMatrix({ seed: '0', scenarios: ['vm-types'], ...PLATFORMS }) as Matrix).cells.map((c) => c.skip)).toEqual([undefined, undefined]);
  });

  test('outcomes are checked against the stated expectation per vendor; a difference exits 1 and is explained', async () => {
    const r = await compare({ scenarios: 'test-verdict' });
    expect(r.code).toBe(1);
    const [none, sw] = r.results.cells as RanCell[];
    expect([none!.outcome, none!.expected, none!.check]).toEqual(['seven', 'seven', 'ok']);
    expect([sw!.outcome, sw!.expected, sw!.check]).toEqual(['seven', 'eight', 'differs']);
    expect(sw!.steps_ok).toBe(1);
    expect(sw!.steps_total).toBe(2);
    expect(r.results.summary).toMatchObject({ ok: 1, differs: 1 });
    expect(r.out).toMatch(/^ {2}upstream\/sw_protected +seven +DIFFERS /m);
    expect(r.out).toContain('upstream/sw_protected: outcome "seven", expected "eight"');
    expect(r.out).toContain('upstream/sw_protected: step 2 close(99) gave -1 EBADF, expected 0 (close_fd: no such fd)');
  });

  test('a scenario that states nothing for a vendor is "unstated", not a failure', async () => {
    const r = await compare({ scenarios: 'vm-types' });
    expect(r.code).toBe(0);
    expect(r.results.cells.map((c) => c.status === 'ran' && [c.outcome, c.check])).toEqual([['DEFAULT', 'ok'], ['DEFAULT, SW_PROTECTED', 'ok']]);
  });

  test('a simulator bug in one cell is recorded as a crash with the steps before it; the others run; exit 3', async () => {
    const r = await compare({ scenarios: 'test-crash' });
    expect(r.code).toBe(3);
    const [none, sw] = r.results.cells;
    expect(none!.status).toBe('ran');
    expect(sw!.status === 'crashed' && [sw.error, sw.steps.length]).toEqual(['KernelBug: simulated BUG_ON', 1]);
    expect(r.out).toContain('upstream/sw_protected crashed: KernelBug: simulated BUG_ON');
  });

  test('registered requirements are checked on every cell; a violation is reported, not a failure', async () => {
    const remove = registerRequirement({
      id: 'test-no-close-of-bad-fd',
      description: 'the VMM never closes an fd it does not have',
      check: ({ steps, opts }) => steps.filter((s) => s.outcome === '-1 EBADF').map((s) => `${s.call} on ${opts.vendor}`),
    });
    try {
      const r = await compare({ scenarios: 'test-verdict', vendors: 'none' });
      expect(r.code).toBe(0);
      expect((r.results.cells[0] as RanCell).violations).toEqual([{ requirement: 'test-no-close-of-bad-fd', message: 'close(99) on none' }]);
      expect(r.results.summary.with_violations).toBe(1);
      expect(r.out).toMatch(/^ {2}upstream\/none +seven +ok +1 /m);
      expect(r.out).toContain('upstream/none violates test-no-close-of-bad-fd: close(99) on none');
    } finally {
      remove();
    }
  });
});

describe('cocosim compare: identical results whatever the seed reuse, sharding or jobs', () => {
  test('the same seed gives identical JSON; only "run" (wall times) differs', async () => {
    const a = await compare({ ...QUICK });
    const b = await compare({ ...QUICK });
    expect(identity(b.results)).toBe(identity(a.results));
    expect(b.results.digest).toBe(a.results.digest);
    expect(Object.keys(a.results.run.cell_wall_ms)).toHaveLength(4);
    expect(JSON.stringify(a.results.cells)).not.toMatch(/wall/);
  });

  test('two shards merged equal the unsharded run, in JSON, CSV (but wall times) and HTML (but wall times)', async () => {
    const whole = await compare({ ...QUICK, pageSize: '4K,2M' });
    const s1 = await compare({ ...QUICK, pageSize: '4K,2M', shard: '1/2' });
    const s2 = await compare({ ...QUICK, pageSize: '4K,2M', shard: '2/2' });
    expect(s1.out).toContain('shard 1/2: 4 of 8 cells');
    expect(s1.results.cells.map((c) => c.index)).toEqual([0, 2, 4, 6]);
    const dir = tmp();
    const m = await cli('merge', s2.dir, s1.dir, '--out', dir);
    expect(m.code).toBe(0);
    const merged = readResults(dir) as CompareResults;
    expect(identity(merged)).toBe(identity(whole.results));
    expect(merged.run.shards).toEqual(['2/2', '1/2']);
    const noWall = (csv: string) => csv.split('\r\n').map((l) => l.replace(/,[^,]*$/, '')).join('\n');
    expect(noWall(readFileSync(join(dir, 'results.csv'), 'utf8'))).toBe(noWall(readFileSync(join(whole.dir, 'results.csv'), 'utf8')));
    expect(m.out.split('\n').filter((l) => l.includes('ok') && !/\d+ ms|\d s/.test(l))).toEqual(
      whole.out.split('\n').filter((l) => l.includes('ok') && !/\d+ ms|\d s/.test(l)));
  });

  test('merge refuses incomplete, overlapping and mismatched shard outputs', async () => {
    const s1 = await compare({ scenarios: 'vm-types', shard: '1/2' });
    const s2 = await compare({ scenarios: 'vm-types', shard: '2/2' });
    const other = await compare({ scenarios: 'vm-types', shard: '2/2', seed: '7' });
    const missing = await cli('merge', s1.dir, '--out', tmp());
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('1 of 2 cells are missing (cell index 1): merge the output of every shard');
    const twice = await cli('merge', s1.dir, s2.dir, s1.dir, '--out', tmp());
    expect(twice.err).toContain('cell vm-types/upstream/none/8K/4K is in both');
    const seeds = await cli('merge', s1.dir, other.dir, '--out', tmp());
    expect(seeds.err).toContain(`${other.dir} ran a different matrix than ${s1.dir} (seed differ)`);
    const notResults = await cli('merge', tmp());
    expect(notResults.code).toBe(2);
    expect(notResults.err).toMatch(/results\.json: ENOENT/);
  });

  test('--jobs 2 spreads cells over worker threads and gives the same results as one thread', async () => {
    const one = await compare({ ...QUICK, pageSize: '4K,2M' });
    const two = await compare({ ...QUICK, pageSize: '4K,2M', jobs: '2' });
    expect(two.code).toBe(0);
    expect(two.results.run.jobs).toEqual([2]);
    expect(identity(two.results)).toBe(identity(one.results));
  }, 60_000);
});

describe('cocosim compare: the files', () => {
  test('results.json has the matrix, a summary, a digest and one record per cell; the CSV one row per cell', async () => {
    const r = await compare({ ...QUICK });
    const json = JSON.parse(readFileSync(join(r.dir, 'results.json'), 'utf8'));
    expect(Object.keys(json)).toEqual(['format', 'matrix', 'summary', 'digest', 'cells', 'run']);
    expect(json.format).toBe('cocosim-compare/1');
    expect(json.matrix).toEqual({
      scenarios: [
        { name: 'memfd-guest-ram', description: expect.any(String), ref: null },
        { name: 'vm-types', description: expect.any(String), ref: null },
      ],
      designs: ['upstream'], vendors: ['none', 'sw_protected'], sizes: [1 << 20], page_sizes: [4096], seed: '0', costs: null, cells: 4,
    });
    expect(json.digest).toMatch(/^[0-9a-f]{64}$/);
    const cell = json.cells[0] as RanCell;
    expect(cell.cost.total_ns).toBe(COST_CATEGORIES.reduce((a, k) => a + cell.cost.by_category[k.id], 0));
    expect(cell.cost.total_ns).toBe(cell.cost.items.reduce((a, i) => a + i.ns, 0));
    expect(cell.cost.counts.zero).toBe(257);
    expect(cell.cost.estimates).toEqual(cell.cost.items.filter((i) => i.provenance === 'estimate').map((i) => i.name));
    expect(cell.virtual_ns).toBeGreaterThanOrEqual(cell.cost.total_ns);

    const rows = readFileSync(join(r.dir, 'results.csv'), 'utf8').split('\r\n');
    expect(rows.at(-1)).toBe('');
    const header = rows[0]!.split(',');
    expect(header.slice(0, 12)).toEqual(['index', 'id', 'scenario', 'design', 'vendor', 'size', 'page_size', 'seed', 'status', 'outcome', 'expected', 'check']);
    expect(header).toContain('firmware_ns');
    expect(header.at(-1)).toBe('wall_ms');
    expect(rows).toHaveLength(1 + 4 + 1);
    const vm = rows.find((l) => l.startsWith('3,'))!;
    expect(vm).toContain(',"DEFAULT, SW_PROTECTED","DEFAULT, SW_PROTECTED",ok,');
  });

  test('the terminal table has a row per platform with the cost split by category and a summary', async () => {
    const r = await compare({ ...QUICK });
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('memfd-guest-ram: guest RAM in a sealed memfd: fault in, seal, punch a hole, read back');
    expect(lines[1]).toBe('  size 1M, page size 4K, seed 0; cost = modeled time of the measured steps');
    const header = lines[3]!.trim().split(/\s+/);
    expect(header).toEqual(['platform', 'outcome', 'check', 'viol', 'measured', 'firmware', 'zaps', 'TLB', 'zeroed', 'exits', 'other', 'est', 'wall']);
    const row = lines[4]!;
    expect(row).toMatch(/^ {2}upstream\/none +18\/18 steps as expected +ok +- +[\d.]+ us +- +[\d.]+ us +[\d.]+ ns +[\d.]+ us +- +[\d.]+ us +\d+% +\d+ ms$/);
    expect(r.out).toMatch(/estimated cost entries used: .*page_alloc/);
    expect(lines.at(-4)).toMatch(/^4 cells: 4 as expected, 0 differ, 0 without expectation, 0 skipped; simulator wall time /);
    expect(lines.slice(-3)).toEqual(['results.json', 'results.csv', 'report.html'].map((f) => `wrote ${join(r.dir, f)}`));
  });

  test('report.html is self-contained: no script, stylesheet, image, font or link outside the file', async () => {
    const r = await compare({ scenarios: 'memfd-guest-ram,vm-types,test-skip,test-verdict', size: '1M' });
    const html = readFileSync(join(r.dir, 'report.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<(script|link|img|iframe|object|embed)\b/i);
    expect(html).not.toMatch(/\bsrc=|url\(|@import/i);
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!.startsWith('#'))).not.toContain(false);
    expect(html).toContain('<table id="overview"');
    expect(html.match(/<svg class="chart"/g)).toHaveLength(4);
    expect(html).toContain('data-category="zero"');
    expect(html).toContain('vendor none has no VM type with private memory');
  });

  test('past 200 cells the report lists the steps of the cells that differ only', async () => {
    const r = await compare({ scenarios: 'test-verdict' });
    const [ok, differs] = r.results.cells;
    const many = [...Array(STEPS_FOR_ALL_UP_TO).keys()].map((i) => ({ ...ok!, index: i, id: `${ok!.id}#${i}` }));
    const big = assemble(r.results.matrix, [...many, { ...differs!, index: many.length }].map((result) => ({ result, wall_ms: 1 })), r.results.run);
    const html = htmlReport(big);
    expect(html.match(/<details>/g)).toHaveLength(1);
    expect(html).toContain('<details><summary>upstream/sw_protected: 2 steps</summary>');
    expect(html).toContain('results.json has every cell\'s steps');
    expect(htmlReport({ ...big, cells: big.cells.slice(1) }).match(/<details>/g)).toHaveLength(STEPS_FOR_ALL_UP_TO);
  });

  test('--trace writes each cell\'s Perfetto JSON and ftrace text', async () => {
    const trace = tmp();
    const r = await compare({ scenarios: 'memfd-guest-ram', size: '1M', vendors: 'none', trace });
    expect(r.out).toContain(`into ${trace}`);
    const perfetto = JSON.parse(readFileSync(join(trace, 'memfd-guest-ram_upstream_none_1M_4K.perfetto.json'), 'utf8'));
    expect(perfetto.displayTimeUnit).toBe('ns');
    expect(perfetto.traceEvents.filter((e: { name: string }) => e.name === 'mm_filemap_delete_from_page_cache')).toHaveLength(257);
    expect(readFileSync(join(trace, 'memfd-guest-ram_upstream_none_1M_4K.ftrace.txt'), 'utf8')).toMatch(/mm_filemap_delete_from_page_cache: /);
  });
});

describe('cocosim compare: the command line', () => {
  test('bad arguments exit 2 with every problem named', async () => {
    const r = await cli('compare', '--shard', '3/2', '--jobs', '0', '--page-size', '8K', '--size', '3', '--out', tmp(), '--vendors', 'none');
    expect(r.code).toBe(2);
    expect(r.err.split('\n')).toEqual([
      'cocosim compare: --size 3: need a positive multiple of 8192 bytes (K, M, G suffixes allowed)',
      'cocosim compare: --page-size 8K: need one of 4K, 2M, 1G',
      'cocosim compare: --jobs 0: need a positive integer or "auto"',
      'cocosim compare: --shard 3/2: need I/N with 1 <= I <= N',
    ]);
    const names = await cli('compare', '--vendors', 'no-such-vendor', '--out', tmp());
    expect(names.err).toBe(`cocosim compare: unknown vendor "no-such-vendor" (have: ${vendorNames().join(', ')})`);
  });

  test('no command runs the comparison (the README\'s main job); a bad cost file is a usage error', async () => {
    const dir = tmp();
    const r = await cli('--out', dir, '--scenarios', 'vm-types', '--vendors', 'none');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^vm-types: /);
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
    const bad = await cli('compare', '--costs', join(dir, 'none.json'), '--out', dir);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/cost override file .*none\.json: cannot read/);
  });
});

describe('cost categories and the progress bar', () => {
  test('built-in entries by name, vendor firmware calls by prefix, the rest "other"', () => {
    expect(['page_zero_4k', 'spte_zap', 'pte_zap', 'tlb_shootdown_ipi', 'kvm_flush_remote_tlbs_per_vcpu', 'kvm_userspace_exit_roundtrip',
      'seamcall_tdh_mem_page_aug', 'rmpupdate', 'psmash', 'rmi_granule_delegate', 'page_alloc', 'swap_zero_check_4k'].map(costCategory))
      .toEqual(['zero', 'zap', 'zap', 'tlb', 'tlb', 'exit', 'firmware', 'firmware', 'firmware', 'firmware', 'other', 'other']);
  });

  test('drawn on a terminal only, only after a second, and erased at the end', () => {
    let t = 0;
    const written: string[] = [];
    const tty = new Progress({ isTTY: true, write: (s) => written.push(s) }, 4, () => t);
    t = 500;
    tty.update(1, 'a');
    expect(written).toEqual([]);
    t = 1500;
    tty.update(2, 'b');
    expect(written).toHaveLength(1);
    expect(written[0]).toContain('[###############...............] 2/4 cells 1.5 s  b');
    t = 1550;
    tty.update(3, 'c');
    expect(written).toHaveLength(1);
    tty.update(4, 'd');
    tty.done();
    expect(written.at(-1)).toBe('\r\x1b[2K');
    const pipe: string[] = [];
    const quiet = new Progress({ isTTY: false, write: (s) => pipe.push(s) }, 4, () => t);
    t = 5000;
    quiet.update(4, 'd');
    quiet.done();
    expect(pipe).toEqual([]);
  });
});
