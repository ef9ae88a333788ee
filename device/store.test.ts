import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { IDBFactory } from 'fake-indexeddb';
import { entryOf } from '../core/outbox.ts';
import type { Fields, OpResult } from '../core/types.ts';
import type { EntityWire } from '../schema/wire.ts';
import { applyAll } from '../core/merge.ts';
import type { Doc, Op } from '../core/types.ts';
import { groupByEntity, InvalidDraftError, opOf, rowOf, type Draft } from './records.ts';
import { audit } from './audit.ts';
import { createStore, DB_VERSION } from './store.ts';

const T0 = 1_700_000_000_000;
const put = (key: string, value: Fields, space = 's1'): Draft => ({ space, collection: 'items', key, kind: 'put', value });
const patch = (key: string, value: Fields): Draft => ({ space: 's1', collection: 'items', key, kind: 'patch', value });
const applied = (seq: number, device: string): OpResult => ({ seq, id: `${device}:${seq}`, result: 'applied' });

function open(factory = new IDBFactory(), name = 'ferry-test') {
  return createStore({ indexedDB: factory, name });
}

/** A server entity as a `changes` message carries it. */
function wire(key: string, fields: Fields, lamport: number, serverSeq: number, device = 'other'): EntityWire {
  const stamp: readonly [number, string] = [lamport, device];
  return {
    collection: 'items', key, fields,
    stamps: Object.fromEntries(Object.keys(fields).map((name) => [name, stamp])),
    base: stamp, live: stamp, deleted: false, serverSeq,
  };
}

describe('opening', () => {
  test('a new database gets every store and index, and a device id minted once per database', async () => {
    const factory = new IDBFactory();
    const store = await open(factory);
    const id = await store.getDeviceId();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    store.close();

    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('ferry-test');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    expect(raw.version).toBe(DB_VERSION);
    expect([...raw.objectStoreNames].sort()).toEqual(['dead', 'entities', 'meta', 'outbox']);
    const tx = raw.transaction(['outbox', 'entities'], 'readonly');
    expect([...tx.objectStore('outbox').indexNames].sort()).toEqual(['by_entity', 'by_prev']);
    expect([...tx.objectStore('entities').indexNames]).toEqual([]);
    raw.close();

    const reopened = await open(factory);
    expect(await reopened.getDeviceId()).toBe(id);
    const other = await open(new IDBFactory());
    expect(await other.getDeviceId()).not.toBe(id);
  });
});

