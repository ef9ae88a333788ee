// The one server module that opens libSQL. Everything else receives `db` (or a transaction of it).
//
// Connection model of @libsql/client 0.18 for `file:` URLs (read from its sqlite3.js, confirmed by
// tests/migrations.test.ts):
//   - The client owns a POOL of up to `concurrency` native connections, opened lazily. `execute`/`batch`
//     borrow one for the call; `transaction()` borrows one until commit/rollback. A healthy connection is
//     kept and reused; one is only replaced after close()/reconnect() or when a rollback on release fails.
//   - PRAGMAs are per connection, except `journal_mode=WAL`, which is stored in the database file.
//     A PRAGMA sent through `client.execute` reaches whichever connection that call borrowed, not the
//     others. So `openDatabase` borrows every connection of the pool at once and sets them on each.
//     A connection opened later (a replacement) gets libSQL's defaults: synchronous=FULL, foreign_keys=ON
//     (libSQL's build default, unlike stock SQLite), and busy_timeout from the client's `timeout` option,
//     which the client applies to every connection it opens. Those defaults are the safe side: only an
//     opted-in `syncMode: 'normal'` could silently become FULL (slower, never less durable).
//   - `transaction('write')` (also what drizzle's `db.transaction()` uses; drizzle ignores its `behavior`
//     option for libSQL) is BEGIN IMMEDIATE: the write lock is taken at BEGIN, so a transaction never fails
//     half-way on a lock upgrade.
//   - The native calls are synchronous on the JS thread. While one write transaction is open, a write on
//     ANOTHER connection of the same process waits in the busy handler with the thread blocked, so the
//     holder can never finish: it always fails with SQLITE_BUSY after busy_timeout. Inside the server,
//     writes are serialized in JS (one writer queue / group commit), and code inside a transaction must
//     use `tx`, never `db`. Reads on other connections are fine during a write (WAL gives them the last
//     committed snapshot).
//   - Several processes on one file (docs/scale-out.md) take turns at the write lock. The busy handler's
//     wait blocks the JS thread too (no socket read, no fan-out, no group forming while it sleeps), so it
//     is kept short (BUSY_TIMEOUT_MS) and every write goes through `whenUnlocked`, which retries a
//     SQLITE_BUSY after an async pause, up to WRITE_WAIT_MS.
//   - `:memory:` is a single connection: while a transaction holds it, every other call fails at once with
//     TRANSACTION_ACTIVE. Use it only where calls are sequential (some tests).
//   - Remote URLs (libsql:, http(s):, ws(s):): no PRAGMAs are sent; the server (sqld/Turso) owns durability
//     and a PRAGMA would only reach one stream. `syncMode` is ignored there. They are opened with the
//     client's web entry (`@libsql/client/web`: the same HTTP and WebSocket clients the default entry
//     picks for these URLs, without loading the native addon), so a hosted edge needs no FFI.

import { isAbsolute } from 'node:path';
import type { Client, Config } from '@libsql/client';
// The web entry, not 'drizzle-orm/libsql': that one imports @libsql/client's default entry, which loads
// the native addon even for a remote URL. Given a client, both wrap it the same way (driver-core).
import type { LibSQLDatabase } from 'drizzle-orm/libsql';
import { drizzle } from 'drizzle-orm/libsql/web';
import { migrate as runMigrations } from 'drizzle-orm/libsql/migrator';
import * as schema from '../../schema/tables.ts';
import { migrationsFolder } from '../assets.ts';

export type Schema = typeof schema;
/** drizzle over the libSQL client; `$client` is that client (the apply hot path uses it directly). */
export type FerryDb = LibSQLDatabase<Schema> & { $client: Client };

export type SyncMode = 'full' | 'normal';

export interface OpenOptions {
  authToken?: string;
  /**
   * 'full' (default): every commit is fsynced before COMMIT returns, so an ack sent after it survives a
   * power loss. 'normal': in WAL mode a commit survives a process kill (-9) but the last commits may be
   * lost on power loss or an OS crash. Opt in only where that is acceptable.
   */
  syncMode?: SyncMode;
}

export interface Database {
  client: Client;
  db: FerryDb;
  /** Closes every pooled connection. Idempotent. */
  close(): void;
}

/**
 * Connections in a `file:` client's pool (the client's own default), each primed with the PRAGMAs below.
 * When open transactions hold all of them, a plain call fails at once with TRANSACTION_ACTIVE instead of
 * waiting, so keep this well above the number of transactions that can be open together.
 */
export const FILE_CONNECTIONS = 20;
/** The native busy wait of one attempt: the longest the JS thread blocks on another process's lock. */
export const BUSY_TIMEOUT_MS = 25;
/** How long a write keeps trying for the lock, the thread free between attempts, before it fails. */
export const WRITE_WAIT_MS = 10_000;

