// Debian's Firefox ESR through puppeteer-core over WebDriver BiDi (playwright-core drives only its own
// patched Firefox). No Background Sync: its pages and its worker's wake-ups carry the outbox. Its
// offline emulation does not stop the worker's requests, so the scenarios cut the server instead.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Page } from 'puppeteer-core';
import type { Engine, EngineBrowser, Tab } from './types.ts';

export const FIREFOX = process.env.FERRY_FIREFOX ?? '/usr/bin/firefox-esr';

// persist() asks the person with a door-hanger, which nobody answers in a headless browser; Firefox's
// own test switches answer it, here with "allow", as a person who clicked it would.
const PREFS = {
  'dom.storageManager.prompt.testing': true,
  'dom.storageManager.prompt.testing.allow': true,
  // No first-run pages, no update or telemetry pings to hosts this machine cannot reach.
  'browser.shell.checkDefaultBrowser': false,
  'app.update.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
};

function tabOf(page: Page): Tab {
  return {
    run: ((fn: (arg: unknown) => unknown, arg?: unknown) => page.evaluate(fn as never, arg)) as Tab['run'],
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    close: () => page.close(),
  };
}

export const firefoxEngine: Engine = {
  name: 'firefox',
  limits: { backgroundSync: false, persistGranted: true },
  async launch(profile = mkdtempSync(join(tmpdir(), 'ferry-firefox-'))): Promise<EngineBrowser> {
    const browser = await puppeteer.launch({
      browser: 'firefox', executablePath: FIREFOX, headless: true, protocol: 'webDriverBiDi',
      userDataDir: profile, extraPrefsFirefox: PREFS, defaultViewport: { width: 412, height: 915 },
    });
    return {
      engine: 'firefox',
      profile,
      tab: async () => tabOf((await browser.pages())[0] ?? (await browser.newPage())),
      newTab: async () => tabOf(await browser.newPage()),
      close: () => browser.close(),
    };
  },
};