describe('upgrading', () => {
  /** A version-1 database as version 1 of this store left it: its stores and indexes, its counters, and the
   * rows its enqueue wrote (an outbox row per op; the entity with its ops applied and counted). */
  async function versionOne(factory: IDBFactory, device: string, ops: Op[], server: Doc | null): Promise<void> {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('ferry-test', 1);
      request.onupgradeneeded = () => {
        const d = request.result;
        d.createObjectStore('meta');
        d.createObjectStore('outbox', { keyPath: 'seq' }).createIndex('by_entity', ['space', 'collection', 'key']);
        d.createObjectStore('dead', { keyPath: 'seq' });
        d.createObjectStore('entities', { keyPath: ['space', 'collection', 'key'] }).createIndex('by_collection', ['space', 'collection']);
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const tx = db.transaction(['meta', 'outbox', 'entities'], 'readwrite');
    const meta = tx.objectStore('meta');
    meta.put(device, 'deviceId');
    meta.put(ops.length + 1, 'nextSeq');
    meta.put(ops.at(-1)!.lamport, 'lamport');
    meta.put(ops.reduce((sum, op) => sum + entryOf(op).bytes, 0), 'outboxBytes');
    for (const op of ops) tx.objectStore('outbox').add(rowOf(entryOf(op)));
    for (const [key, mine] of groupByEntity(ops, (op) => op)) {
      const record = { space: key[0], collection: key[1], key: key[2], server, doc: applyAll(server, mine), pending: mine.length };
      tx.objectStore('entities').put(record);
    }
    tx.objectStore('entities').put({ space: 's1', collection: 'items', key: 'synced', server, doc: server, pending: 0 });
    tx.objectStore('entities').put({ space: 's1', collection: 'other', key: 'elsewhere', server, doc: server, pending: 0 });
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    db.close();
  }

  /** The meta keys of the database as it is now. */
  async function metaKeys(factory: IDBFactory): Promise<{ version: number; keys: string[]; entityIndexes: string[] }> {
    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('ferry-test');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const tx = raw.transaction(['meta', 'entities'], 'readonly');
    const keys = await new Promise<IDBValidKey[]>((resolve) => {
      const request = tx.objectStore('meta').getAllKeys();
      request.onsuccess = () => resolve(request.result);
    });
    const entityIndexes = [...tx.objectStore('entities').indexNames];
    raw.close();
    return { version: raw.version, keys: keys.map(String).sort(), entityIndexes };
  }

  test("version 1 → 4 keeps the device's id, outbox, counters and replica, and drops the collection index", async () => {
    const factory = new IDBFactory();
    const device = crypto.randomUUID();
    const server: Doc = { fields: { title: 'From the server' }, stamps: { title: [1, 'other'] }, base: [1, 'other'], live: [1, 'other'], deleted: false };
    const ops = [put('milk', { title: 'Milk' }), patch('milk', { done: true }), put('eggs', { n: 1 })]
      .map((draft, i) => opOf(draft, { device, seq: i + 1, lamport: 10 + i, at: T0 }));
    await versionOne(factory, device, ops, server);

    const store = await open(factory);
    expect(await store.getDeviceId()).toBe(device);
    expect(await audit(store)).toEqual([]);
    expect((await store.readOutbox(0, 10)).map((entry) => entry.op)).toEqual(ops);
    expect(await store.all('s1', 'items')).toEqual([
      { space: 's1', collection: 'items', key: 'eggs', fields: { n: 1 }, pending: 1 },
      { space: 's1', collection: 'items', key: 'milk', fields: { title: 'Milk', done: true }, pending: 2 },
      { space: 's1', collection: 'items', key: 'synced', fields: { title: 'From the server' }, pending: 0 },
    ]);
    expect(await store.all('s1', 'other')).toHaveLength(1);
    // The next write continues the old counters: no seq reused, the clock above the old ops.
    const [next] = await store.enqueue([patch('milk', { title: 'Oat milk' })], T0);
    expect([next!.seq, next!.lamport]).toEqual([4, 13]);
    expect(await store.get('s1', 'items', 'milk')).toMatchObject({ fields: { title: 'Oat milk', done: true }, pending: 3 });
    expect(await audit(store)).toEqual([]);
    // Version 4 linked the old ops: an ack of the first finds that milk keeps two waiting, eggs none.
    await store.applyAck({ through: 1, lamport: 20, results: [applied(1, device)] }, T0);
    await store.applyAck({ through: 3, lamport: 20, results: [applied(2, device), applied(3, device)] }, T0);
    expect((await store.all('s1', 'items')).map((e) => [e.key, e.pending])).toEqual([['eggs', 0], ['milk', 1], ['synced', 0]]);
    expect(await audit(store)).toEqual([]);
    store.close();

    // The counters are one record now; the keys they had are gone.
    expect(await metaKeys(factory)).toEqual({ version: DB_VERSION, keys: ['counters', 'deviceId'], entityIndexes: [] });
  });

  test('version 2 → 3 folds the five counter keys into one record, the last ack time and the count kept', async () => {
    const factory = new IDBFactory();
    const device = crypto.randomUUID();
    const ops = [put('milk', { title: 'Milk' }), put('eggs', { n: 1 })].map((draft, i) => opOf(draft, { device, seq: i + 1, lamport: 20 + i, at: T0 }));
    const server: Doc = { fields: { title: 'From the server' }, stamps: { title: [1, 'other'] }, base: [1, 'other'], live: [1, 'other'], deleted: false };
    await versionOne(factory, device, ops, server);
    // Version 2 as it left the database: no collection index, the count and the last ack as keys of their own.
    await new Promise<void>((resolve, reject) => {
      const request = factory.open('ferry-test', 2);
      request.onupgradeneeded = () => {
        const tx = request.transaction!;
        tx.objectStore('entities').deleteIndex('by_collection');
        tx.objectStore('meta').put(ops.length, 'outboxCount');
        tx.objectStore('meta').put(T0 - 5, 'lastAckAt');
      };
      request.onsuccess = () => (request.result.close(), resolve());
      request.onerror = () => reject(request.error);
    });
    const store = await open(factory);
    expect(await store.outboxStats()).toMatchObject({ count: 2, lastAckAt: T0 - 5, span: { first: 1, last: 2 } });
    expect(await store.getLamport()).toBe(21);
    const [next] = await store.enqueue([patch('milk', { done: true })], T0);
    expect([next!.seq, next!.lamport]).toEqual([3, 22]);
    expect(await audit(store)).toEqual([]);
    store.close();
    expect(await metaKeys(factory)).toEqual({ version: DB_VERSION, keys: ['counters', 'deviceId'], entityIndexes: [] });
  });
});

describe('enqueue', () => {
  test('stamps ops with gapless seqs and ticking lamports, and applies them to the replica', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    const ops = await store.enqueue([put('milk', { title: 'Milk' }), patch('milk', { done: true })], T0);
    expect(ops.map((op) => [op.id, op.seq, op.lamport, op.at])).toEqual([[`${device}:1`, 1, 1, T0], [`${device}:2`, 2, 2, T0]]);
    const [del] = await store.enqueue([{ space: 's1', collection: 'items', key: 'eggs', kind: 'delete' }], T0);
    expect(del).not.toHaveProperty('value');
    expect(del!.seq).toBe(3);

    expect(await store.get('s1', 'items', 'milk')).toEqual({ space: 's1', collection: 'items', key: 'milk', fields: { title: 'Milk', done: true }, pending: 2 });
    expect(await store.get('s1', 'items', 'eggs')).toBeNull(); // a tombstone is not visible
    expect(await store.getLamport()).toBe(3);
    const stats = await store.outboxStats();
    expect(stats).toMatchObject({ count: 3, oldestAt: T0, span: { first: 1, last: 3 }, dead: 0 });
    expect(stats.bytes).toBe(ops.concat(del!).reduce((sum, op) => sum + entryOf(op).bytes, 0));
  });

  test('refuses a draft the server would reject, before writing anything', async () => {
    const store = await open();
    const bad = put('big', { body: 'x'.repeat(70_000) });
    const error = await store.enqueue([put('ok', { a: 1 }), bad], T0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidDraftError);
    expect(error).toMatchObject({ index: 1, code: 'too_large' });
    expect((error as Error).message).toContain('s1/items/big');
    await expect(store.enqueue([{ ...put('k', {}), collection: 'Bad Name' }], T0)).rejects.toThrow(/Collection name/);
    await expect(store.enqueue([{ space: 's1', collection: 'items', key: 'k', kind: 'patch' }], T0)).rejects.toThrow(/needs a value/);
    const fromJavaScript = { space: 's1', collection: 'items', key: 7, kind: 'upsert', value: {} } as unknown as Draft;
    await expect(store.enqueue([fromJavaScript], T0)).rejects.toBeInstanceOf(InvalidDraftError);

    expect((await store.outboxStats()).count).toBe(0);
    expect(await store.get('s1', 'items', 'ok')).toBeNull();
    const [op] = await store.enqueue([put('ok', { a: 1 })], T0);
    expect(op!.seq).toBe(1); // no seq was consumed by the refused writes
  });

  test('a write whose seq is taken fails whole: no row, no entity, no counter of it lands', async () => {
    const factory = new IDBFactory();
    const store = await open(factory);
    await store.enqueue([put('milk', { title: 'Milk' })], T0);
    const before = { stats: await store.outboxStats(), lamport: await store.getLamport(), milk: await store.get('s1', 'items', 'milk') };
    // A corrupt counter (nextSeq pointing at a seq in use): the outbox's `add` refuses the second row.
    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('ferry-test');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    await new Promise<void>((resolve, reject) => {
      const tx = raw.transaction('meta', 'readwrite');
      const meta = tx.objectStore('meta');
      const read = meta.get('counters');
      read.onsuccess = () => meta.put({ ...read.result, nextSeq: 1 }, 'counters');
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    raw.close();
    await expect(store.enqueue([put('eggs', { n: 1 }), patch('milk', { done: true })], T0)).rejects.toThrow();
    expect(await store.get('s1', 'items', 'eggs')).toBeNull();
    expect(await store.get('s1', 'items', 'milk')).toEqual(before.milk);
    expect(await store.getLamport()).toBe(before.lamport);
    expect(await store.outboxStats()).toEqual(before.stats);
    expect(await audit(store)).toEqual([]);
  });

  test('two tabs writing at once get unique, gapless seqs and increasing lamports', async () => {
    const factory = new IDBFactory();
    const tabA = await open(factory);
    const tabB = await open(factory);
    const writes = [];
    for (let i = 0; i < 40; i++) {
      writes.push(tabA.enqueue([put(`a${i}`, { i })], T0), tabB.enqueue([put(`b${i}`, { i }), put(`b${i}x`, { i })], T0));
    }
    const ops = (await Promise.all(writes)).flat().sort((x, y) => x.seq - y.seq);
    expect(ops.map((op) => op.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(new Set(ops.map((op) => op.id)).size).toBe(120);
    for (let i = 1; i < ops.length; i++) expect(ops[i]!.lamport).toBeGreaterThan(ops[i - 1]!.lamport);
    const rows = await tabA.readOutbox(0, 1000);
    expect(rows.map((row) => row.op.seq)).toEqual(ops.map((op) => op.seq));
  });
});

describe('reading the outbox', () => {
  test('reads one page from a seq, in seq order', async () => {
    const store = await open();
    await store.enqueue(Array.from({ length: 25 }, (_, i) => put(`k${i}`, { i })), T0);
    expect((await store.readOutbox(0, 10)).map((e) => e.op.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await store.readOutbox(21, 10)).map((e) => e.op.seq)).toEqual([21, 22, 23, 24, 25]);
    expect(await store.readOutbox(26, 10)).toEqual([]);
  });
});

describe('applyAck', () => {
  test('removes answered ops, dead-letters rejections, advances the clock; a second copy changes nothing', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    const ops = await store.enqueue([put('a', { n: 1 }), put('b', { n: 2 }), patch('a', { n: 3 }), put('c', { n: 4 })], T0);
    const ack = {
      through: 3, lamport: 50,
      results: [applied(1, device), { seq: 2, id: `${device}:2`, result: 'rejected' as const, code: 'invalid', message: 'n must be odd' }, applied(3, device)],
    };
    // With the outbox's stats after it, read in its own transaction: what a separate read sees now.
    const first = await store.applyAck(ack, T0 + 5);
    expect(first).toEqual({ removed: 3, dead: 1, touched: [{ space: 's1', collection: 'items' }], stats: await store.outboxStats() });
    expect(first.stats).toMatchObject({ count: 1, dead: 1, span: { first: 4, last: 4 }, lastAckAt: T0 + 5 });
    expect((await store.readOutbox(0, 10)).map((e) => e.op.seq)).toEqual([4]);
    expect(await store.listDead()).toEqual([{ seq: 2, op: ops[1]!, code: 'invalid', message: 'n must be odd', at: T0 + 5 }]);
    expect(await store.getLamport()).toBe(50);
    // The acked ops stay visible; the rejected put's optimistic entity is gone.
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 3 }, pending: 0 });
    expect(await store.get('s1', 'items', 'b')).toBeNull();
    const { bytes, lastAckAt } = await store.outboxStats();
    expect(bytes).toBe(entryOf(ops[3]!).bytes);
    expect(lastAckAt).toBe(T0 + 5);

    // The copy that arrives on the other path removes nothing, and so is not a newer ack either.
    expect(await store.applyAck(ack, T0 + 9)).toEqual({ removed: 0, dead: 0, touched: [], stats: first.stats });
    expect(await store.outboxStats()).toMatchObject({ bytes, lastAckAt: T0 + 5 });
    expect(await store.listDead()).toHaveLength(1);
  });

  test('an op below `through` without a result stays (its own ack was lost; it goes out again)', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([put('a', { n: 1 }), put('b', { n: 2 })], T0);
    await store.applyAck({ through: 2, lamport: 2, results: [applied(2, device)] }, T0);
    expect((await store.readOutbox(0, 10)).map((e) => e.op.seq)).toEqual([1]);
    expect((await store.outboxStats()).span).toEqual({ first: 1, last: 1 });
  });

  test('a rejected patch leaves the view as the other pending ops make it', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([put('a', { n: 1 }), patch('a', { n: 2, bad: true }), patch('a', { m: 3 })], T0);
    await store.applyAck({
      through: 2, lamport: 2,
      results: [applied(1, device), { seq: 2, id: `${device}:2`, result: 'rejected', code: 'invalid', message: 'no' }],
    }, T0);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 1, m: 3 }, pending: 1 });
  });

  test('an ack for some of an entity\'s pending ops folds only those into the server state', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    const [first, second] = await store.enqueue([put('a', { n: 1 }), patch('a', { bad: true })], T0);
    const page = await store.readOutbox(0, 10);
    await store.applyAck({ through: 1, lamport: 1, results: [applied(first!.seq, device)] }, T0, page.slice(0, 1));
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 1, bad: true }, pending: 1 });
    const rejected: OpResult = { seq: second!.seq, id: second!.id, result: 'rejected', code: 'invalid', message: 'no' };
    await store.applyAck({ through: 2, lamport: 2, results: [rejected] }, T0, page.slice(1));
    // The server never took the patch: the view is the put alone.
    expect(await store.get('s1', 'items', 'a')).toEqual({ space: 's1', collection: 'items', key: 'a', fields: { n: 1 }, pending: 0 });
    expect(await audit(store)).toEqual([]);
  });

  test('an entity with ops in two batches keeps the first batch in its server state and the second pending', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([put('a', { n: 1 }), put('b', { n: 2 })], T0);
    await store.enqueue([patch('a', { m: 3 })], T0);
    await store.applyAck({ through: 2, lamport: 2, results: [applied(1, device), applied(2, device)] }, T0);
    expect((await store.all('s1', 'items')).map((e) => [e.key, e.pending])).toEqual([['a', 1], ['b', 0]]);
    // A server change older than our ops: the acked puts are in the server state (they win), the patch still on top.
    await store.applyChanges('s1', [wire('a', { n: 0, m: 0 }, 0, 1), wire('b', { n: 0, y: 1 }, 0, 2)], 2);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 1, m: 3 }, pending: 1 });
    expect(await store.get('s1', 'items', 'b')).toMatchObject({ fields: { n: 2 }, pending: 0 });
    expect(await audit(store)).toEqual([]);
    await store.applyAck({ through: 3, lamport: 3, results: [applied(3, device)] }, T0);
    await store.enqueue([patch('b', { z: 1 })], T0);
    expect((await store.all('s1', 'items')).map((e) => [e.key, e.pending])).toEqual([['a', 0], ['b', 1]]);
    expect(await audit(store)).toEqual([]);
  });

  test('an ack that leaves an earlier op waiting still finds the entities that keep ops, after it and later', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([put('a', { n: 1 }), patch('a', { n: 2 }), patch('a', { n: 3 }), put('b', { n: 1 }), patch('a', { m: 1 })], T0);
    // Seq 2's answer comes first (1's was lost): 1 stays, and a's waiting ops are linked again.
    await store.applyAck({ through: 2, lamport: 5, results: [applied(2, device)] }, T0);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ pending: 3 });
    expect(await audit(store)).toEqual([]);
    await store.applyAck({ through: 1, lamport: 5, results: [applied(1, device)] }, T0);
    await store.applyAck({ through: 4, lamport: 5, results: [applied(3, device), applied(4, device)] }, T0);
    expect((await store.all('s1', 'items')).map((e) => [e.key, e.pending])).toEqual([['a', 1], ['b', 0]]);
    await store.applyChanges('s1', [wire('a', { n: 0, m: 0 }, 0, 1)], 1);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 3, m: 1 }, pending: 1 });
    expect(await audit(store)).toEqual([]);
  });

  // The drainer hands the batch it sent (`sent`), so only the keys of the held rows are read. Whatever
  // part of the outbox `sent` covers (all, some, none, rows already gone), the outcome is the same as
  // reading the rows: the same outbox, dead letters, replica, clock and counts.
  test('property: an ack applied with the batch as sent does what it does with the rows read', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.nat(99), { minLength: 1, maxLength: 30 }), async (rolls) => {
      const read = await open(new IDBFactory(), 'read');
      const given = await open(new IDBFactory(), 'given');
      for (const roll of rolls) {
        const key = `k${roll % 4}`;
        if (roll < 45) {
          const draft = roll % 3 === 0 ? patch(key, { n: roll }) : put(key, { n: roll });
          await read.enqueue([draft], T0);
          await given.enqueue([draft], T0);
          continue;
        }
        const page = await given.readOutbox(roll % 3, 1 + (roll % 5));
        if (page.length === 0) continue;
        // Answer a run of the page (sometimes skipping one: its own ack was lost), rejecting some.
        const results = page.filter(({ op }) => op.seq % 7 !== roll % 7).map(({ op }): OpResult => (op.seq % 5 === 0
          ? { seq: op.seq, id: op.id, result: 'rejected', code: 'invalid', message: 'no' }
          : { seq: op.seq, id: op.id, result: 'applied' }));
        const ack = { through: page.at(-1)!.op.seq, lamport: roll, results };
        // What the drainer may hold: the whole page, a part of it, or a page read before an earlier ack.
        const sent = roll % 4 === 0 ? page.slice(1) : roll % 4 === 1 ? page.slice(0, -1) : page;
        const a = await read.applyAck(ack, T0 + roll);
        const b = await given.applyAck(ack, T0 + roll, sent);
        expect(b).toEqual(a);
        expect(b.stats).toEqual(await given.outboxStats());
        if (roll % 6 === 0) expect(await given.applyAck(ack, T0 + roll, sent)).toEqual({ removed: 0, dead: 0, touched: [], stats: b.stats });
        if (roll % 6 === 0) await read.applyAck(ack, T0 + roll);
      }
      const outbox = async (store: typeof read) => (await store.readOutbox(0, 100)).map(({ op, bytes }) => [op.seq, op.key, bytes]);
      const dead = async (store: typeof read) => (await store.listDead()).map(({ seq, code, op }) => [seq, code, op.key]);
      expect(await outbox(given)).toEqual(await outbox(read));
      expect(await dead(given)).toEqual(await dead(read));
      expect(await given.all('s1', 'items')).toEqual(await read.all('s1', 'items'));
      expect(await given.getLamport()).toBe(await read.getLamport());
      const { bytes, count, span, dead: deadCount, lastAckAt } = await read.outboxStats();
      expect(await given.outboxStats()).toMatchObject({ bytes, count, span, dead: deadCount, lastAckAt });
      expect(await audit(given)).toEqual([]);
      read.close();
      given.close();
    }), { numRuns: 80 });
  });
});

