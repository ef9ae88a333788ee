// The plain shapes the device keeps in IndexedDB and the pure steps around them. store.ts owns the
// database and carries these out inside its transactions; keeping them here keeps that file about
// transactions, and lets the page library share the shapes without importing `idb`.
import * as v from 'valibot';
import { applyAll, mergeDocs } from '../core/merge.ts';
import type { DeadLetter, OutboxEntry } from '../core/outbox.ts';
import type { OutboxSpan } from '../core/outbox-drain.ts';
import type { Doc, Fields, Op } from '../core/types.ts';
import { opProblem, type OpProblemCode } from '../core/validate.ts';
import { describeIssues, OpSchema } from '../schema/op.ts';
import type { EntityWire } from '../schema/wire.ts';

/** What an app asks to write; the store gives it a seq, a lamport, an id and a time. */
export type Draft = Pick<Op, 'space' | 'collection' | 'key' | 'kind' | 'value' | 'version'>;

/** The identity of one entity, also the `entities` store's key and the outbox's `by_entity` index key. */
export type EntityKey = [space: string, collection: string, key: string];

/**
 * An outbox row: core's entry plus the op's seq and entity, copied out so IndexedDB can key and index them.
 * `prev` (version 4): the seq of the entity's newest op that was still in the outbox when this one was
 * written (absent when none was: the `by_prev` index then holds no entry for the row). An ack reads the
 * rows whose `prev` it answers to learn which of its entities still have ops waiting (store.ts applyAck).
 */
export interface OutboxRow extends OutboxEntry {
  seq: number;
  space: string;
  collection: string;
  key: string;
  prev?: number;
}

/** A dead letter, keyed by the seq its op had. */
export interface DeadRow extends DeadLetter {
  seq: number;
}

/**
 * One entity of the local replica.
 * - `server`: what we know the server holds — the changes it sent, joined with our own ops it has
 *   acked (an ack is a durable commit, so they are in its state too; folding them in at ack time
 *   keeps the person's change on screen until the matching change message arrives).
 * - `doc`: `server` with the pending (unacked) ops applied on top: what the person sees.
 * - `pending`: how many of this entity's ops wait in the outbox ("not synced yet" in the UI).
 * - `through` (version 4): the seq of the newest op written to this entity here; set whenever `pending` > 0.
 *
 * Stored as last written, which may be behind by one ack: an ack that leaves an entity nothing pending, with
 * every op committed as sent, does not rewrite it (that was most of a drain's time). Its record then still
 * counts those ops, but `through` is below the outbox's lowest seq, and `settle` reads it as what the ack
 * would have written (`server` = `doc`, nothing pending). Every reader settles a record before using it.
 */
export interface EntityRecord {
  space: string;
  collection: string;
  key: string;
  server: Doc | null;
  doc: Doc | null;
  pending: number;
  through?: number;
}

/** An entity as the app reads it. Tombstones are not visible. */
export interface ReplicaEntity {
  space: string;
  collection: string;
  key: string;
  fields: Fields;
  /** Ops of this entity not yet acked by the server. */
  pending: number;
}

export class InvalidDraftError extends Error {
  override readonly name = 'InvalidDraftError';
  constructor(
    readonly index: number,
    readonly code: OpProblemCode,
    message: string,
  ) {
    super(message);
  }
}

export function entityKeyOf(item: { space: string; collection: string; key: string }): EntityKey {
  return [item.space, item.collection, item.key];
}

/** Items grouped by the entity their op touches, each group in the items' order (seq order). */
export function groupByEntity<T>(items: readonly T[], opOfItem: (item: T) => Pick<Op, 'space' | 'collection' | 'key'>): Array<[EntityKey, T[]]> {
  const groups = new Map<string, { key: EntityKey; items: T[] }>();
  for (const item of items) {
    const key = entityKeyOf(opOfItem(item));
    const id = JSON.stringify(key);
    const group = groups.get(id);
    if (group) group.items.push(item);
    else groups.set(id, { key, items: [item] });
  }
  return [...groups.values()].map((group) => [group.key, group.items]);
}

export function emptyRecord(key: EntityKey): EntityRecord {
  return { space: key[0], collection: key[1], key: key[2], server: null, doc: null, pending: 0 };
}

export function rowOf(entry: OutboxEntry, prev?: number): OutboxRow {
  const { op } = entry;
  const row: OutboxRow = { seq: op.seq, space: op.space, collection: op.collection, key: op.key, op, bytes: entry.bytes };
  if (prev !== undefined) row.prev = prev;
  return row;
}

/**
 * The record as it stands once every ack is applied (see EntityRecord): an entity whose newest op is below
 * `outboxFirst` (the lowest seq in the outbox, or the next seq when it is empty) has nothing pending, and its
 * ops were all committed as sent (an ack that rejects or upgrades one rewrites the record at once), so its
 * view is the server's state. The record itself when already settled.
 */
export function settle(record: EntityRecord, outboxFirst: number): EntityRecord {
  if (record.pending === 0 || record.through === undefined || record.through >= outboxFirst) return record;
  return { ...record, server: record.doc, pending: 0 };
}

