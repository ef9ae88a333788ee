// The one module that reads and writes sync data (devices, ledger, entities, meta) in SQL.
// `commitGroup` is the write side of apply. Inside ONE write transaction it loads everything `planGroup`
// needs with ONE statement (`LOOKUP`), then writes the plan with one multi-row statement per table (per
// 512 rows, see `insertRows`), then commits. A single-op commit is BEGIN, 4 statements, COMMIT.
// Nothing here knows about HTTP or sockets.
import type { InValue, Transaction } from '@libsql/client';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { EntityWire } from '../schema/wire.ts';
import { devices, entities, members, meta, ops } from '../schema/tables.ts';
import {
  entityKey, ledgerKey, memberKey, planGroup,
  type Batch, type CollectionCheck, type DeviceRow, type EntityState, type GroupInput, type GroupPlan, type LedgerRow,
} from './apply.ts';
import type { FerryDb } from './db.ts';

export interface CommitExtra {
  /** Changed entities, in serverSeq order, for fan-out to subscribers. */
  entities: EntityState[];
  lamport: number;
}

export interface SyncStore {
  commitGroup(batches: Batch[], now: number): Promise<{ outcomes: GroupPlan['outcomes']; extra: CommitExtra }>;
  /** Entities of a space with serverSeq > after, tombstones included, in serverSeq order. */
  changesSince(space: string, after: number, limit: number): Promise<EntityWire[]>;
  /** Live entities of a space with serverSeq > after, in serverSeq order. */
  snapshotPage(space: string, after: number, limit: number): Promise<EntityWire[]>;
  /** The last serverSeq handed out and the highest lamport accepted, server-wide. */
  heads(): Promise<{ serverSeq: number; lamport: number }>;
  device(id: string): Promise<DeviceRow | null>;
  horizon(space: string): Promise<number>;
  /** Deletes tombstones last written before `before`; raises each touched space's horizon. */
  purgeTombstones(before: number): Promise<number>;
}

export function createSyncStore(db: FerryDb, check?: CollectionCheck): SyncStore {
  return {
    async commitGroup(batches, now) {
      // The hot path talks to the libSQL client directly: drizzle's query builder costs ~2 µs per bound
      // value, which was most of a 500-op commit (docs/benchmarks.md). `write` is BEGIN IMMEDIATE.
      const tx = await db.$client.transaction('write');
      try {
        const plan = planGroup(batches, { ...(await loadGroup(tx, batches)), ...(check ? { check } : {}) });
        await writePlan(tx, plan, now);
        await tx.commit();
        return { outcomes: plan.outcomes, extra: { entities: plan.entities, lamport: plan.lamport } };
      } finally {
        tx.close(); // rolls back unless committed; returns the connection to the pool
      }
    },

    async changesSince(space, after, limit) {
      const rows = await db.select().from(entities)
        .where(and(eq(entities.space, space), gt(entities.serverSeq, after)))
        .orderBy(asc(entities.serverSeq)).limit(limit);
      return rows.map(toWire);
    },

    async snapshotPage(space, after, limit) {
      const rows = await db.select().from(entities)
        .where(and(eq(entities.space, space), gt(entities.serverSeq, after), eq(entities.deleted, false)))
        .orderBy(asc(entities.serverSeq)).limit(limit);
      return rows.map(toWire);
    },

    heads: () => readHeads(db),

    async device(id) {
      const [row] = await db.select().from(devices).where(eq(devices.id, id));
      return row ? { id: row.id, userId: row.userId, lastSeq: row.lastSeq, maxLamport: row.maxLamport } : null;
    },

    async horizon(space) {
      const [row] = await db.select().from(meta).where(eq(meta.key, `horizon:${space}`));
      return row ? Number(row.value) : 0;
    },

    purgeTombstones: (before) =>
      db.transaction(async (tx) => {
        const gone = await tx.delete(entities)
          .where(and(eq(entities.deleted, true), sql`${entities.updatedAt} < ${before}`))
          .returning({ space: entities.space, serverSeq: entities.serverSeq });
        const horizons = new Map<string, number>();
        for (const row of gone) horizons.set(row.space, Math.max(horizons.get(row.space) ?? 0, row.serverSeq));
        // `purged_seq` keeps the serverSeq head derivable when the newest entity was a purged tombstone.
        const raised: [string, number][] = [...horizons].map(([space, seq]) => [`horizon:${space}`, seq]);
        if (raised.length > 0) raised.push(['purged_seq', Math.max(...horizons.values())]);
        for (const [key, seq] of raised) {
          await tx.insert(meta).values({ key, value: String(seq) })
            .onConflictDoUpdate({ target: meta.key, set: { value: sql`max(CAST(${meta.value} AS INTEGER), ${seq})` } });
        }
        return gone.length;
      }),
  };
}

export function toWire(row: typeof entities.$inferSelect): EntityWire {
  return {
    collection: row.collection, key: row.key, fields: row.value, stamps: row.stamps,
    base: row.base ?? null, live: row.live, deleted: row.deleted, serverSeq: row.serverSeq,
  };
}