describe('restamp', () => {
  test('raises unsent ops above the floor, the clock with them, and rebuilds the views', async () => {
    const store = await open();
    await store.enqueue([put('a', { n: 1 }), patch('a', { n: 2 })], T0);
    const before = await store.outboxStats();
    expect(await store.restamp(100)).toEqual({ restamped: 2, lamport: 102 });
    const ops = (await store.readOutbox(0, 10)).map((e) => e.op);
    expect(ops.map((op) => op.lamport)).toEqual([101, 102]);
    expect((await store.outboxStats()).bytes).toBe(before.bytes + 4); // "1" → "101", "2" → "102"
    // A server change stamped between the old and new lamports now loses to the pending patch.
    await store.applyChanges('s1', [wire('a', { n: 9 }, 50, 1)], 1);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 2 } });
    const [next] = await store.enqueue([patch('a', { n: 3 })], T0);
    expect(next!.lamport).toBe(103);
  });
});

describe('applyChanges', () => {
  test('keeps pending ops on top of the server state, and the cursor never goes back', async () => {
    const store = await open();
    await store.enqueue([patch('a', { title: 'mine' })], T0); // lamport 1
    const result = await store.applyChanges('s1', [wire('a', { title: 'theirs', size: 2 }, 0, 10), wire('z', { n: 1 }, 5, 11)], 11, 40);
    expect(result.changed).toEqual([{ collection: 'items', key: 'a' }, { collection: 'items', key: 'z' }]);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { title: 'mine', size: 2 }, pending: 1 });
    expect(await store.getLamport()).toBe(40);

    await store.applyChanges('s1', [], 7);
    expect(await store.getCursors()).toEqual({ s1: 11 });
    await store.applyChanges('s2', [], 3);
    expect(await store.getCursors()).toEqual({ s1: 11, s2: 3 });
    expect((await store.applyChanges('s1', [wire('z', { n: 1 }, 5, 11)], 11)).changed).toEqual([]);
    expect((await store.all('s1', 'items')).map((e) => e.key)).toEqual(['a', 'z']);
  });

  test('an acked op stays visible until the server change that carries it arrives', async () => {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([patch('a', { title: 'mine' })], T0);
    await store.applyAck({ through: 1, lamport: 1, results: [applied(1, device)] }, T0);
    // A change committed before ours arrives afterwards: our title must not flicker away.
    await store.applyChanges('s1', [wire('a', { title: 'old', size: 1 }, 0, 5)], 5);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { title: 'mine', size: 1 }, pending: 0 });
  });

  test('a newer server delete hides the entity; an older one does not', async () => {
    const store = await open();
    await store.enqueue([put('a', { n: 1 })], T0); // lamport 1
    const tombstone = (lamport: number, seq: number): EntityWire =>
      ({ collection: 'items', key: 'a', fields: {}, stamps: {}, base: [lamport, 'x'], live: [lamport, 'x'], deleted: true, serverSeq: seq });
    await store.applyChanges('s1', [tombstone(0, 1)], 1);
    expect(await store.get('s1', 'items', 'a')).not.toBeNull();
    await store.applyChanges('s1', [tombstone(9, 2)], 2);
    expect(await store.get('s1', 'items', 'a')).toBeNull();
  });
});

