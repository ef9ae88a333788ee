// What a page loads, in Chromium: the page library's own drainer is a chunk of its own (scripts/build-web.ts,
// docs/benchmarks.md "Page bundle"), fetched only where no Service Worker drains for the page. A page its
// worker controls opens, writes, and has its write on the server, carried by the worker, without ever asking
// for that chunk; a page without a worker fetches it and drains by itself. Both fetch the socket's chunk.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Page } from 'playwright-core';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, ledgerCount, openApp, signIn, startWebServer, status, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
const devices: Device[] = [];

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('cora');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

/** The chunks this page's document has fetched so far (from the network or its worker's cache). */
function chunksFetched(page: Page): Promise<string[]> {
  return page.evaluate(() => performance.getEntriesByType('resource')
    .map((entry) => new URL(entry.name).pathname).filter((path) => path.startsWith('/chunks/')));
}

/** Writes one item and waits until the server holds it and the page says synced. */
async function writeAndSync(page: Page, space: string): Promise<void> {
  const deviceId: string = await page.evaluate(() => (window as any).ferry.deviceId);
  const before = await ledgerCount(server, deviceId);
  await page.evaluate((s) => (window as any).ferry.collection(s, 'notes').put(`n${Date.now()}`, { text: 'hi' }), space);
  await until('the write on the server', async () => (await ledgerCount(server, deviceId)) === before + 1, 20_000);
  await until('synced', async () => (await status(page)).state === 'synced', 20_000);
}

const isDrainer = (path: string) => /^\/chunks\/drainer-[\w-]+\.js$/.test(path);
const isSocket = (path: string) => /^\/chunks\/device-socket-[\w-]+\.js$/.test(path);

test('a page its worker controls never fetches the drainer: the worker carries its write', async () => {
  const device = await launchDevice();
  devices.push(device);
  const first = await openApp(device, server); // the first visit installs the worker
  const { spaces } = await signIn(first, 'cora');
  // Opened again, the page is controlled from its first script on.
  const page = await openApp(device, server, {}, first);
  expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
  await writeAndSync(page, spaces[0].id);
  await until('the socket connected', async () => (await status(page)).connected);
  const fetched = await chunksFetched(page);
  expect(fetched.some(isSocket)).toBe(true);
  expect(fetched.filter(isDrainer)).toEqual([]);
}, 90_000);

test('a page without a worker fetches the drainer and drains by itself', async () => {
  const device = await launchDevice();
  devices.push(device);
  const page = await openApp(device, server, { swUrl: false });
  const { spaces } = await signIn(page, 'cora');
  await writeAndSync(page, spaces[0].id);
  const fetched = await chunksFetched(page);
  expect(fetched.some(isSocket)).toBe(true);
  expect(fetched.filter(isDrainer).length).toBe(1);
  expect(await page.evaluate(() => navigator.serviceWorker.controller)).toBeNull();
}, 90_000);
