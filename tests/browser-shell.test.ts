// The app shell in a real Chromium: the worker caches the demo PWA on install, so it opens with no
// network at all; it never caches the sync API; and a new build's worker takes over through
// workbox-window's update flow (skip waiting, then one reload into the new version).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { launchDevice, reloadOffline, setOnline, type Device } from './support/browser.ts';
import { buildWeb, openApp, signIn, startWebServer, testAssets, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
const devices: Device[] = [];
/** Appended to /sw.js when set: a new build of the worker, byte-different from the installed one. */
let build: string | null = null;

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer({
    assets: async (path) => {
      const response = await testAssets(path);
      if (path !== '/sw.js' || response === null || build === null) return response;
      return new Response(`${await response.text()}\n// build ${build}\n`, { headers: { 'content-type': 'text/javascript' } });
    },
  });
  await server.user('hal');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

const launch = async () => {
  const device = await launchDevice();
  devices.push(device);
  return device;
};

describe('app shell', () => {
  test('the demo app opens offline from the cache; the sync API is never cached', async () => {
    const device = await launch();
    const page = await device.page();
    await page.goto(`${server.base}/`);
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 15_000 });
    const cached = await until('the shell to be precached', () => page.evaluate(async () => {
      const names = await caches.keys();
      const shell = names.find((name) => name.startsWith('ferry-shell-'));
      if (!shell) return null;
      const urls = (await (await caches.open(shell)).keys()).map((request) => new URL(request.url).pathname);
      return urls.includes('/app.js') && urls.includes('/ferry.js') ? urls : null;
    }));
    expect(cached).toEqual(expect.arrayContaining(['/', '/app.js', '/ferry.js', '/app.css', '/manifest.webmanifest', '/icons/icon-192.png']));
    await page.evaluate(() => fetch('/v1/me', { credentials: 'include' })); // through the worker, to the network

    await device.context.setOffline(true);
    await reloadOffline(page);
    expect(await page.title()).toBe('Ferry Lists');
    // app.js ran from the cache: with no network and no account it shows the sign-in form.
    await page.waitForSelector('form.signin', { timeout: 15_000 });
    const everything = await page.evaluate(async () => {
      const urls: string[] = [];
      for (const name of await caches.keys()) {
        for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
      }
      return urls;
    });
    expect(everything.filter((url) => url.startsWith('/v1/'))).toEqual([]);
    await setOnline(device.context);
  }, 60_000);

  test('a new worker build takes over: skipWaiting, one reload, then it drains', async () => {
    build = null;
    const device = await launch();
    const page = await openApp(device, server);
    const loads = () => page.evaluate(() => Number(sessionStorage.getItem('loads')));
    expect(await loads()).toBe(1);

    build = 'two';
    await page.reload(); // the navigation's update check finds the new bytes
    // The app starts Ferry on every load, as this page's first load did.
    await page.waitForFunction(() => (window as any).ferryReady === true, undefined, { timeout: 10_000 });
    // The update's reload may tear this evaluation down midway; that is the point.
    await page.evaluate(async () => {
      (window as any).ferry = await (window as any).Ferry.createFerry();
    }).catch(() => undefined);
    await until('the update to reload the page once more', async () => (await loads().catch(() => 0)) >= 3, 20_000);
    await page.waitForFunction(() => (window as any).ferryReady === true, undefined, { timeout: 10_000 });
    const registration = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return { waiting: r?.waiting !== null, active: r?.active?.state, controlled: navigator.serviceWorker.controller !== null };
    });
    expect(registration).toEqual({ waiting: false, active: 'activated', controlled: true });
    expect(await loads()).toBe(3);
    // The new worker drains: a write after the update reaches the server.
    const page2 = await openApp(device, server, {}, page);
    const { spaces } = await signIn(page2, 'hal');
    await page2.evaluate((space) => (window as any).ferry.collection(space, 'items').put('after-update', { ok: true }), spaces[0].id);
    await until('the write on the server', async () => {
      const rows = await server.database.client.execute("SELECT count(*) AS n FROM entities WHERE key = 'after-update'");
      return Number(rows.rows[0]!.n) === 1;
    });
  }, 60_000);
});
