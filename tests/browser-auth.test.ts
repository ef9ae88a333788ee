// DESIGN's 401 row in a real browser: the session expires server-side; the worker's next push gets
// 401, draining pauses with `auth-required`, every op stays on the device (also across a server
// restart, where the socket is refused with 4401), and signing in again from the page resumes.
// And the other way to authenticate: a bearer token the app holds, offered on the socket.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, expectGapless, ledger, ledgerCount, openApp, signIn, startAgain, startWebServer, status, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
let device: Device;

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('fay');
  device = await launchDevice();
}, 60_000);

afterAll(async () => {
  await device?.close();
  await server.stop();
  removeDir(server.dir);
});

describe('an expired session', () => {
  test('pauses with auth-required, keeps every op, and resumes after signing in again', async () => {
    const page = await openApp(device, server);
    const { spaces } = await signIn(page, 'fay');
    const space = spaces[0].id;
    const deviceId: string = await page.evaluate(() => (window as any).ferry.deviceId);
    const write = (from: number, count: number) => page.evaluate(({ space, from, count }) => {
      const items = (window as any).ferry.collection(space, 'items');
      return Promise.all(Array.from({ length: count }, (_, i) => items.put(`k${from + i}`, { n: from + i })));
    }, { space, from, count });

    await write(0, 3);
    await until('the first ops on the server', async () => (await ledgerCount(server, deviceId)) === 3);

    // The session ends on the server (expired, or revoked elsewhere).
    await server.database.client.execute('DELETE FROM sessions');
    await write(3, 5);
    const paused = await until('auth-required', async () => {
      const s = await status(page);
      return s.state === 'auth-required' ? s : null;
    });
    expect(paused.pending).toBe(5);
    expect(paused.lastError).toBeTruthy();
    expect(await ledgerCount(server, deviceId)).toBe(3);

    // Still paused across a server restart; the reconnecting socket is refused with 4401 now.
    await server.stop();
    server = await startAgain(server);
    await write(8, 2);
    await Bun.sleep(1500);
    const still = await status(page);
    expect(still).toMatchObject({ state: 'auth-required', pending: 7 });
    expect(await ledgerCount(server, deviceId)).toBe(3);

    // The person signs in again from the page: the cookie is set, Ferry is told, nothing was lost.
    await signIn(page, 'fay');
    await until('every op on the server', async () => (await ledgerCount(server, deviceId)) === 10, 20_000);
    expectGapless(await ledger(server, deviceId), 10);
    await until('synced again', async () => {
      const s = await status(page);
      return s.state === 'synced' && s.pending === 0 && s.connected;
    }, 20_000);
  }, 90_000);
});

describe('an app that authenticates with a bearer token', () => {
  test('drains from its page with the token; no cookie is ever set', async () => {
    const other = await launchDevice();
    try {
      const { token, space } = await server.user('gil');
      const page = await other.page();
      await page.goto(`${server.base}/test/app.html`);
      await page.waitForFunction(() => (window as any).ferryReady === true);
      await page.evaluate(async (token) => {
        const w = window as any;
        w.ferry = await w.Ferry.createFerry({ token: () => token });
      }, token);
      const deviceId: string = await page.evaluate(() => (window as any).ferry.deviceId);
      await until('the socket to open with the token', async () => (await status(page)).connected);
      await page.evaluate((space) => {
        const items = (window as any).ferry.collection(space, 'items');
        return Promise.all([1, 2, 3].map((n) => items.put(`t${n}`, { n })));
      }, space);
      await until('the ops on the server', async () => (await ledgerCount(server, deviceId)) === 3);
      await until('synced', async () => (await status(page)).state === 'synced');
      // No session cookie was ever set: the pushes carried the token.
      expect(await other.context.cookies()).toEqual([]);
    } finally {
      await other.close();
    }
  }, 60_000);
});
