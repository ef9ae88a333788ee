// Embedders replace the built-in accounts with their own authenticate(request) hook and mount Ferry
// inside their own Elysia app; every other check (membership, device binding) still applies.
import { afterAll, expect, test } from 'bun:test';
import { Elysia } from 'elysia';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccounts } from '../server/accounts.ts';
import { createApp } from '../server/app.ts';
import { migrate, openDatabase } from '../server/storage/db.ts';
import { makeOps, removeDir } from './support/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-embed-'));
const database = await openDatabase(`file:${join(dir, 'ferry.db')}`);
await migrate(database.db);
const accounts = createAccounts(database.db);
const dana = await accounts.addUser('dana', 'unused-password', Date.now());
const host = new Elysia()
  .get('/host', () => 'the embedder\'s own route')
  .use(await createApp({
    db: database.db,
    // The embedder's session: a header its own gateway sets.
    authenticate: async (request) => (request.headers.get('x-gateway-user') === 'dana' ? { user: dana, via: 'custom' } : null),
  }))
  .listen({ hostname: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${host.server!.port}`;
afterAll(async () => {
  await host.stop(true);
  database.close();
  removeDir(dir);
});

test('the hook decides who is asking; membership is still checked', async () => {
  expect(await (await fetch(`${base}/host`)).text()).toContain('embedder');
  const push = (headers: Record<string, string>, space: string) => fetch(`${base}/v1/push`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ protocol: 1, device: 'emb-1', ops: makeOps('emb-1', space, 1, 1) }),
  });
  expect((await push({}, `u:${dana.id}`)).status).toBe(401);
  const ok = await push({ 'x-gateway-user': 'dana' }, `u:${dana.id}`);
  expect(ok.status).toBe(200);
  expect(((await ok.json()) as any).results[0].result).toBe('applied');
  const other = await fetch(`${base}/v1/push`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-gateway-user': 'dana' },
    body: JSON.stringify({ protocol: 1, device: 'emb-1', ops: makeOps('emb-1', 'u:someone-else', 2, 1) }),
  });
  expect(((await other.json()) as any).results[0]).toMatchObject({ result: 'rejected', code: 'forbidden' });
});

test('the hook may vouch for a user Ferry has never seen: their rows and personal space are provisioned, once', async () => {
  const external = { id: 'sso|42', name: 'dana' }; // a name already taken by a built-in user
  const gateway = new Elysia().use(await createApp({
    db: database.db,
    authenticate: async (request) => (request.headers.get('x-sso') === '42' ? { user: external, via: 'custom' } : null),
  })).listen({ hostname: '127.0.0.1', port: 0 });
  try {
    const at = `http://127.0.0.1:${gateway.server!.port}`;
    const me = (await (await fetch(`${at}/v1/me`, { headers: { 'x-sso': '42' } })).json()) as any;
    expect(me.user).toEqual(external);
    expect(me.spaces).toEqual([{ id: 'u:sso|42', name: "dana's space", personal: true, role: 'owner' }]);
    for (let i = 1; i <= 2; i++) {
      const push = await fetch(`${at}/v1/push`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-sso': '42' },
        body: JSON.stringify({ protocol: 1, device: 'sso-dev', ops: makeOps('sso-dev', 'u:sso|42', i, 1) }),
      });
      expect(((await push.json()) as any).results[0].result).toBe('applied');
    }
    const rows = await database.client.execute({ sql: 'SELECT name, password_hash FROM users WHERE id = ?', args: [external.id] });
    expect(rows.rows.map((r) => [r[0], r[1]])).toEqual([['dana#sso|42', '!']]); // the taken name kept apart
    expect(await accounts.verify('dana#sso|42', '!')).toBeNull(); // no password opens it
  } finally {
    await gateway.stop(true);
  }
});

test('the tombstone purge is part of the app: it runs on its schedule while the embedder\'s app listens', async () => {
  const purging = new Elysia().use(await createApp({ db: database.db, tombstoneRetentionMs: 1, purgeEveryMs: 20,
    authenticate: async () => ({ user: dana, via: 'custom' }) })).listen({ hostname: '127.0.0.1', port: 0 });
  const at = `http://127.0.0.1:${purging.server!.port}`;
  const space = `u:${dana.id}`;
  const ops = makeOps('purge-dev', space, 1, 2, { key: 'gone' }).map((op, i) => (i === 1 ? { ...op, kind: 'delete' as const, value: undefined } : op));
  const pushed = await fetch(`${at}/v1/push`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 1, device: 'purge-dev', ops: ops.map(({ value, ...op }) => (value === undefined ? op : { ...op, value })) }) });
  expect(pushed.status).toBe(200);
  const horizon = () => purging.decorator.ferry.store.horizon(space);
  for (let i = 0; i < 200 && (await horizon()) === 0; i++) await Bun.sleep(10);
  expect(await horizon()).toBeGreaterThan(0); // the tombstone was purged by the schedule, not by a call
  await purging.stop(true);
});
