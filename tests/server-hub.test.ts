// The hub's frames against a socket that stops reading: catch-up and live fan-out of big rows must not
// put a whole page (500 rows of up to 64 KiB = 32 MiB) into one stalled socket's buffer, and after the
// buffer drains the subscriber gets every row after its cursor exactly once, in order.
// Real store on a real libSQL file; the socket is a port that counts what it was given.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Down } from '../schema/wire.ts';
import { createHub, type SocketPort } from '../server/hub.ts';
import { createMetrics } from '../server/metrics.ts';
import { makeOps, removeDir, startServer, type TestServer } from './support/server.ts';

let server: TestServer;
let alice: { id: string; token: string; space: string };
beforeAll(async () => {
  server = await startServer();
  alice = await server.user('alice');
});
afterAll(async () => {
  await server.stop();
  removeDir(server.dir);
});

const PAUSE = 1024 * 1024;
const FRAME = 256 * 1024;
const BIG = 'x'.repeat(60_000);

/** A socket whose buffer only grows until `drain()`; it records every frame. */
function stalledSocket() {
  const frames: Extract<Down, { type: 'changes' }>[] = [];
  let buffered = 0;
  let maxBuffered = 0;
  const port: SocketPort = {
    send(text) {
      buffered += text.length;
      maxBuffered = Math.max(maxBuffered, buffered);
      const message = JSON.parse(text) as Down;
      if (message.type === 'changes') frames.push(message);
      return -1;
    },
    bufferedAmount: () => buffered,
    close() {},
  };
  return { port, frames, maxBuffered: () => maxBuffered, drain: () => { buffered = 0; } };
}

async function pushBig(device: string, from: number, batches: number) {
  const store = server.app.decorator.ferry.store;
  for (let b = 0; b < batches; b++) {
    const ops = makeOps(device, alice.space, from + b * 10, 10, { value: { big: BIG } }).map((op) => ({ ...op, key: `${device}-${op.seq}` }));
    const { outcomes } = await store.commitGroup([{ userId: alice.id, device, ops }], Date.now());
    expect(outcomes[0]!.ok).toBe(true);
  }
}

test('catch-up of big rows stops at the pause limit and resumes from the cursor on drain', async () => {
  const store = server.app.decorator.ferry.store;
  await pushBig('hub-catchup', 1, 40); // 400 rows of ~60 KB: ~24 MB, under one 500-row page
  const head = (await store.heads()).serverSeq;
  const hub = createHub({ store, metrics: createMetrics(), now: Date.now, instance: 'test', spacesOf: async () => [], pauseBytes: PAUSE, frameBytes: FRAME });
  const socket = stalledSocket();
  const conn = hub.open(socket.port, alice.id);
  await hub.subscribe(conn, alice.space, 0);
  // Paused after at most pauseBytes + one frame, not after a whole 500-row page.
  expect(socket.maxBuffered()).toBeLessThanOrEqual(PAUSE + FRAME + 70_000);
  expect(conn.pausedSince).not.toBeNull();
  for (let round = 0; round < 200 && socket.frames.at(-1)?.cursor !== head; round++) {
    socket.drain();
    hub.drained(conn);
    await Bun.sleep(1);
    expect(socket.maxBuffered()).toBeLessThanOrEqual(PAUSE + FRAME + 70_000);
  }
  const seqs = socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq));
  const all = (await store.changesSince(alice.space, 0, 10_000)).map((e) => e.serverSeq);
  expect(seqs).toEqual(all); // every row after cursor 0, once, in order
  for (const f of socket.frames) expect(f.cursor).toBe(f.entities.at(-1)!.serverSeq);
});

test('a live commit bigger than a frame goes out in frames, and a stalled subscriber stops mid-commit', async () => {
  const store = server.app.decorator.ferry.store;
  const hub = createHub({ store, metrics: createMetrics(), now: Date.now, instance: 'test', spacesOf: async () => [], pauseBytes: PAUSE, frameBytes: FRAME });
  const socket = stalledSocket();
  const conn = hub.open(socket.port, alice.id);
  await hub.subscribe(conn, alice.space, (await store.heads()).serverSeq);
  // One commit of 40 big ops (~2.4 MB): fanned out as frames of ≤ ~256 KiB until the socket pauses.
  const ops = makeOps('hub-live', alice.space, 1, 40, { value: { big: BIG } }).map((op, i) => ({ ...op, key: `live-${i}` }));
  const { extra } = await store.commitGroup([{ userId: alice.id, device: 'hub-live', ops }], Date.now());
  await hub.notice({ spaces: extra.spaces, lamport: extra.lamport, entities: extra.entities, acks: [], origin: 'test' });
  expect(socket.frames.length).toBeGreaterThan(1);
  for (const f of socket.frames) expect(JSON.stringify(f.entities).length).toBeLessThanOrEqual(FRAME + 70_000);
  expect(socket.maxBuffered()).toBeLessThanOrEqual(PAUSE + FRAME + 70_000);
  const delivered = socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq));
  expect(delivered.length).toBeLessThan(40);
  for (let round = 0; round < 200 && socket.frames.at(-1)?.cursor !== extra.entities.at(-1)!.serverSeq; round++) {
    socket.drain();
    hub.drained(conn);
    await Bun.sleep(1);
  }
  expect(socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq))).toEqual(extra.entities.map((e) => e.serverSeq));
});

