// The server's storage, as drizzle sqlite-core tables for libSQL. drizzle-kit turns this file into the
// committed migrations under schema/migrations (never edit those by hand: change this file and run
// `bunx drizzle-kit generate`). Only server/db.ts opens the database.
//
// Conventions: snake_case columns, camelCase properties; times are integer milliseconds since the epoch;
// JSON columns use drizzle's json mode (JSON.stringify on write, JSON.parse on read), so a Stamp is stored
// as `[lamport, device]`.
//
// The upserts of the apply path depend on these unique indexes (DESIGN "Lessons": an index the upsert
// relies on must ship as a migration, or resends insert duplicates):
//   ops       PRIMARY KEY (device, seq)              exactly once per device op (invariant 2)
//   ops       UNIQUE (op_id)                         an op id names one op, whatever its (device, seq)
//   entities  PRIMARY KEY (space, collection, key)   one row per entity, tombstones included
//   entities  UNIQUE (server_seq)                    the cursor never names two rows
//   entities  INDEX (space, server_seq)              catch-up: rows of a space with server_seq > cursor

import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { type Fields, ROLES, type Stamp } from '../core/types.ts';

// ── accounts ────────────────────────────────────────────────────────────────────────────────────────────

export const users = sqliteTable('users', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  createdAt: integer('created_at').notNull(),
});

/**
 * Browser sessions. `id` is the SHA-256 hex of the cookie secret: a leaked database (or backup) holds no
 * cookie that could be replayed. Sessions and tokens go with their user (ON DELETE CASCADE).
 */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('sessions_user_id_idx').on(t.userId)],
);

/** Bearer tokens for non-browser clients. `id` is the SHA-256 hex of the token; `expiresAt` null = never. */
export const tokens = sqliteTable(
  'tokens',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at'),
  },
  (t) => [index('tokens_user_id_idx').on(t.userId)],
);

// ── devices and spaces ──────────────────────────────────────────────────────────────────────────────────

/**
 * A device id is bound to the first user that uses it (invariant 6). `lastSeq` is the highest seq
 * processed (applied, superseded or rejected — a rejected op still consumes its seq, invariant 3), so the
 * next expected seq is `lastSeq + 1`. `maxLamport` is the floor for `lamport_regression` (invariant 5).
 * No cascade from users: a device's ledger must not vanish as a side effect.
 */
export const devices = sqliteTable(
  'devices',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id),
    lastSeq: integer('last_seq').notNull().default(0),
    maxLamport: integer('max_lamport').notNull().default(0),
    createdAt: integer('created_at').notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
  },
  (t) => [
    index('devices_user_id_idx').on(t.userId),
    // The lamport head is max(max_lamport), read in every commit's lookup (server/store.ts): no counter row.
    index('devices_max_lamport_idx').on(t.maxLamport),
  ],
);

/** The unit of sharing and authorization. Each user has exactly one personal space (partial unique index). */
export const spaces = sqliteTable(
  'spaces',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    ownerId: text('owner_id')
      .notNull()
      .references(() => users.id),
    personal: integer('personal', { mode: 'boolean' }).notNull().default(false),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    // Two concurrent first sign-ins cannot give one user two personal spaces.
    uniqueIndex('spaces_one_personal_per_owner').on(t.ownerId).where(sql`${t.personal} = 1`),
  ],
);

export const members = sqliteTable(
  'members',
  {
    spaceId: text('space_id')
      .notNull()
      .references(() => spaces.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** owner: everything, and the only one who invites, removes and changes roles; editor: reads and
     * writes; viewer: reads only (their ops are rejected `read_only`). Migration 0002 made every earlier
     * 'member' an editor. */
    role: text('role', { enum: ROLES }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.spaceId, t.userId] }),
    // "which spaces may this user read/write" is asked on every push and subscribe.
    index('members_user_id_idx').on(t.userId),
    check('members_role_known', sql`${t.role} IN ('owner', 'editor', 'viewer')`),
  ],
);

// ── the op ledger ───────────────────────────────────────────────────────────────────────────────────────

/**
 * One row per processed op, holding its FIRST result, so a resend is answered `duplicate` with it and
 * causes no second side effect (invariant 2). Written in the same transaction as the entity rows.
 *
 * Deliberately lean: the op's value is not stored. A duplicate needs only the result; the entity row
 * already holds the merged state; and keeping up to 64 KiB per op forever would make this the largest
 * table for no reader. (If an audit or replay feature ever needs the values, it is an additive migration.)
 *
 * `opId` is null only for an op rejected because its id was already taken by another op: the rejection
 * must still be recorded (it consumes its seq, invariant 3) without breaking the unique index, which
 * SQLite applies to non-null values only.
 * Which entity an op touched is not kept either: nothing reads it, and the three text columns were about
 * 40 % of the ledger's write cost (docs/benchmarks.md). An op aimed at a space that does not exist, or that
 * the user may not write, is still durably recorded as `rejected` (invariant 1).
 * `serverSeq` is the entity write this op caused (null when it caused none); several ops of one batch may
 * share it, so it is not unique here.
 */
