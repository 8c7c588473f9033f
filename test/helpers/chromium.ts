/**
 * Debian's headless Chromium driven by playwright-core (no browser download), with the flags
 * this sandboxed, offline machine needs. Tests skip with a message when it is not installed.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test must be skipped, or undefined when Chromium is there. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `chromium not installed at ${CHROMIUM} (apt-get install -y chromium)`;
}

/** A headless Chromium with a fresh profile in `profileDir`; the caller closes it. */
export function launchChromium(profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
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
