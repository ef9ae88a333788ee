// Device scenarios about getting changes to the server (invariant 1, DESIGN's wake-ups): writes kept
// through an outage and a reload with no server, a browser closed mid-drain, and what the status says
// of where unsent changes wait. Outages stop the server itself: Firefox's offline emulation does not
// stop its worker's requests, and a stopped server is the same outage for every engine.
import { expect } from 'bun:test';
import { expectGapless, ledger, ledgerCount, until } from '../ferry-page.ts';
import { deviceId, openFerry, openRaw, putMany, rawSignIn, rows, signIn, startFerry, status, statusUntil } from './app.ts';
import { refusePushesAfter, type Scenario } from './context.ts';

/** Every op applied, seqs 1..n. */
async function allApplied(server: Parameters<typeof ledger>[0], device: string, n: number, ms: number) {
  const all = await until(`${n} ops on the server`, async () => {
    const found = await ledger(server, device);
    return found.length >= n ? found : null;
  }, ms);
  expectGapless(all, n);
  expect(all.every((row) => row.result === 'applied')).toBe(true);
}

export const offlineReload: Scenario = {
  name: () => 'writes made while the server is away survive a reload with no server (shell and data from the device) and reach it once it is back',
  timeoutMs: 150_000,
  async run(ctx) {
    let server = await ctx.server();
    await server.user('ann');
    const tab = await (await ctx.launch()).tab();
    await openFerry(tab, server.base);
    // A load the worker controls: it keeps this page for offline starts, as it does the demo's.
    await tab.reload();
    await startFerry(tab);
    const space = (await signIn(tab, 'ann')).spaces[0].id;
    const id = await deviceId(tab);
    await putMany(tab, space, 0, 1);
    await statusUntil(tab, 'the first write acked', (s) => s.state === 'synced' && s.pending === 0);

    await server.stop();
    await putMany(tab, space, 1, 5);
    // The truth, not "syncing" forever: once the tries fail, the status says so.
    const away = await statusUntil(tab, 'the status to say sending fails', (s) => s.state === 'failing' && s.pending === 5, 60_000);
    expect(away.lastError).toBeTruthy();

    await tab.reload(); // no server: the page and the library come from the worker's cache
    await startFerry(tab);
    const local = await rows(tab, space);
    expect(local.map((row) => [row.key, row.pending]).sort()).toEqual([
      ['k0', false], ['k1', true], ['k2', true], ['k3', true], ['k4', true], ['k5', true],
    ]);
    expect((await status(tab)).pending).toBe(5);

    server = await ctx.restart(server);
    const back = Date.now();
    await allApplied(server, id, 6, 90_000);
    ctx.note('delivered after the server came back (page open)', Date.now() - back);
    await statusUntil(tab, 'synced again', (s) => s.state === 'synced' && s.pending === 0, 60_000);
    expect((await rows(tab, space)).every((row) => !row.pending)).toBe(true);
  },
};

const OPS = 3000;
const KEYS = 1000;

