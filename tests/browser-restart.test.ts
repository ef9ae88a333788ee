// Invariant 1 across a closed browser: the worker is draining 3,000 ops when the whole browser goes
// away right after the first batch commits; relaunching the same profile and opening the app finishes
// the drain with every op on the server exactly once and the same state on both sides.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createAccounts } from '../server/accounts.ts';
import { builtInAuthenticate, type Authenticate } from '../server/auth.ts';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, expectGapless, ledger, ledgerCount, openApp, openRaw, rawSignIn, startWebServer, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

const OPS = 3000;
const KEYS = 1000;
let server: TestServer;
const devices: Device[] = [];

beforeAll(async () => {
  await buildWeb();
  // Each push waits a moment before it is authenticated, so the drain lasts long enough to be cut.
  let inner: Authenticate | null = null;
  const authenticate: Authenticate = async (request) => {
    if (new URL(request.url).pathname === '/v1/push') await Bun.sleep(250);
    inner ??= builtInAuthenticate(createAccounts(server.database.db), Date.now);
    return inner(request);
  };
  server = await startWebServer({ authenticate });
  await server.user('dan');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

describe('closing the browser mid-drain', () => {
  test(`relaunching the profile loses and doubles none of ${OPS.toLocaleString('en')} ops`, async () => {
    const first = await launchDevice();
    devices.push(first);
    const raw = await openRaw(first, server);
    const { spaces } = await rawSignIn(raw, 'dan');
    const space = spaces[0].id;
    const deviceId: string = await raw.evaluate(() => (window as any).raw.deviceId());
    await first.context.setOffline(true);
    // Op i puts { n: i } at k<i mod 1000>: the last write of key k<j> is op 2000 + j.
    await raw.evaluate(({ space, ops, keys }) => (window as any).raw.enqueue(ops, 500, space, 0, keys), { space, ops: OPS, keys: KEYS });
    await raw.evaluate(() => (window as any).raw.registerSync());
    await first.context.setOffline(false);

    await until('the first batch to commit', async () => (await ledgerCount(server, deviceId)) > 0, 20_000, 5);
    await first.close();
    const atClose = await ledgerCount(server, deviceId);
    expect(atClose).toBeGreaterThan(0);
    expect(atClose).toBeLessThan(OPS); // the drain really was cut short

    const again = await launchDevice(first.profile);
    devices.push(again);
    const page = await openApp(again, server); // the person opens the app again; nothing else is asked
    expect(await page.evaluate(() => (window as any).ferry.deviceId)).toBe(deviceId);
    await until('every op on the server', async () => (await ledgerCount(server, deviceId)) === OPS, 60_000);
    await until('the outbox to empty', async () => (await page.evaluate(() => (window as any).ferry.status())).pending === 0, 30_000);

    const rows = await ledger(server, deviceId);
    expectGapless(rows, OPS);
    expect(rows.every((row) => row.result === 'applied')).toBe(true);
    const entities = await server.database.client.execute({
      sql: "SELECT key, value FROM entities WHERE space = ? AND collection = 'items' ORDER BY key", args: [space],
    });
    const onServer = Object.fromEntries(entities.rows.map((row) => [String(row.key), JSON.parse(String(row.value))]));
    const expected = Object.fromEntries(Array.from({ length: KEYS }, (_, j) => [`k${j}`, { n: OPS - KEYS + j }]));
    expect(onServer).toEqual(expected);
    // The device's replica holds the same state, nothing pending.
    const local = await page.evaluate((space) => (window as any).ferry.collection(space, 'items').all(), space);
    expect(local.every((row: any) => !row.pending)).toBe(true);
    expect(Object.fromEntries(local.map((row: any) => [row.key, row.value]))).toEqual(expected);
  }, 120_000);
});
