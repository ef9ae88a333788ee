// The page's socket conversation against the real store (fake-indexeddb) and a recorded `send`: what
// each Down frame does to the replica, the clock, the cursors and the status, and that work begun on
// one socket never speaks on the next.
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import type { Fields } from '../core/types.ts';
import type { Down, EntityWire, SnapshotBody, Up } from '../schema/wire.ts';
import type { AckApplied } from './records.ts';
import { createStore } from './store.ts';
import { createFakeClock } from '../tests/support/fake-clock.ts';
import { createSocketSession } from './socket-session.ts';
import { createSocketTransport } from './socket-transport.ts';

const SPACE = 'u:ann';

/** A server entity as `changes` and snapshots carry it, written by another device. */
function entity(key: string, fields: Fields, lamport: number, serverSeq: number, collection = 'items'): EntityWire {
  const stamp: readonly [number, string] = [lamport, 'other'];
  return {
    collection, key, fields, stamps: Object.fromEntries(Object.keys(fields).map((name) => [name, stamp])),
    base: stamp, live: stamp, deleted: false, serverSeq,
  };
}

async function setup(snapshots: SnapshotBody[] = []) {
  const store = await createStore({ indexedDB: new IDBFactory(), name: 'session' });
  const device = await store.getDeviceId();
  const clock = createFakeClock(1_000);
  const transport = createSocketTransport({ timers: clock });
  const sent: Up[] = [];
  const changed: string[] = [];
  const acked: AckApplied[] = [];
  const welcomed: number[] = [];
  const snapshotCalls: Array<[string, number, number | undefined]> = [];
  const session = createSocketSession({
    store, device, transport, now: clock.now,
    snapshot: async (space, after, head) => {
      snapshotCalls.push([space, after, head]);
      const page = snapshots.shift();
      if (!page) throw new Error('no more snapshot pages');
      return page;
    },
    changed: (space, collection) => changed.push(`${space}/${collection}`),
    acked: (applied) => acked.push(applied),
    welcomed: (through) => welcomed.push(through),
    updated: () => {},
  });
  const send = (message: Up) => (sent.push(message), true);
  /** Opens a socket and answers hello with welcome; resolves once it is applied. */
  const connect = async (welcome: Partial<Extract<Down, { type: 'welcome' }>> = {}) => {
    session.opened(send);
    session.frame({ type: 'welcome', protocol: 1, user: 'ann', lamport: 0, through: 0, ...welcome });
    await session.settled();
  };
  const receive = async (frame: Down) => {
    session.frame(frame);
    await session.settled();
  };
  return { store, device, clock, transport, session, sent, changed, acked, welcomed, snapshotCalls, connect, receive, send };
}

