// Server-side faults at the commit boundary (DESIGN invariants 1, 2, 7), in process:
//  (a) the test-only `faults.afterCommit` hook throws once after a group committed and before its answers
//      were released: the push is answered 500 `internal` although committed, and the device's resend is
//      answered `duplicate` (first `applied`), with every op in the database once;
//  (b) disk full: every pooled connection gets `PRAGMA max_page_count` = the current page count, so the
//      next commit that must grow the file fails with SQLITE_FULL: the push is answered 5xx `internal` and
//      nothing is partially written (heads and row counts unchanged); with the limit raised the resend applies.
import { afterEach, expect, test } from 'bun:test';
import type { Op } from '../core/types.ts';
import type { Batch } from '../core/apply.ts';
import { FILE_CONNECTIONS } from '../server/storage/db.ts';
import { push, removeDir, startServer, type TestServer } from './support/server.ts';

let server: TestServer | null = null;
afterEach(async () => {
  if (!server) return;
  await server.stop();
  removeDir(server.dir);
  server = null;
});

function ops(device: string, space: string, from: number, count: number, bytes = 16): Op[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    return { id: `${device}:${seq}`, device, seq, lamport: seq, space, collection: 'items', key: `${device}-${seq}`, kind: 'patch', value: { n: seq, pad: 'x'.repeat(bytes) }, at: 0 };
  });
}

/** Heads and row counts of every sync table, read through the test's own connection. */
async function state(s: TestServer) {
  const one = async (sql: string) => Number((await s.database.client.execute(sql)).rows[0]![0]);
  return {
    heads: await s.app.decorator.ferry.store.heads(),
    ops: await one('SELECT count(*) FROM ops'),
    entities: await one('SELECT count(*) FROM entities'),
    devices: await one('SELECT count(*) FROM devices'),
    meta: await one('SELECT count(*) FROM meta'),
  };
}

test('a batch committed but answered 500 is answered duplicate on resend, applied once', async () => {
  let failNext = 0;
  const seen: Batch[][] = [];
  server = await startServer({
    faults: {
      afterCommit(batches) {
        if (failNext === 0) return;
        failNext--;
        seen.push(batches);
        throw new Error('injected fault after commit');
      },
    },
  });
  const { token, space } = await server.user('faults');
  const first = ops('fault-a', space, 1, 5);
  expect((await push(server.base, token, 'fault-a', first)).status).toBe(200);

  failNext = 1;
  const batch = ops('fault-a', space, 6, 7);
  const failed = await push(server.base, token, 'fault-a', batch);
  expect(failed.status).toBe(500);
  expect(failed.body.code).toBe('internal');
  expect(seen.length).toBe(1);
  // Committed although the answer was an error.
  expect((await state(server)).heads.serverSeq).toBe(12);

  const resent = await push(server.base, token, 'fault-a', batch);
  expect(resent.status).toBe(200);
  expect(resent.body.through).toBe(12);
  expect(resent.body.results.map((r: any) => [r.seq, r.result, r.first])).toEqual(batch.map((op) => [op.seq, 'duplicate', 'applied']));

  // The device carries on after the duplicate ack.
  const next = await push(server.base, token, 'fault-a', ops('fault-a', space, 13, 3));
  expect(next.body.results.every((r: any) => r.result === 'applied')).toBe(true);

  const c = server.database.client;
  const one = async (sql: string) => Number((await c.execute(sql)).rows[0]![0]);
  expect(await one("SELECT count(*) FROM ops WHERE device = 'fault-a'")).toBe(15);
  expect(await one("SELECT count(DISTINCT seq) FROM ops WHERE device = 'fault-a'")).toBe(15);
  expect(await one("SELECT count(*) FROM entities WHERE collection = 'items'")).toBe(15);
  expect((await state(server)).heads.serverSeq).toBe(15);
});

test('disk full (SQLITE_FULL) answers 5xx internal, writes nothing, and the resend applies once space is back', async () => {
  server = await startServer();
  const { token, space } = await server.user('full');
  expect((await push(server.base, token, 'full-a', ops('full-a', space, 1, 3))).status).toBe(200);

  const client = server.database.client;
  // PRAGMA max_page_count is per connection: set it on every pooled connection at once (the pool hands
  // FILE_CONNECTIONS concurrent calls FILE_CONNECTIONS distinct connections, as server/db.ts primes them).
  const limitAll = async (pages: number) => {
    const got = await Promise.all(Array.from({ length: FILE_CONNECTIONS }, () => client.execute(`PRAGMA max_page_count=${pages}`)));
    return got.map((r) => Number(r.rows[0]![0]));
  };
  const pages = Number((await client.execute('PRAGMA page_count')).rows[0]![0]);
  const limits = await limitAll(pages);
  expect(Math.max(...limits)).toBeLessThanOrEqual(pages);

  const before = await state(server);
  // ~200 KiB of new rows: cannot fit in the pages the file already has.
  const big = ops('full-a', space, 4, 100, 2000);
  const failed = await push(server.base, token, 'full-a', big);
  expect(failed.status).toBeGreaterThanOrEqual(500);
  expect(failed.body.code).toBe('internal');
  expect(await state(server)).toEqual(before);
  // Still full: the same answer again, still nothing written.
  expect((await push(server.base, token, 'full-a', big)).status).toBeGreaterThanOrEqual(500);
  expect(await state(server)).toEqual(before);

  await limitAll(1_073_741_823);
  const resent = await push(server.base, token, 'full-a', big);
  expect(resent.status).toBe(200);
  expect(resent.body.results.map((r: any) => r.result)).toEqual(big.map(() => 'applied'));
  const after = await state(server);
  expect(after.heads.serverSeq).toBe(before.heads.serverSeq + 100);
  expect(after.ops).toBe(before.ops + 100);
  expect(String((await client.execute('PRAGMA integrity_check')).rows[0]![0])).toBe('ok');
});