/**
 * Runs `write` (one statement or one whole transaction: a failed attempt changed nothing) until it gets
 * the write lock: on SQLITE_BUSY it pauses 1–16 ms (jittered, doubling) without blocking the thread and
 * tries again, for up to WRITE_WAIT_MS; then the SQLITE_BUSY goes to the caller.
 */
export async function whenUnlocked<T>(write: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + WRITE_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isBusy(error) || performance.now() > deadline) throw error;
      const ms = Math.min(2 ** attempt, 16);
      await new Promise((resolve) => setTimeout(resolve, ms / 2 + Math.random() * (ms / 2)));
    }
  }
}

/** SQLITE_BUSY from libSQL, also when drizzle wrapped it (DrizzleQueryError keeps it as `cause`). */
function isBusy(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return true;
  }
  return false;
}

/**
 * Opens the database and readies every connection. Async because the PRAGMAs run before anyone can
 * use the client. Does not migrate: call `migrate(db)` once, from the process that owns the schema.
 */
export async function openDatabase(url: string, opts: OpenOptions = {}): Promise<Database> {
  const kind = urlKind(url);
  const { createClient } = (kind === 'remote' ? await import('@libsql/client/web') : await import('@libsql/client')) as {
    createClient(config: Config): Client;
  };
  const client = createClient({
    url,
    ...(opts.authToken === undefined ? {} : { authToken: opts.authToken }),
    // Per connection, for every connection the pool ever opens (see the header).
    ...(kind === 'file' ? { timeout: BUSY_TIMEOUT_MS, concurrency: FILE_CONNECTIONS } : {}),
  });
  try {
    if (kind === 'file') await prepareFile(client, opts.syncMode ?? 'full');
    else if (kind === 'memory') await client.execute('PRAGMA foreign_keys=ON');
  } catch (error) {
    client.close();
    throw error;
  }
  const db = drizzle(client, { schema });
  return { client, db, close: () => client.close() };
}

/**
 * Why these settings (DESIGN invariant 1: an op leaves the device only after the server has DURABLY
 * committed it, and the ack is sent only after the commit):
 *   journal_mode=WAL   readers never block the writer and vice versa (catch-up and snapshot reads run
 *                      beside the apply transaction); commits append to the WAL, so fsync-per-commit is
 *                      affordable. Persistent in the file, so it is set once.
 *   synchronous=FULL   the WAL is fsynced at every COMMIT, so a commit that returned survives a kill -9
 *                      AND a power loss. NORMAL would only survive the kill (opt-in `syncMode`).
 *   busy_timeout=25    another process holding the lock (an instance, a CLI, a backup) delays us
 *                      instead of failing; longer waits are whenUnlocked's, off the JS thread.
 *   foreign_keys=ON    the schema's references are enforced (libSQL's default, set explicitly anyway).
 */
async function prepareFile(client: Client, syncMode: SyncMode): Promise<void> {
  const mode = await client.execute('PRAGMA journal_mode=WAL');
  const journal = String(mode.rows[0]?.[0] ?? '').toLowerCase();
  if (journal !== 'wal') {
    // e.g. a filesystem without shared-memory support: refuse rather than run with weaker guarantees.
    throw new Error(`libSQL refused WAL mode (journal_mode is '${journal}')`);
  }
  const perConnection = [
    `PRAGMA synchronous=${syncMode === 'normal' ? 'NORMAL' : 'FULL'};`,
    `PRAGMA busy_timeout=${BUSY_TIMEOUT_MS};`,
    'PRAGMA foreign_keys=ON;',
  ].join('\n');
  // Each call borrows its connection synchronously before the first await, so FILE_CONNECTIONS calls
  // issued together hold FILE_CONNECTIONS distinct connections: every connection of the pool gets them.
  await Promise.all(
    Array.from({ length: FILE_CONNECTIONS }, () => client.executeMultiple(perConnection)),
  );
}

/**
 * Applies the committed migrations that this database has not seen yet (drizzle's libSQL migrator: one
 * deferred transaction, foreign keys off during it and back on after). Running it again is a no-op.
 * Several instances sharing one remote database must not migrate concurrently: run it from one place.
 */
export async function migrate(db: FerryDb, folder?: string): Promise<void> {
  // From source this is schema/migrations; inside the compiled binary, the embedded copy.
  folder ??= await migrationsFolder();
  if (!isAbsolute(folder)) {
    throw new Error(`migrations folder must be an absolute path, got '${folder}'`);
  }
  const from = folder;
  await whenUnlocked(() => runMigrations(db, { migrationsFolder: from }));
}

type UrlKind = 'file' | 'memory' | 'remote';

function urlKind(url: string): UrlKind {
  if (url === ':memory:' || url.startsWith('file::memory:')) return 'memory';
  if (url.startsWith('file:')) return 'file';
  return 'remote';
}