describe('socket session', () => {
  test('open: hello with the device id (and a ping to measure the round trip) before anything else', async () => {
    const { session, sent, device, send } = await setup();
    session.opened(send);
    expect(sent).toEqual([{ type: 'hello', protocol: 1, device }, { type: 'ping', t: 1_000 }]);
    expect(session.info()).toMatchObject({ welcomed: false, subscribed: 0 });
  });

  test('welcome: raises the clock, subscribes the wanted spaces from stored cursors, readies pushes', async () => {
    const { store, session, sent, welcomed, transport, connect } = await setup();
    await store.applyChanges('u:other', [entity('x', { a: 1 }, 3, 41)], 41);
    session.setSpaces([SPACE, 'u:other']);
    expect(transport.ready()).toBe(false);
    await connect({ lamport: 120, through: 7 });
    expect(await store.getLamport()).toBe(120);
    expect(welcomed).toEqual([7]);
    expect(transport.ready()).toBe(true);
    expect(sent.at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }, { space: 'u:other', cursor: 41 }] });
    expect(session.info()).toMatchObject({ welcomed: true, subscribed: 2, caughtUp: 0 });
    // A local op now ticks above the server's clock.
    const [op] = await store.enqueue([{ space: SPACE, collection: 'items', key: 'k', kind: 'put', value: { a: 1 } }], 0);
    expect(op!.lamport).toBe(121);
  });

  test('spaces added later are subscribed at once, each only once per socket', async () => {
    const { session, sent, connect } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    session.setSpaces([SPACE, 'u:b']);
    await session.settled();
    expect(sent.filter((m) => m.type === 'subscribe')).toEqual([
      { type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }] },
      { type: 'subscribe', spaces: [{ space: 'u:b', cursor: 0 }] },
    ]);
  });

  test('changes: merged into the replica under pending ops, cursor stored, collections announced', async () => {
    const { store, changed, connect, receive } = await setup();
    await connect({ lamport: 4 });
    // The person ticks milk done after their clock passed the server's put (lamport 1).
    await store.enqueue([{ space: SPACE, collection: 'items', key: 'milk', kind: 'patch', value: { done: true } }], 0);
    await receive({ type: 'changes', space: SPACE, cursor: 12, lamport: 50, entities: [
      entity('milk', { title: 'Milk', done: false }, 1, 11), entity('n1', { text: 'hi' }, 2, 12, 'notes'),
    ] });
    // The pending patch (lamport 5) stays on top of the server's older put.
    expect(await store.get(SPACE, 'items', 'milk')).toMatchObject({ fields: { title: 'Milk', done: true }, pending: 1 });
    expect(await store.get(SPACE, 'notes', 'n1')).toMatchObject({ fields: { text: 'hi' }, pending: 0 });
    expect(await store.getCursors()).toEqual({ [SPACE]: 12 });
    expect(await store.getLamport()).toBe(50);
    expect(changed.sort()).toEqual([`${SPACE}/items`, `${SPACE}/notes`]);
    // The same page again changes nothing and announces nothing.
    changed.length = 0;
    await receive({ type: 'changes', space: SPACE, cursor: 12, lamport: 50, entities: [entity('n1', { text: 'hi' }, 2, 12, 'notes')] });
    expect(changed).toEqual([]);
  });

  test('a frame that continues from above the stored cursor (one was lost): merged, the cursor kept, subscribed again once', async () => {
    const { store, session, sent, connect, receive } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'changes', space: SPACE, from: 0, cursor: 3, lamport: 9, entities: [entity('a', { n: 1 }, 1, 3)] });
    await receive({ type: 'caught_up', space: SPACE, cursor: 3 });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 1 });
    // The frame (3, 5] is lost; the next one says it continues from 5.
    await receive({ type: 'changes', space: SPACE, from: 5, cursor: 7, lamport: 9, entities: [entity('b', { n: 2 }, 2, 7)] });
    expect(await store.getCursors()).toEqual({ [SPACE]: 3 });
    expect(await store.get(SPACE, 'items', 'b')).toMatchObject({ fields: { n: 2 } });
    expect(sent.filter((m) => m.type === 'subscribe').at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 3 }] });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 0 });
    // More frames of the old stream on their way: still a gap, asked for once already.
    await receive({ type: 'changes', space: SPACE, from: 7, cursor: 8, lamport: 9, entities: [entity('c', { n: 3 }, 3, 8)] });
    expect(sent.filter((m) => m.type === 'subscribe')).toHaveLength(2);
    expect(await store.getCursors()).toEqual({ [SPACE]: 3 });
    // The new subscription's catch-up from 3 brings what was lost, and the cursor moves on.
    await receive({ type: 'changes', space: SPACE, from: 3, cursor: 8, lamport: 9, entities: [
      entity('lost', { n: 4 }, 4, 5), entity('b', { n: 2 }, 2, 7), entity('c', { n: 3 }, 3, 8),
    ] });
    await receive({ type: 'caught_up', space: SPACE, cursor: 8 });
    expect(await store.getCursors()).toEqual({ [SPACE]: 8 });
    expect(await store.get(SPACE, 'items', 'lost')).toMatchObject({ fields: { n: 4 } });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 1 });
    // A frame seen again (from below the cursor) is merged as before and asks nothing.
    await receive({ type: 'changes', space: SPACE, from: 0, cursor: 3, lamport: 9, entities: [entity('a', { n: 1 }, 1, 3)] });
    expect(await store.getCursors()).toEqual({ [SPACE]: 8 });
    expect(sent.filter((m) => m.type === 'subscribe')).toHaveLength(2);
  });

  test('caught_up above the stored cursor (the last frame before it was lost): subscribed again from the cursor', async () => {
    const { store, session, sent, connect, receive } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'changes', space: SPACE, from: 0, cursor: 3, lamport: 9, entities: [entity('a', { n: 1 }, 1, 3)] });
    await receive({ type: 'caught_up', space: SPACE, cursor: 6 });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 0 });
    expect(sent.filter((m) => m.type === 'subscribe').at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 3 }] });
    expect(await store.getCursors()).toEqual({ [SPACE]: 3 });
  });

  test('a pong saying more was sent than the stored cursor (the last frame was lost): subscribed again from it', async () => {
    const { store, session, sent, connect, receive } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'caught_up', space: SPACE, cursor: 0 });
    await receive({ type: 'changes', space: SPACE, from: 0, cursor: 3, lamport: 9, entities: [entity('a', { n: 1 }, 1, 3)] });
    // The server sent a frame up to 5 that never came; nothing after it would show the gap.
    const subscribes = () => sent.filter((m) => m.type === 'subscribe');
    await receive({ type: 'pong', t: 1_000, sent: { [SPACE]: 3 } });
    expect(subscribes()).toHaveLength(1); // all there: nothing to do
    await receive({ type: 'pong', t: 1_000, sent: { [SPACE]: 5 } });
    expect(subscribes().at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 3 }] });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 0 });
    // A pong that crossed that subscribe speaks of the old subscription: asked once already.
    await receive({ type: 'pong', t: 1_000, sent: { [SPACE]: 5 } });
    expect(subscribes()).toHaveLength(2);
    expect(await store.getCursors()).toEqual({ [SPACE]: 3 });
  });

  test('a pong with a space live on the server whose caught_up never came: subscribed again', async () => {
    const { session, sent, connect, receive } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'pong', t: 1_000, sent: { [SPACE]: 0, 'not-ours': 4 } });
    expect(sent.filter((m) => m.type === 'subscribe')).toEqual([
      { type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }] },
      { type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }] },
    ]);
  });

  test('caught_up: the space counts as current; a new socket starts counting again', async () => {
    const { session, connect, receive } = await setup();
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'caught_up', space: SPACE, cursor: 0 });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 1 });
    session.closed();
    expect(session.info()).toMatchObject({ welcomed: false, subscribed: 0, caughtUp: 0 });
  });

  test('reset: forgets the space (keeping pending ops), reads the snapshot in pages, subscribes from the horizon', async () => {
    const { store, session, sent, changed, snapshotCalls, connect, receive } = await setup([
      { space: SPACE, entities: [entity('a', { v: 1 }, 5, 90)], next: 90, head: 120 },
      { space: SPACE, entities: [entity('b', { v: 2 }, 6, 110)], next: null, head: 120 },
    ]);
    session.setSpaces([SPACE]);
    await store.applyChanges(SPACE, [entity('gone', { v: 0 }, 1, 3)], 3);
    await store.enqueue([{ space: SPACE, collection: 'items', key: 'mine', kind: 'put', value: { v: 9 } }], 0);
    await connect();
    await receive({ type: 'reset', space: SPACE, horizon: 100 });
    expect(snapshotCalls).toEqual([[SPACE, 0, undefined], [SPACE, 90, 120]]);
    expect(await store.get(SPACE, 'items', 'gone')).toBeNull(); // deleted meanwhile, as far as we can know
    expect(await store.get(SPACE, 'items', 'mine')).toMatchObject({ fields: { v: 9 }, pending: 1 });
    expect((await store.all(SPACE, 'items')).map((e) => e.key)).toEqual(['a', 'b', 'mine']);
    // Not the snapshot's head (120): the rows above the horizon hold tombstones the snapshot leaves out.
    expect(await store.getCursors()).toEqual({ [SPACE]: 100 });
    expect(sent.at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 100 }] });
    expect(changed).toContain(`${SPACE}/*`);
  });

  // Found by tests/model-socket.test.ts (seed 9000242): a device offline across a purge got `reset`, read
  // the snapshot (live entities only) and subscribed from its head, past the tombstone of `b` that another
  // device wrote after the purge. Its own concurrent put of `b`, superseded by that delete, was then acked
  // and folded into the replica: `b` came back on that device alone, for good.
  test('reset: a tombstone above the horizon still arrives, so our own superseded op cannot revive the entity', async () => {
    const deleted: EntityWire = { collection: 'items', key: 'b', fields: {}, stamps: {}, base: [5, 'other'], live: [5, 'other'], deleted: true, serverSeq: 110 };
    // The server's rows of the space; the snapshot (head 120) has the live one only.
    const rows: EntityWire[] = [entity('a', { v: 1 }, 4, 105), deleted];
    const { store, device, session, sent, connect, receive } = await setup([{ space: SPACE, entities: [rows[0]!], next: null, head: 120 }]);
    session.setSpaces([SPACE]);
    await store.applyChanges(SPACE, [entity('old', { v: 0 }, 1, 3)], 3);
    await store.enqueue([{ space: SPACE, collection: 'items', key: 'b', kind: 'put', value: { v: 9 } }], 0);
    await connect();
    await receive({ type: 'reset', space: SPACE, horizon: 100 });
    // The server's catch-up: every row above the cursor subscribed with, tombstones included.
    const subscribe = sent.at(-1) as Extract<Up, { type: 'subscribe' }>;
    const from = subscribe.spaces[0]!.cursor;
    await receive({ type: 'changes', space: SPACE, entities: rows.filter((e) => e.serverSeq > from), cursor: 110, lamport: 5 });
    await receive({ type: 'caught_up', space: SPACE, cursor: 110 });
    // Our put is answered: the delete (a higher stamp) won.
    await receive({ type: 'ack', device, through: 1, lamport: 5, results: [{ seq: 1, id: `${device}:1`, result: 'superseded' }] });
    expect(await store.get(SPACE, 'items', 'b')).toBeNull();
    expect((await store.all(SPACE, 'items')).map((e) => e.key)).toEqual(['a']);
    expect(await store.getCursors()).toEqual({ [SPACE]: 110 });
  });

  test('reset whose snapshot cannot be read falls back to a full catch-up from cursor 0', async () => {
    const { session, sent, connect, receive } = await setup([]);
    session.setSpaces([SPACE]);
    await connect();
    await receive({ type: 'reset', space: SPACE, horizon: 100 });
    expect(sent.at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }] });
    expect(session.info().lastError).toContain('snapshot');
  });

  test('subscribing from cursor 0 first forgets what acks folded in (pending ops stay); not once another tab caught up', async () => {
    const { store, device, session, sent, connect } = await setup();
    const [acked, waiting] = await store.enqueue([1, 2].map((n) => ({ space: SPACE, collection: 'items', key: `k${n}`, kind: 'put' as const, value: { n } })), 0);
    // Op 1 went out over HTTP before any socket and was applied: its ack folds it into the replica's
    // server state. A delete may since have superseded it and been purged: no catch-up would ever say so.
    await store.applyAck({ through: 1, lamport: 1, results: [{ seq: 1, id: acked!.id, result: 'applied' }] }, 0);
    expect(await store.get(SPACE, 'items', 'k1')).not.toBeNull();
    session.setSpaces([SPACE]);
    await connect();
    expect(sent.at(-1)).toEqual({ type: 'subscribe', spaces: [{ space: SPACE, cursor: 0 }] });
    expect(await store.get(SPACE, 'items', 'k1')).toBeNull(); // the full catch-up brings it back if it exists
    expect(await store.get(SPACE, 'items', 'k2')).toMatchObject({ fields: { n: 2 }, pending: 1 });
    expect(waiting!.device).toBe(device);

    // Another tab caught up meanwhile (a cursor is stored): nothing is forgotten on the next socket.
    await store.applyChanges(SPACE, [entity('k3', { n: 3 }, 5, 7)], 7, 5);
    expect(await store.resetSpace(SPACE, 'if-unsynced')).toBe(false);
    expect(await store.get(SPACE, 'items', 'k3')).toMatchObject({ fields: { n: 3 } });
  });

  test('ack with a rid of ours answers the push; any other ack is applied to the outbox here', async () => {
    const { store, device, transport, acked, connect, receive } = await setup();
    await connect();
    const ops = await store.enqueue([1, 2].map((n) => ({ space: SPACE, collection: 'items', key: `k${n}`, kind: 'put' as const, value: { n } })), 0);
    const push = transport.push({ device, ops: [ops[0]!] });
    const result = (seq: number) => ({ seq, id: `${device}:${seq}`, result: 'applied' as const });
    await receive({ type: 'ack', rid: 1, device, through: 1, lamport: 9, results: [result(1)] });
    expect((await push).results).toEqual([result(1)]);
    expect((await store.outboxStats()).count).toBe(2); // the drainer applies its own answers
    // The worker's HTTP push of op 2 committed: the server tells this socket too.
    await receive({ type: 'ack', device, through: 2, lamport: 9, results: [result(2)] });
    expect(acked).toEqual([{ removed: 1, dead: 0, touched: [{ space: SPACE, collection: 'items' }], stats: await store.outboxStats() }]);
    expect((await store.readOutbox(0, 10)).map((e) => e.op.seq)).toEqual([1]);
  });

  test('error frames: with a rid they fail that push; with a space that space is dropped; else recorded', async () => {
    const { device, transport, session, connect, receive } = await setup();
    session.setSpaces([SPACE, 'u:secret']);
    await connect();
    const push = transport.push({ device, ops: [] });
    await receive({ type: 'error', rid: 1, code: 'too_large', message: 'Too big.' });
    expect(await push.then(() => null, (error) => error.kind)).toBe('too_large');
    await receive({ type: 'error', space: 'u:secret', code: 'forbidden', message: 'Not a member.' });
    expect(session.info()).toMatchObject({ subscribed: 1, lastError: 'Not a member.' });
    await receive({ type: 'caught_up', space: SPACE, cursor: 0 });
    expect(session.info()).toMatchObject({ subscribed: 1, caughtUp: 1 });
    await receive({ type: 'error', code: 'invalid', message: 'Send hello first.' });
    expect(session.info().lastError).toBe('Send hello first.');
  });

  test('pong: the round trip in ms becomes serverLag', async () => {
    const { clock, session, connect, receive } = await setup();
    await connect();
    clock.advance(40);
    await receive({ type: 'pong', t: 1_000 });
    expect(session.info().serverLag).toBe(40);
  });

  test('a welcome that arrives after its socket closed does not subscribe on the next socket', async () => {
    const { session, sent, send } = await setup();
    session.setSpaces([SPACE]);
    session.opened(send);
    session.frame({ type: 'welcome', protocol: 1, user: 'ann', lamport: 0, through: 0 });
    session.closed(); // before the welcome's store work finished
    session.opened(send);
    await session.settled();
    expect(sent.filter((m) => m.type === 'subscribe')).toEqual([]);
    expect(session.info().welcomed).toBe(false);
  });
});
