// Invariants 2 and 3 across tabs, in Chromium: two tabs of one device that drain from their pages (no
// Service Worker) writing at the same moment take gapless, unique seqs (minted inside the write's
// IndexedDB transaction), and the Web Lock leaves one drainer between the pages, so no batch is ever
// sent twice; and one tab's write reaches the other's live query. (The same with the worker draining is
// a device scenario every engine runs: tests/support/scenarios/people.ts.)
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Page } from 'playwright-core';
import { launchDevice, type Device } from './support/browser.ts';
import { buildWeb, expectGapless, ledger, metric, openApp, signIn, startWebServer, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
const devices: Device[] = [];

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('bea');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  await server.stop();
  removeDir(server.dir);
});

/** Each tab writes `count` ops as fast as it can, both starting together; resolves when both are done. */
async function writeTogether(tabs: Page[], space: string, count: number): Promise<void> {
  await Promise.all(tabs.map((tab, t) => tab.evaluate(async ({ space, count, t }) => {
    const items = (window as any).ferry.collection(space, 'items');
    // Unawaited one by one: every put is its own transaction, racing the other tab's for the counter.
    await Promise.all(Array.from({ length: count }, (_, i) => items.put(`t${t}-${i}`, { tab: t, i })));
  }, { space, count, t })));
}

async function twoTabs(swUrl?: false): Promise<{ tabs: Page[]; space: string; deviceId: string }> {
  const device = await launchDevice();
  devices.push(device);
  const first = await openApp(device, server, swUrl === false ? { swUrl } : {});
  const { spaces } = await signIn(first, 'bea');
  const second = await openApp(device, server, swUrl === false ? { swUrl } : {}, await device.context.newPage());
  await second.evaluate(() => (window as any).ferry.signedIn());
  const deviceId: string = await first.evaluate(() => (window as any).ferry.deviceId);
  expect(await second.evaluate(() => (window as any).ferry.deviceId)).toBe(deviceId);
  return { tabs: [first, second], space: spaces[0].id, deviceId };
}

describe('two tabs of one device', () => {
  for (const mode of ['page'] as const) {
    test(`write at once: seqs 1..N each once, one drainer (drained by the ${mode})`, async () => {
      const duplicatesBefore = await metric(server, 'ferry_ops_duplicate_total');
      const refusedBefore = await metric(server, 'ferry_batches_refused_total');
      const { tabs, space, deviceId } = await twoTabs(mode === 'page' ? false : undefined);
      const perTab = 300;
      await writeTogether(tabs, space, perTab);

      const rows = await until('every op on the server', async () => {
        const rows = await ledger(server, deviceId);
        return rows.length >= 2 * perTab ? rows : null;
      }, 30_000);
      expectGapless(rows, 2 * perTab);
      expect(rows.every((row) => row.result === 'applied')).toBe(true);
      // Two drainers would have sent some batch twice (answered `duplicate`) or raced into a seq_gap.
      expect(await metric(server, 'ferry_ops_duplicate_total')).toBe(duplicatesBefore);
      expect(await metric(server, 'ferry_batches_refused_total')).toBe(refusedBefore);

      // Each tab's live query sees both tabs' writes, acknowledged.
      for (const tab of tabs) {
        await until('the tab to see every row acked', () => tab.evaluate(async (space) => {
          const rows = await (window as any).ferry.collection(space, 'items').all();
          return rows.length === 600 && rows.every((row: any) => !row.pending);
        }, space));
        await until('the tab to show synced', async () => {
          const status = await tab.evaluate(() => (window as any).ferry.status());
          return status.state === 'synced' && status.pending === 0 ? status : null;
        }, 10_000);
      }
    }, 60_000);
  }

  test('a write in one tab reaches the other tab\'s live query', async () => {
    const { tabs, space } = await twoTabs();
    await tabs[1]!.evaluate((space) => {
      const w = window as any;
      w.seen = [];
      w.ferry.collection(space, 'notes').subscribe((rows: any[]) => w.seen.push(rows.map((row) => `${row.key}:${row.pending}`)));
    }, space);
    await tabs[0]!.evaluate((space) => (window as any).ferry.collection(space, 'notes').put('n1', { text: 'hi' }), space);
    // First pending (the other tab's write), then acknowledged once the worker's ack lands.
    await until('the other tab to see n1 pending', () => tabs[1]!.evaluate(() => (window as any).seen.some((s: string[]) => s.includes('n1:true'))));
    await until('the other tab to see n1 acked', () => tabs[1]!.evaluate(() => (window as any).seen.at(-1)?.includes('n1:false')));
  }, 60_000);
});
