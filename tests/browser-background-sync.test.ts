// Invariant 1 and DESIGN's write path in a real Chromium: an op written offline reaches the server
// once the network is back, carried by the Service Worker's Background Sync; also when the browser
// fires the sync event itself (CDP), and with no page open at all.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { dispatchSync, launchDevice, type Device } from './support/browser.ts';
import { SYNC_TAG } from '../schema/protocol.ts';
import { buildWeb, expectGapless, ledger, ledgerCount, openApp, openRaw, rawSignIn, signIn, startWebServer, status, until, workerState } from './support/ferry-page.ts';
import { recordingAuth, removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
// Every request the server authenticated: a push that reached it shows here even when it was refused.
const auth = recordingAuth();
const pushesSince = (mark: number) => auth.seen.slice(mark).filter((r) => r.path === '/v1/push');
const devices: Device[] = [];
const launch = async () => {
  const device = await launchDevice();
  devices.push(device);
  return device;
};

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer(auth.deps);
  await server.user('ann');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

describe('Background Sync', () => {
  test('an op written offline reaches the server after going online, with no tab interaction', async () => {
    const device = await launch();
    const page = await openApp(device, server);
    const { spaces } = await signIn(page, 'ann');
    const space = spaces[0]!.id;
    const deviceId: string = await page.evaluate(() => (window as any).ferry.deviceId);

    await device.context.setOffline(true);
    await until('the page to see it is offline', async () => (await status(page)).state === 'offline');
    const offline = auth.seen.length;
    await page.evaluate((s) => (window as any).ferry.collection(s, 'items').put('milk', { title: 'Milk' }), space);
    expect(await status(page)).toMatchObject({ state: 'offline', pending: 1 });
    // The write's wake-up has had its chance: it went to Background Sync, where the browser holds it
    // for the network, and no drain is running or waiting to.
    await until('the wake-up to wait in Background Sync', async () => {
      const worker = await workerState(device, server);
      return worker.tags.includes(SYNC_TAG) && !worker.draining;
    });
    expect(await ledgerCount(server, deviceId)).toBe(0);
    expect(pushesSince(offline)).toEqual([]);

    // From here the test only watches the server: nothing is clicked or evaluated in the tab.
    await device.context.setOffline(false);
    const rows = await until('the op on the server', async () => {
      const rows = await ledger(server, deviceId);
      return rows.length === 1 ? rows : null;
    });
    expect(rows).toEqual([{ seq: 1, result: 'applied', code: null }]);
    const settled = await until('the page to show synced', async () => {
      const s = await status(page);
      return s.state === 'synced' && s.pending === 0 ? s : null;
    });
    expect(settled.lastAckAt).toBeGreaterThan(0);
    const row = await page.evaluate((s) => (window as any).ferry.collection(s, 'items').get('milk'), space);
    expect(row).toEqual({ key: 'milk', value: { title: 'Milk' }, pending: false });
  }, 60_000);

  test('the worker alone carries it: registered offline, tab closed, browser back online', async () => {
    const device = await launch();
    const page = await openRaw(device, server);
    // The cookie is the profile's, so the worker's pushes carry it.
    const login = await rawSignIn(page, 'ann');
    const deviceId: string = await page.evaluate(() => (window as any).raw.deviceId());
    await device.context.setOffline(true);
    const offline = auth.seen.length;
    await page.evaluate((space) => (window as any).raw.enqueue(3, 1, space), login.spaces[0].id);
    await page.evaluate(() => (window as any).raw.registerSync());
    await page.close(); // no page: no online listener, no timer, no socket
    expect(device.context.pages()).toEqual([]);
    // Asked directly, the worker still has the registration waiting and no drain running: the tab's
    // closing lost nothing, and the browser holds the sync event for the network.
    await until('the registration to outlive the tab', async () => {
      const worker = await workerState(device, server);
      return worker.tags.includes(SYNC_TAG) && !worker.draining;
    });
    expect(await ledgerCount(server, deviceId)).toBe(0);
    expect(pushesSince(offline)).toEqual([]);

    await device.context.setOffline(false);
    const rows = await until('three ops on the server', async () => {
      const rows = await ledger(server, deviceId);
      return rows.length === 3 ? rows : null;
    });
    expectGapless(rows, 3);
  }, 60_000);

  test('a sync event the browser dispatches (CDP ServiceWorker.dispatchSyncEvent) drains the outbox', async () => {
    const device = await launch();
    const page = await openRaw(device, server);
    const login = await rawSignIn(page, 'ann');
    const deviceId: string = await page.evaluate(() => (window as any).raw.deviceId());
    await device.context.setOffline(true);
    await until('the worker to see it is offline', async () => !(await workerState(device, server)).online);
    const offline = auth.seen.length;
    await page.evaluate((space) => (window as any).raw.enqueue(5, 5, space), login.spaces[0].id);
    await device.context.setOffline(false);
    // Nothing registered a sync and nothing messages the worker: the ops just wait. The network's
    // return has reached the worker, and the browser has no sync to fire for it, nor is any drain
    // running or waiting to: nothing is left that could carry them.
    const idle = await until('the worker to be online with nothing to do', async () => {
      const worker = await workerState(device, server);
      return worker.online && !worker.draining ? worker : null;
    });
    expect(idle.tags).toEqual([]);
    expect(await ledgerCount(server, deviceId)).toBe(0);
    expect(pushesSince(offline)).toEqual([]);
    expect(await page.evaluate(() => (window as any).raw.pending())).toBe(5);

    await dispatchSync(page, server.base, 'ferry:drain');
    const rows = await until('five ops on the server', async () => {
      const rows = await ledger(server, deviceId);
      return rows.length === 5 ? rows : null;
    });
    expectGapless(rows, 5);
    await until('the outbox to empty', async () => (await page.evaluate(() => (window as any).raw.pending())) === 0);
  }, 60_000);
});