describe('resetSpace', () => {
  test("drops the space's server state and cursor, keeping pending ops on top", async () => {
    const store = await open();
    await store.applyChanges('s1', [wire('a', { n: 1, x: 1 }, 1, 1), wire('b', { n: 2 }, 1, 2)], 2);
    await store.applyChanges('s2', [wire('c', { n: 3 }, 1, 1)], 1);
    await store.enqueue([patch('a', { n: 5 })], T0);
    await store.resetSpace('s1');
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 5 }, pending: 1 });
    expect(await store.get('s1', 'items', 'b')).toBeNull();
    expect(await store.get('s2', 'items', 'c')).toMatchObject({ fields: { n: 3 } });
    expect(await store.getCursors()).toEqual({ s2: 1 });
  });
});

describe('dead letters', () => {
  async function withDeadLetter() {
    const store = await open();
    const device = await store.getDeviceId();
    await store.enqueue([put('a', { n: 1 }), put('b', { n: 2 })], T0);
    await store.applyAck({
      through: 2, lamport: 2,
      results: [{ seq: 1, id: `${device}:1`, result: 'rejected', code: 'invalid', message: 'no' }, applied(2, device)],
    }, T0);
    return store;
  }

  test('retry re-enqueues the content as a new op and drops the letter', async () => {
    const store = await withDeadLetter();
    const op = await store.retryDead(1, T0 + 1);
    expect(op).toMatchObject({ seq: 3, lamport: 3, key: 'a', kind: 'put', value: { n: 1 }, at: T0 + 1 });
    expect(await store.listDead()).toEqual([]);
    expect((await store.readOutbox(0, 10)).map((e) => e.op.seq)).toEqual([3]);
    expect(await store.get('s1', 'items', 'a')).toMatchObject({ fields: { n: 1 }, pending: 1 });
    expect(await store.retryDead(1, T0)).toBeNull();
  });

  test('discard drops the letter and nothing else', async () => {
    const store = await withDeadLetter();
    expect(await store.discardDead(1)).toBe(true);
    expect(await store.discardDead(1)).toBe(false);
    expect(await store.listDead()).toEqual([]);
    expect((await store.outboxStats()).count).toBe(0);
    expect(await store.get('s1', 'items', 'a')).toBeNull();
  });
});

