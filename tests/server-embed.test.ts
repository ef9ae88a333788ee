// Embedders replace the built-in accounts with their own authenticate(request) hook and mount Ferry
// inside their own Elysia app; every other check (membership, device binding) still applies.
import { afterAll, expect, test } from 'bun:test';
import { Elysia } from 'elysia';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccounts } from '../server/accounts.ts';
import { createApp } from '../server/app.ts';
import { migrate, openDatabase } from '../server/db.ts';
import { makeOps, removeDir } from './support/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-embed-'));
const database = await openDatabase(`file:${join(dir, 'ferry.db')}`);
await migrate(database.db);
const accounts = createAccounts(database.db);
const dana = await accounts.addUser('dana', 'unused', Date.now());
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
