// The device's IndexedDB: the one module that opens it (store-steps.ts, the steps inside its transactions,
// imports only idb's types; store-migrations.ts, one explicit migration per version, works on the upgrade's
// plain objects). It owns the database name and carries out core's outbox policy and merge inside its own
// transactions, so that every step a person or a drainer takes is all-or-nothing.
//
//   meta      key → value: deviceId, counters (v3: nextSeq, lamport, outboxBytes, outboxCount, lastAckAt; v4: outboxFirst),
//             drain state, drainer, `cursor:<space>`
//   outbox    OutboxRow by seq; index by_entity [space, collection, key]; index by_prev (v4: the entity's op before it)
//   dead      DeadRow by seq (rejected ops, for the person to retry or discard)
//   entities  EntityRecord by [space, collection, key] (a collection is a range of keys: no index)
//
// Every write uses `durability: 'strict'`: a written op is the person's work, and "relaxed" lets the
// browser acknowledge before the data reaches the disk (DESIGN invariant 1). The one exception is
// applying an ack, which a crash may undo whole at no cost (see applyAck).
//
// Inside a transaction, requests are issued together and awaited together wherever one does not need
// another's answer: IndexedDB runs a transaction's requests in the order they were made, so the
// result is the same, but awaiting each one costs a round trip to the browser's storage process per
// request (in Chromium a 500-op write went from ~340 ms to a fraction of that).
import { type IDBPDatabase, unwrap, wrap } from 'idb';
import { observe, tick } from '../core/clock.ts';
import { applyOp, docEquals, mergeDocs } from '../core/merge.ts';
import { type Ack, entryOf, type OutboxEntry, planAck, planRestamp } from '../core/outbox.ts';
import type { DrainState } from '../core/outbox-drain.ts';
import type { Op } from '../core/types.ts';
import type { EntityWire } from '../schema/wire.ts';
import {
  answered, commitNow, COUNTERS, type Counters, CURSOR_PREFIX, type FerrySchema, foldAcked, type Name, pendingOps, readAround,
  readCounters, recompute, refold, rowsIn, run, statsIn, type Tx, walkPages, writeCounters,
} from './store-steps.ts';
import { DB_VERSION, upgrade } from './store-migrations.ts';
import {
  type AckApplied, type ChangesApplied, checkDrafts, type DeadRow, type Draft, draftOf, emptyRecord,
  type EntityKey, entityKeyOf, type EntityRecord, entryOfRow, foldIncoming, groupByEntity, opOf, type OutboxRow, type OutboxStats,
  type ReplicaEntity, rowOf, settle, viewOf, visible,
} from './records.ts';

export type { AckApplied, ChangesApplied, Draft, OutboxStats, ReplicaEntity };

/**
 * Who carries the outbox: the Service Worker (the default: Background Sync, cookie auth), or only the
 * pages (an app that authenticates with a bearer token the worker cannot see). Kept here because the
 * worker may start with no page around to ask.
 */
export type DrainerOwner = 'worker' | 'page';

export const DB_NAME = 'ferry';
export { DB_VERSION };

export interface StoreOptions {
  /** The database name; tests pass their own. */
  name?: string;
  /** The IndexedDB to use; tests pass a fresh fake-indexeddb factory. */
  indexedDB?: IDBFactory;
}

export async function createStore(options: StoreOptions = {}): Promise<Store> {
  const db = await openDatabase(options.indexedDB ?? indexedDB, options.name ?? DB_NAME);
  const deviceId = (await db.get('meta', 'deviceId')) as string;
  return new Store(db, deviceId);
}

function openDatabase(factory: IDBFactory, name: string): Promise<IDBPDatabase<FerrySchema>> {
  const request = factory.open(name, DB_VERSION);
  request.addEventListener('upgradeneeded', (event) => {
    upgrade(request.result, event.oldVersion, request.transaction!);
  });
  return (wrap(request) as Promise<unknown> as Promise<IDBPDatabase<FerrySchema>>).then((db) => {
    // A newer app version waits for every open connection to close before it can upgrade. Closing
    // ours lets it proceed; this context's next transaction then fails loudly instead of blocking it.
    db.addEventListener('versionchange', () => db.close());
    return db;
  });
}

