// Device scenarios about people and their devices: two tabs writing at once (invariants 2 and 3: gapless
// seqs, one drainer), a second device seeing changes live, converging and catching up (4), a session
// that expires (the 401 row: every op kept, sending resumes after sign-in), and an op the server refuses
// for good (7: a dead letter with retry and discard).
import { expect } from 'bun:test';
import * as v from 'valibot';
import type { Tab } from '../engines/types.ts';
import { expectGapless, ledger, ledgerCount, metric, until } from '../ferry-page.ts';
import { recordingAuth } from '../server.ts';
import { deviceId, drains, openFerry, putMany, recordDrains, rows, signIn, status, statusUntil } from './app.ts';
import type { Scenario } from './context.ts';

const GO = 'ferry-test-go';

export const twoTabs: Scenario = {
  name: () => 'two tabs writing at once: seqs 1..N each once, one drainer',
  timeoutMs: 150_000,
  async run(ctx) {
    const server = await ctx.server();
    await server.user('bea');
    const browser = await ctx.launch();
    const first = await browser.tab();
    await openFerry(first, server.base);
    const space = (await signIn(first, 'bea')).spaces[0].id;
    const second = await browser.newTab();
    await openFerry(second, server.base);
    await second.run(() => (window as any).ferry.signedIn());
    const id = await deviceId(first);
    expect(await deviceId(second)).toBe(id);
    const duplicates = await metric(server, 'ferry_ops_duplicate_total');
    const refused = await metric(server, 'ferry_batches_refused_total');

    // Both tabs wait for one "go" on a channel, so their writes race in the browser whichever order the
    // driver runs its scripts in. Every put is its own transaction, racing the other tab's for the seq.
    const perTab = 300;
    const tabs: Tab[] = [first, second];
    for (const [t, tab] of tabs.entries()) {
      await tab.run(({ space, count, t, channel }: { space: string; count: number; t: number; channel: string }) => {
        const w = window as any;
        const go = new BroadcastChannel(channel);
        w.writes = new Promise<string>((resolve) => {
          go.onmessage = () => {
            go.close();
            const items = w.ferry.collection(space, 'items');
            Promise.all(Array.from({ length: count }, (_, i) => items.put(`t${t}-${i}`, { tab: t, i })))
              .then(() => resolve('ok'), (error) => resolve(String(error)));
          };
        });
      }, { space, count: perTab, t, channel: GO });
    }
    await first.run((channel: string) => {
      const go = new BroadcastChannel(channel);
      go.postMessage('go');
      go.close();
    }, GO);
    for (const tab of tabs) expect(await tab.run(() => (window as any).writes as Promise<string>)).toBe('ok');

    const all = await until('every op on the server', async () => {
      const found = await ledger(server, id);
      return found.length >= 2 * perTab ? found : null;
    }, 90_000);
    expectGapless(all, 2 * perTab);
    expect(all.every((row) => row.result === 'applied')).toBe(true);
    // Two drainers would have sent some batch twice (answered `duplicate`) or raced into a seq_gap.
    expect(await metric(server, 'ferry_ops_duplicate_total')).toBe(duplicates);
    expect(await metric(server, 'ferry_batches_refused_total')).toBe(refused);
    for (const tab of tabs) {
      await until('the tab to see every row acked', async () => {
        const seen = await rows(tab, space);
        return seen.length === 2 * perTab && seen.every((row) => !row.pending);
      }, 30_000);
      await statusUntil(tab, 'the tab to show synced', (s) => s.state === 'synced' && s.pending === 0);
    }
  },
};

/** A device of `name` on its own browser, syncing its first space, with its live query in `window.seen`. */
async function liveDevice(ctx: Parameters<Scenario['run']>[0], base: string, name: string): Promise<{ tab: Tab; space: string }> {
  const tab = await (await ctx.launch()).tab();
  await openFerry(tab, base);
  const space = (await signIn(tab, name)).spaces[0].id;
  await tab.run((space: string) => {
    const w = window as any;
    w.seen = {};
    w.ferry.sync([space]);
    w.ferry.collection(space, 'items').subscribe((found: any[]) => {
      w.seen = Object.fromEntries(found.map((row) => [row.key, row.value]));
    });
  }, space);
  await statusUntil(tab, 'the device to be synced', (s) => s.state === 'synced');
  return { tab, space };
}

