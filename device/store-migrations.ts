// The device database's versions: one explicit migration per version, applied in order from whatever version
// the device has, on the plain IndexedDB objects of the upgrade (store.ts opens the database and calls upgrade).
import { COUNTERS, type Counters } from './store-steps.ts';
import { type EntityKey, entityKeyOf, type EntityRecord, type OutboxRow } from './records.ts';

export const DB_VERSION = 4;

/**
 * One migration per version, applied in order from whatever version the device has. A store that
 * holds ops is never dropped: the outbox and the dead letters are the person's unsynced work.
 * To add version N: set DB_VERSION = N and add `case N-1: migrateToN(db, tx);` at the end, with
 * migrateToN creating what is new and rewriting rows in place through `tx` if their shape changes.
 */
export function upgrade(db: IDBDatabase, oldVersion: number, tx: IDBTransaction): void {
  switch (oldVersion) {
    case 0:
      migrateTo1(db, tx);
    // falls through
    case 1:
      migrateTo2(tx);
    // falls through
    case 2:
      migrateTo3(tx);
    // falls through
    case 3:
      migrateTo4(tx);
    // falls through to later migrations once they exist
  }
}

function migrateTo1(db: IDBDatabase, tx: IDBTransaction): void {
  db.createObjectStore('meta');
  db.createObjectStore('outbox', { keyPath: 'seq' }).createIndex('by_entity', ['space', 'collection', 'key']);
  db.createObjectStore('dead', { keyPath: 'seq' });
  // Version 1 also indexed entities by [space, collection]; version 2 drops that index (see migrateTo2).
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

/**
 * Drops the entities' `by_collection` index: a collection's entities are already one range of the store's
 * own keys ([space, collection, …]), so the index was a second copy of every key that each entity write
 * paid for. And counts the outbox once into `outboxCount`, kept from then on by every write like
 * `outboxBytes`: IndexedDB's `count()` walks every row (20 ms at 20,000 queued in Chromium, up to 180 ms on
 * a busy machine), and the status re-read it after writes. Rows are unchanged.
 */
function migrateTo2(tx: IDBTransaction): void {
  tx.objectStore('entities').deleteIndex('by_collection');
  const count = tx.objectStore('outbox').count();
  count.onsuccess = () => tx.objectStore('meta').put(count.result, 'outboxCount');
}

/**
 * Folds the five counter keys into one record (store-steps.ts `Counters`): a write then reads and writes one
 * meta record instead of four. The outbox is counted again here rather than read from `outboxCount`: on a
 * new database that key is written by migrateTo2's count, answered after these reads were made. Every
 * request of a transaction runs in the order made, so the deletes land after that write.
 */
function migrateTo3(tx: IDBTransaction): void {
  const meta = tx.objectStore('meta');
  const [nextSeq, lamport, outboxBytes, lastAckAt] = ['nextSeq', 'lamport', 'outboxBytes', 'lastAckAt']
    .map((key) => meta.get(key));
  const count = tx.objectStore('outbox').count();
  count.onsuccess = () => {
    const counters: Omit<Counters, 'outboxFirst'> = { // outboxFirst: migrateTo4
      nextSeq: nextSeq!.result as number, lamport: lamport!.result as number, outboxBytes: outboxBytes!.result as number,
      outboxCount: count.result, lastAckAt: (lastAckAt!.result as number | undefined) ?? null,
    };
    meta.put(counters, COUNTERS);
    for (const key of ['nextSeq', 'lamport', 'outboxBytes', 'outboxCount', 'lastAckAt']) meta.delete(key);
  };
}

/**
 * Links each waiting op to the entity's op before it that still waits (`prev`, indexed as `by_prev`), gives each
 * entity with ops waiting its `through` (the newest of them), and the counters `outboxFirst`: what lets an ack
 * leave the records of entities it finishes unwritten (records.ts `settle`). One walk of the outbox in seq order.
 */
function migrateTo4(tx: IDBTransaction): void {
  const outbox = tx.objectStore('outbox');
  const entities = tx.objectStore('entities');
  const meta = tx.objectStore('meta');
  outbox.createIndex('by_prev', 'prev');
  const newest = new Map<string, number>();
  let first: number | undefined;
  const walk = outbox.openCursor();
  walk.onsuccess = () => {
    const cursor = walk.result;
    if (cursor !== null) {
      const row = cursor.value as OutboxRow;
      first ??= row.seq;
      const id = JSON.stringify(entityKeyOf(row));
      const prev = newest.get(id);
      if (prev !== undefined) cursor.update({ ...row, prev });
      newest.set(id, row.seq);
      cursor.continue();
      return;
    }
    for (const [id, through] of newest) {
      const get = entities.get(JSON.parse(id) as EntityKey);
      get.onsuccess = () => {
        if (get.result !== undefined) entities.put({ ...(get.result as EntityRecord), through });
      };
    }
    // Issued after migrateTo3's write of the record (made in an answer that came before this walk's first).
    const read = meta.get(COUNTERS);
    read.onsuccess = () => {
      const counters = read.result as Counters;
      meta.put({ ...counters, outboxFirst: first ?? counters.nextSeq } satisfies Counters, COUNTERS);
    };
  };
}