export const ops = sqliteTable(
  'ops',
  {
    device: text('device')
      .notNull()
      .references(() => devices.id),
    seq: integer('seq').notNull(),
    opId: text('op_id'),
    result: text('result', { enum: ['applied', 'superseded', 'rejected'] }).notNull(),
    code: text('code'),
    message: text('message'),
    serverSeq: integer('server_seq'),
    appliedAt: integer('applied_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.device, t.seq] }),
    uniqueIndex('ops_op_id_unique').on(t.opId),
    check('ops_result_known', sql`${t.result} IN ('applied', 'superseded', 'rejected')`),
    // A rejection must say why: the device shows it in the dead-letter list (invariant 7).
    check('ops_rejected_has_code', sql`${t.result} <> 'rejected' OR ${t.code} IS NOT NULL`),
  ],
);

// ── current state ───────────────────────────────────────────────────────────────────────────────────────

/**
 * The current state of each (space, collection, key): a core `Doc` plus its place in the change order.
 * A delete leaves a tombstone (`deleted` true, with its stamps), purged after the retention period; the purge
 * horizon of a space lives in `meta` (`horizon:<space>`). Every write takes a fresh `serverSeq` from the
 * global counter, so the unique index on it doubles as a guard against handing out a number twice.
 */
export const entities = sqliteTable(
  'entities',
  {
    space: text('space')
      .notNull()
      .references(() => spaces.id),
    collection: text('collection').notNull(),
    key: text('key').notNull(),
    /** Doc.fields: the visible fields only. */
    value: text('value', { mode: 'json' }).$type<Fields>().notNull(),
    /** Doc.stamps: exactly the keys of `value`. */
    stamps: text('stamps', { mode: 'json' }).$type<Record<string, Stamp>>().notNull(),
    base: text('base', { mode: 'json' }).$type<Stamp>(),
    live: text('live', { mode: 'json' }).$type<Stamp>().notNull(),
    deleted: integer('deleted', { mode: 'boolean' }).notNull().default(false),
    serverSeq: integer('server_seq').notNull().unique('entities_server_seq_unique'),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.space, t.collection, t.key] }),
    index('entities_space_server_seq_idx').on(t.space, t.serverSeq),
    // The purge scans tombstones by age; live rows stay out of this index.
    index('entities_tombstones_idx').on(t.updatedAt).where(sql`${t.deleted} = 1`),
  ],
);

/**
 * Small server-wide values, by key:
 * - `horizon:<space>`: the highest serverSeq among purged tombstones; a cursor below it gets `reset`.
 * - `purged_seq`: the highest serverSeq ever purged, server-wide.
 * The heads are derived, not stored, so a commit writes no counter row (server/store.ts):
 *   serverSeq head = max(max(entities.server_seq), purged_seq): purging the tombstone that held the maximum
 *                    cannot hand its number out again (a client already past it would miss the new write);
 *   lamport head   = max(devices.max_lamport): every accepted op's lamport is some device's max once.
 */
export const meta = sqliteTable('meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});
// ── effects ─────────────────────────────────────────────────────────────────────────────────────────────

/**
 * One row per (applied op, effect handler), written in the SAME transaction as the op's ledger row and
 * entity (invariant 10): an op that is never applied, or applied but a resend (answered from the ledger),
 * can never add one, and the primary key would refuse a second. The dispatcher (server/effects.ts) delivers
 * each row after the commit, at least once, with the op id as the idempotency key:
 *
 *   pending ──claim (lease_owner, lease_until: one instance at a time)──▶ handler ─ok──▶ done
 *      ▲                                                                     │ threw / timed out
 *      └───── next_at = now + backoff(attempts) ◀── attempts < max ◀────────┤
 *   failed ◀─────────────────────────────────────── attempts = max ◀────────┘   (retry → pending, drop → dropped)
 *
 * A lease left by an instance that died mid-handler expires and another instance claims it again.
 * `payload` is what the handler gets: `{ op, writer, entity }` as of the commit.
 */
export const effects = sqliteTable(
  'effects',
  {
    opId: text('op_id').notNull(),
    name: text('name').notNull(),
    payload: text('payload').notNull(),
    status: text('status', { enum: ['pending', 'done', 'failed', 'dropped'] }).notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** When it may be tried next (ms). */
    nextAt: integer('next_at').notNull(),
    /** The instance holding it, until `lease_until`; both null while nobody does. */
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
    /** The last failure, one safe sentence (never a stack). */
    lastError: text('last_error'),
    createdAt: integer('created_at').notNull(),
    /** When it was delivered, failed for good or dropped. */
    settledAt: integer('settled_at'),
  },
  (t) => [
    primaryKey({ columns: [t.opId, t.name] }),
    // Claims (pending and due) and the counts /metrics and /healthz read.
    index('effects_status_next_at_idx').on(t.status, t.nextAt),
    check('effects_status_known', sql`${t.status} IN ('pending', 'done', 'failed', 'dropped')`),
  ],
);
