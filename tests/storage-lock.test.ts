// Another process holds the write lock (here: a second libSQL client on the same file, in this process,
// which is the harder case: its COMMIT can only run if our wait leaves the JS thread free). Every server
// write waits for it off the thread (server/storage/db.ts whenUnlocked): the event loop keeps turning, the
// holder commits, and the write then goes through. With a native busy wait as long as the hold, the
// holder's COMMIT could never run and the write would fail with SQLITE_BUSY.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from '@libsql/client';
import { createAccounts } from '../server/accounts.ts';
import { BUSY_TIMEOUT_MS, migrate, openDatabase, type Database } from '../server/storage/db.ts';
import { createSyncStore } from '../server/storage/sync-store.ts';
import { makeOps, removeDir } from './support/server.ts';

let dir: string;
let database: Database;
let holder: Client;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-lock-'));
  const url = `file:${join(dir, 'ferry.db')}`;
  database = await openDatabase(url);
  await migrate(database.db);
  holder = createClient({ url });
});
afterAll(() => {
  holder.close();
  database.close();
  removeDir(dir);
});

/** Holds BEGIN IMMEDIATE for 20 native busy waits, then commits on a timer (which needs a free thread). */
async function holdLock(): Promise<{ committed: () => boolean }> {
  const tx = await holder.transaction('write');
  await tx.execute("INSERT INTO meta (key, value) VALUES ('held', '1') ON CONFLICT (key) DO NOTHING");
  let done = false;
  setTimeout(() => void tx.commit().then(() => (done = true)), BUSY_TIMEOUT_MS * 20);
  return { committed: () => done };
}

test('a commit waits for another writer\'s lock without blocking the thread, then applies', async () => {
  const accounts = createAccounts(database.db);
  const user = await accounts.addUser('lock', 'lock-password', Date.now());
  const lock = await holdLock();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  const { outcomes } = await createSyncStore(database.db).commitGroup([{ userId: user.id, device: 'lock-d', ops: makeOps('lock-d', `u:${user.id}`, 1, 3) }], Date.now());
  clearInterval(ticker);
  expect(lock.committed()).toBe(true); // the holder's COMMIT ran while we waited
  expect(outcomes[0]).toMatchObject({ ok: true, through: 3 });
  expect(ticks).toBeGreaterThan(3); // the thread was free meanwhile
});

test('account writes (a session at sign-in) wait the same way', async () => {
  const accounts = createAccounts(database.db);
  const user = await accounts.addUser('lock-2', 'lock-password', Date.now());
  const lock = await holdLock();
  const secret = await accounts.createSession(user.id, Date.now(), 60_000);
  expect(lock.committed()).toBe(true);
  expect(typeof secret).toBe('string');
});