/**
 * Heads derived from the rows themselves, so no commit has to write a counter row: the newest serverSeq is
 * on the entity written last, or was purged with a tombstone (`purged_seq`); the highest lamport accepted
 * is the newest op's lamport of some device (`devices.max_lamport`, indexed).
 */
const HEADS = `(SELECT max(server_seq) FROM entities),
  (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'purged_seq'), (SELECT max(max_lamport) FROM devices)`;

/**
 * The heads from HEADS' three columns, starting at `at` in a libSQL row (indexable, not iterable); each is
 * NULL on an empty database.
 */
const headsOf = (row: { readonly [column: number]: unknown }, at: number) => ({
  serverSeq: Math.max(Number(row[at] ?? 0), Number(row[at + 1] ?? 0)),
  lamport: Number(row[at + 2] ?? 0),
});

async function readHeads(db: FerryDb): Promise<{ serverSeq: number; lamport: number }> {
  const [row] = await db.values(sql.raw(`SELECT ${HEADS}`));
  return headsOf(row ?? [], 0);
}

const LOOKUP = `SELECT 'h', ${HEADS}, NULL, NULL, NULL, NULL, NULL, NULL
    UNION ALL SELECT 'd', id, user_id, last_seq, max_lamport, NULL, NULL, NULL, NULL, NULL FROM devices
      WHERE id IN (SELECT value FROM json_each(?1))
    UNION ALL SELECT 'm', user_id, space_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM members
      WHERE (user_id, space_id) IN (SELECT value->>0, value->>1 FROM json_each(?2))
    UNION ALL SELECT 'e', space, collection, key, value, stamps, base, live, deleted, server_seq FROM entities
      WHERE (space, collection, key) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?3))
    UNION ALL SELECT 'o', device, seq, op_id, result, code, message, NULL, NULL, NULL FROM ops
      WHERE op_id IN (SELECT value FROM json_each(?4))
    UNION ALL SELECT 'o', o.device, o.seq, o.op_id, o.result, o.code, o.message, NULL, NULL, NULL
      FROM json_each(?5) AS r JOIN ops AS o ON o.device = r.value->>0 AND o.seq BETWEEN r.value->>1 AND r.value->>2`;

/**
 * Everything `planGroup` needs, in ONE statement (each statement costs a prepare and a round trip through
 * the driver; a single-op commit used to spend most of its time on six lookups). Rows are tagged by their
 * first column; unused columns are NULL:
 *   h  serverSeq head, purged_seq, lamport head
 *   d  the group's device rows
 *   m  memberships of the group's users in the group's spaces
 *   e  the entities the group's ops touch
 *   o  ledger rows: every op of the group that was processed before (by device and seq range, for
 *      duplicates) and every row holding one of the group's op ids (an id taken by another op)
 * Nothing here depends on the device rows, so resent ops cost a few extra rows, never a second query.
 */
async function loadGroup(tx: Transaction, batches: Batch[]): Promise<Omit<GroupInput, 'check'>> {
  const all = batches.flatMap((b) => b.ops);
  const deviceIds = jsonParam([...new Set(batches.map((b) => b.device))]);
  const memberships = jsonParam(uniqueBy(batches.flatMap((b) => b.ops.map((op) => [b.userId, op.space])), (p) => memberKey(p[0]!, p[1]!)));
  const keys = jsonParam(uniqueBy(all, (op) => entityKey(op.space, op.collection, op.key)).map((op) => [op.space, op.collection, op.key]));
  const ids = jsonParam(all.map((op) => op.id));
  const ranges = jsonParam(batches.map((b) => [b.device, b.ops[0]!.seq, b.ops.at(-1)!.seq]));
  const { rows } = await tx.execute({ sql: LOOKUP, args: [deviceIds, memberships, keys, ids, ranges] });
  const input = {
    devices: new Map<string, DeviceRow>(), ledger: new Map<string, LedgerRow>(), takenIds: new Set<string>(),
    entities: new Map<string, EntityState>(), members: new Set<string>(), serverSeq: 0, lamport: 0,
  };
  for (const r of rows) {
    switch (r[0]) {
      case 'h':
        Object.assign(input, headsOf(r, 1));
        break;
      case 'd':
        input.devices.set(String(r[1]), { id: String(r[1]), userId: String(r[2]), lastSeq: Number(r[3]), maxLamport: Number(r[4]) });
        break;
      case 'm':
        input.members.add(memberKey(String(r[1]), String(r[2])));
        break;
      case 'e': {
        const [space, collection, key] = [String(r[1]), String(r[2]), String(r[3])];
        input.entities.set(entityKey(space, collection, key), {
          space, collection, key, fields: JSON.parse(String(r[4])), stamps: JSON.parse(String(r[5])),
          base: r[6] === null ? null : JSON.parse(String(r[6])), live: JSON.parse(String(r[7])),
          deleted: Number(r[8]) === 1, serverSeq: Number(r[9]),
        });
        break;
      }
      case 'o': {
        const opId = r[3] === null ? null : String(r[3]);
        if (opId !== null) input.takenIds.add(opId);
        input.ledger.set(ledgerKey(String(r[1]), Number(r[2])), {
          device: String(r[1]), seq: Number(r[2]), opId, result: r[4] as LedgerRow['result'],
          code: r[5] === null ? null : String(r[5]), message: r[6] === null ? null : String(r[6]),
        });
        break;
      }
    }
  }
  return input;
}

