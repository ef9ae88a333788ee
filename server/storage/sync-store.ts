// The one module that reads and writes sync data (devices, ledger, entities, meta) in SQL.
// `commitGroup` is the write side of apply. Inside ONE write transaction it loads everything `planGroup`
// needs with ONE statement (`LOOKUP`), then writes the plan with one multi-row statement per table (per
// 512 rows, see `insertRows`), then commits. A single-op commit is BEGIN, 4 statements, COMMIT (one more
// when the app's effects record a row for it: server/effects.ts).
// Nothing here knows about HTTP or sockets.
import type { InValue, Transaction } from '@libsql/client';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { EffectSelection, WriteRules } from '../../core/logic.ts';
import type { CollectionVersions } from '../../core/versions.ts';
import type { EntityRow, Role } from '../../core/types.ts';
import type { EntityWire } from '../../schema/wire.ts';
import { devices, entities, members, meta, ops } from '../../schema/tables.ts';
import {
  entityKey, ledgerKey, memberKey, planGroup,
  type Batch, type CollectionCheck, type DeviceRow, type GroupInput, type GroupPlan, type LedgerRow,
} from '../../core/apply.ts';
import type { SpaceChange } from '../change-bus.ts';
import { type FerryDb, whenUnlocked } from './db.ts';

export interface CommitExtra {
  /** Changed entities, in serverSeq order, for fan-out to subscribers. */
  entities: EntityRow[];
  lamport: number;
  /** Each changed space's stream before and after the commit (server/change-bus.ts SpaceChange). */
  spaces: SpaceChange[];
  /** How many effect rows the commit recorded (server/effects.ts delivers them). */
  effects: number;
}

/** One entity row as the JSON text of its EntityWire (the same fields as `toWire` gives). */
export interface EntityText {
  serverSeq: number;
  json: string;
}

export interface SyncStore {
  commitGroup(batches: Batch[], now: number): Promise<{ outcomes: GroupPlan['outcomes']; extra: CommitExtra }>;
  /**
   * commitGroup for a group taken once the write lock is held: `take()` runs right after BEGIN IMMEDIATE,
   * so pushes that arrived while another process held the lock join this commit instead of the next.
   */
  commitTaking(take: () => Batch[], now: number): Promise<{ batches: Batch[]; outcomes: GroupPlan['outcomes']; extra: CommitExtra }>;
  /** Entities of a space with serverSeq > after, tombstones included, in serverSeq order. */
  changesSince(space: string, after: number, limit: number): Promise<EntityWire[]>;
  /**
   * changesSince as each row's EntityWire JSON text, for `changes` frames (catch-up), and the lamport head
   * (0 when there are no rows). The text is spliced from the stored JSON columns, never parsed here.
   */
  changeTexts(space: string, after: number, limit: number): Promise<{ rows: EntityText[]; lamport: number }>;
  /** Live entities of a space with serverSeq > after, in serverSeq order. */
  snapshotPage(space: string, after: number, limit: number): Promise<EntityWire[]>;
  /** The last serverSeq handed out and the highest lamport accepted, server-wide. */
  heads(): Promise<{ serverSeq: number; lamport: number }>;
  device(id: string): Promise<DeviceRow | null>;
  horizon(space: string): Promise<number>;
  /** Deletes tombstones last written before `before`; raises each touched space's horizon. */
  purgeTombstones(before: number): Promise<number>;
}

/** The app's logic the commit runs (core/logic.ts): write rules per collection, and which effects an
 * applied op calls for (recorded in the same commit). */
export interface CommitLogic {
  /** The app's schema version per collection and its upgrades of older ops (core/versions.ts). */
  versions?: CollectionVersions;
  rules?: WriteRules;
  effects?: EffectSelection;
}

