#!/usr/bin/env node
// Screenshots an `anubis simulate --report` page with headless Chromium (playwright-core),
// for the docs: node --import tsx scripts/report-screenshot.ts report.html docs/images/simulate-report.png
// Offline: every request other than the report file itself is refused.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from '../test/helpers/chromium.js';

const [input, output] = process.argv.slice(2);
if (input === undefined || output === undefined) {
  console.error('usage: node --import tsx scripts/report-screenshot.ts REPORT.html OUT.png');
  process.exit(2);
}
const profile = await mkdtemp(join(tmpdir(), 'anubis-chromium-'));
const context = await launchChromium(profile, {
  viewport: { width: 900, height: 900 },
  deviceScaleFactor: 1,
});
try {
  const url = pathToFileURL(resolve(input)).href;
  await context.route('**/*', (route) =>
    route.request().url() === url ? route.continue() : route.abort(),
  );
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
  await page.screenshot({ path: output, fullPage: true });
  console.log(`wrote ${output}`);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