async function writePlan(tx: Transaction, plan: GroupPlan, now: number): Promise<void> {
  await insertRows(tx, 'devices (id, user_id, last_seq, max_lamport, created_at, last_seen_at)',
    'ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, max_lamport = excluded.max_lamport, last_seen_at = excluded.last_seen_at',
    [...plan.devices.values()].map((d) => [d.id, d.userId, d.lastSeq, d.maxLamport, now, now]));
  const seqOf = new Map(plan.entities.map((e) => [entityKey(e.space, e.collection, e.key), e.serverSeq]));
  await insertRows(tx, 'ops (device, seq, op_id, result, code, message, server_seq, applied_at)', '',
    plan.ledger.map((row) => [row.device, row.seq, row.opId, row.result, row.code, row.message,
      row.result === 'applied' ? (seqOf.get(row.entity) ?? null) : null, now]));
  // JSON columns as the text drizzle's json mode reads back (JSON.stringify); booleans as 0/1, like drizzle.
  await insertRows(tx, 'entities (space, collection, key, value, stamps, base, live, deleted, server_seq, updated_at)',
    `ON CONFLICT (space, collection, key) DO UPDATE SET value = excluded.value, stamps = excluded.stamps, base = excluded.base,
      live = excluded.live, deleted = excluded.deleted, server_seq = excluded.server_seq, updated_at = excluded.updated_at`,
    plan.entities.map((e) => [e.space, e.collection, e.key, JSON.stringify(e.fields), JSON.stringify(e.stamps),
      e.base === null ? null : JSON.stringify(e.base), JSON.stringify(e.live), e.deleted ? 1 : 0, e.serverSeq, now]));
}

/**
 * Multi-row `INSERT INTO <into> SELECT * FROM (VALUES (…), …) WHERE column1 IS NOT NULL <tail>` with bound
 * values (per-row statements are 3–7× slower). A statement's text depends on its row count, and only a
 * repeated text stays in the connection's statement cache (patches/), so the rows are padded with all-NULL
 * rows (filtered out by the WHERE: every table's first column is NOT NULL) up to one of 14 sizes:
 * 1, 2, 4 … 32, then multiples of 64 up to 512. Any batch of up to 512 rows is ONE statement.
 */
async function insertRows(tx: Transaction, into: string, tail: string, rows: readonly InValue[][]): Promise<void> {
  for (let at = 0; at < rows.length; at += 512) {
    const count = Math.min(512, rows.length - at);
    const size = count <= 32 ? 2 ** Math.ceil(Math.log2(count)) : Math.ceil(count / 64) * 64;
    const width = rows[at]!.length;
    const args: InValue[] = [];
    for (let i = at; i < at + count; i++) for (const value of rows[i]!) args.push(value);
    for (let i = count * width; i < size * width; i++) args.push(null);
    await tx.execute({ sql: `INSERT INTO ${into} SELECT * FROM (VALUES ${placeholders(width, size)}) WHERE column1 IS NOT NULL ${tail}`, args });
  }
}

const placeholderCache = new Map<string, string>();
function placeholders(width: number, count: number): string {
  const key = `${width}x${count}`;
  let text = placeholderCache.get(key);
  if (text === undefined) {
    text = Array(count).fill(`(${Array(width).fill('?').join(', ')})`).join(', ');
    placeholderCache.set(key, text);
  }
  return text;
}

/**
 * A JSON array as one text parameter. Strings are made well-formed first, exactly as binding them does
 * (a lone surrogate becomes U+FFFD): SQLite would decode a `\ud800` escape into invalid UTF-8, which libSQL
 * then cannot read back (it aborts the whole process).
 */
function jsonParam(value: unknown): string {
  const text = JSON.stringify(value);
  // JSON.stringify writes a lone surrogate as a `\udXXX` escape; only then is the slow pass needed.
  return /\\u[dD][89a-fA-F]/.test(text) ? JSON.stringify(value, (_, v: unknown) => (typeof v === 'string' ? wellFormed(v) : v)) : text;
}

/** String.prototype.toWellFormed (ES2024; Bun has it, the ES2022 lib types do not). */
const wellFormed = (text: string): string => (text as unknown as { toWellFormed(): string }).toWellFormed();

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Set<string>();
  const unique: T[] = [];
  for (const item of items) {
    const k = key(item);
    if (!seen.has(k)) {
      seen.add(k);
      unique.push(item);
    }
  }
  return unique;
}
