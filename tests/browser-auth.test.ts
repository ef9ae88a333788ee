// The other way to authenticate, in Chromium: a bearer token the app holds, offered on the socket, with
// its pages draining. (An expired session, DESIGN's 401 row, is a device scenario every engine runs:
// tests/support/scenarios/people.ts.)
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { launchDevice } from './support/browser.ts';
import { buildWeb, ledgerCount, startWebServer, status, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
}, 60_000);

afterAll(async () => {
  await server.stop();
  removeDir(server.dir);
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
