// The steps the device store (store.ts) takes inside its IndexedDB transactions, and the shape of its
// database. Split from store.ts to keep that file about what each operation does; only store.ts opens the
// database (this file imports idb's types, never idb itself). Most steps of an ack are here.
import type { DBSchema, IDBPObjectStore, IDBPTransaction, StoreNames } from 'idb';
import { applyOp } from '../core/merge.ts';
import type { OutboxEntry } from '../core/outbox.ts';
import type { Op } from '../core/types.ts';
import {
  type DeadRow, emptyRecord, type EntityKey, type EntityRecord, type OutboxRow, type OutboxStats, rowOf, settle, viewOf,
} from './records.ts';

export interface FerrySchema extends DBSchema {
  meta: { key: string; value: unknown };
  outbox: { key: number; value: OutboxRow; indexes: { by_entity: EntityKey; by_prev: number } };
  dead: { key: number; value: DeadRow };
  entities: { key: EntityKey; value: EntityRecord };
}

export type Name = StoreNames<FerrySchema>;
export type Tx = IDBPTransaction<FerrySchema, Name[], 'readwrite'>;
/**
 * The numbers kept in meta, in ONE record under COUNTERS (since version 3; before, a key each): a write reads
 * and writes one record, not four (a single put was 11 IndexedDB requests, now 5). `outboxBytes` is the sum
 * of the outbox rows' `bytes` and `outboxCount` their number, kept by every write so stats never walk the
 * outbox (`audit` checks they agree). `outboxFirst` (version 4) is the outbox's lowest seq, or `nextSeq` when it
 * is empty: what `settle` reads entity records against (records.ts). Only an ack moves it (a write adds
 * above it), and never down. `lastAckAt` is when this device last applied an ack that removed ops,
 * from whichever context (worker, page) applied it: the one place it is kept.
 */
export interface Counters {
  nextSeq: number;
  lamport: number;
  outboxBytes: number;
  outboxCount: number;
  outboxFirst: number;
  lastAckAt: number | null;
}

export const COUNTERS = 'counters';

export const CURSOR_PREFIX = 'cursor:';
/** Rows per read when a step must walk the whole outbox (restamp), so memory stays one page. */
export const WALK_PAGE = 200;


/**
 * Runs `body` in `tx` and waits for the commit. If anything throws, the transaction is aborted so
 * none of its writes land: half an enqueue (an op without its replica update, a seq without its op)
 * is exactly what the single transaction exists to prevent.
 */
export async function run<T>(tx: Tx, body: () => Promise<T>): Promise<T> {
  try {
    const result = await body();
    await tx.done;
    return result;
  } catch (error) {
    tx.done.catch(() => {}); // rejects because of the abort; the caller hears `error` instead
    try {
      tx.abort();
    } catch {
      // already committed or aborted
    }
    throw error;
  }
}

/**
 * Every request of `tx` is issued: ask the browser to commit now rather than once this context has
 * heard every request's answer (one round trip to the storage process less). Where `commit` is missing,
 * the transaction commits by itself as before.
 */
export function commitNow(tx: Tx): void {
  (tx as unknown as { commit?: () => void }).commit?.();
}

/** Visits the outbox in seq order, one page at a time, so memory holds one page. */
export async function walkPages(tx: Tx, visit: (page: OutboxRow[]) => Promise<void>): Promise<void> {
  for (let from = 0; ;) {
    const page = await tx.objectStore('outbox').getAll(IDBKeyRange.lowerBound(from), WALK_PAGE);
    if (page.length === 0) return;
    await visit(page);
    from = page[page.length - 1]!.seq + 1;
  }
}

/** The outbox's stats as `tx` sees them, its own writes included: one round of requests. */
export async function statsIn(tx: IDBPTransaction<FerrySchema, Name[], IDBTransactionMode>): Promise<OutboxStats> {
  const outbox = tx.objectStore('outbox');
  const meta = tx.objectStore('meta');
  const [counters, first, last, dead] = await Promise.all([
    meta.get(COUNTERS) as Promise<Counters>, outbox.openCursor(), outbox.openCursor(null, 'prev'), tx.objectStore('dead').count(),
  ]);
  return {
    bytes: counters.outboxBytes,
    count: counters.outboxCount,
    dead,
    lastAckAt: counters.lastAckAt,
    oldestAt: first?.value.op.at ?? null,
    span: first && last ? { first: first.value.seq, last: last.value.seq } : null,
  };
}

export async function readCounters(tx: IDBPTransaction<FerrySchema, Name[], IDBTransactionMode>): Promise<Counters> {
  return (await tx.objectStore('meta').get(COUNTERS)) as Counters;
}

export function writeCounters(tx: Tx, counters: Counters): Promise<unknown> {
  return tx.objectStore('meta').put(counters, COUNTERS);
}