describe('derived state', () => {
  // What the store keeps to make reads cheap (outboxBytes, each entity's pending count and merged doc)
  // must agree with what it is derived from after any sequence of the store's own steps.
  test('property: after any writes, acks, rejections, restamps, changes and resets, audit finds nothing', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.nat(99), { minLength: 1, maxLength: 40 }), async (rolls) => {
      const store = await open();
      const device = await store.getDeviceId();
      let serverSeq = 0;
      for (const roll of rolls) {
        const key = `k${roll % 4}`;
        if (roll < 35) await store.enqueue([roll % 3 === 0 ? patch(key, { n: roll }) : put(key, { n: roll, s: 'x'.repeat(roll) })], T0);
        else if (roll < 40) await store.enqueue([patch(key, { n: roll }), put(`k${(roll + 1) % 4}`, { n: 1 }), patch(key, { m: roll })], T0);
        else if (roll < 60) {
          // Mostly the oldest ops, in order; sometimes a later page first, or with an answer missing.
          const all = await store.readOutbox(0, 100);
          const from = roll % 4 === 0 && all.length > 2 ? all[roll % all.length]!.op.seq : 0;
          const page = (await store.readOutbox(from, 1 + (roll % 4))).filter(({ op }) => roll % 5 !== 1 || op.seq % 2 === 0);
          if (page.length === 0) continue;
          const results = page.map(({ op }): OpResult => (op.seq % 5 === 0
            ? { seq: op.seq, id: op.id, result: 'rejected', code: 'invalid', message: 'no' }
            : { seq: op.seq, id: op.id, result: 'applied' }));
          await store.applyAck({ through: page.at(-1)!.op.seq, lamport: roll, results }, T0);
        } else if (roll < 70) await store.restamp(roll + (await store.getLamport()));
        else if (roll < 90) await store.applyChanges('s1', [wire(key, { n: roll }, roll, ++serverSeq)], serverSeq, roll);
        else await store.resetSpace('s1');
      }
      expect(await audit(store)).toEqual([]);
      store.close();
    }), { numRuns: 150 });
  });

  test('audit reports a cached value that drifted from its source', async () => {
    const factory = new IDBFactory();
    const store = await open(factory, 'drift');
    await store.enqueue([put('a', { n: 1 })], T0);
    expect(await audit(store)).toEqual([]);
    store.close();
    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('drift');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    await new Promise<void>((resolve) => {
      const tx = raw.transaction(['meta', 'entities'], 'readwrite');
      const meta = tx.objectStore('meta');
      const read = meta.get('counters');
      read.onsuccess = () => meta.put({ ...read.result, outboxBytes: 1 }, 'counters');
      const entities = tx.objectStore('entities');
      const get = entities.get(['s1', 'items', 'a']);
      get.onsuccess = () => entities.put({ ...get.result, pending: 0 });
      tx.oncomplete = () => resolve();
    });
    raw.close();
    const reopened = await open(factory, 'drift');
    const problems = await audit(reopened);
    expect(problems.some((p) => p.startsWith('outboxBytes is 1'))).toBe(true);
    expect(problems.some((p) => p.includes('pending is 0, the outbox holds 1'))).toBe(true);
  });
});