const seen = (tab: Tab) => tab.run(() => (window as any).seen as Record<string, any>);
const edit = (tab: Tab, kind: 'put' | 'patch', space: string, key: string, value: unknown) =>
  tab.run(({ kind, space, key, value }: { kind: string; space: string; key: string; value: unknown }) =>
    (window as any).ferry.collection(space, 'items')[kind](key, value), { kind, space, key, value });

export const secondDevice: Scenario = {
  name: () => 'a second device sees changes live both ways, converges on concurrent edits, and catches up after the server was away',
  timeoutMs: 150_000,
  async run(ctx) {
    let server = await ctx.server();
    await server.user('eve');
    const a = await liveDevice(ctx, server.base, 'eve');
    const b = await liveDevice(ctx, server.base, 'eve');
    const space = a.space;
    expect(await deviceId(a.tab)).not.toBe(await deviceId(b.tab));
    const started = Date.now();
    await edit(a.tab, 'put', space, 'bread', { title: 'Bread', done: false });
    await until('device B to see bread', async () => (await seen(b.tab)).bread, 30_000);
    ctx.note('one device\'s write seen live on the other', Date.now() - started);
    expect((await seen(b.tab)).bread).toEqual({ title: 'Bread', done: false });
    await edit(b.tab, 'patch', space, 'bread', { done: true });
    await until('device A to see bread done', async () => (await seen(a.tab)).bread?.done === true, 30_000);

    // Concurrent edits of one entity: fields written by one side are both kept, the field both wrote
    // has one winner, and both devices and the server agree on it.
    await edit(a.tab, 'put', space, 'jam', { title: 'Jam', qty: 1 });
    await until('B to see jam', async () => (await seen(b.tab)).jam, 30_000);
    await Promise.all([
      edit(a.tab, 'patch', space, 'jam', { qty: 2, note: 'from A' }),
      edit(b.tab, 'patch', space, 'jam', { qty: 3, shop: 'from B' }),
    ]);
    const state = await until('both devices and the server to agree', async () => {
      const [x, y] = [(await seen(a.tab)).jam, (await seen(b.tab)).jam];
      const row = await server.database.client.execute("SELECT value FROM entities WHERE key = 'jam'");
      const onServer = JSON.parse(String(row.rows[0]!.value));
      return Bun.deepEquals(x, y) && Bun.deepEquals(x, onServer) && x.note && x.shop ? x : null;
    }, 30_000);
    expect(state).toMatchObject({ title: 'Jam', note: 'from A', shop: 'from B' });
    expect([2, 3]).toContain(state.qty);

    // The server goes away: both sockets drop; A writes meanwhile; both reconnect and catch up.
    await server.stop();
    for (const { tab } of [a, b]) await statusUntil(tab, 'the device to notice the socket is gone', (s) => !s.connected);
    await edit(a.tab, 'put', space, 'eggs', { title: 'Eggs' });
    expect((await status(a.tab)).pending).toBe(1);
    server = await ctx.restart(server);
    await until('B to see eggs', async () => (await seen(b.tab)).eggs, 60_000);
    for (const { tab } of [a, b]) await statusUntil(tab, 'the device to be synced again', (s) => s.state === 'synced', 60_000);
  },
};

