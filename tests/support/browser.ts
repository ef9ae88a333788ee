// Debian's Chromium driven by playwright-core: one persistent profile per "device", so a test can close
// the browser and relaunch the same profile (same IndexedDB, same Service Worker registration).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type CDPSession, type Page } from 'playwright-core';

export const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps dialing Google hosts this sandbox cannot reach.
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

export interface Device {
  context: BrowserContext;
  profile: string;
  page(): Promise<Page>;
  close(): Promise<void>;
}

export function newProfile(): string {
  return mkdtempSync(join(tmpdir(), 'ferry-profile-'));
}

/** Launches Chromium on a profile directory (a new one unless given: pass the old one to relaunch). */
export async function launchDevice(profile = newProfile()): Promise<Device> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    serviceWorkers: 'allow',
    viewport: { width: 412, height: 915 },
  });
  return {
    context,
    profile,
    page: async () => context.pages()[0] ?? (await context.newPage()),
    close: () => context.close(),
  };
}

/** Fires a Background Sync event at the page's Service Worker through CDP, as the browser would. */
export async function dispatchSync(page: Page, origin: string, tag: string, lastChance = false): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  const registrations = new Promise<string>((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', (event: any) => {
      const reg = event.registrations.find((r: any) => r.scopeURL.startsWith(origin) && !r.isDeleted);
      if (reg) resolve(reg.registrationId);
    });
  });
  await cdp.send('ServiceWorker.enable');
  const registrationId = await Promise.race([registrations, Bun.sleep(5000).then(() => { throw new Error('no SW registration'); })]);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin, registrationId, tag, lastChance });
  await cdp.detach();
}

// Sessions that keep reloaded documents offline (see reloadOffline), per context, until setOnline.
const keptOffline = new WeakMap<BrowserContext, CDPSession[]>();

/**
 * `page.reload()` while the page's context is offline, with the new document offline too. Debian bookworm's
 * Chromium 150 gives a document loaded under playwright's offline emulation `navigator.onLine === true`
 * (its requests still fail; 156 did not do this), so a session of the page's own says offline again, and
 * the page shows what a person offline sees. `setOnline` ends it.
 */
export async function reloadOffline(page: Page): Promise<void> {
  await page.reload();
  const session = await page.context().newCDPSession(page);
  await session.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  keptOffline.set(page.context(), [...(keptOffline.get(page.context()) ?? []), session]);
}

/** `context.setOffline(false)`, ending what `reloadOffline` kept offline. */
export async function setOnline(context: BrowserContext): Promise<void> {
  await context.setOffline(false);
  for (const session of keptOffline.get(context) ?? []) await session.detach().catch(() => {}); // a closed page took its session
  keptOffline.delete(context);
}