test('a subscribe again for a space replaces the subscription: its catch-up stops, and one chain of frames goes out', async () => {
  const store = server.app.decorator.ferry.store;
  const bob = await server.user('bob'); // a space of its own: only these rows
  const ops = makeOps('hub-again', bob.space, 1, 30).map((op, i) => ({ ...op, key: `again-${i}` }));
  expect((await store.commitGroup([{ userId: bob.id, device: 'hub-again', ops }], Date.now())).outcomes[0]!.ok).toBe(true);
  // Small pages and frames, so the first catch-up has many steps left when the second subscribe comes.
  const hub = createHub({ store, metrics: createMetrics(), now: Date.now, instance: 'test', spacesOf: async () => [], pageSize: 5, frameBytes: 1 });
  const socket = stalledSocket();
  const conn = hub.open(socket.port, bob.id, { from: true });
  const first = hub.subscribe(conn, bob.space, 0);
  await hub.subscribe(conn, bob.space, 0);
  await first;
  const head = Math.max(...(await store.changesSince(bob.space, 0, 100)).map((e) => e.serverSeq));
  // One chain from 0 to the head: every frame continues from the one before; nothing twice.
  let at = 0;
  for (const frame of socket.frames) {
    expect(frame.from).toBe(at);
    at = frame.cursor;
  }
  expect(at).toBe(head);
  const seqs = socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq));
  expect(new Set(seqs).size).toBe(seqs.length);
});

test('subscribers catching up from one cursor share each page read; after a commit\'s notice a new one reads afresh', async () => {
  const store = server.app.decorator.ferry.store;
  const carol = await server.user('carol'); // a space of its own: only these rows
  const commit = async (from: number, count: number) => {
    const ops = makeOps('hub-shared', carol.space, from, count).map((op) => ({ ...op, key: `shared-${op.seq}` }));
    const { outcomes, extra } = await store.commitGroup([{ userId: carol.id, device: 'hub-shared', ops }], Date.now());
    expect(outcomes[0]!.ok).toBe(true);
    return extra;
  };
  await commit(1, 10);
  let reads = 0;
  const counting = { ...store, changeTexts: (space: string, after: number, limit: number) => (reads++, store.changeTexts(space, after, limit)) };
  const hub = createHub({ store: counting, metrics: createMetrics(), now: Date.now, instance: 'test', spacesOf: async () => [] });
  const socket = () => {
    const got: Down[] = [];
    const port: SocketPort = { send: (text) => void got.push(JSON.parse(text) as Down), bufferedAmount: () => 0, close() {} };
    return { port, got, keys: () => got.flatMap((f) => (f.type === 'changes' ? f.entities.map((e) => e.key) : [])) };
  };
  const sockets = Array.from({ length: 20 }, socket);
  await Promise.all(sockets.map((s) => hub.subscribe(hub.open(s.port, carol.id), carol.space, 0)));
  expect(reads).toBe(1);
  for (const s of sockets) {
    expect(s.keys()).toHaveLength(10);
    expect(s.got.at(-1)?.type).toBe('caught_up');
  }
  // A commit, and its notice: the live subscribers take its rows from the notice, and a subscriber from 0
  // afterwards must not get the page kept from before the commit.
  const extra = await commit(11, 2);
  await hub.notice({ spaces: extra.spaces, lamport: extra.lamport, entities: extra.entities, acks: [], origin: 'test' });
  for (const s of sockets) expect(s.keys()).toHaveLength(12);
  const late = socket();
  await hub.subscribe(hub.open(late.port, carol.id), carol.space, 0);
  expect(reads).toBe(2);
  expect(late.keys().sort()).toEqual(sockets[0]!.keys().sort());
});
