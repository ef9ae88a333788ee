// ferry.batch and the collections' writes (client/writer.ts) over the device's write queue and the real
// store on fake-indexeddb: a batch is one transaction, all of it or nothing; a bad value anywhere in it
// writes nothing and says why; a batch whose function awaits is refused; single writes still fail alone.
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import * as v from 'valibot';
import type { Draft } from '../device/records.ts';
import { createStore } from '../device/store.ts';
import { createWriteQueue } from '../device/write-queue.ts';
import { FerryError } from './errors.ts';
import { createWriter } from './writer.ts';

const SPACE = 'u:ann';
const schemas = { items: v.object({ title: v.string() }) };
const put = (key: string, title: unknown): Draft => ({ space: SPACE, collection: 'items', key, kind: 'put', value: { title } as never });

async function setup() {
  const store = await createStore({ indexedDB: new IDBFactory(), name: 'writer' });
  const transactions: number[] = [];
  const queue = createWriteQueue({
    commit: (drafts) => (transactions.push(drafts.length), store.enqueue(drafts, 0)),
    after: async () => {},
  });
  const writer = createWriter({ collections: schemas, write: (drafts) => queue.write(drafts), open() {} });
  const outbox = async () => (await store.readOutbox(1, 100)).map((entry) => `${entry.op.seq}:${entry.op.key}`);
  return { store, writer, transactions, outbox };
}

describe('ferry.batch', () => {
  test('every write the function makes lands in one transaction, with consecutive seqs, once durable', async () => {
    const t = await setup();
    const each: Array<Promise<void>> = [];
    await t.writer.batch(() => {
      each.push(t.writer.write(put('milk', 'Milk')), t.writer.write(put('eggs', 'Eggs')));
      each.push(t.writer.write({ space: SPACE, collection: 'items', key: 'old', kind: 'delete' }));
    });
    expect(t.transactions).toEqual([3]);
    expect(await t.outbox()).toEqual(['1:milk', '2:eggs', '3:old']);
    await Promise.all(each); // each write's own promise resolved with the batch
  });

  test('a bad value anywhere fails the whole batch with the reason, and nothing of it is written', async () => {
    const t = await setup();
    let inside: Promise<void> | null = null;
    const failed = t.writer.batch(() => {
      t.writer.write(put('milk', 'Milk'));
      inside = t.writer.write(put('eggs', 42));
      t.writer.write(put('bread', 'Bread'));
    });
    await expect(failed).rejects.toThrow(/items\/eggs: title/);
    await expect(inside!).rejects.toBeInstanceOf(FerryError);
    expect(t.transactions).toEqual([]);
    expect(await t.outbox()).toEqual([]);
    // A store-level refusal (a limit the schema does not know of) also writes nothing of the batch.
    await expect(t.writer.batch(() => {
      t.writer.write(put('ok', 'fine'));
      t.writer.write({ ...put('x', 'y'), collection: 'Bad Name' });
    })).rejects.toThrow(/Change 2/);
    expect(await t.outbox()).toEqual([]);
  });

  test('a function that awaits is refused (its later writes would not be in the batch), and nothing is written; batches do not nest', async () => {
    const t = await setup();
    await expect(t.writer.batch((async () => {
      t.writer.write(put('milk', 'Milk'));
      await Promise.resolve();
    }) as unknown as () => void)).rejects.toThrow(/without awaiting/);
    expect(await t.outbox()).toEqual([]);
    let nested: Promise<void> | null = null;
    await t.writer.batch(() => { nested = t.writer.batch(() => {}); });
    await expect(nested!).rejects.toThrow(/inside another batch/);
  });

  test('outside a batch, writes of one turn share a transaction and a bad one fails alone', async () => {
    const t = await setup();
    const results = await Promise.allSettled([t.writer.write(put('a', 'A')), t.writer.write(put('b', 7)), t.writer.write(put('c', 'C'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(t.transactions).toEqual([2]);
    expect(await t.outbox()).toEqual(['1:a', '2:c']);
  });
});
