// The one module that reads and writes sync data (devices, ledger, entities, meta) in SQL.
// `commitGroup` is the write side of apply: it loads what `planGroup` needs inside ONE write
// transaction, writes the plan with one statement per table (per-row statements are 3–7× slower on
// libSQL; the rows travel as ONE JSON parameter, see `insertFromJson`) and commits. Nothing here knows
// about HTTP or sockets.
import { and, asc, eq, gt, inArray, sql, type SQL } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { EntityWire } from '../schema/wire.ts';
import { devices, entities, members, meta, ops } from '../schema/tables.ts';
import {
  entityKey, ledgerKey, memberKey, planGroup,
  type Batch, type CollectionCheck, type DeviceRow, type EntityState, type GroupPlan, type LedgerRow,
} from './apply.ts';
import type { FerryDb, FerryTx } from './db.ts';

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
    commitGroup: (batches, now) =>
      db.transaction(async (tx) => {
        const plan = planGroup(batches, { ...(await loadGroup(tx, batches)), ...(check ? { check } : {}) });
        await writePlan(tx, plan, now);
        return { outcomes: plan.outcomes, extra: { entities: plan.entities, lamport: plan.lamport } };
      }),

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
        for (const [space, seq] of horizons) {
          await tx.insert(meta).values({ key: `horizon:${space}`, value: String(seq) })
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

async function readHeads(db: FerryDb | FerryTx): Promise<{ serverSeq: number; lamport: number }> {
  const rows = await db.select().from(meta).where(inArray(meta.key, ['server_seq', 'lamport']));
  const get = (key: string) => Number(rows.find((r) => r.key === key)?.value ?? 0);
  return { serverSeq: get('server_seq'), lamport: get('lamport') };
}

async function loadGroup(tx: FerryTx, batches: Batch[]) {
  const deviceIds = [...new Set(batches.map((b) => b.device))];
  const deviceRows = await tx.select().from(devices).where(inArray(devices.id, deviceIds));
  const known = new Map<string, DeviceRow>(
    deviceRows.map((d) => [d.id, { id: d.id, userId: d.userId, lastSeq: d.lastSeq, maxLamport: d.maxLamport }]),
  );
  const ledger = new Map<string, LedgerRow>();
  for (const batch of batches) {
    const last = known.get(batch.device)?.lastSeq ?? 0;
    const first = batch.ops[0]!.seq;
    if (first > last) continue;
    const rows = await tx.select().from(ops).where(and(eq(ops.device, batch.device),
      sql`${ops.seq} BETWEEN ${first} AND ${Math.min(last, batch.ops.at(-1)!.seq)}`));
    for (const r of rows) ledger.set(ledgerKey(r.device, r.seq), { ...r, result: r.result });
  }
  const fresh = batches.flatMap((b) => b.ops.filter((op) => op.seq > (known.get(b.device)?.lastSeq ?? 0)));
  const takenIds = new Set<string>();
  const idRows = await tx.select({ id: ops.opId }).from(ops)
    .where(sql`${ops.opId} IN (SELECT value FROM json_each(${jsonParam(fresh.map((op) => op.id))}))`);
  for (const r of idRows) if (r.id !== null) takenIds.add(r.id);
  const users = [...new Set(batches.map((b) => b.userId))];
  const memberRows = await tx.select().from(members).where(inArray(members.userId, users));
  const keys = uniqueBy(fresh, (op) => entityKey(op.space, op.collection, op.key));
  const current = new Map<string, EntityState>();
  {
    const tuples = jsonParam(keys.map((op) => [op.space, op.collection, op.key]));
    const rows = await tx.select().from(entities).where(sql`(${entities.space}, ${entities.collection}, ${entities.key})
      IN (SELECT value->>0, value->>1, value->>2 FROM json_each(${tuples}))`);
    for (const r of rows) {
      current.set(entityKey(r.space, r.collection, r.key), {
        space: r.space, collection: r.collection, key: r.key, fields: r.value, stamps: r.stamps,
        base: r.base ?? null, live: r.live, deleted: r.deleted, serverSeq: r.serverSeq,
      });
    }
  }
  const heads = await readHeads(tx);
  return {
    devices: known, ledger, takenIds, entities: current,
    members: new Set(memberRows.map((m) => memberKey(m.userId, m.spaceId))),
    serverSeq: heads.serverSeq, lamport: heads.lamport,
  };
}

async function writePlan(tx: FerryTx, plan: GroupPlan, now: number): Promise<void> {
  const deviceRows = [...plan.devices.values()].map((d) => ({ ...d, createdAt: now, lastSeenAt: now }));
  if (deviceRows.length > 0) {
    await tx.insert(devices).values(deviceRows).onConflictDoUpdate({
      target: devices.id,
      set: { lastSeq: excluded('last_seq'), maxLamport: excluded('max_lamport'), lastSeenAt: excluded('last_seen_at') },
    });
  }
  const seqOf = new Map(plan.entities.map((e) => [entityKey(e.space, e.collection, e.key), e.serverSeq]));
  if (plan.ledger.length > 0) {
    await tx.run(insertFromJson(ops, [ops.device, ops.seq, ops.opId, ops.space, ops.collection, ops.key, ops.result,
      ops.code, ops.message, ops.serverSeq, ops.appliedAt], plan.ledger.map((row) => [row.device, row.seq, row.opId,
      row.space, row.collection, row.key, row.result, row.code, row.message,
      row.result === 'applied' ? (seqOf.get(entityKey(row.space, row.collection, row.key)) ?? null) : null, now])));
  }
  if (plan.entities.length > 0) {
    const columns = [entities.space, entities.collection, entities.key, entities.value, entities.stamps, entities.base,
      entities.live, entities.deleted, entities.serverSeq, entities.updatedAt];
    // JSON columns as the text drizzle's json mode writes (JSON.stringify); booleans as 0/1, like drizzle.
    const rows = plan.entities.map((e) => [e.space, e.collection, e.key, JSON.stringify(e.fields), JSON.stringify(e.stamps),
      e.base === null ? null : JSON.stringify(e.base), JSON.stringify(e.live), e.deleted ? 1 : 0, e.serverSeq, now]);
    const quoted = columns.map((c) => `"${c.name}"`);
    const updates = quoted.slice(3).map((c) => `${c} = excluded.${c}`).join(', ');
    // `WHERE true`: SQLite's grammar needs it between INSERT … SELECT and ON CONFLICT.
    await tx.run(sql`${insertFromJson(entities, columns, rows)} WHERE true
      ON CONFLICT (${sql.raw(quoted.slice(0, 3).join(', '))}) DO UPDATE SET ${sql.raw(updates)}`);
  }
  await tx.insert(meta).values([
    { key: 'server_seq', value: String(plan.serverSeq) },
    { key: 'lamport', value: String(plan.lamport) },
  ]).onConflictDoUpdate({ target: meta.key, set: { value: excluded('value') } });
}

const excluded = (column: string): SQL => sql.raw(`excluded.${column}`);

/**
 * `INSERT INTO t (columns) SELECT value->>0, … FROM json_each(?)`: all rows in ONE statement with ONE bound
 * parameter. Bound per value, a 500-op commit spent ~2 µs per value in drizzle's query builder plus
 * SQLite's parse of a 5,000-parameter statement: about two thirds of its time (docs/benchmarks.md).
 */
function insertFromJson(table: SQLiteTable, columns: readonly SQLiteColumn[], rows: readonly (string | number | null)[][]): SQL {
  const names = columns.map((c) => `"${c.name}"`).join(', ');
  const picks = columns.map((_, i) => `value->>${i}`).join(', ');
  return sql`INSERT INTO ${table} (${sql.raw(names)}) SELECT ${sql.raw(picks)} FROM json_each(${jsonParam(rows)})`;
}

/**
 * A JSON array as one text parameter. Strings are made well-formed first, exactly as binding them does
 * (a lone surrogate becomes U+FFFD): SQLite would decode a `\ud800` escape into invalid UTF-8, which libSQL
 * then cannot read back (it aborts the whole process).
 */
function jsonParam(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === 'string' ? wellFormed(v) : v));
}

/** String.prototype.toWellFormed (ES2024; Bun has it, the ES2022 lib types do not). */
const wellFormed = (text: string): string => (text as unknown as { toWellFormed(): string }).toWellFormed();

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}
