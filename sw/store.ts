// The device's IndexedDB: the only module that imports `idb`. It owns the database name, its
// version and one explicit migration per version, and carries out core's outbox policy and merge
// inside its own transactions, so that every step a person or a drainer takes is all-or-nothing.
//
//   meta      key → value: deviceId, nextSeq, lamport, outboxBytes, drain state, `cursor:<space>`
//   outbox    OutboxRow by seq; index by_entity [space, collection, key]
//   dead      DeadRow by seq (rejected ops, for the person to retry or discard)
//   entities  EntityRecord by [space, collection, key]; index by_collection [space, collection]
//
// Every write uses `durability: 'strict'`: a written op is the person's work, and "relaxed" lets the
// browser acknowledge before the data reaches the disk (DESIGN invariant 1).
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames, wrap } from 'idb';
import { observe, tick } from '../core/clock.ts';
import { applyOp, docEquals, mergeDocs } from '../core/merge.ts';
import { type Ack, applyAck as planAck, entryOf, type OutboxEntry, restamp as restampEntries } from '../core/outbox.ts';
import type { DrainState } from '../core/outbox-drain.ts';
import type { Op } from '../core/types.ts';
import type { EntityWire } from '../schema/wire.ts';
import {
  type AckApplied, type ChangesApplied, checkDrafts, type DeadRow, docOfWire, type Draft, draftOf, emptyRecord,
  type EntityKey, entityKeyOf, type EntityRecord, entryOfRow, opOf, type OutboxRow, type OutboxStats,
  type ReplicaEntity, rowOf, viewOf, visible,
} from './records.ts';

export type { AckApplied, ChangesApplied, Draft, OutboxStats, ReplicaEntity };

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
    let seq = await counter(tx, 'nextSeq');
    let lamport = await counter(tx, 'lamport');
    let bytes = await counter(tx, 'outboxBytes');
    const ops: Op[] = [];
    for (const draft of drafts) {
      lamport = tick(lamport);
      const op = opOf(draft, { device: this.#deviceId, seq, lamport, at: now });
      seq += 1;
      const entry = entryOf(op);
      bytes += entry.bytes;
      // add, not put: an existing seq would mean a gap or a reuse, and must fail the whole write.
      await tx.objectStore('outbox').add(rowOf(entry));
      await updateEntity(tx, entityKeyOf(op), (record) => {
        record.doc = applyOp(record.doc, op).doc;
        record.pending += 1;
      });
      ops.push(op);
    }
    await meta.put(seq, 'nextSeq');
    await meta.put(lamport, 'lamport');
    await meta.put(bytes, 'outboxBytes');
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
      const rejected = new Set<string>();
      const done: AckApplied = { removed: 0, dead: 0 };
      let bytes = 0;
      for (const seq of plan.remove) {
        const row = await tx.objectStore('outbox').get(seq);
        if (row === undefined) continue; // removed by an earlier copy of this ack
        const letter = letters.get(seq);
        if (letter !== undefined) {
          const deadRow: DeadRow = { seq, op: row.op, code: letter.code, message: letter.message, at: letter.at };
          await tx.objectStore('dead').put(deadRow);
          rejected.add(JSON.stringify(entityKeyOf(row)));
          done.dead += 1;
        }
        await tx.objectStore('outbox').delete(seq);
        await updateEntity(tx, entityKeyOf(row), (record) => {
          record.pending = Math.max(0, record.pending - 1);
          // Committed ops are in the server's state now; see EntityRecord.server.
          if (letter === undefined) record.server = applyOp(record.server, row.op).doc;
        });
        done.removed += 1;
        bytes += row.bytes;
      }
      // A rejected op's optimistic effect must go: rebuild those views from what is still pending.
      for (const key of rejected) await recompute(tx, JSON.parse(key) as EntityKey);
      await tx.objectStore('meta').put(plan.clock, 'lamport');
      await tx.objectStore('meta').put((await counter(tx, 'outboxBytes')) - bytes, 'outboxBytes');
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
      for (const entity of entities) {
        const key: EntityKey = [space, entity.collection, entity.key];
        const record = (await store.get(key)) ?? emptyRecord(key);
        const before = record.doc;
        record.server = mergeDocs(record.server, docOfWire(entity));
        record.doc = record.pending === 0 ? record.server : viewOf(record.server, await pendingOps(tx, key));
        await store.put(record);
        if (!docEquals(before, record.doc)) changed.push({ collection: entity.collection, key: entity.key });
      }
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
