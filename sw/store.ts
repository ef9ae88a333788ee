// The device's IndexedDB: the only module that imports `idb`. It owns the database name, its
// version and one explicit migration per version, and carries out core's outbox policy and merge
// inside its own transactions, so that every step a person or a drainer takes is all-or-nothing.
//
//   meta      key → value: deviceId, nextSeq, lamport, outboxBytes, drain state, drainer, `cursor:<space>`
//   outbox    OutboxRow by seq; index by_entity [space, collection, key]
//   dead      DeadRow by seq (rejected ops, for the person to retry or discard)
//   entities  EntityRecord by [space, collection, key]; index by_collection [space, collection]
//
// Every write uses `durability: 'strict'`: a written op is the person's work, and "relaxed" lets the
// browser acknowledge before the data reaches the disk (DESIGN invariant 1).
//
// Inside a transaction, requests are issued together and awaited together wherever one does not need
// another's answer: IndexedDB runs a transaction's requests in the order they were made, so the
// result is the same, but awaiting each one costs a round trip to the browser's storage process per
// request (in Chromium a 500-op write went from ~340 ms to a fraction of that).
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames, wrap } from 'idb';
import { observe, tick } from '../core/clock.ts';
import { applyOp, docEquals, mergeDocs } from '../core/merge.ts';
import { type Ack, applyAck as planAck, entryOf, type OutboxEntry, restamp as restampEntries } from '../core/outbox.ts';
import type { DrainState } from '../core/outbox-drain.ts';
import type { Op } from '../core/types.ts';
import type { EntityWire } from '../schema/wire.ts';
import {
  type AckApplied, type ChangesApplied, checkDrafts, type DeadRow, type Draft, draftOf, emptyRecord,
  type EntityKey, entityKeyOf, type EntityRecord, entryOfRow, foldIncoming, groupByEntity, opOf, type OutboxRow, type OutboxStats,
  type ReplicaEntity, rowOf, viewOf, visible,
} from './records.ts';

export type { AckApplied, ChangesApplied, Draft, OutboxStats, ReplicaEntity };

/**
 * Who carries the outbox: the Service Worker (the default: Background Sync, cookie auth), or only the
 * pages (an app that authenticates with a bearer token the worker cannot see). Kept here because the
 * worker may start with no page around to ask.
 */
export type DrainerOwner = 'worker' | 'page';

export const DB_NAME = 'ferry';
export const DB_VERSION = 1;

interface FerrySchema extends DBSchema {
  meta: { key: string; value: unknown };
  outbox: { key: number; value: OutboxRow; indexes: { by_entity: EntityKey } };
  dead: { key: number; value: DeadRow };
  entities: { key: EntityKey; value: EntityRecord; indexes: { by_collection: [string, string] } };
}

type Name = StoreNames<FerrySchema>;
type Tx = IDBPTransaction<FerrySchema, Name[], 'readwrite'>;
type UpgradeTx = IDBPTransaction<FerrySchema, Name[], 'versionchange'>;
/** The numbers kept in meta. `outboxBytes` is updated by every write so stats never read the outbox. */
type Counter = 'nextSeq' | 'lamport' | 'outboxBytes';

const CURSOR_PREFIX = 'cursor:';
/** Rows per read when a step must walk the whole outbox (restamp), so memory stays one page. */
const WALK_PAGE = 200;

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
    const db = wrap(request.result) as unknown as IDBPDatabase<FerrySchema>;
    const tx = wrap(request.transaction!) as unknown as UpgradeTx;
    upgrade(db, event.oldVersion, tx);
  });
  return (wrap(request) as Promise<unknown> as Promise<IDBPDatabase<FerrySchema>>).then((db) => {
    // A newer app version waits for every open connection to close before it can upgrade. Closing
    // ours lets it proceed; this context's next transaction then fails loudly instead of blocking it.
    db.addEventListener('versionchange', () => db.close());
    return db;
  });
}

/**
 * One migration per version, applied in order from whatever version the device has. A store that
 * holds ops is never dropped: the outbox and the dead letters are the person's unsynced work.
 * To add version 2: set DB_VERSION = 2 and add `case 1: migrateTo2(db, tx);` below `case 0`, with
 * migrateTo2 creating what is new and rewriting rows in place through `tx` if their shape changes.
 */
