// Writes of one turn share one transaction, against the real store on fake-indexeddb: each call still
// resolves with its own ops only once they are durable (another connection reads them), a bad draft
// fails only its own call, a call's drafts stay atomic, seqs follow the order of the calls, and what
// follows a commit runs once per transaction and never writes twice.
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import type { Op } from '../core/types.ts';
import { type Draft, InvalidDraftError } from './records.ts';
import { createStore } from './store.ts';
import { createWriteQueue } from './write-queue.ts';

const SPACE = 'u:ann';
const put = (key: string, n = 1): Draft => ({ space: SPACE, collection: 'items', key, kind: 'put', value: { n } });
const bad: Draft = { space: SPACE, collection: 'Not A Name', key: 'k', kind: 'put', value: { n: 1 } };

async function setup(options: { gate?: Promise<void>; failAfter?: number } = {}) {
  const factory = new IDBFactory();
  const store = await createStore({ indexedDB: factory, name: 'queue' });
  const other = await createStore({ indexedDB: factory, name: 'queue' }); // another connection: what is durable
  const commits: number[] = [];
  let afters = 0;
  const queue = createWriteQueue({
    async commit(drafts) {
      commits.push(drafts.length);
      if (options.gate && commits.length === 1) await options.gate;
      return store.enqueue(drafts, 0);
    },
    async after() {
      afters += 1;
      if (afters === options.failAfter) throw new Error('the drain could not be woken');
    },
  });
  const outbox = async () => (await other.readOutbox(1, 100)).map((entry) => `${entry.op.seq}:${entry.op.key}`);
  return { store, queue, commits, outbox, afters: () => afters };
}

const seqs = (ops: Op[]) => ops.map((op) => op.seq);

describe('write queue', () => {
  test('writes issued in one turn share one transaction; each resolves with its own ops once durable', async () => {
    const t = await setup();
    const durableAtResolve: string[][] = [];
    const calls = [[put('a')], [put('b'), put('c')], [put('d')]].map((drafts) =>
      t.queue.write(drafts).then(async (ops) => (durableAtResolve.push(await t.outbox()), ops)));
    const results = await Promise.all(calls);
    expect(t.commits).toEqual([4]);
    expect(t.afters()).toBe(1);
    expect(results.map(seqs)).toEqual([[1], [2, 3], [4]]);
    for (const seen of durableAtResolve) expect(seen).toEqual(['1:a', '2:b', '3:c', '4:d']);
  });

  test('a bad draft fails only its own call; the others of its turn land, in call order', async () => {
    const t = await setup();
    const [first, broken, last] = await Promise.allSettled([t.queue.write([put('a')]), t.queue.write([put('b'), bad]), t.queue.write([put('c')])]);
    expect(first).toMatchObject({ status: 'fulfilled' });
    expect(broken).toMatchObject({ status: 'rejected' });
    expect((broken as PromiseRejectedResult).reason).toBeInstanceOf(InvalidDraftError);
    // Change 2 of its own call, not of the turn's four.
    expect((broken as PromiseRejectedResult).reason.message).toStartWith('Change 2 ');
    expect(last).toMatchObject({ status: 'fulfilled' });
    // The call with the bad draft wrote nothing at all (its good draft neither): a call is atomic.
    expect(await t.outbox()).toEqual(['1:a', '2:c']);
    expect(t.commits).toEqual([4, 1, 2, 1]);
  });

  test('writes made while a commit runs go together in the next one, after it in seq order', async () => {
    let open!: () => void;
    const t = await setup({ gate: new Promise<void>((resolve) => (open = resolve)) });
    const a = t.queue.write([put('a')]);
    await Promise.resolve();
    await Promise.resolve(); // the first commit has started and waits at the gate
    const b = t.queue.write([put('b')]);
    await new Promise((resolve) => setTimeout(resolve, 0)); // another turn
    const c = t.queue.write([put('c')]);
    open();
    expect((await Promise.all([a, b, c])).map(seqs)).toEqual([[1], [2], [3]]);
    expect(t.commits).toEqual([1, 2]);
  });

  test('what follows a commit failing fails its calls, and the ops are written once, not again', async () => {
    const t = await setup({ failAfter: 1 });
    const results = await Promise.allSettled([t.queue.write([put('a')]), t.queue.write([put('b')])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await t.outbox()).toEqual(['1:a', '2:b']);
    expect(t.commits).toEqual([2]);
    expect(seqs(await t.queue.write([put('c')]))).toEqual([3]);
  });
});
