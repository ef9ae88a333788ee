// Schema versions for queued ops (AppDeps.versions, core/versions.ts) on a real server, on every runtime it
// runs on: an op a device queued under an older schema version of its collection is upgraded before the
// collection's schema check, stored and fanned out upgraded, and answered `upgraded`; the device, which
// does not fold the op it sent, converges on the server's row. An op with no upgrade path is rejected
// `outdated_app` and lands in the device's dead letters. A resend of either answers its first result and
// changes nothing; an upgrade that throws rejects only its op, `upgrade_failed`, without its error's text.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import type { Op } from '../core/types.ts';
import { createStore, type Store } from '../device/store.ts';
import { call } from './support/http.ts';
import { push, removeDir } from './support/server.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

for (const runtime of targets()) describe(`schema versions on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  let store: Store;
  const sockets: TestSocket[] = [];
  beforeAll(async () => {
    server = await startTarget(runtime, { versions: 'renamed' });
    alice = await server.user('alice');
    store = await createStore({ indexedDB: new IDBFactory(), name: 'ferry' });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    store.close();
    await server.stop();
    removeDir(server.dir);
  });

  /** Sends the device's outbox from `seq` on, as its drainer would, and applies the ack. */
  const drain = async (fromSeq: number) => {
    const ops = (await store.readOutbox(fromSeq, 100)).map((entry) => entry.op);
    const answer = await push(server.base, alice.token, await store.getDeviceId(), ops);
    expect(answer.status).toBe(200);
    await store.applyAck(answer.body, 0);
    return { ops, results: answer.body.results as Record<string, unknown>[] };
  };
  const resend = async (ops: Op[]) => {
    const answer = await push(server.base, alice.token, ops[0]!.device, ops);
    expect(answer.status).toBe(200);
    return answer.body.results as Record<string, unknown>[];
  };
  const snapshot = async () =>
    (await call(server.base, `/v1/snapshot?space=${encodeURIComponent(alice.space)}`, { token: alice.token })).body;

  test('an op queued under version 1 is upgraded, stored and fanned out upgraded; the device converges on it', async () => {
    const reader = await helloSocket(server.ws, alice.token, 'alice-tablet');
    sockets.push(reader);
    reader.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
    await reader.next((f) => f.type === 'caught_up');
    // Written while the app was at version 1 (no version on the op): `title`, which version 2 calls `name`.
    await store.enqueue([{ space: alice.space, collection: 'notes', key: 'n1', kind: 'put', value: { title: 'Milk', done: false } }], 1);
    const { ops, results } = await drain(1);
    expect(ops[0]!.version).toBeUndefined();
    expect(results).toEqual([{ seq: 1, id: ops[0]!.id, result: 'applied', code: 'upgraded' }]);
    const frame = await reader.next((f) => f.type === 'changes' && f.entities.some((e: { key: string }) => e.key === 'n1'));
    const row = frame.entities.find((e: { key: string }) => e.key === 'n1');
    expect(row.fields).toEqual({ name: 'Milk', done: false });
    const stored = (await snapshot()).entities.find((e: { key: string }) => e.key === 'n1');
    expect(stored.fields).toEqual({ name: 'Milk', done: false });
    // The writer's device takes the server's row from the change stream, and ends exactly where it is.
    await store.applyChanges(alice.space, frame.entities, frame.cursor);
    expect(await store.get(alice.space, 'notes', 'n1')).toEqual({ space: alice.space, collection: 'notes', key: 'n1', fields: { name: 'Milk', done: false }, pending: 0 });
    // A resend answers the first result and changes nothing.
    expect(await resend(ops)).toEqual([{ seq: 1, id: ops[0]!.id, result: 'duplicate', first: 'applied', code: 'upgraded' }]);
    expect((await snapshot()).entities.find((e: { key: string }) => e.key === 'n1')).toEqual(stored);
  });

  test('an op of the current version is taken as sent; a version-1 op the schema cannot take without its upgrade is upgraded', async () => {
    await store.enqueue([
      { space: alice.space, collection: 'notes', key: 'n2', kind: 'put', value: { name: 'Bread' }, version: 2 },
      { space: alice.space, collection: 'notes', key: 'n1', kind: 'patch', value: { title: 'Oat milk' } },
    ], 2);
    const { ops, results } = await drain(2);
    expect(results).toEqual([
      { seq: 2, id: ops[0]!.id, result: 'applied' },
      { seq: 3, id: ops[1]!.id, result: 'applied', code: 'upgraded' },
    ]);
    const entities = (await snapshot()).entities;
    expect(entities.find((e: { key: string }) => e.key === 'n2').fields).toEqual({ name: 'Bread' });
    expect(entities.find((e: { key: string }) => e.key === 'n1').fields).toEqual({ name: 'Oat milk', done: false });
  });

  test('an op with no upgrade path is rejected outdated_app, reaches the dead letters, and its resend answers the same', async () => {
    const before = await snapshot();
    await store.enqueue([
      { space: alice.space, collection: 'tags', key: 't1', kind: 'put', value: { label: 'dairy' } },
      { space: alice.space, collection: 'boom', key: 'b1', kind: 'put', value: { label: 'x' } },
    ], 3);
    const { ops, results } = await drain(4);
    expect(results.map((r) => [r.seq, r.result, r.code])).toEqual([[4, 'rejected', 'outdated_app'], [5, 'rejected', 'upgrade_failed']]);
    expect(results[0]!.message).toContain('made by an older version of the app');
    expect(JSON.stringify(results)).not.toContain('secret-token-456');
    const dead = await store.listDead();
    expect(dead.map((letter) => [letter.seq, letter.code, letter.op.value])).toEqual([[4, 'outdated_app', { label: 'dairy' }], [5, 'upgrade_failed', { label: 'x' }]]);
    expect(await store.get(alice.space, 'tags', 't1')).toBeNull();
    expect(await snapshot()).toEqual(before);
    expect(await resend(ops)).toEqual(results.map((r) => ({ ...r, result: 'duplicate', first: 'rejected' })));
    expect(await snapshot()).toEqual(before);
    expect(server.output()).not.toContain('secret-token-456');
  });

  test('an op of a newer version than the server knows is rejected invalid, saying so', async () => {
    const [op] = await store.enqueue([{ space: alice.space, collection: 'notes', key: 'n3', kind: 'put', value: { name: 'Jam' }, version: 3 }], 4);
    const { results } = await drain(op!.seq);
    expect(results.map((r) => [r.result, r.code])).toEqual([['rejected', 'invalid']]);
    expect(results[0]!.message).toContain('newer version of the app');
  });
});
