// The committed migrations, applied to a real libSQL file, give the apply path what it relies on:
// the unique indexes behind its upserts, durable PRAGMAs on every pooled connection, idempotent
// re-migration, and agreement with schema/tables.ts.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Client, Transaction } from '@libsql/client';
import { eq } from 'drizzle-orm';
import {
  BUSY_TIMEOUT_MS,
  FILE_CONNECTIONS,
  migrate,
  openDatabase,
  type Database,
} from '../server/storage/db.ts';
import { devices, entities, ops, sessions, spaces, users } from '../schema/tables.ts';
import { migrationsFolder } from '../server/assets.ts';

const REPO = join(import.meta.dir, '..');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-migrations-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let dbCount = 0;
async function freshDatabase(syncMode?: 'full' | 'normal'): Promise<Database> {
  const url = `file:${join(dir, `db-${++dbCount}.db`)}`;
  const opened = await openDatabase(url, syncMode === undefined ? {} : { syncMode });
  await migrate(opened.db);
  return opened;
}

interface IndexInfo {
  name: string;
  unique: boolean;
  origin: string; // 'pk' | 'u' (UNIQUE constraint) | 'c' (CREATE INDEX)
  partial: boolean;
  columns: string[];
}

async function indexesOf(client: Client, table: string): Promise<IndexInfo[]> {
  const list = await client.execute(`PRAGMA index_list(${table})`);
  const result: IndexInfo[] = [];
  for (const row of list.rows) {
    const name = String(row.name);
    const info = await client.execute(`PRAGMA index_info(${JSON.stringify(name)})`);
    const columns = [...info.rows].sort((a, b) => Number(a.seqno) - Number(b.seqno)).map((r) => String(r.name));
    result.push({
      name,
      unique: Number(row.unique) === 1,
      origin: String(row.origin),
      partial: Number(row.partial) === 1,
      columns,
    });
  }
  return result;
}

function fullUniqueOn(indexes: IndexInfo[], columns: string[]): IndexInfo | undefined {
  // A partial unique index would not protect every row, so it does not count.
  return indexes.find((i) => i.unique && !i.partial && i.columns.join() === columns.join());
}

/** Opens one read transaction per pooled connection; each holds a distinct connection until closed. */
function holdEveryConnection(client: Client): Promise<Transaction[]> {
  return Promise.all(Array.from({ length: FILE_CONNECTIONS }, () => client.transaction('read')));
}

async function pragma(on: Client | Transaction, name: string): Promise<unknown> {
  const rs = await on.execute(`PRAGMA ${name}`);
  return rs.rows[0]?.[0];
}

/** Runs a write that must fail; returns the database's reason (drizzle wraps it as the error's cause). */
async function refusal(query: PromiseLike<unknown>): Promise<string> {
  try {
    await query;
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : '';
    return `${error instanceof Error ? error.message : String(error)}\n${cause}`;
  }
  throw new Error('the database accepted a write it must refuse');
}

async function seedDevice(database: Database): Promise<void> {
  await database.db.insert(users).values({ id: 'u1', name: 'ada', passwordHash: 'x', createdAt: 1 });
  await database.db.insert(spaces).values({ id: 's1', name: 'ada', ownerId: 'u1', personal: true, createdAt: 1 });
  await database.db.insert(devices).values({ id: 'd1', userId: 'u1', createdAt: 1, lastSeenAt: 1 });
}

function ledgerRow(seq: number, opId: string) {
  return {
    device: 'd1', seq, opId, space: 's1', collection: 'notes', key: 'k1',
    result: 'applied' as const, serverSeq: seq, appliedAt: 1,
  };
}

