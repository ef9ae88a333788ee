// Invariant 7 end to end: an op that breaks the server's collection schema is rejected for good (its
// seq consumed, the ops behind it flowing), shows up as a dead letter with the server's reason, its
// optimistic effect is undone, and the person can retry (a new op) or discard it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, ledger, openApp, signIn, startWebServer, status, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
let device: Device;

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer({ collections: { items: v.object({ title: v.string() }) } });
  await server.user('gus');
  device = await launchDevice();
}, 60_000);

afterAll(async () => {
  await device?.close();
  await server.stop();
  removeDir(server.dir);
});

describe('a rejected op', () => {
  test('becomes a dead letter with the reason, can be retried, and can be discarded', async () => {
    const page = await openApp(device, server);
    const { spaces } = await signIn(page, 'gus');
    const space = spaces[0].id;
    const deviceId: string = await page.evaluate(() => (window as any).ferry.deviceId);
    await page.evaluate(async (space) => {
      const items = (window as any).ferry.collection(space, 'items');
      await items.put('good', { title: 'fine' });
      await items.put('bad', { title: 42 }); // the page has no schema; the server's says title is a string
      await items.put('after', { title: 'also fine' });
    }, space);

    const rows = await until('three ops processed', async () => {
      const rows = await ledger(server, deviceId);
      return rows.length === 3 ? rows : null;
    });
    expect(rows.map((row) => [row.seq, row.result, row.code])).toEqual([[1, 'applied', null], [2, 'rejected', 'invalid'], [3, 'applied', null]]);

    const dead = await until('the dead letter on the device', async () => {
      const dead = await page.evaluate(() => (window as any).ferry.deadLetters());
      return dead.length === 1 ? dead : null;
    });
    expect(dead[0]).toMatchObject({ seq: 2, code: 'invalid', op: { key: 'bad', value: { title: 42 } } });
    expect(dead[0].message).toContain('title');
    await until('the status to count it', async () => {
      const s = await status(page);
      return s.deadLetters === 1 && s.pending === 0 && s.state === 'synced';
    });
    // The rejected put's optimistic entity is gone; the ops around it are in.
    const keys = await page.evaluate(async (space) => ((await (window as any).ferry.collection(space, 'items').all()) as any[]).map((r) => r.key), space);
    expect(keys.sort()).toEqual(['after', 'good']);

    // Retry sends the same content as a new op (seq 4): rejected again, so it is a dead letter again.
    await page.evaluate(() => (window as any).ferry.retry(2));
    const again = await until('the retried op to be rejected again', async () => {
      const dead = await page.evaluate(() => (window as any).ferry.deadLetters());
      return dead.length === 1 && dead[0].seq === 4 ? dead : null;
    });
    expect(again[0].code).toBe('invalid');

    await page.evaluate(() => (window as any).ferry.discard(4));
    expect(await page.evaluate(() => (window as any).ferry.deadLetters())).toEqual([]);
    await until('the status to drop it', async () => (await status(page)).deadLetters === 0);
    expect((await ledger(server, deviceId)).map((row) => row.seq)).toEqual([1, 2, 3, 4]);
  }, 60_000);
});
