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
  const hub = createHub({ store, metrics: createMetrics(), now: Date.now, pauseBytes: PAUSE, frameBytes: FRAME });
  const socket = stalledSocket();
  const conn = hub.open(socket.port, alice.id);
  await hub.subscribe(conn, alice.space, 0, () => 0);
  // Paused after at most pauseBytes + one frame, not after a whole 500-row page.
  expect(socket.maxBuffered()).toBeLessThanOrEqual(PAUSE + FRAME + 70_000);
  expect(conn.pausedSince).not.toBeNull();
  for (let round = 0; round < 200 && socket.frames.at(-1)?.cursor !== head; round++) {
    socket.drain();
    hub.drained(conn, () => 0);
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
  const hub = createHub({ store, metrics: createMetrics(), now: Date.now, pauseBytes: PAUSE, frameBytes: FRAME });
  const socket = stalledSocket();
  const conn = hub.open(socket.port, alice.id);
  await hub.subscribe(conn, alice.space, (await store.heads()).serverSeq, () => 0);
  // One commit of 40 big ops (~2.4 MB): fanned out as frames of ≤ ~256 KiB until the socket pauses.
  const ops = makeOps('hub-live', alice.space, 1, 40, { value: { big: BIG } }).map((op, i) => ({ ...op, key: `live-${i}` }));
  const { extra } = await store.commitGroup([{ userId: alice.id, device: 'hub-live', ops }], Date.now());
  hub.fanOut(extra.entities, extra.lamport);
  expect(socket.frames.length).toBeGreaterThan(1);
  for (const f of socket.frames) expect(JSON.stringify(f.entities).length).toBeLessThanOrEqual(FRAME + 70_000);
  expect(socket.maxBuffered()).toBeLessThanOrEqual(PAUSE + FRAME + 70_000);
  const delivered = socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq));
  expect(delivered.length).toBeLessThan(40);
  for (let round = 0; round < 200 && socket.frames.at(-1)?.cursor !== extra.entities.at(-1)!.serverSeq; round++) {
    socket.drain();
    hub.drained(conn, () => 0);
    await Bun.sleep(1);
  }
  expect(socket.frames.flatMap((f) => f.entities.map((e) => e.serverSeq))).toEqual(extra.entities.map((e) => e.serverSeq));
});