describe('committed migrations on a real libSQL file', () => {
  test('ledger: unique (device, seq) and unique op_id exist', async () => {
    const database = await freshDatabase();
    try {
      const indexes = await indexesOf(database.client, 'ops');
      expect(fullUniqueOn(indexes, ['device', 'seq'])?.origin).toBe('pk');
      expect(fullUniqueOn(indexes, ['op_id'])).toBeDefined();
    } finally {
      database.close();
    }
  });

  test('entities: pk (space, collection, key), unique server_seq, index (space, server_seq)', async () => {
    const database = await freshDatabase();
    try {
      const indexes = await indexesOf(database.client, 'entities');
      expect(fullUniqueOn(indexes, ['space', 'collection', 'key'])?.origin).toBe('pk');
      expect(fullUniqueOn(indexes, ['server_seq'])).toBeDefined();
      const catchUp = indexes.find((i) => !i.partial && i.columns.join() === 'space,server_seq');
      expect(catchUp).toBeDefined();
      // The catch-up query really uses it (not a scan of the whole table).
      const plan = await database.client.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM entities WHERE space = 's' AND server_seq > 5 ORDER BY server_seq LIMIT 100",
      );
      const detail = plan.rows.map((r) => String(r.detail)).join('\n');
      expect(detail).toContain(catchUp!.name);
      expect(detail).not.toContain('TEMP B-TREE');
    } finally {
      database.close();
    }
  });

  test('a duplicate (device, seq) or op_id is refused and leaves the first row alone', async () => {
    const database = await freshDatabase();
    try {
      await seedDevice(database);
      await database.db.insert(ops).values(ledgerRow(1, 'op-a'));
      // Same (device, seq), different op id: a resend must never become a second row.
      const resend = database.db.insert(ops).values({ ...ledgerRow(1, 'op-b'), result: 'superseded' });
      expect(await refusal(resend)).toMatch(/UNIQUE constraint failed: ops\.device, ops\.seq/);
      // Same op id under another seq.
      const reusedId = database.db.insert(ops).values(ledgerRow(2, 'op-a'));
      expect(await refusal(reusedId)).toMatch(/UNIQUE constraint failed: ops\.op_id/);
      // The upsert targets the apply path uses are accepted by SQLite (it refuses targets without an index).
      const again = await database.db
        .insert(ops)
        .values(ledgerRow(1, 'op-a'))
        .onConflictDoNothing({ target: [ops.device, ops.seq] })
        .returning();
      expect(again).toEqual([]);
      await database.db.insert(ops).values(ledgerRow(3, 'op-a')).onConflictDoNothing({ target: ops.opId });
      const rows = await database.db.select().from(ops);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ seq: 1, opId: 'op-a', result: 'applied', code: null });
      // Ops rejected because their id was taken are stored without one; any number of them fit.
      const taken = { result: 'rejected' as const, code: 'invalid', opId: null, serverSeq: null };
      await database.db.insert(ops).values([{ ...ledgerRow(2, 'x'), ...taken }, { ...ledgerRow(3, 'x'), ...taken }]);
      expect(await database.db.select().from(ops)).toHaveLength(3);
      // A rejection without a code is refused: the dead-letter list must be able to say why.
      const silent = database.db.insert(ops).values({ ...ledgerRow(5, 'op-c'), result: 'rejected' });
      expect(await refusal(silent)).toMatch(/CHECK constraint failed: ops_rejected_has_code/);
    } finally {
      database.close();
    }
  });

  test('entities round-trip stamps as [lamport, device]; server_seq cannot repeat', async () => {
    const database = await freshDatabase();
    try {
      await seedDevice(database);
      const row = {
        space: 's1', collection: 'notes', key: 'k1', value: { title: 'hi' }, stamps: { title: [3, 'd1'] as const },
        base: [3, 'd1'] as const, live: [3, 'd1'] as const, deleted: false, serverSeq: 1, updatedAt: 1,
      };
      await database.db.insert(entities).values(row);
      const raw = await database.client.execute("SELECT stamps, base, live, deleted FROM entities WHERE key = 'k1'");
      expect(raw.rows[0]).toMatchObject({
        stamps: '{"title":[3,"d1"]}', base: '[3,"d1"]', live: '[3,"d1"]', deleted: 0,
      });
      const [read] = await database.db.select().from(entities).where(eq(entities.key, 'k1'));
      expect(read).toEqual({ ...row, stamps: { title: [3, 'd1'] }, base: [3, 'd1'], live: [3, 'd1'] });
      const reusedSeq = database.db.insert(entities).values({ ...row, key: 'k2' });
      expect(await refusal(reusedSeq)).toMatch(/UNIQUE constraint failed: entities\.server_seq/);
      await database.db
        .insert(entities)
        .values({ ...row, serverSeq: 2, deleted: true, value: {}, stamps: {} })
        .onConflictDoUpdate({
          target: [entities.space, entities.collection, entities.key],
          set: { deleted: true, value: {}, stamps: {}, serverSeq: 2 },
        });
      const all = await database.db.select().from(entities);
      expect(all).toHaveLength(1);
      expect(all[0]).toMatchObject({ deleted: true, serverSeq: 2, value: {} });
    } finally {
      database.close();
    }
  });

  test('every pooled connection runs WAL, synchronous=FULL, busy_timeout and foreign keys', async () => {
    const database = await freshDatabase();
    try {
      expect(await pragma(database.client, 'journal_mode')).toBe('wal');
      expect(await pragma(database.client, 'synchronous')).toBe(2);
      // Hold every connection of the pool at once (each transaction borrows a distinct one).
      const held = await holdEveryConnection(database.client);
      try {
        for (const tx of held) {
          expect(await pragma(tx, 'synchronous')).toBe(2);
          expect(await pragma(tx, 'foreign_keys')).toBe(1);
          expect(await pragma(tx, 'busy_timeout')).toBe(BUSY_TIMEOUT_MS);
        }
      } finally {
        for (const tx of held) tx.close();
      }
      // Foreign keys are really enforced on the connection a plain call gets.
      const orphan = database.db.insert(sessions).values({ id: 'h', userId: 'nobody', createdAt: 1, expiresAt: 2 });
      expect(await refusal(orphan)).toMatch(/FOREIGN KEY constraint failed/);
    } finally {
      database.close();
    }
  });

  test("syncMode 'normal' reaches every pooled connection, not only the first", async () => {
    const database = await freshDatabase('normal');
    try {
      const held = await holdEveryConnection(database.client);
      try {
        const modes = await Promise.all(held.map((tx) => pragma(tx, 'synchronous')));
        expect(modes).toEqual(Array.from({ length: FILE_CONNECTIONS }, () => 1));
      } finally {
        for (const tx of held) tx.close();
      }
    } finally {
      database.close();
    }
  });

  test('migrating again is a no-op and keeps the data', async () => {
    const database = await freshDatabase();
    try {
      await seedDevice(database);
      const state = async () => ({
        schema: (await database.client.execute('SELECT type, name, sql FROM sqlite_master ORDER BY name')).rows,
        applied: (await database.client.execute('SELECT hash, created_at FROM __drizzle_migrations')).rows,
      });
      const before = await state();
      const committed = readdirSync(await migrationsFolder()).filter((f) => f.endsWith('.sql'));
      expect(before.applied.length).toBe(committed.length);
      await migrate(database.db);
      await migrate(database.db);
      expect(await state()).toEqual(before);
      expect(await database.db.select().from(devices)).toHaveLength(1);
    } finally {
      database.close();
    }
    // Reopening the same file runs the migrator against an existing schema, still a no-op.
    const again = await openDatabase(`file:${join(dir, `db-${dbCount}.db`)}`);
    try {
      await migrate(again.db);
      expect(await again.db.select().from(users)).toHaveLength(1);
      expect(await pragma(again.client, 'journal_mode')).toBe('wal');
    } finally {
      again.close();
    }
  });
});