export const closedMidDrain: Scenario = {
  name: () => `the browser closed mid-drain and reopened on its profile: none of ${OPS.toLocaleString('en')} ops lost or doubled`,
  timeoutMs: 180_000,
  async run(ctx) {
    // The first batch goes through; the rest are refused (the worker backs off) until the browser is gone.
    const hold = refusePushesAfter(1);
    const server = await ctx.server(hold.deps);
    await server.user('dan');
    const first = await ctx.launch();
    const raw = await first.tab();
    await openRaw(raw, server.base);
    const space = (await rawSignIn(raw, 'dan')).spaces[0].id;
    const id = await raw.run(() => (window as any).raw.deviceId() as Promise<string>);
    // Op i puts { n: i } at k<i mod 1000>: the last write of key k<j> is op 2000 + j.
    await raw.run(({ space, ops, keys }: { space: string; ops: number; keys: number }) =>
      (window as any).raw.enqueue(ops, 500, space, 0, keys), { space, ops: OPS, keys: KEYS });
    // Woken by a message in every engine: a Background Sync event in progress held Chromium's shutdown
    // for about 30 s here, which would only slow the run.
    await raw.run(() => (window as any).raw.messageWorker());

    await until('the first batch to commit', async () => (await ledgerCount(server, id)) > 0, 30_000, 5);
    await first.close();
    const atClose = await ledgerCount(server, id);
    expect(atClose).toBeGreaterThan(0);
    expect(atClose).toBeLessThan(OPS); // the drain really was cut short
    hold.release();

    const tab = await (await ctx.launch(first.profile)).tab();
    const reopened = Date.now();
    await openFerry(tab, server.base); // the person opens the app again; nothing else is asked
    expect(await deviceId(tab)).toBe(id);
    await allApplied(server, id, OPS, 120_000);
    ctx.note('rest of a cut drain (2,500 ops) delivered after the app was opened again', Date.now() - reopened);
    await statusUntil(tab, 'the outbox to empty', (s) => s.pending === 0, 60_000);

    const entities = await server.database.client.execute({
      sql: "SELECT key, value FROM entities WHERE space = ? AND collection = 'items' ORDER BY key", args: [space],
    });
    const onServer = Object.fromEntries(entities.rows.map((row) => [String(row.key), JSON.parse(String(row.value))]));
    const expected = Object.fromEntries(Array.from({ length: KEYS }, (_, j) => [`k${j}`, { n: OPS - KEYS + j }]));
    expect(onServer).toEqual(expected);
    const local = await rows(tab, space);
    expect(local.every((row) => !row.pending)).toBe(true);
    expect(Object.fromEntries(local.map((row) => [row.key, row.value]))).toEqual(expected);
  },
};

export const whereChangesWait: Scenario = {
  // The name says what this engine offers and lacks, which decides each expectation below.
  name: ({ limits }) => 'the status says where unsent changes wait: '
    + (limits.backgroundSync ? 'sent in the background (Background Sync)' : 'sent when Ferry is next open (no Background Sync)')
    + ', in storage '
    + (limits.persistGranted === true ? 'kept once the browser grants persist()'
      : limits.persistGranted === false ? 'the browser may clear (persist() refused): at risk'
        : 'the browser cannot report (no StorageManager): at risk'),
  timeoutMs: 120_000,
  async run(ctx) {
    const { limits } = ctx.engine;
    let server = await ctx.server();
    await server.user('ivy');
    const tab = await (await ctx.launch()).tab();
    await openFerry(tab, server.base);
    const space = (await signIn(tab, 'ivy')).spaces[0].id;
    const id = await deviceId(tab);
    const browserSays = () => tab.run(async () => (navigator.storage ? navigator.storage.persisted() : null));

    const online = await statusUntil(tab, 'synced', (s) => s.state === 'synced');
    // An ordinary page load online asks nothing: the status reports what the browser says.
    expect(online.storage.persisted).toBe(await browserSays());
    if (limits.persistGranted !== null) expect(online.storage.persisted).toBe(false);
    expect(online.storage.usage === null).toBe(limits.persistGranted === null);
    expect(online.unsentAtRisk).toBe(false);
    expect(online.delivery).toBe(limits.backgroundSync ? 'background' : 'when-open');

    await server.stop();
    await statusUntil(tab, 'the socket to notice', (s) => !s.connected);
    await putMany(tab, space, 0, 2); // the first offline write: the moment to ask the browser to keep storage
    const kept = await statusUntil(tab, 'the browser\'s answer in the status', (s) =>
      s.pending === 2 && s.storage.persisted === limits.persistGranted);
    expect(await browserSays()).toBe(limits.persistGranted);
    // Unsent changes in storage the browser may clear are flagged for the person.
    expect(kept.unsentAtRisk).toBe(limits.persistGranted !== true);
    if (limits.persistGranted !== null) expect(kept.storage.usage).toBeGreaterThan(0);
    // Without Background Sync, closed Ferry sends nothing: the status says they go when it is next open.
    expect(kept.delivery).toBe(limits.backgroundSync ? 'background' : 'when-open');

    server = await ctx.restart(server);
    await allApplied(server, id, 2, 90_000);
    const sent = await statusUntil(tab, 'synced again', (s) => s.state === 'synced' && s.pending === 0, 60_000);
    expect(sent.unsentAtRisk).toBe(false);
  },
};
