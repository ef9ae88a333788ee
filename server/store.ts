// The one module that reads and writes sync data (devices, ledger, entities, meta) in SQL.
// `commitGroup` is the write side of apply: it loads what `planGroup` needs inside ONE write
// transaction, writes the plan in multi-row statements (per-statement batches are 3–7× slower on
// libSQL) and commits. Nothing here knows about HTTP or sockets.
import { and, asc, eq, gt, inArray, sql, type SQL } from 'drizzle-orm';
import type { EntityWire } from '../schema/wire.ts';
import { devices, entities, members, meta, ops } from '../schema/tables.ts';
import {
  entityKey, ledgerKey, memberKey, planGroup,
  type Batch, type CollectionCheck, type DeviceRow, type EntityState, type GroupPlan, type LedgerRow,
} from './apply.ts';
import type { FerryDb, FerryTx } from './db.ts';

/** SQLite allows 32,766 bound variables per statement; stay well under it. */
const MAX_VARS = 30_000;

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
  for (const ids of chunks([...new Set(fresh.map((op) => op.id))], MAX_VARS)) {
    const rows = await tx.select({ id: ops.opId }).from(ops).where(inArray(ops.opId, ids));
    for (const r of rows) if (r.id !== null) takenIds.add(r.id);
  }
  const users = [...new Set(batches.map((b) => b.userId))];
  const memberRows = await tx.select().from(members).where(inArray(members.userId, users));
  const keys = uniqueBy(fresh, (op) => entityKey(op.space, op.collection, op.key));
  const current = new Map<string, EntityState>();
  for (const part of chunks(keys, Math.floor(MAX_VARS / 3))) {
    const tuples = sql.join(part.map((op) => sql`(${op.space}, ${op.collection}, ${op.key})`), sql`, `);
    const rows = await tx.select().from(entities)
      .where(sql`(${entities.space}, ${entities.collection}, ${entities.key}) IN (VALUES ${tuples})`);
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
  for (const part of chunks(plan.ledger, Math.floor(MAX_VARS / 11))) {
    await tx.insert(ops).values(part.map((row) => ({ ...row, appliedAt: now,
      serverSeq: row.result === 'applied' ? (seqOf.get(entityKey(row.space, row.collection, row.key)) ?? null) : null })));
  }
  for (const part of chunks(plan.entities, Math.floor(MAX_VARS / 10))) {
    await tx.insert(entities).values(part.map((e) => ({
      space: e.space, collection: e.collection, key: e.key, value: e.fields, stamps: e.stamps,
      base: e.base, live: e.live, deleted: e.deleted, serverSeq: e.serverSeq, updatedAt: now,
    }))).onConflictDoUpdate({
      target: [entities.space, entities.collection, entities.key],
      set: {
        value: excluded('value'), stamps: excluded('stamps'), base: excluded('base'), live: excluded('live'),
        deleted: excluded('deleted'), serverSeq: excluded('server_seq'), updatedAt: excluded('updated_at'),
      },
    });
  }
  await tx.insert(meta).values([
    { key: 'server_seq', value: String(plan.serverSeq) },
    { key: 'lamport', value: String(plan.lamport) },
  ]).onConflictDoUpdate({ target: meta.key, set: { value: excluded('value') } });
}

const excluded = (column: string): SQL => sql.raw(`excluded.${column}`);

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}
