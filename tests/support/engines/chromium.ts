// Chromium through playwright-core (tests/support/browser.ts): the fast engine, and the only one of the
// three with Background Sync. A profile directory is a device; relaunching it reopens the same one.
import type { Page } from 'playwright-core';
import { launchDevice } from '../browser.ts';
import type { Engine, EngineBrowser, Tab } from './types.ts';

function tabOf(page: Page): Tab {
  return {
    run: ((fn: (arg: unknown) => unknown, arg?: unknown) => page.evaluate(fn, arg)) as Tab['run'],
    goto: async (url) => void (await page.goto(url)),
    reload: async () => void (await page.reload()),
    close: () => page.close(),
  };
}

export const chromiumEngine: Engine = {
  name: 'chromium',
  // Headless Chromium answers persist() from site engagement, which a test profile has none of.
  limits: { backgroundSync: true, persistGranted: false },
  async launch(profile?: string): Promise<EngineBrowser> {
    const device = await launchDevice(profile);
    return {
      engine: 'chromium',
      profile: device.profile,
      tab: async () => tabOf(await device.page()),
      newTab: async () => tabOf(await device.context.newPage()),
      close: () => device.close(),
    };
  },
};
