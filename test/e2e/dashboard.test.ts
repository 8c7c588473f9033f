/**
 * The live dashboard in a real headless Chromium (Debian's `chromium` + playwright-core):
 * load it while traffic flows, see the numbers move, click drain, and check that the
 * drained backend stops getting traffic. Skipped (with a message) when chromium is absent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Locator } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { request } from 'undici';
import { startAnubis } from '../helpers/anubis.js';
import { startNamedBackend } from '../helpers/servers.js';

/** Polls a locator's text until `accept` holds (or fails after `timeoutMs`). */
async function waitForText(
  locator: Locator,
  accept: (text: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  const end = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < end) {
    text = (await locator.textContent()) ?? '';
    if (accept(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out; last text ${JSON.stringify(text)}`);
}

void test('dashboard shows live numbers and its drain button stops traffic', async (t) => {
  const missing = chromiumMissing();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const lb = await startAnubis(
    [
      { url: a.url, name: 'a' },
      { url: b.url, name: 'b' },
    ],
    {},
    { admin: { address: '127.0.0.1:0' } },
  );
  const adminUrl = `http://127.0.0.1:${lb.balancer.admin?.boundAddress().port ?? 0}/`;

  // Traffic: a bounded loop (at most 40 s) counting which backend answered.
  const served = { a: 0, b: 0, errors: 0 };
  let stop = false;
  const deadline = Date.now() + 40_000;
  const traffic = (async () => {
    while (!stop && Date.now() < deadline) {
      try {
        const res = await request(lb.url);
        const body = await res.body.text();
        if (body === 'a' || body === 'b') served[body]++;
        else served.errors++;
      } catch {
        served.errors++;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  const profile = await mkdtemp(join(tmpdir(), 'anubis-chromium-'));
  const context = await launchChromium(profile);
  t.after(async () => {
    stop = true;
    await traffic;
    await context.close();
    await rm(profile, { recursive: true, force: true });
    await lb.close();
    await a.close();
    await b.close();
  });

  const page = await context.newPage();
  await page.goto(adminUrl);
  const rowA = page.locator('tr[data-backend="test/a"]');
  const rowB = page.locator('tr[data-backend="test/b"]');
  await rowA.waitFor({ timeout: 10_000 });

  // The numbers move: requests/s becomes positive, the clock ticks, quantiles appear.
  const rpsA = rowA.locator('[data-field="rps"]');
  await waitForText(rpsA, (text) => Number(text) > 0);
  const first = await page.locator('#meta').textContent();
  await waitForText(page.locator('#meta'), (text) => text !== first);
  assert.notEqual(await rowB.locator('[data-field="p50"]').textContent(), '–');
  // The requests/s chart is drawn (not a blank canvas) and redrawn as samples arrive.
  // (Page-side code as a string: this project's TypeScript has no DOM types.)
  const chart = `document.querySelector('canvas[data-chart="rps"]')`;
  const drawn = (): Promise<string> => page.evaluate<string>(`${chart}.toDataURL()`);
  const blank = await page.evaluate<string>(
    `(() => { const c = ${chart}, b = document.createElement('canvas'); b.width = c.width; b.height = c.height; return b.toDataURL(); })()`,
  );
  const before = await drawn();
  assert.notEqual(before, blank, 'the requests/s chart has lines');
  const redrawEnd = Date.now() + 10_000;
  while ((await drawn()) === before && Date.now() < redrawEnd) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.notEqual(await drawn(), before, 'the requests/s chart moves');

  // Click drain on backend a: the page shows it draining and traffic goes to b only.
  await rowA.locator('button[data-action="drain"]').click();
  await waitForText(rowA.locator('[data-field="state"]'), (text) => text === 'draining');
  const aAfterDrain = served.a;
  const bAfterDrain = served.b;
  while (served.b < bAfterDrain + 50 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(served.b >= bAfterDrain + 50, 'traffic kept flowing to b');
  // One request may have been picked just before the click landed.
  assert.ok(served.a <= aAfterDrain + 1, `a got ${served.a - aAfterDrain} requests after drain`);
  assert.equal(served.errors, 0);
  // And the page shows a's request rate fall to zero once the window has passed.
  await waitForText(rpsA, (text) => text === '0.0', 15_000);
  // The enable button brings it back.
  await rowA.locator('button[data-action="enable"]').click();
  const aBeforeEnable = served.a;
  while (served.a < aBeforeEnable + 5 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(served.a >= aBeforeEnable + 5, 'a takes traffic again after enable');
});
