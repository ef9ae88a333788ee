// The React hooks (client/react.ts) in a real Chromium page: the list, one entity and the status follow the
// local replica live — a write in this page, a change from another device — and a component re-renders only
// when what it shows changed.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, startWebServer, until } from './support/ferry-page.ts';
import { push, removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
let device: Device;
let user: { id: string; token: string; space: string };

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  user = await server.user('rea');
  device = await launchDevice();
}, 60_000);
afterAll(async () => {
  await device?.close();
  await server.stop();
  removeDir(server.dir);
});

test('useCollection, useEntity and useFerryStatus follow local writes and other devices live', async () => {
  const page = await device.page();
  await page.goto(`${server.base}/test/react.html`);
  await page.waitForFunction(() => (window as any).reactReady === true);
  const space = await page.evaluate(() => (window as any).start('rea'));
  expect(space).toBe(user.space);
  await until('the entity read (absent)', async () => (await page.textContent('#milk')) === 'none');
  await until('synced', async () => (await page.textContent('#state')) === 'synced');

  await page.evaluate(() => (window as any).ferry.collection((window as any).space, 'items').put('milk', { title: 'Milk' }));
  await until('the local write shown', async () => (await page.textContent('#milk')) === 'Milk');
  expect(await page.$$eval('#items li', (els) => els.map((e) => e.textContent))).toEqual(['Milk']);

  // Another device writes: the list follows over the socket, no reload.
  const op = { id: 'other:1', device: 'other-device', seq: 1, lamport: 1_000, space, collection: 'items', key: 'eggs', kind: 'put', value: { title: 'Eggs' }, at: 0 };
  expect((await push(server.base, user.token, 'other-device', [op as never])).status).toBe(200);
  await until('the other device\'s item shown', async () => (await page.$$eval('#items li', (els) => els.length)) === 2);
  await until('synced again', async () => (await page.textContent('#state')) === 'synced' && (await page.textContent('#pending')) === '0');

  // A sync that changes nothing (the engine re-reads the outbox and the drain state, and says so) re-renders
  // no data, and the status only for news (a ping's new round trip may be some): never the same status twice.
  const renders = await page.evaluate(() => (window as any).renders);
  const seen = await page.evaluate(() => (window as any).statuses.length);
  await page.evaluate(() => (window as any).ferry.syncNow());
  expect(await page.evaluate(() => (window as any).renders)).toBe(renders);
  const statuses: string[] = await page.evaluate(() => (window as any).statuses);
  for (let i = Math.max(1, seen); i < statuses.length; i++) expect(statuses[i]).not.toBe(statuses[i - 1]);
}, 60_000);
