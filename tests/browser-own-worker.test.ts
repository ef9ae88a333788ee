// Ferry inside an app's own Service Worker (README, docs/guide.md): `installFerry(self)` beside Workbox
// precaching, in Chromium. The app's page registers its own worker; a write made offline is carried by it
// once the network is back, with the tab closed; and the app's shell opens offline from Workbox's cache.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, ledgerCount, startWebServer, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
let device: Device;

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('owen');
  device = await launchDevice();
}, 60_000);
afterAll(async () => {
  await device?.close();
  await server.stop();
  removeDir(server.dir);
});

test('installFerry in the app\'s own Workbox worker drains the outbox, with no page open; Workbox serves the shell offline', async () => {
  const page = await device.page();
  await page.goto(`${server.base}/test/own-app.html`);
  await page.waitForFunction(() => (window as any).ownReady === true);
  const { deviceId, space } = await page.evaluate(async () => {
    const w = window as any;
    const account = await w.Ferry.signIn(location.origin, 'owen', 'owen-password');
    w.ferry = await w.Ferry.createFerry({ user: account.user.id, swUrl: '/test/own-sw.js' });
    return { deviceId: w.ferry.deviceId as string, space: account.spaces[0].id as string };
  });
  await page.waitForFunction(() => navigator.serviceWorker.controller?.scriptURL.endsWith('/test/own-sw.js'), undefined, { timeout: 10_000 });

  await device.context.setOffline(true);
  await page.evaluate((s) => (window as any).ferry.collection(s, 'notes').put('n1', { text: 'written offline' }), space);
  // The app's shell comes from Workbox's precache while offline.
  await page.reload();
  await page.waitForFunction(() => (window as any).ownReady === true, undefined, { timeout: 10_000 });
  await page.close(); // no page: only the worker can carry it
  expect(await ledgerCount(server, deviceId)).toBe(0);

  await device.context.setOffline(false);
  await until('the worker delivered it', async () => (await ledgerCount(server, deviceId)) === 1, 20_000);
}, 90_000);