describe('a database made before roles', () => {
  test("migration 0002 keeps every membership: an owner stays owner, a 'member' becomes an editor", async () => {
    // The migrations up to 0001 only (a server of before roles), with a space and two memberships in it.
    const old = join(dir, 'before-roles');
    cpSync(await migrationsFolder(), old, { recursive: true });
    const journalPath = join(old, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalPath, 'utf8'));
    journal.entries = journal.entries.filter((e: { tag: string }) => e.tag < '0002');
    writeFileSync(journalPath, JSON.stringify(journal));
    const url = `file:${join(dir, 'before-roles.db')}`;
    const first = await openDatabase(url);
    try {
      await migrate(first.db, old);
      await first.client.execute("INSERT INTO users (id, name, password_hash, created_at) VALUES ('u1', 'ada', 'x', 1), ('u2', 'bo', 'x', 1)");
      await first.client.execute("INSERT INTO spaces (id, name, owner_id, personal, created_at) VALUES ('s1', 'Trip', 'u1', 0, 1)");
      await first.client.execute("INSERT INTO members (space_id, user_id, role) VALUES ('s1', 'u1', 'owner'), ('s1', 'u2', 'member')");
    } finally {
      first.close();
    }
    const now = await openDatabase(url);
    try {
      await migrate(now.db);
      const rows = (await now.client.execute('SELECT user_id, role FROM members ORDER BY user_id')).rows.map((r) => [r.user_id, r.role]);
      expect(rows).toEqual([['u1', 'owner'], ['u2', 'editor']]);
      expect(await refusal(now.client.execute("UPDATE members SET role = 'member' WHERE user_id = 'u2'"))).toMatch(/CHECK constraint/i);
      expect((await indexesOf(now.client, 'members')).map((i) => i.name)).toContain('members_user_id_idx');
    } finally {
      now.close();
    }
  });
});

describe('schema/tables.ts and schema/migrations agree', () => {
  test('drizzle-kit generate finds nothing to add', async () => {
    // Generate into a copy so a disagreement can never write into the repository.
    const out = join(dir, 'kit-out');
    cpSync(await migrationsFolder(), out, { recursive: true });
    const config = join(dir, 'drizzle.check.config.ts');
    writeFileSync(
      config,
      `export default ${JSON.stringify({
        dialect: 'turso',
        // drizzle-kit reads both relative to its working directory (it prefixes './' to `out`).
        schema: './schema/tables.ts',
        out: relative(REPO, out),
        dbCredentials: { url: 'file::memory:' },
      })};\n`,
    );
    const before = readdirSync(out, { recursive: true }).map(String).sort();
    const kit = Bun.spawnSync(['bun', 'x', 'drizzle-kit', 'generate', `--config=${config}`], {
      cwd: REPO,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const output = kit.stdout.toString() + kit.stderr.toString();
    // drizzle-kit 0.31 exits 0 even when it crashes, so the message is what proves agreement.
    expect(kit.exitCode, output).toBe(0);
    expect(output).toContain('No schema changes');
    expect(readdirSync(out, { recursive: true }).map(String).sort()).toEqual(before);
  }, 60_000);
});