export function entryOfRow(row: OutboxRow): OutboxEntry {
  return { op: row.op, bytes: row.bytes };
}

export function opOf(draft: Draft, stamp: { device: string; seq: number; lamport: number; at: number }): Op {
  const op: Op = {
    id: `${stamp.device}:${stamp.seq}`,
    device: stamp.device,
    seq: stamp.seq,
    lamport: stamp.lamport,
    space: draft.space,
    collection: draft.collection,
    key: draft.key,
    kind: draft.kind,
    at: stamp.at,
  };
  // No `value: undefined` key: the server's envelope is a strict object, and a delete carries none.
  if (draft.value !== undefined) op.value = draft.value;
  // The app's schema version for the collection travels with the op, so an op queued under an older app
  // version is upgraded on the server however late it is sent (core/versions.ts).
  if (draft.version !== undefined) op.version = draft.version;
  return op;
}

/**
 * Refuses the first draft the server would reject, before anything is written, so the person hears
 * about it at once rather than as a dead letter later. Checked with the largest seq an id can get,
 * so an id that fits now cannot outgrow the limit as seqs grow. The envelope's shape is checked too
 * (a JavaScript caller can pass a bad kind or a numeric key): the server refuses a malformed op with
 * its whole batch, which would hold every later op back until the app is fixed.
 */
export function checkDrafts(drafts: readonly Draft[], device: string): void {
  drafts.forEach((draft, index) => {
    const probe = opOf(draft, { device, seq: Number.MAX_SAFE_INTEGER, lamport: 1, at: 0 });
    const shape = v.safeParse(OpSchema, probe);
    const problem = shape.success ? opProblem(probe) : { code: 'invalid' as const, message: describeIssues(shape.issues) };
    if (problem !== null) {
      const where = `${String(draft.space)}/${String(draft.collection)}/${String(draft.key)}`;
      throw new InvalidDraftError(index, problem.code, `Change ${index + 1} (${where}) was refused: ${problem.message}`);
    }
  });
}

/** A page of server entities as one doc per entity: one may come twice (merge is idempotent), and
 * folding those first leaves one read and one write per entity. */
export function foldIncoming(space: string, entities: readonly EntityWire[]): Array<{ key: EntityKey; doc: Doc }> {
  const incoming = new Map<string, { key: EntityKey; doc: Doc }>();
  for (const entity of entities) {
    const id = `${entity.collection}\u0000${entity.key}`;
    const seen = incoming.get(id);
    const doc = docOfWire(entity);
    incoming.set(id, { key: [space, entity.collection, entity.key], doc: seen ? mergeDocs(seen.doc, doc) : doc });
  }
  return [...incoming.values()];
}

export function docOfWire(entity: EntityWire): Doc {
  return {
    fields: entity.fields,
    stamps: entity.stamps,
    base: entity.base,
    live: entity.live,
    deleted: entity.deleted,
  };
}

/** The person's view: the server's state with the pending ops (in seq order) on top. */
export function viewOf(server: Doc | null, pendingOps: readonly Op[]): Doc | null {
  return applyAll(server, pendingOps);
}

/** The app's view of a stored record, settled against `outboxFirst` (see `settle`). */
export function visible(record: EntityRecord | undefined, outboxFirst: number): ReplicaEntity | null {
  if (record === undefined || record.doc === null || record.doc.deleted) return null;
  return {
    space: record.space,
    collection: record.collection,
    key: record.key,
    fields: record.doc.fields,
    pending: settle(record, outboxFirst).pending,
  };
}

export interface OutboxStats {
  count: number;
  bytes: number;
  /** `at` of the oldest waiting op ("N changes waiting since T"), null when none wait. */
  oldestAt: number | null;
  /** The lowest and highest waiting seq (core's OutboxSpan). Not always count − 1 apart: an ack
   * removes only the ops it reports on, so an op whose own ack was lost stays below later ones. */
  span: OutboxSpan;
  dead: number;
  /** When an ack last removed ops from this outbox, in any context; null before the first. */
  lastAckAt: number | null;
}

export interface AckApplied {
  /** Ops this application removed from the outbox (0 when the ack had been applied already). */
  removed: number;
  /** Of those, how many became dead letters. */
  dead: number;
  /** The collections whose entities this ack changed (pending flags, or a rejected op's effect undone). */
  touched: Array<{ space: string; collection: string }>;
  /** The outbox's stats once this ack is applied, read in its transaction. */
  stats: OutboxStats;
}

export interface ChangesApplied {
  /** Entities whose visible doc changed: what live queries must re-read. */
  changed: Array<{ collection: string; key: string }>;
  /** The page continued from above the stored cursor (a frame before it was lost): the cursor stayed. */
  gap: boolean;
}

export function draftOf(letter: DeadLetter): Draft {
  const { space, collection, key, kind, value } = letter.op;
  return value === undefined ? { space, collection, key, kind } : { space, collection, key, kind, value };
}
