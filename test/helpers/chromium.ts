/**
 * Debian's headless Chromium driven by playwright-core (no browser download), with the flags
 * this sandboxed, offline machine needs. Tests skip with a message when it is not installed.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

type ContextOptions = NonNullable<Parameters<typeof chromium.launchPersistentContext>[1]>;

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test must be skipped, or undefined when Chromium is there. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `chromium not installed at ${CHROMIUM} (apt-get install -y chromium)`;
}

/**
 * A headless Chromium with a fresh profile in `profileDir`; the caller closes it. Also used by
 * scripts/report-screenshot.ts. `extra` adds context options (viewport, scale).
 */
export function launchChromium(
  profileDir: string,
  extra: Omit<ContextOptions, 'args' | 'headless'> = {},
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM ?? CHROMIUM,
    ...extra,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