export function createSyncStore(db: FerryDb, check?: CollectionCheck, logic: CommitLogic = {}): SyncStore {
  const commitTaking: SyncStore['commitTaking'] = async (take, now) => {
    // The hot path talks to the libSQL client directly: drizzle's query builder costs ~2 µs per bound
    // value, which was most of a 500-op commit (docs/benchmarks.md). `write` is BEGIN IMMEDIATE, waiting
    // for another process's commit off the JS thread (db.ts whenUnlocked).
    // Op ids are checked optimistically: the lookup does not probe the ledger's op-id index for every new
    // op (an id taken by another op is a client bug, not traffic); the ledger insert's unique index does.
    // When it finds one, the transaction is rolled back whole and the same group planned again in a new
    // one, this time with the ids probed, so the op is rejected `invalid` as planning decides.
    let batches: Batch[] | null = null;
    for (const probeIds of [false, true]) {
      const tx = await whenUnlocked(beginWrite);
      try {
        batches ??= take();
        const { input, heads } = await loadGroup(tx, batches, probeIds);
        const plan = planGroup(batches, { ...input, ...(check ? { check } : {}), ...logic, now });
        try {
          await writePlan(tx, plan, now);
        } catch (error) {
          if (!probeIds && isTakenOpId(error)) continue; // `finally` rolls this attempt back
          throw error;
        }
        await tx.commit();
        const extra = { entities: plan.entities, lamport: plan.lamport, spaces: spaceChanges(plan, heads), effects: plan.effects.length };
        return { batches, outcomes: plan.outcomes, extra };
      } finally {
        tx.close(); // rolls back unless committed; returns the connection to the pool
      }
    }
    throw new Error('unreachable: the second attempt probes every op id');
  };
  /** A write transaction that holds the lock. A remote client sends BEGIN only with the first statement
   * (so its SQLITE_BUSY would surface there, past whenUnlocked): one no-op statement takes the lock. The
   * embedded file client runs BEGIN IMMEDIATE in `transaction()` itself, so it needs none. */
  const local = db.$client.protocol === 'file';
  const beginWrite = async (): Promise<Transaction> => {
    const tx = await db.$client.transaction('write');
    if (local) return tx;
    try {
      await tx.execute('SELECT 1');
      return tx;
    } catch (error) {
      tx.close();
      throw error;
    }
  };
  return {
    commitTaking,
    async commitGroup(batches, now) {
      const { outcomes, extra } = await commitTaking(() => batches, now);
      return { outcomes, extra };
    },

    async changesSince(space, after, limit) {
      const rows = await db.select().from(entities)
        .where(and(eq(entities.space, space), gt(entities.serverSeq, after)))
        .orderBy(asc(entities.serverSeq)).limit(limit);
      return rows.map(toWire);
    },

    async changeTexts(space, after, limit) {
      const { rows } = await db.$client.execute({ sql: CHANGE_TEXTS, args: [space, after, limit] });
      return { rows: rows.map(entityText), lamport: Number(rows[0]?.[8] ?? 0) };
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

    purgeTombstones: (before) => whenUnlocked(() =>
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
      })),
  };
}

export function toWire(row: typeof entities.$inferSelect): EntityWire {
  return {
    collection: row.collection, key: row.key, fields: row.value, stamps: row.stamps,
    base: row.base ?? null, live: row.live, deleted: row.deleted, serverSeq: row.serverSeq,
  };
}

/**
 * Catch-up reads a page of rows only to send it on, so each row's EntityWire JSON is spliced from the
 * stored JSON columns as they are (text `writePlan` wrote with JSON.stringify); only the two text keys
 * are quoted, by SQLite's json_quote. Parsing four JSON columns per row to serialize them again was the
 * gap to the raw paged SELECT (docs/benchmarks.md, catch-up). Spliced here, not with `||` in SQL: SQLite
 * copies the whole text at each `||`, which copied each 60 KB value once for every `||` after it. The
 * lamport head rides along (computed once).
 */
const CHANGE_TEXTS = `SELECT server_seq, json_quote(collection), json_quote(key), value, stamps, base, live, deleted,
    (SELECT max(max_lamport) FROM devices)
  FROM entities WHERE space = ? AND server_seq > ? ORDER BY server_seq LIMIT ?`;

