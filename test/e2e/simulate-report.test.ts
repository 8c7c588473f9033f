// The `anubis simulate --report` page renders offline in headless Chromium: the latency CDF
// has one series per strategy, each share-over-time chart one band per backend, and the page
// asks the network for nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { renderReport } from '../../src/simulate/report.js';
import { runSimulation } from '../../src/simulate/run.js';
import { parseBackendsFlag, validateScenario } from '../../src/simulate/scenario.js';
import { builtinStrategies } from '../../src/strategies/registry.js';

void test('the report renders offline in headless Chromium with every chart and series', async (t) => {
  const missing = chromiumMissing();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  const strategies = ['round-robin', 'least-connections', 'random-two'].filter((s) =>
    builtinStrategies.has(s),
  );
  const result = await runSimulation(
    validateScenario(
      {
        backends: parseBackendsFlag('fast:3ms,other:3ms,slow:30ms±5ms'),
        requests: 300,
        concurrency: 8,
        strategies,
      },
      'test',
    ),
  );
  const dir = await mkdtemp(join(tmpdir(), 'anubis-report-'));
  const file = join(dir, 'report.html');
  await writeFile(file, renderReport(result));
  const url = pathToFileURL(file).href;

  const context = await launchChromium(join(dir, 'profile'));
  // One hook, in this order: Chromium writes to its profile until it has closed.
  t.after(async () => {
    await context.close();
    await rm(dir, { recursive: true, force: true });
  });
  const requested: string[] = [];
  await context.route('**/*', async (route) => {
    requested.push(route.request().url());
    if (route.request().url() === url) await route.continue();
    else await route.abort();
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.goto(url, { waitUntil: 'load', timeout: 30_000 });

  assert.deepEqual(requested, [url], 'the page fetches nothing but itself');
  assert.deepEqual(errors, []);
  assert.match(await page.title(), /^anubis simulate: /);
  assert.equal(await page.locator('table tbody tr').count(), strategies.length);

  const cdf = page.locator('svg[data-chart="latency-cdf"]');
  assert.equal(await cdf.count(), 1);
  // Runs in the page (SVG elements have getBBox; this project's TypeScript has no DOM types).
  interface Graphic {
    getAttribute(name: string): string | null;
    getBBox(): { width: number; height: number };
  }
  const cdfSeries = await cdf.locator('path[data-series]').evaluateAll((paths: Graphic[]) =>
    paths.map((p) => ({
      name: p.getAttribute('data-series'),
      width: p.getBBox().width,
      height: p.getBBox().height,
    })),
  );
  assert.deepEqual(
    cdfSeries.map((s) => s.name),
    strategies,
  );
  for (const series of cdfSeries) {
    assert.ok(
      series.width > 10 && series.height > 100,
      `${series.name}: ${JSON.stringify(series)}`,
    );
  }

  const shareCharts = page.locator('svg[data-chart="share-over-time"]');
  assert.equal(await shareCharts.count(), strategies.length);
  for (let i = 0; i < strategies.length; i++) {
    const chart = shareCharts.nth(i);
    assert.equal(await chart.getAttribute('data-strategy'), strategies[i]);
    const bands = await chart
      .locator('path[data-series]')
      .evaluateAll((paths: Graphic[]) => paths.map((p) => p.getAttribute('data-series')));
    assert.deepEqual(bands, ['fast', 'other', 'slow']);
    const box = await chart.boundingBox();
    assert.ok(box !== null && box.width > 200 && box.height > 100);
  }
});