/** The entity's ops still in the outbox, in seq order (index entries with one key sort by seq). */
export async function pendingOps(tx: Tx, key: EntityKey): Promise<Op[]> {
  const rows = await tx.objectStore('outbox').index('by_entity').getAll(key);
  return rows.map((row) => row.op);
}

/** Reads the entity's record settled against `outboxFirst` (records.ts `settle`), lets `mutate` change it, and
 * writes it back (or deletes it, when nothing is left to know). */
export async function updateEntity(tx: Tx, key: EntityKey, outboxFirst: number, mutate: (record: EntityRecord) => void): Promise<void> {
  const store = tx.objectStore('entities');
  const stored = await store.get(key);
  const record = stored === undefined ? emptyRecord(key) : settle(stored, outboxFirst);
  mutate(record);
  // Nothing known from the server and nothing pending: the entity never existed as far as we know.
  if (record.pending === 0 && record.server === null) await store.delete(key);
  else await store.put(record);
}

export async function recompute(tx: Tx, key: EntityKey, outboxFirst: number): Promise<void> {
  const store = tx.objectStore('entities');
  const stored = await store.get(key);
  if (stored === undefined) return;
  const record = settle(stored, outboxFirst);
  await store.put({ ...record, doc: viewOf(record.server, await pendingOps(tx, key)) });
}

/** Resolves once `request` has its answer (rejects with its error): every request made before it in the
 * same transaction has its answer by then, since a transaction answers its requests in order. */
export function answered(request: IDBRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
  });
}

/** Around an ack's range, in one round: the outbox's first key above the range (where it starts once the range
 * is gone, when nothing waits below it), and the rows linked to an op in the range (`prev`): their entities keep
 * ops waiting. */
export async function readAround(tx: Tx, range: IDBKeyRange): Promise<{ above?: number; linked: OutboxRow[] }> {
  const outbox = tx.objectStore('outbox');
  const [above, linked] = await Promise.all([
    outbox.getKey(IDBKeyRange.lowerBound(range.upper, true)), outbox.index('by_prev').getAll(range),
  ]);
  return { above, linked };
}

/**
 * An ack's ops of one entity out of its pending count, the committed ones folded into its server state (see
 * EntityRecord.server). `newest`: its newest op still waiting, when that may have changed.
 */
export function foldAcked(tx: Tx, key: EntityKey, rows: readonly OutboxRow[], outboxFirst: number, changed: (row: OutboxRow) => boolean,
  newest?: number): Promise<void> {
  return updateEntity(tx, key, outboxFirst, (record) => {
    if (newest !== undefined) record.through = newest;
    // These rows are all the entity's pending ops, all committed as sent: the server's state with them folded in
    // is the view (doc = server + pending ops, in seq order), so it is taken as it is. Shared, it is stored once.
    const all = record.pending === rows.length && !rows.some(changed);
    record.pending = Math.max(0, record.pending - rows.length);
    if (all) {
      record.server = record.doc;
      return;
    }
    // An upgraded op is in the server's state as the app's upgrade rewrote it, which only the change stream tells.
    for (const row of rows) if (!changed(row)) record.server = applyOp(record.server, row.op).doc;
  });
}

/** foldAcked for an ack that left ops below its own: the entity's waiting ops (read after the ack's deletes) are
 * linked again, each to the one before it, so the next in-order ack finds them. */
export async function refold(tx: Tx, key: EntityKey, rows: readonly OutboxRow[], outboxFirst: number, changed: (row: OutboxRow) => boolean): Promise<void> {
  const outbox = tx.objectStore('outbox');
  const waiting = await outbox.index('by_entity').getAll(key);
  const relinked = waiting.map((row, i) => {
    const prev = waiting[i - 1]?.seq;
    if (row.prev === prev) return null;
    const { prev: _, ...rest } = row;
    return outbox.put(prev === undefined ? rest : { ...rest, prev });
  });
  await Promise.all([...relinked, foldAcked(tx, key, rows, outboxFirst, changed, waiting.at(-1)?.seq)]);
}

/**
 * The outbox rows in `range`, or, when `sent` holds every one of them the ack removes, only their keys
 * read and the rest of each row taken from `sent` (a batch's rows are most of an ack's time to read).
 * A row not in `remove` is only counted, so its stand-in carries its seq alone.
 */
export async function rowsIn(outbox: IDBPObjectStore<FerrySchema, Name[], 'outbox', 'readwrite'>, range: IDBKeyRange, remove: ReadonlySet<number>,
  sent: readonly OutboxEntry[] | undefined): Promise<OutboxRow[]> {
  if (sent === undefined) return outbox.getAll(range);
  const bySeq = new Map(sent.map((entry) => [entry.op.seq, entry] as const));
  const keys = await outbox.getAllKeys(range);
  if (keys.some((seq) => remove.has(seq) && !bySeq.has(seq))) return outbox.getAll(range);
  return keys.map((seq) => {
    const entry = bySeq.get(seq);
    return entry === undefined ? ({ seq } as OutboxRow) : rowOf(entry);
  });
}