/** The keys of one collection's entities in the `entities` store, in key order. */
function collectionRange(space: string, collection: string): IDBKeyRange {
  return IDBKeyRange.bound([space, collection], [space, collection, []]);
}

export class Store {
  readonly #db: IDBPDatabase<FerrySchema>;
  readonly #deviceId: string;

  constructor(db: IDBPDatabase<FerrySchema>, deviceId: string) {
    this.#db = db;
    this.#deviceId = deviceId;
  }

  close(): void {
    this.#db.close();
  }

  async getDeviceId(): Promise<string> {
    return this.#deviceId;
  }

  async getLamport(): Promise<number> {
    return ((await this.#db.get('meta', COUNTERS)) as Counters).lamport;
  }

  /** Folds in a lamport seen elsewhere (the socket's `welcome`), so the next op is stamped above it. */
  async observeLamport(remote: number): Promise<number> {
    const tx = this.#write(['meta']);
    return run(tx, async () => {
      const counters = await readCounters(tx);
      const next = observe(counters.lamport, remote);
      if (next !== counters.lamport) await writeCounters(tx, { ...counters, lamport: next });
      return next;
    });
  }

  async getDrainerOwner(): Promise<DrainerOwner> {
    return ((await this.#db.get('meta', 'drainer')) as DrainerOwner | undefined) ?? 'worker';
  }

  async setDrainerOwner(owner: DrainerOwner): Promise<void> {
    const tx = this.#write(['meta']);
    await run(tx, () => tx.objectStore('meta').put(owner, 'drainer'));
  }

  /**
   * Writes the person's changes: stamps each (seq and lamport read and written inside this one
   * transaction, so tabs writing at once stay gapless and unique), adds it to the outbox and applies
   * it to the replica. Throws InvalidDraftError, before writing anything, for a draft the server
   * would reject.
   */
  async enqueue(drafts: readonly Draft[], now: number): Promise<Op[]> {
    checkDrafts(drafts, this.#deviceId);
    if (drafts.length === 0) return [];
    const tx = this.#write(['meta', 'outbox', 'entities']);
    return run(tx, async () => {
      const ops = await this.#mint(tx, drafts, now);
      commitNow(tx);
      return ops;
    });
  }

  /**
   * Stamps the drafts and issues their writes in `tx`: an outbox row per op (linked to the entity's op before
   * it that still waits), one entity record per entity (its ops applied in seq order, whatever number the
   * batch holds), the counters. Before that ONE round of reads: the counters and every touched entity, asked
   * for together. The requests go to the raw transaction, answered in the order they were made, so only the
   * last read is listened to and no write is: a failed request aborts the transaction, and `run` hears it
   * from the commit. The caller may add requests of its own, then commits.
   */
  async #mint(tx: Tx, drafts: readonly Draft[], now: number): Promise<Op[]> {
    const raw = unwrap(tx);
    const meta = raw.objectStore('meta');
    const entities = raw.objectStore('entities');
    const outbox = raw.objectStore('outbox');
    const groups = groupByEntity(drafts, (draft) => draft);
    const read = meta.get(COUNTERS);
    const records = groups.map(([key]) => entities.get(key));
    await answered(records.at(-1)!); // and so the counters, asked first
    const counters = read.result as Counters;
    let { nextSeq: seq, lamport, outboxBytes: bytes } = counters;
    const ops = drafts.map((draft) => {
      lamport = tick(lamport);
      const op = opOf(draft, { device: this.#deviceId, seq, lamport, at: now });
      seq += 1;
      return op;
    });
    // The groups of the ops come in the order of each entity's first draft: the order of `records`.
    groupByEntity(ops, (op) => op).forEach(([key, mine], i) => {
      const stored = records[i]!.result as EntityRecord | undefined;
      const record = stored === undefined ? emptyRecord(key) : settle(stored, counters.outboxFirst);
      let prev = record.pending > 0 ? record.through : undefined;
      for (const op of mine) {
        const entry = entryOf(op);
        bytes += entry.bytes;
        // add, not put: an existing seq would mean a gap or a reuse, and must fail the whole write.
        outbox.add(rowOf(entry, prev));
        prev = op.seq;
        record.doc = applyOp(record.doc, op).doc;
      }
      record.pending += mine.length;
      record.through = prev;
      entities.put(record);
    });
    const next: Counters = { ...counters, nextSeq: seq, lamport, outboxBytes: bytes, outboxCount: counters.outboxCount + drafts.length };
    meta.put(next, COUNTERS);
    return ops;
  }

  /** Up to `limit` outbox entries with seq ≥ fromSeq, in seq order: one page, never the whole outbox. */
  async readOutbox(fromSeq: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.#db.getAll('outbox', IDBKeyRange.lowerBound(fromSeq), limit);
    return rows.map(entryOfRow);
  }

  async outboxStats(): Promise<OutboxStats> {
    // Asked together: one round trip, since this read sits between writes (device.ts refreshes it after them).
    const tx = this.#db.transaction(['meta', 'outbox', 'dead'], 'readonly');
    const stats = await statsIn(tx);
    await tx.done;
    return stats;
  }

  /**
   * Carries out an ack (core's applyAck) in one transaction: the ops it reports on leave the outbox,
   * the rejected ones into the dead letters; the clock observes the server's lamport; each affected
   * entity's pending count drops. Applying the same ack again finds those ops gone and changes nothing.
   * `sent`: the batch as the drainer read it, so only the keys of the rows still held are read.
   *
   * An ack that empties the outbox below its last op (the usual one: acks come in seq order) writes only the
   * records of the entities that keep ops waiting, found by one read of the rows linked to its ops (`by_prev`),
   * and of those with an op rejected or upgraded. Every other entity it finishes is left as written and read as
   * settled from then on (records.ts `settle`): a 500-op ack is a handful of requests, not 500 reads and writes.
   * Any other ack rewrites every entity it touches and relinks their waiting ops.
   *
   * The one write that is not strict: an ack lost to a crash (all of it: a transaction is atomic, and
   * later strict commits flush it) leaves its ops in the outbox, and their resend is answered
   * `duplicate` with their first results, which this then applies. So nothing is lost (invariant 1) and
   * the replica stays server + pending; the fsync it saves is a large part of a drain's time.
   */
  async applyAck(ack: Ack, now: number, sent?: readonly OutboxEntry[]): Promise<AckApplied> {
    const tx = this.#write(['meta', 'outbox', 'dead', 'entities'], 'relaxed');
    return run(tx, async () => {
      const plan = planAck(ack, 0, now); // the clock is observed below, once the counters are in
      const remove = new Set(plan.remove);
      const outbox = tx.objectStore('outbox');
      // An ack answers one batch, a run of consecutive seqs: read (and below, delete) it as one key
      // range. Rows already gone were removed by an earlier copy of this ack (HTTP and socket).
      const range = plan.remove.length === 0 ? null : IDBKeyRange.bound(plan.remove[0]!, plan.remove.at(-1)!);
      const [counters, inRange, around] = await Promise.all([
        readCounters(tx), range === null ? [] : rowsIn(outbox, range, remove, sent), range === null ? null : readAround(tx, range),
      ]);
      const held = inRange.filter((row) => remove.has(row.seq));
      // Where the outbox starts once these rows are gone: below the range if anything waits there (the counter
      // says where it starts now), else at the first row of the range kept, or above it, or at the next seq.
      const first = around === null || counters.outboxFirst < range!.lower ? counters.outboxFirst
        : inRange.find((row) => !remove.has(row.seq))?.seq ?? around.above ?? counters.nextSeq;
      const inOrder = range !== null && first > range.upper;
      const letters = new Map(plan.deadLetters.map((letter) => [letter.seq, letter] as const));
      const upgraded = new Set(plan.upgraded);
      const changed = (row: OutboxRow) => letters.has(row.seq) || upgraded.has(row.seq);
      const writes: Promise<unknown>[] = [];
      for (const row of held) {
        const letter = letters.get(row.seq);
        if (letter !== undefined) writes.push(tx.objectStore('dead').put({ seq: row.seq, op: row.op, code: letter.code, message: letter.message, at: letter.at }));
      }
      // Ops in the range that the ack does not report (its seqs need not be consecutive) must stay.
      if (range !== null && held.length === inRange.length) writes.push(outbox.delete(range));
      else for (const row of held) writes.push(outbox.delete(row.seq));
      const continuing = new Set((around?.linked ?? []).filter((row) => !remove.has(row.seq)).map((row) => JSON.stringify(entityKeyOf(row))));
      const touched = new Map<string, { space: string; collection: string }>();
      const rebuild: EntityKey[] = [];
      for (const [key, rows] of groupByEntity(held, (row) => row.op)) {
        touched.set(`${key[0]}\u0000${key[1]}`, { space: key[0], collection: key[1] });
        if (rows.some(changed)) rebuild.push(key);
        else if (inOrder && !continuing.has(JSON.stringify(key))) continue; // settled from now on: see above
        writes.push(inOrder ? foldAcked(tx, key, rows, counters.outboxFirst, changed) : refold(tx, key, rows, counters.outboxFirst, changed));
      }
      await Promise.all(writes);
      // A rejected (or upgraded) op's optimistic effect must go: rebuild those views from what is still pending
      // (after the deletes above, which the by_entity reads below see: same transaction, later requests).
      await Promise.all(rebuild.map((key) => recompute(tx, key, counters.outboxFirst)));
      const bytes = held.reduce((sum, row) => sum + row.bytes, 0);
      await writeCounters(tx, {
        ...counters, lamport: observe(counters.lamport, ack.lamport), outboxBytes: counters.outboxBytes - bytes,
        outboxCount: counters.outboxCount - held.length, outboxFirst: first, lastAckAt: held.length > 0 ? now : counters.lastAckAt,
      });
      // The stats read in this transaction, after its writes: what the drainer and the status need next,
      // without a read transaction of their own queued behind the next write.
      return { removed: held.length, dead: held.filter((row) => letters.has(row.seq)).length, touched: [...touched.values()], stats: await statsIn(tx) };
    });
  }

  /**
   * After a lamport_regression: raises every unsent op above `floor` (core's restamp, page by page,
   * chaining the clock), raises the device clock with it, and rebuilds the views of the entities whose
   * ops moved. One transaction, so an op minted by another tab meanwhile ticks from the raised clock.
   */
  async restamp(floor: number): Promise<{ restamped: number; lamport: number }> {
    const tx = this.#write(['meta', 'outbox', 'entities']);
    return run(tx, async () => {
      const outbox = tx.objectStore('outbox');
      const touched = new Set<string>();
      let clock = floor;
      let bytesDelta = 0;
      let restamped = 0;
      await walkPages(tx, async (page) => {
        // Page by page, each page's clock the next one's floor, as core's restamp documents.
        const result = planRestamp(page, clock);
        clock = result.clock;
        for (const [i, entry] of result.entries.entries()) {
          const row = page[i]!;
          if (entry === row) continue; // restamp hands back unchanged entries themselves
          bytesDelta += entry.bytes - row.bytes;
          restamped += 1;
          touched.add(JSON.stringify(entityKeyOf(row)));
          await outbox.put(rowOf(entry, row.prev));
        }
      });
      const counters = await readCounters(tx);
      for (const key of touched) await recompute(tx, JSON.parse(key) as EntityKey, counters.outboxFirst);
      const lamport = observe(counters.lamport, clock);
      await writeCounters(tx, { ...counters, lamport, outboxBytes: counters.outboxBytes + bytesDelta });
      return { restamped, lamport };
    });
  }

  /**
   * Folds a page of the server's entities (a `changes` message or a snapshot page) into the replica:
   * `server` joins them, `doc` is rebuilt as server + this entity's pending ops, and the space's
   * cursor becomes max(old, cursor) — it never goes back. Snapshot pages should pass cursor 0 until
   * the last one, then `head`, so a snapshot cut short is read again rather than skipped.
   * `from` (a socket's frame, PROTOCOL.md §7): the cursor the page continues from. Above the stored
   * cursor, a frame before it was lost: the entities are still merged (a join never hurts), but the
   * cursor stays, so the catch-up the caller asks for next sends what the lost frame held. Checked in
   * the same transaction, since another tab's socket may move the cursor meanwhile.
   */
  async applyChanges(space: string, entities: readonly EntityWire[], cursor: number, lamport?: number, from?: number): Promise<ChangesApplied> {
    const tx = this.#write(['meta', 'outbox', 'entities']);
    return run(tx, async () => {
      const changed: ChangesApplied['changed'] = [];
      const store = tx.objectStore('entities');
      const items = foldIncoming(space, entities);
      const [counters, ...stored] = await Promise.all([readCounters(tx), ...items.map(({ key }) => store.get(key))]);
      const records = stored.map((record) => (record === undefined ? undefined : settle(record, counters.outboxFirst)));
      const pending = await Promise.all(records.map((record, i) =>
        record !== undefined && record.pending > 0 ? pendingOps(tx, items[i]!.key) : null));
      const writes: Promise<unknown>[] = [];
      items.forEach(({ key, doc }, i) => {
        const record = records[i] ?? emptyRecord(key);
        const before = record.doc;
        record.server = mergeDocs(record.server, doc);
        record.doc = pending[i] === null ? record.server : viewOf(record.server, pending[i]!);
        writes.push(store.put(record));
        if (!docEquals(before, record.doc)) changed.push({ collection: key[1], key: key[2] });
      });
      await Promise.all(writes);
      const meta = tx.objectStore('meta');
      const old = ((await meta.get(CURSOR_PREFIX + space)) as number | undefined) ?? 0;
      const gap = from !== undefined && from > old;
      if (cursor > old && !gap) await meta.put(cursor, CURSOR_PREFIX + space);
      // Every change carries the server's clock so this device's next ops are stamped above it.
      const observed = lamport === undefined ? counters.lamport : observe(counters.lamport, lamport);
      if (observed !== counters.lamport) await writeCounters(tx, { ...counters, lamport: observed });
      return { changed, gap };
    });
  }

  /**
   * Forgets what we knew of the space's server state and its cursor, keeping every pending op on top.
   * `always` (the server said `reset`: our cursor is below its purge horizon): before reading a snapshot.
   * `if-unsynced` (subscribing from cursor 0): only while the stored cursor is still 0, checked in the
   * same transaction, since another tab may have caught up meanwhile. Returns whether it forgot.
   */
  async resetSpace(space: string, when: 'always' | 'if-unsynced' = 'always'): Promise<boolean> {
    const tx = this.#write(['meta', 'outbox', 'entities']);
    return run(tx, async () => {
      const meta = tx.objectStore('meta');
      if (when === 'if-unsynced' && ((await meta.get(CURSOR_PREFIX + space)) as number | undefined ?? 0) > 0) return false;
      const range = IDBKeyRange.bound([space], [space, []]);
      const { outboxFirst } = await readCounters(tx);
      let cursor = await tx.objectStore('entities').openCursor(range);
      while (cursor) {
        const record = settle(cursor.value, outboxFirst);
        if (record.pending === 0) await cursor.delete();
        else {
          const key = entityKeyOf(record);
          await cursor.update({ ...record, server: null, doc: viewOf(null, await pendingOps(tx, key)) });
        }
        cursor = await cursor.continue();
      }
      await meta.delete(CURSOR_PREFIX + space);
      return true;
    });
  }

  async listDead(): Promise<DeadRow[]> {
    return this.#db.getAll('dead');
  }

  /** The person gave up on a rejected change. Returns whether it was there. */
  async discardDead(seq: number): Promise<boolean> {
    const tx = this.#write(['dead']);
    return run(tx, async () => {
      const found = (await tx.objectStore('dead').getKey(seq)) !== undefined;
      if (found) await tx.objectStore('dead').delete(seq);
      return found;
    });
  }

  /**
   * The person asked to try a rejected change again: its content becomes a NEW op (the old seq was
   * consumed by the rejection), stamped and applied like any write, and the dead letter goes, all in
   * one transaction. Null when the dead letter is gone (another tab retried or discarded it).
   */
  async retryDead(seq: number, now: number): Promise<Op | null> {
    const letter = await this.#db.get('dead', seq);
    if (letter === undefined) return null;
    const draft = draftOf(letter);
    checkDrafts([draft], this.#deviceId);
    const tx = this.#write(['meta', 'outbox', 'entities', 'dead']);
    return run(tx, async () => {
      if ((await tx.objectStore('dead').getKey(seq)) === undefined) return null;
      const [op] = await this.#mint(tx, [draft], now);
      unwrap(tx).objectStore('dead').delete(seq);
      commitNow(tx);
      return op!;
    });
  }

  async getCursors(): Promise<Record<string, number>> {
    const tx = this.#db.transaction('meta', 'readonly');
    const range = IDBKeyRange.bound(CURSOR_PREFIX, `${CURSOR_PREFIX}\uffff`);
    const [keys, values] = await Promise.all([tx.store.getAllKeys(range), tx.store.getAll(range)]);
    await tx.done;
    return Object.fromEntries(keys.map((key, i) => [key.slice(CURSOR_PREFIX.length), values[i] as number]));
  }

  async loadDrainState(): Promise<DrainState | undefined> {
    return (await this.#db.get('meta', 'drain')) as DrainState | undefined;
  }

  async saveDrainState(state: DrainState): Promise<void> {
    const tx = this.#write(['meta']);
    await run(tx, () => tx.objectStore('meta').put(state, 'drain'));
  }

  /** The person's view of one entity; null when absent or deleted. */
  async get(space: string, collection: string, key: string): Promise<ReplicaEntity | null> {
    const tx = this.#db.transaction(['meta', 'entities'], 'readonly');
    const [counters, record] = await Promise.all([readCounters(tx), tx.objectStore('entities').get([space, collection, key])]);
    return visible(record, counters.outboxFirst);
  }

  /** Every visible entity of a collection, in key order. */
  async all(space: string, collection: string): Promise<ReplicaEntity[]> {
    const tx = this.#db.transaction(['meta', 'entities'], 'readonly');
    const [counters, records] = await Promise.all([readCounters(tx), tx.objectStore('entities').getAll(collectionRange(space, collection))]);
    return records.map((record) => visible(record, counters.outboxFirst)).filter((entity) => entity !== null);
  }

  /** Everything the outbox and the replica hold, read in one transaction: for device/audit.ts (tests). */
  async contents(): Promise<{ rows: OutboxRow[]; records: EntityRecord[]; counters: Counters }> {
    const tx = this.#db.transaction(['meta', 'outbox', 'entities'], 'readonly');
    const [rows, records, counters] = await Promise.all([tx.objectStore('outbox').getAll(), tx.objectStore('entities').getAll(), readCounters(tx)]);
    await tx.done;
    return { rows, records, counters };
  }

  #write(names: Name[], durability: 'strict' | 'relaxed' = 'strict'): Tx {
    return this.#db.transaction(names, 'readwrite', { durability });
  }
}
