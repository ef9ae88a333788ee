// Schema versions for queued ops (core/versions.ts) on a device: ops queued while the app was at version 1
// of a collection, still in the outbox when the app (and its worker) moved to version 2, are drained by the
// updated store, upgraded by the server, and the replica converges on the server's upgraded rows; an op of a
// collection the server has no upgrade for comes back to the dead letters `outdated_app`.
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { IDBFactory } from 'fake-indexeddb';
import type { CollectionVersions } from '../core/versions.ts';
import { createFakeClock } from '../tests/support/fake-clock.ts';
import { FakeServer } from '../tests/support/fake-server.ts';
import { createDrainer } from './drainer.ts';
import { createLocalLock } from './locks.ts';
import { createStore, type Store } from './store.ts';

const T0 = 1_700_000_000_000;

/** Version 2 of `items` renamed `title` to `name`; `tags` went to version 2 with no way up from 1. */
const VERSIONS: CollectionVersions = {
  items: { version: 2, upgrade: (op) => renamed(op.value ?? {}) },
  tags: { version: 2 },
};
const renamed = ({ title, ...rest }: Record<string, unknown>) =>
  (title === undefined ? rest : { ...rest, name: title }) as Record<string, string>;
const SCHEMAS = { items: v.strictObject({ name: v.string(), done: v.optional(v.boolean()) }) };

async function drainAll(store: Store, server: FakeServer) {
  const clock = createFakeClock(T0);
  const drainer = createDrainer({
    store, transport: server, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep, onStatus: () => {},
  });
  return drainer.drain();
}

describe('ops queued under an older schema version', () => {
  test('drained after the app moved to version 2, they arrive upgraded and the replica converges on the server', async () => {
    const factory = new IDBFactory();
    // Version 1 of the app: three writes queued offline.
    const before = await createStore({ indexedDB: factory, name: 'ferry' });
    const old = await before.enqueue([
      { space: 's1', collection: 'items', key: 'k1', kind: 'put', value: { title: 'Milk' } },
      { space: 's1', collection: 'items', key: 'k1', kind: 'patch', value: { title: 'Oat milk' } },
      { space: 's1', collection: 'tags', key: 't1', kind: 'put', value: { label: 'dairy' } },
    ], T0);
    expect(old.every((op) => op.version === undefined)).toBe(true);
    before.close();

    // The update: a new worker opens the same database, outbox intact, and the app writes at version 2.
    const store = await createStore({ indexedDB: factory, name: 'ferry' });
    const [fresh] = await store.enqueue([{ space: 's1', collection: 'items', key: 'k2', kind: 'put', value: { name: 'Bread' }, version: 2 }], T0 + 1);
    expect(fresh!.version).toBe(2);
    expect((await store.get('s1', 'items', 'k1'))?.fields).toEqual({ title: 'Oat milk' }); // as written, until synced

    const server = new FakeServer({ collections: SCHEMAS, versions: VERSIONS });
    expect(await drainAll(store, server)).toEqual({ sent: 4, remaining: 0, phase: 'idle' });
    // The server stored the upgraded ops: `name`, never `title`.
    const rows = server.entities();
    expect(rows.map((row) => [row.collection, row.key, row.fields])).toEqual([
      ['items', 'k1', { name: 'Oat milk' }],
      ['items', 'k2', { name: 'Bread' }],
    ]);
    expect(server.committed.map((op) => [op.seq, op.version ?? 1])).toEqual([[1, 1], [2, 1], [4, 2]]);
    // No path for `tags`: a dead letter that says why, with the op as it was queued.
    const dead = await store.listDead();
    expect(dead.map((letter) => [letter.seq, letter.code, letter.op.value])).toEqual([[3, 'outdated_app', { label: 'dairy' }]]);
    expect(dead[0]!.message).toContain('made by an older version of the app');
    expect(await store.get('s1', 'tags', 't1')).toBeNull();

    // The server's change stream brings the upgraded rows; the replica ends exactly where the server is
    // (had the device folded the op it sent, k1 would keep a stale `title` beside `name`).
    const head = rows.reduce((max, row) => Math.max(max, row.serverSeq), 0);
    await store.applyChanges('s1', rows.map(({ space: _space, ...wire }) => wire), head);
    for (const row of rows) {
      const mine = await store.get('s1', row.collection, row.key);
      expect(mine).toEqual({ space: 's1', collection: row.collection, key: row.key, fields: row.fields, pending: 0 });
    }
    store.close();
  });
});