export const expiredSession: Scenario = {
  name: () => 'an expired session pauses with auth-required, keeps every op (across a server restart too), and resumes after signing in again',
  timeoutMs: 150_000,
  async run(ctx) {
    let server = await ctx.server();
    await server.user('fay');
    const tab = await (await ctx.launch()).tab();
    await openFerry(tab, server.base);
    const space = (await signIn(tab, 'fay')).spaces[0].id;
    const id = await deviceId(tab);
    await putMany(tab, space, 0, 3);
    await until('the first ops on the server', async () => (await ledgerCount(server, id)) === 3);

    // The session ends on the server (expired, or revoked elsewhere).
    await server.database.client.execute('DELETE FROM sessions');
    await recordDrains(tab);
    await putMany(tab, space, 3, 5);
    const paused = await statusUntil(tab, 'auth-required', (s) => s.state === 'auth-required');
    expect(paused).toMatchObject({ errorKind: 'auth_required' });
    expect(paused.lastError).toBeTruthy();
    // The drain woken by the last write saw all five and stayed paused: nothing else would send them.
    await until('a drain to see all five ops and stay paused', async () =>
      (await drains(tab)).some((d) => d.phase === 'paused-auth' && d.pending === 5));
    expect(await status(tab)).toMatchObject({ state: 'auth-required', pending: 5 });
    expect(await ledgerCount(server, id)).toBe(3);

    // Still paused across a server restart, where the reconnecting socket is refused (4401) now.
    await recordDrains(tab);
    await server.stop();
    const auth = recordingAuth();
    server = await ctx.restart(server, auth.deps);
    await putMany(tab, space, 8, 2);
    // Both ways the ops could leave have had their chance: the restarted server refused the page's
    // reconnecting socket (a welcome would have resumed the drain), and the drain woken by these
    // writes saw all seven ops and stayed paused.
    await until('the restarted server to refuse the socket', () => auth.seen.some((r) => r.path === '/v1/sync' && r.user === null), 60_000);
    await until('a drain to see all seven ops and stay paused', async () =>
      (await drains(tab)).some((d) => d.phase === 'paused-auth' && d.pending === 7));
    expect(await status(tab)).toMatchObject({ state: 'auth-required', pending: 7 });
    // Nothing but socket handshakes reached the restarted server, and it let none in: no push was tried.
    expect(auth.seen.filter((r) => r.path !== '/v1/sync' || r.user !== null)).toEqual([]);
    expect(await ledgerCount(server, id)).toBe(3);

    const signedIn = Date.now();
    await signIn(tab, 'fay');
    await until('every op on the server', async () => (await ledgerCount(server, id)) === 10, 30_000);
    ctx.note('kept ops delivered after signing in again', Date.now() - signedIn);
    expectGapless(await ledger(server, id), 10);
    await statusUntil(tab, 'synced again', (s) => s.state === 'synced' && s.pending === 0 && s.connected);
  },
};

export const deadLetter: Scenario = {
  name: () => 'a rejected op becomes a dead letter with the reason, can be retried, and can be discarded',
  timeoutMs: 90_000,
  async run(ctx) {
    const server = await ctx.server({ collections: { items: v.object({ title: v.string() }) } });
    await server.user('gus');
    const tab = await (await ctx.launch()).tab();
    await openFerry(tab, server.base);
    const space = (await signIn(tab, 'gus')).spaces[0].id;
    const id = await deviceId(tab);
    await tab.run(async (space: string) => {
      const items = (window as any).ferry.collection(space, 'items');
      await items.put('good', { title: 'fine' });
      await items.put('bad', { title: 42 }); // the page has no schema; the server's says title is a string
      await items.put('after', { title: 'also fine' });
    }, space);

    const processed = await until('three ops processed', async () => {
      const found = await ledger(server, id);
      return found.length === 3 ? found : null;
    });
    expect(processed.map((row) => [row.seq, row.result, row.code])).toEqual([[1, 'applied', null], [2, 'rejected', 'invalid'], [3, 'applied', null]]);
    const deadLetters = () => tab.run(() => (window as any).ferry.deadLetters() as Promise<any[]>);
    const dead = await until('the dead letter on the device', async () => {
      const found = await deadLetters();
      return found.length === 1 ? found : null;
    });
    expect(dead[0]).toMatchObject({ seq: 2, code: 'invalid', op: { key: 'bad', value: { title: 42 } } });
    expect(dead[0].message).toContain('title');
    await statusUntil(tab, 'the status to count it', (s) => s.deadLetters === 1 && s.pending === 0 && s.state === 'synced');
    // The rejected put's optimistic entity is gone; the ops around it are in.
    expect((await rows(tab, space)).map((row) => row.key).sort()).toEqual(['after', 'good']);

    // Retry sends the same content as a new op (seq 4): rejected again, so a dead letter again.
    await tab.run(() => (window as any).ferry.retry(2));
    const again = await until('the retried op to be rejected again', async () => {
      const found = await deadLetters();
      return found.length === 1 && found[0].seq === 4 ? found : null;
    });
    expect(again[0].code).toBe('invalid');
    await tab.run(() => (window as any).ferry.discard(4));
    expect(await deadLetters()).toEqual([]);
    await statusUntil(tab, 'the status to drop it', (s) => s.deadLetters === 0);
    expect((await ledger(server, id)).map((row) => row.seq)).toEqual([1, 2, 3, 4]);
  },
};
