// What a person's device does at volume, in a real Chromium: local write rates, and 10,000 queued
// ops drained after the network comes back, by the worker over HTTP and by a page over its socket.
// Each test asserts the outcome (every op on the server once, nothing left) under generous bounds,
// and prints the measured numbers.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { launchDevice, type Device } from './support/browser.ts';
import {
  buildWeb, expectGapless, ledger, ledgerCount, openApp, openRaw, rawSignIn, startAgain, signIn, startWebServer,
  status, until, workerHeap,
} from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

const QUEUED = 10_000;
let server: TestServer;
const devices: Device[] = [];
const launch = async () => {
  const device = await launchDevice();
  devices.push(device);
  return device;
};
const report = (line: string) => console.log(`  [numbers] ${line}`);

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('cid');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

describe('throughput', () => {
  test('local writes: one op per transaction (page API and store) and batched', async () => {
    const device = await launch();
    const page = await openApp(device, server);
    const { spaces } = await signIn(page, 'cid');
    await device.context.setOffline(true); // nothing drains meanwhile
    const api = await page.evaluate(async (space) => {
      const items = (window as any).ferry.collection(space, 'bench');
      const started = performance.now();
      for (let i = 0; i < 1000; i++) await items.put(`k${i}`, { n: i, title: `item ${i}` });
      return performance.now() - started;
    }, spaces[0].id);
    expect((await status(page)).pending).toBe(1000);
    report(`page API put, awaited one by one: ${Math.round(1000 / (api / 1000))} ops/s (1,000 in ${api.toFixed(0)} ms)`);

    const rawDevice = await launch();
    const raw = await openRaw(rawDevice, server);
    const login = await rawSignIn(raw, 'cid');
    await rawDevice.context.setOffline(true);
    const single = await raw.evaluate((space) => (window as any).raw.enqueue(1000, 1, space), login.spaces[0].id);
    const batched = await raw.evaluate(({ space, count }) => (window as any).raw.enqueue(count, 500, space, 1000), { space: login.spaces[0].id, count: QUEUED });
    expect(await raw.evaluate(() => (window as any).raw.pending())).toBe(1000 + QUEUED);
    report(`store, 1 op per transaction: ${Math.round(1000 / (single / 1000))} ops/s`);
    report(`store, 500 ops per transaction: ${Math.round(QUEUED / (batched / 1000))} ops/s (10,000 in ${batched.toFixed(0)} ms)`);
    expect(api).toBeLessThan(30_000);
  }, 120_000);

  test(`${QUEUED.toLocaleString('en')} queued ops drain through the worker after reconnect; its heap stays bounded`, async () => {
    const device = await launch();
    const page = await openRaw(device, server);
    const login = await rawSignIn(page, 'cid');
    const deviceId: string = await page.evaluate(() => (window as any).raw.deviceId());
    await device.context.setOffline(true);
    await page.evaluate(({ space, count }) => (window as any).raw.enqueue(count, 500, space), { space: login.spaces[0].id, count: QUEUED });
    await page.evaluate(() => (window as any).raw.registerSync());
    const heap = await workerHeap(page);
    await heap.collect();
    const before = await heap.used();

    const started = performance.now();
    await device.context.setOffline(false); // Background Sync fires; the worker drains over HTTP
    let peak = before;
    const sampler = setInterval(() => void heap.used().then((used) => (peak = Math.max(peak, used)), () => {}), 100);
    try {
      await until('every op on the server', async () => (await ledgerCount(server, deviceId)) === QUEUED, 120_000, 50);
      const onServer = performance.now() - started;
      await until('the outbox to empty', async () => (await page.evaluate(() => (window as any).raw.pending())) === 0, 30_000, 50);
      const drained = performance.now() - started;
      report(`worker drain of ${QUEUED} after reconnect: all on the server in ${onServer.toFixed(0)} ms, outbox empty in ${drained.toFixed(0)} ms (${Math.round(QUEUED / (drained / 1000))} ops/s)`);
    } finally {
      clearInterval(sampler);
    }
    await heap.collect();
    const after = await heap.used();
    report(`worker JS heap: ${(before / 1e6).toFixed(1)} MB before, peak ${(peak / 1e6).toFixed(1)} MB during the drain (garbage included), ${(after / 1e6).toFixed(1)} MB retained after`);
    expectGapless(await ledger(server, deviceId), QUEUED);
    // The worker holds one page of the outbox at a time: nothing of the 10,000 ops stays behind.
    expect(peak).toBeLessThan(48 * 1024 * 1024);
    expect(after - before).toBeLessThan(2 * 1024 * 1024);
  }, 180_000);

  test(`${QUEUED.toLocaleString('en')} queued ops drain over the page's socket, pipelined, once the server is back`, async () => {
    const device = await launch();
    const raw = await openRaw(device, server); // registers the worker; the ferry page below opts out of it
    const login = await rawSignIn(raw, 'cid');
    const app = await openApp(device, server, { swUrl: false }, await device.context.newPage());
    await app.evaluate(() => (window as any).ferry.signedIn());
    await until('the page socket', async () => (await status(app)).connected);
    const deviceId: string = await app.evaluate(() => (window as any).ferry.deviceId);
    // The worker must not drain this device: in this test the page is the drainer.
    await raw.evaluate(() => navigator.serviceWorker.getRegistrations().then((rs) => Promise.all(rs.map((r) => r.unregister()))));

    const port = new URL(server.base).port;
    await server.stop();
    await raw.evaluate(({ space, count }) => (window as any).raw.enqueue(count, 500, space), { space: login.spaces[0].id, count: QUEUED });
    server = await startAgain(server);
    expect(new URL(server.base).port).toBe(port);
    const started = performance.now();
    const connected = await until('the page to reconnect', async () => (await status(app)).connected && performance.now(), 30_000, 20);
    await until('every op on the server', async () => (await ledgerCount(server, deviceId)) === QUEUED, 120_000, 50);
    const done = performance.now();
    report(`page drain of ${QUEUED} over the socket: reconnected after ${(connected - started).toFixed(0)} ms, all on the server ${(done - connected).toFixed(0)} ms later (${Math.round(QUEUED / ((done - connected) / 1000))} ops/s)`);
    expectGapless(await ledger(server, deviceId), QUEUED);
    await until('the page to show synced', async () => (await status(app)).state === 'synced', 30_000);
  }, 180_000);
});