const entityText = (r: { readonly [column: number]: unknown }): EntityText => ({
  serverSeq: Number(r[0]),
  json: `{"collection":${String(r[1])},"key":${String(r[2])},"fields":${String(r[3])},"stamps":${String(r[4])},"base":${r[5] === null ? 'null' : String(r[5])},"live":${String(r[6])},"deleted":${Number(r[7]) === 1},"serverSeq":${Number(r[0])}}`,
});

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
    UNION ALL SELECT 'm', user_id, space_id, role, NULL, NULL, NULL, NULL, NULL, NULL FROM members
      WHERE (user_id, space_id) IN (SELECT value->>0, value->>1 FROM json_each(?2))
    UNION ALL SELECT 'e', space, collection, key, value, stamps, base, live, deleted, server_seq FROM entities
      WHERE (space, collection, key) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?3))
    UNION ALL SELECT 'o', device, seq, op_id, result, code, message, NULL, NULL, NULL FROM ops
      WHERE op_id IN (SELECT value FROM json_each(?4))
    UNION ALL SELECT 'o', o.device, o.seq, o.op_id, o.result, o.code, o.message, NULL, NULL, NULL
      FROM json_each(?5) AS r JOIN ops AS o ON o.device = r.value->>0 AND o.seq BETWEEN r.value->>1 AND r.value->>2
    UNION ALL SELECT 's', j.value, (SELECT max(e.server_seq) FROM entities AS e WHERE e.space = j.value), NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM json_each(?6) AS j`;

/**
 * Everything `planGroup` needs, and each touched space's head (for the change bus's `from`), in ONE statement (each statement costs a prepare and a round trip through
 * the driver; a single-op commit used to spend most of its time on six lookups). Rows are tagged by their
 * first column; unused columns are NULL:
 *   h  serverSeq head, purged_seq, lamport head
 *   d  the group's device rows
 *   m  memberships of the group's users in the group's spaces, with their roles
 *   e  the entities the group's ops touch
 *   o  ledger rows: every op of the group that was processed before (by device and seq range, for
 *      duplicates) and, when `probeIds`, every row holding one of the group's op ids (an id taken by
 *      another op; without it `?4` is an empty list and the ledger's unique index finds such an id)
 *   s  each space the group's ops aim at, with its highest serverSeq (index (space, server_seq): one seek).
 *      Qualified: unqualified, `value` inside the subquery is entities.value (the row's JSON), not the
 *      space, and every `from` was 0, so a subscriber behind another instance's commit got a gap.
 * Nothing here depends on the device rows, so resent ops cost a few extra rows, never a second query.
 */
async function loadGroup(tx: Transaction, batches: Batch[], probeIds: boolean): Promise<{ input: Omit<GroupInput, 'check' | 'versions' | 'rules' | 'now' | 'effects'>; heads: Map<string, number> }> {
  const { rows } = await tx.execute({ sql: LOOKUP, args: lookupArgs(batches, probeIds) });
  const heads = new Map<string, number>();
  const input = {
    devices: new Map<string, DeviceRow>(), ledger: new Map<string, LedgerRow>(), takenIds: new Set<string>(),
    entities: new Map<string, EntityRow>(), members: new Map<string, Role>(), serverSeq: 0, lamport: 0,
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
        input.members.set(memberKey(String(r[1]), String(r[2])), String(r[3]) as Role);
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
      case 's':
        heads.set(String(r[1]), Number(r[2] ?? 0));
        break;
    }
  }
  return { input, heads };
}

/** LOOKUP's six JSON list parameters for a group (see loadGroup). */
function lookupArgs(batches: Batch[], probeIds: boolean): string[] {
  const all = batches.flatMap((b) => b.ops);
  const deviceIds = jsonParam([...new Set(batches.map((b) => b.device))]);
  // One pass each, no array per op: these lists were a tenth of a 500-op commit's JavaScript.
  const pairs = new Map<string, [string, string]>();
  for (const b of batches) {
    let last: string | null = null;
    for (const op of b.ops) {
      if (op.space === last) continue; // a batch's ops mostly share one space
      last = op.space;
      const key = memberKey(b.userId, op.space);
      if (!pairs.has(key)) pairs.set(key, [b.userId, op.space]);
    }
  }
  const memberships = jsonParam([...pairs.values()]);
  const seen = new Set<string>();
  const triples: [string, string, string][] = [];
  for (const op of all) {
    const key = entityKey(op.space, op.collection, op.key);
    if (seen.has(key)) continue;
    seen.add(key);
    triples.push([op.space, op.collection, op.key]);
  }
  const keys = jsonParam(triples);
  const ids = probeIds ? jsonParam(all.map((op) => op.id)) : '[]';
  const ranges = jsonParam(batches.map((b) => [b.device, b.ops[0]!.seq, b.ops.at(-1)!.seq]));
  const spaceIds = jsonParam([...new Set(all.map((op) => op.space))]);
  return [deviceIds, memberships, keys, ids, ranges, spaceIds];
}

/**
 * Per space the group's ops aim at: its head before (from the lookup) and after (the plan's last row there).
 * A space the plan did not write to is listed too, with `from == to` (its head): its ops may be resends
 * answered `duplicate` whose first commit's notice died with the instance that made it (killed between
 * COMMIT and publish), so the resend, whichever instance takes it, tells every subscriber below the head
 * to catch up.
 */
function spaceChanges(plan: GroupPlan, heads: ReadonlyMap<string, number>): SpaceChange[] {
  const to = new Map(heads);
  for (const entity of plan.entities) to.set(entity.space, Math.max(to.get(entity.space) ?? 0, entity.serverSeq));
  return [...to].map(([space, head]) => ({ space, from: heads.get(space) ?? 0, to: head }));
}

/** The ledger's unique op-id index refused a row: an op reused the id of another (commitTaking). */
function isTakenOpId(error: unknown): boolean {
  return error instanceof Error && /UNIQUE constraint failed: ops\.op_id/.test(error.message);
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
  if (plan.effects.length > 0) {
    // The effect rows of the applied ops, in the same commit (invariant 10): server/storage/effects-store.ts.
    await insertRows(tx, 'effects (op_id, name, payload, status, attempts, next_at, created_at)', '',
      plan.effects.map((e) => [e.write.op.id, e.name, JSON.stringify(e.write), 'pending', 0, now, now]));
  }
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
