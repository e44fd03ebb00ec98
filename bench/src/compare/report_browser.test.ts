/**
 * The HTML report in a real browser: Debian's Chromium (/usr/bin/chromium, `apt-get install
 * chromium`) driven headless by playwright-core (a root devDependency, installed without its
 * browser downloads). Skipped, with the reason printed, where either is missing.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { compareCommand } from './command.js';
import { readResults, type CompareResults } from './results.js';

const CHROMIUM = '/usr/bin/chromium';

/* The parts of playwright-core's API this test uses (it is loaded by name, so that type checking does not need it installed). */
interface Rect { readonly width: number; readonly height: number }
interface Page {
  on(event: 'request', fn: (r: { url(): string }) => void): void;
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
  on(event: 'pageerror', fn: (e: Error) => void): void;
  goto(url: string): Promise<unknown>;
  title(): Promise<string>;
  evaluate<T>(fn: () => T): Promise<T>;
}
/* The DOM, as much as the page function below uses (bench compiles without lib "dom"). */
interface El {
  readonly className: string;
  readonly textContent: string | null;
  getBoundingClientRect(): Rect;
  getAttribute(name: string): string | null;
  querySelector(sel: string): El | null;
  querySelectorAll(sel: string): Iterable<El> & { readonly length: number };
}
interface Browser { newPage(): Promise<Page>; close(): Promise<void> }
interface Playwright { chromium: { launch(o: { executablePath: string; headless: boolean; args: string[] }): Promise<Browser> } }

async function loadPlaywright(): Promise<Playwright | string> {
  const name = 'playwright-core';
  try {
    return (await import(name)) as Playwright;
  } catch (e) {
    return `playwright-core is not installed (${(e as Error).message.split('\n')[0]}): add it as a devDependency`;
  }
}

const playwright = existsSync(CHROMIUM) ? await loadPlaywright() : `${CHROMIUM} is not installed (apt-get install chromium)`;
const skipReason = typeof playwright === 'string' ? playwright : undefined;
if (skipReason !== undefined) process.stderr.write(`report_browser.test.ts: skipped: ${skipReason}\n`);

describe.skipIf(skipReason !== undefined)('report.html in headless Chromium', () => {
  test('the overview, every scenario table and every cost chart render, offline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocosim-report-'));
    const code = await compareCommand({ seed: '0', out: dir, scenarios: 'memfd-guest-ram,vm-types', size: '1M', pageSize: '4K,2M', designs: 'upstream', vendors: 'none,sw_protected' },
      () => {}, () => {}, { isTTY: false, write: () => true });
    expect(code).toBe(0);
    const results = readResults(dir) as CompareResults;
    const browser = await (playwright as Playwright).chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      const url = pathToFileURL(join(dir, 'report.html')).href;
      await page.goto(url);
      expect(await page.title()).toBe('cocosim compare');
      expect(requests).toEqual([url]);
      expect(problems).toEqual([]);

      const seen = await page.evaluate(() => {
        const document = (globalThis as unknown as { document: El }).document;
        const box = (e: El): Rect => {
          const r = e.getBoundingClientRect();
          return { width: r.width, height: r.height };
        };
        const overview = document.querySelector('#overview')!;
        return {
          overview: box(overview),
          overviewRows: overview.querySelectorAll('tr').length,
          overviewCells: [...overview.querySelectorAll('td')].map((td) => td.className),
          tables: [...document.querySelectorAll('section.scenario table.cells')].map((t) => ({ rows: t.querySelectorAll('tr').length, box: box(t) })),
          charts: [...document.querySelectorAll('svg.chart')].map((svg) => ({
            box: box(svg),
            bars: [...svg.querySelectorAll('rect.bar')].map((r) => ({ category: r.getAttribute('data-category')!, ...box(r) })),
            labels: [...svg.querySelectorAll('text')].map((t) => t.textContent),
          })),
          summary: document.querySelector('#summary')!.textContent,
        };
      });
      // Two scenarios at two page sizes: four groups; vm-types and memfd-guest-ram run at 4K only.
      expect(seen.overview.width).toBeGreaterThan(300);
      expect(seen.overviewRows).toBe(1 + 4);
      expect(seen.overviewCells).toEqual(['ok', 'ok', 'skipped', 'skipped', 'ok', 'ok', 'skipped', 'skipped']);
      expect(seen.tables).toHaveLength(4);
      for (const t of seen.tables) {
        expect(t.rows).toBe(3);
        expect(t.box.height).toBeGreaterThan(40);
      }
      expect(seen.summary).toBe(`8 cells: 4 as expected, 0 differ, 0 without expectation, 4 skipped; simulator wall time ${seen.summary!.match(/time (.*)\.$/)![1]}.`);
      // A chart per group where something ran: memfd-guest-ram (costs) and vm-types (no cost).
      expect(seen.charts).toHaveLength(2);
      const [memfd, vmTypes] = seen.charts;
      expect(memfd!.box.width).toBeGreaterThan(500);
      expect(memfd!.box.height).toBeGreaterThan(50);
      const ran = results.cells.find((c) => c.status === 'ran' && c.scenario === 'memfd-guest-ram')!;
      const categories = ran.status === 'ran' ? Object.entries(ran.cost.by_category).filter(([, ns]) => ns > 0).map(([k]) => k) : [];
      expect(memfd!.bars.map((b) => b.category)).toEqual([...categories, ...categories]);
      for (const b of memfd!.bars) {
        expect(b.width).toBeGreaterThan(0);
        expect(b.height).toBeGreaterThan(10);
      }
      // Both vendors cost the same here: their bars end at the same place.
      const half = memfd!.bars.length / 2;
      const sum = (bars: readonly Rect[]) => bars.reduce((a, b) => a + b.width, 0);
      expect(sum(memfd!.bars.slice(0, half))).toBeCloseTo(sum(memfd!.bars.slice(half)), 3);
      expect(memfd!.labels).toEqual(expect.arrayContaining(['upstream/none', 'upstream/sw_protected']));
      expect(vmTypes!.bars).toEqual([]);
      expect(vmTypes!.labels).toEqual(expect.arrayContaining(['no cost']));
    } finally {
      await browser.close();
    }
  }, 120_000);
});