function upgrade(db: IDBPDatabase<FerrySchema>, oldVersion: number, tx: UpgradeTx): void {
  switch (oldVersion) {
    case 0:
      migrateTo1(db, tx);
    // falls through to later migrations once they exist
  }
}

function migrateTo1(db: IDBPDatabase<FerrySchema>, tx: UpgradeTx): void {
  db.createObjectStore('meta');
  db.createObjectStore('outbox', { keyPath: 'seq' }).createIndex('by_entity', ['space', 'collection', 'key']);
  db.createObjectStore('dead', { keyPath: 'seq' });
  db.createObjectStore('entities', { keyPath: ['space', 'collection', 'key'] })
    .createIndex('by_collection', ['space', 'collection']);
  const meta = tx.objectStore('meta');
  // Minted here, in the transaction that creates the database, so it happens exactly once per
  // database: a device whose data was wiped gets a new id, as the protocol requires.
  void meta.put(crypto.randomUUID(), 'deviceId');
  void meta.put(1, 'nextSeq');
  void meta.put(0, 'lamport');
  void meta.put(0, 'outboxBytes');
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
    return (await this.#db.get('meta', 'lamport')) as number;
  }

  /** Folds in a lamport seen elsewhere (the socket's `welcome`), so the next op is stamped above it. */
  async observeLamport(remote: number): Promise<number> {
    const tx = this.#write(['meta']);
    return run(tx, async () => {
      const current = await counter(tx, 'lamport');
      const next = observe(current, remote);
      if (next !== current) await tx.objectStore('meta').put(next, 'lamport');
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
    return run(tx, () => this.#mint(tx, drafts, now));
  }

  async #mint(tx: Tx, drafts: readonly Draft[], now: number): Promise<Op[]> {
    const meta = tx.objectStore('meta');
    let [seq, lamport, bytes] = await Promise.all([counter(tx, 'nextSeq'), counter(tx, 'lamport'), counter(tx, 'outboxBytes')]);
    const ops: Op[] = [];
    const writes: Promise<unknown>[] = [];
    for (const draft of drafts) {
      lamport = tick(lamport);
      const op = opOf(draft, { device: this.#deviceId, seq, lamport, at: now });
      seq += 1;
      const entry = entryOf(op);
      bytes += entry.bytes;
      // add, not put: an existing seq would mean a gap or a reuse, and must fail the whole write.
      writes.push(tx.objectStore('outbox').add(rowOf(entry)));
      ops.push(op);
    }
    // One read and one write per entity, whatever number of its ops the batch holds, in seq order.
    for (const [key, mine] of groupByEntity(ops, (op) => op)) {
      writes.push(updateEntity(tx, key, (record) => {
        for (const op of mine) record.doc = applyOp(record.doc, op).doc;
        record.pending += mine.length;
      }));
    }
    writes.push(meta.put(seq, 'nextSeq'), meta.put(lamport, 'lamport'), meta.put(bytes, 'outboxBytes'));
    await Promise.all(writes);
    return ops;
  }

  /** Up to `limit` outbox entries with seq ≥ fromSeq, in seq order: one page, never the whole outbox. */
  async readOutbox(fromSeq: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.#db.getAll('outbox', IDBKeyRange.lowerBound(fromSeq), limit);
    return rows.map(entryOfRow);
  }

  async outboxStats(): Promise<OutboxStats> {
    const tx = this.#db.transaction(['meta', 'outbox', 'dead'], 'readonly');
    const count = await tx.objectStore('outbox').count();
    const bytes = (await tx.objectStore('meta').get('outboxBytes')) as number;
    const first = await tx.objectStore('outbox').openCursor();
    const last = await tx.objectStore('outbox').openCursor(null, 'prev');
    const dead = await tx.objectStore('dead').count();
    await tx.done;
    return {
      count, bytes, dead,
      oldestAt: first?.value.op.at ?? null,
      span: first && last ? { first: first.value.seq, last: last.value.seq } : null,
    };
  }

  /**
   * Carries out an ack (core's applyAck) in one transaction: the ops it reports on leave the outbox,
   * the rejected ones into the dead letters; the clock observes the server's lamport; each affected
   * entity's pending count drops. Applying the same ack again finds those ops gone and changes nothing.
   */
  async applyAck(ack: Ack, now: number): Promise<AckApplied> {
    const tx = this.#write(['meta', 'outbox', 'dead', 'entities']);
    return run(tx, async () => {
      const plan = planAck(ack, await counter(tx, 'lamport'), now);
      const letters = new Map(plan.deadLetters.map((letter) => [letter.seq, letter] as const));
      const outbox = tx.objectStore('outbox');
      // An ack answers one batch, a run of consecutive seqs: read (and below, delete) it as one key
      // range. Rows already gone were removed by an earlier copy of this ack (HTTP and socket).
      const remove = new Set(plan.remove);
      const range = plan.remove.length === 0 ? null : IDBKeyRange.bound(plan.remove[0]!, plan.remove[plan.remove.length - 1]!);
      const inRange = range === null ? [] : await outbox.getAll(range);
      const held = inRange.filter((row) => remove.has(row.seq));
      const done: AckApplied = { removed: held.length, dead: 0, touched: [] };
      const writes: Promise<unknown>[] = [];
      const rejected: EntityKey[] = [];
      let bytes = 0;
      for (const row of held) {
        const letter = letters.get(row.seq);
        if (letter !== undefined) {
          const deadRow: DeadRow = { seq: row.seq, op: row.op, code: letter.code, message: letter.message, at: letter.at };
          writes.push(tx.objectStore('dead').put(deadRow));
          done.dead += 1;
        }
        bytes += row.bytes;
      }
      // Ops in the range that the ack does not report (its seqs need not be consecutive) must stay.
      if (range !== null && held.length === inRange.length) writes.push(outbox.delete(range));
      else for (const row of held) writes.push(outbox.delete(row.seq));
      const touched = new Map<string, { space: string; collection: string }>();
      for (const [key, rows] of groupByEntity(held, (row) => row.op)) {
        touched.set(`${key[0]}\u0000${key[1]}`, { space: key[0], collection: key[1] });
        if (rows.some((row) => letters.has(row.seq))) rejected.push(key);
        writes.push(updateEntity(tx, key, (record) => {
          record.pending = Math.max(0, record.pending - rows.length);
          // Committed ops are in the server's state now; see EntityRecord.server.
          for (const row of rows) if (!letters.has(row.seq)) record.server = applyOp(record.server, row.op).doc;
        }));
      }
      await Promise.all(writes);
      // A rejected op's optimistic effect must go: rebuild those views from what is still pending
      // (after the deletes above, which the by_entity reads below see: same transaction, later requests).
      await Promise.all(rejected.map((key) => recompute(tx, key)));
      await tx.objectStore('meta').put(plan.clock, 'lamport');
      await tx.objectStore('meta').put((await counter(tx, 'outboxBytes')) - bytes, 'outboxBytes');
      done.touched = [...touched.values()];
      return done;
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
        const result = restampEntries(page, clock);
        clock = result.clock;
        for (const [i, entry] of result.entries.entries()) {
          const row = page[i]!;
          if (entry === row) continue; // restamp hands back unchanged entries themselves
          bytesDelta += entry.bytes - row.bytes;
          restamped += 1;
          touched.add(JSON.stringify(entityKeyOf(row)));
          await outbox.put(rowOf(entry));
        }
      });
      for (const key of touched) await recompute(tx, JSON.parse(key) as EntityKey);
      const lamport = observe(await counter(tx, 'lamport'), clock);
      await tx.objectStore('meta').put(lamport, 'lamport');
      await tx.objectStore('meta').put((await counter(tx, 'outboxBytes')) + bytesDelta, 'outboxBytes');
      return { restamped, lamport };
    });
  }

  /**
   * Folds a page of the server's entities (a `changes` message or a snapshot page) into the replica:
   * `server` joins them, `doc` is rebuilt as server + this entity's pending ops, and the space's
   * cursor becomes max(old, cursor) — it never goes back. Snapshot pages should pass cursor 0 until
   * the last one, then `head`, so a snapshot cut short is read again rather than skipped.
   */
  async applyChanges(space: string, entities: readonly EntityWire[], cursor: number, lamport?: number): Promise<ChangesApplied> {
    const tx = this.#write(['meta', 'outbox', 'entities']);
    return run(tx, async () => {
      const changed: ChangesApplied['changed'] = [];
      const store = tx.objectStore('entities');
      const items = foldIncoming(space, entities);
      const records = await Promise.all(items.map(({ key }) => store.get(key)));
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
      if (cursor > old) await meta.put(cursor, CURSOR_PREFIX + space);
      // Every change carries the server's clock so this device's next ops are stamped above it.
      if (lamport !== undefined) await meta.put(observe(await counter(tx, 'lamport'), lamport), 'lamport');
      return { changed };
    });
  }

  /**
   * The server said `reset` (our cursor is below its purge horizon): forget what we knew of the
   * space's server state and its cursor, keeping every pending op on top, before reading a snapshot.
   */
  async resetSpace(space: string): Promise<void> {
    const tx = this.#write(['meta', 'outbox', 'entities']);
    await run(tx, async () => {
      const range = IDBKeyRange.bound([space], [space, []]);
      let cursor = await tx.objectStore('entities').openCursor(range);
      while (cursor) {
        const record = cursor.value;
        if (record.pending === 0) await cursor.delete();
        else {
          const key = entityKeyOf(record);
          await cursor.update({ ...record, server: null, doc: viewOf(null, await pendingOps(tx, key)) });
        }
        cursor = await cursor.continue();
      }
      await tx.objectStore('meta').delete(CURSOR_PREFIX + space);
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
      await tx.objectStore('dead').delete(seq);
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
    return visible(await this.#db.get('entities', [space, collection, key]));
  }

  /** Every visible entity of a collection, in key order. */
  async all(space: string, collection: string): Promise<ReplicaEntity[]> {
    const records = await this.#db.getAllFromIndex('entities', 'by_collection', [space, collection]);
    return records.map(visible).filter((entity) => entity !== null);
  }

  #write(names: Name[]): Tx {
    return this.#db.transaction(names, 'readwrite', { durability: 'strict' });
  }
}

/**
 * Runs `body` in `tx` and waits for the commit. If anything throws, the transaction is aborted so
 * none of its writes land: half an enqueue (an op without its replica update, a seq without its op)
 * is exactly what the single transaction exists to prevent.
 */
async function run<T>(tx: Tx, body: () => Promise<T>): Promise<T> {
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

/** Visits the outbox in seq order, one page at a time, so memory holds one page. */
async function walkPages(tx: Tx, visit: (page: OutboxRow[]) => Promise<void>): Promise<void> {
  for (let from = 0; ;) {
    const page = await tx.objectStore('outbox').getAll(IDBKeyRange.lowerBound(from), WALK_PAGE);
    if (page.length === 0) return;
    await visit(page);
    from = page[page.length - 1]!.seq + 1;
  }
}

async function counter(tx: Tx, name: Counter): Promise<number> {
  return (await tx.objectStore('meta').get(name)) as number;
}

/** The entity's ops still in the outbox, in seq order (index entries with one key sort by seq). */
async function pendingOps(tx: Tx, key: EntityKey): Promise<Op[]> {
  const rows = await tx.objectStore('outbox').index('by_entity').getAll(key);
  return rows.map((row) => row.op);
}

async function updateEntity(tx: Tx, key: EntityKey, mutate: (record: EntityRecord) => void): Promise<void> {
  const store = tx.objectStore('entities');
  const record = (await store.get(key)) ?? emptyRecord(key);
  mutate(record);
  // Nothing known from the server and nothing pending: the entity never existed as far as we know.
  if (record.pending === 0 && record.server === null) await store.delete(key);
  else await store.put(record);
}

async function recompute(tx: Tx, key: EntityKey): Promise<void> {
  const store = tx.objectStore('entities');
  const record = await store.get(key);
  if (record === undefined) return;
  await store.put({ ...record, doc: viewOf(record.server, await pendingOps(tx, key)) });
}
