// The drainer with a transport that keeps several batches in flight (the page's socket): the window
// is filled and never exceeded, answers are taken in order, a failure abandons what is in flight
// (acks among it still reach the outbox), and whatever fails, every op is processed once.
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import * as v from 'valibot';
import { IDBFactory } from 'fake-indexeddb';
import { SyncError } from '../core/errors.ts';
import type { Op } from '../core/types.ts';
import type { AckBody } from '../schema/wire.ts';
import { createDrainer } from './drainer.ts';
import type { DrainLimits, DrainStore, PushRequest, SyncStatus, Transport } from './ports.ts';
import { createFakeClock, type FakeClock } from '../tests/support/fake-clock.ts';
import { FakeServer, httpError } from '../tests/support/fake-server.ts';
import { createLocalLock } from './locks.ts';
import { createStore } from './store.ts';
import { audit } from './audit.ts';

const T0 = 1_700_000_000_000;
/** Every op whose `n` is a multiple of 13 breaks the collection's schema: the server rejects it. */
const no13s = { items: v.object({ n: v.pipe(v.number(), v.check((n) => n % 13 !== 0, 'no')) }) };

/**
 * The fake server behind an ordered, pipelining transport: each push reaches it a timer tick later,
 * so several are really in flight at once, and in the order sent (timers of one delay fire in order).
 * With `holdUntil` (the last seq the drain will send), answers instead wait until the window is full
 * or that seq is out, then go one at a time in order: how full the window gets no longer depends on
 * how fast the store reads against a 1 ms timer (a drainer that never fills the window waits forever,
 * and the test fails on its timeout).
 */
function pipelined(server: FakeServer, window: number, holdUntil?: number) {
  let inFlight = 0;
  let most = 0;
  let lastOut = false;
  const held: Array<() => void> = [];
  const release = () => {
    if (inFlight >= window || lastOut) held.shift()?.();
  };
  const transport: Transport = {
    window: () => window,
    async push(request: PushRequest): Promise<AckBody> {
      most = Math.max(most, ++inFlight);
      try {
        if (holdUntil === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        } else {
          if (request.ops.some((op) => op.seq === holdUntil)) lastOut = true;
          await new Promise<void>((resolve) => {
            held.push(resolve);
            release();
          });
        }
        return await server.push(request);
      } finally {
        inFlight -= 1;
        if (holdUntil !== undefined) release();
      }
    },
  };
  return { transport, most: () => most };
}

async function setup(server: FakeServer, window: number, limits: Partial<DrainLimits> = {}, holdUntil?: number) {
  const store = await createStore({ indexedDB: new IDBFactory(), name: 'ferry' });
  const clock = createFakeClock(T0);
  const pipe = pipelined(server, window, holdUntil);
  const statuses: SyncStatus[] = [];
  const drainer = createDrainer({
    store, transport: pipe.transport, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep,
    onStatus: (status) => statuses.push(status), limits: { maxOps: 10, ...limits },
  });
  const write = (count: number, from = 0) => store.enqueue(
    Array.from({ length: count }, (_, i) => ({ space: 's1', collection: 'items', key: `k${(from + i) % 7}`, kind: 'patch' as const, value: { n: from + i } })),
    clock.now(),
  );
  return { store, clock, drainer, write, statuses, most: pipe.most };
}

describe('pipelining', () => {
  test('keeps up to `window` batches in flight and delivers every op once, in order', async () => {
    const server = new FakeServer();
    const { store, drainer, write, statuses, most } = await setup(server, 3, {}, 95);
    const ops = await write(95);
    expect(await drainer.drain()).toEqual({ sent: 95, remaining: 0, phase: 'idle' });
    expect(most()).toBe(3);
    expect(server.calls.map((seqs) => seqs[0])).toEqual([1, 11, 21, 31, 41, 51, 61, 71, 81, 91]);
    expect(server.committed.map((op) => op.id)).toEqual(ops.map((op) => op.id));
    expect((await store.outboxStats()).count).toBe(0);
    // The status counts what is in flight: three batches of ten at the start.
    expect(statuses.find((s) => s.phase === 'sending')).toMatchObject({ inFlight: 30, progress: { done: 0, total: 95 } });
  });

  test('a failed batch abandons the ones behind it; after the backoff everything goes once', async () => {
    const server = new FakeServer();
    const { store, drainer, write, clock } = await setup(server, 4);
    const ops = await write(40);
    // Batch 1 commits; batch 2 meets a 500, so 3 and 4 (sent behind it) meet seq_gap: stale, ignored.
    const transportFails = server.push.bind(server);
    let call = 0;
    server.push = async (request) => {
      call += 1;
      if (call === 2) {
        server.calls.push(request.ops.map((op) => op.seq));
        throw new SyncError('server', 'The server failed (500).');
      }
      return transportFails(request);
    };
    expect(await drainer.drain()).toMatchObject({ sent: 40, phase: 'idle' });
    // 1-4 in flight; 2 fails, 3 and 4 come back seq_gap; after the backoff, from the first op left.
    expect(server.calls.map((seqs) => seqs[0])).toEqual([1, 11, 21, 31, 11, 21, 31]);
    expect(clock.sleeps).toHaveLength(1); // one backoff, for the 500; the stale seq_gaps moved nothing
    expect(server.committed.map((op) => op.id)).toEqual(ops.map((op) => op.id));
    expect((await store.outboxStats()).count).toBe(0);
  });

  test('an abandoned batch whose ack still arrives is applied to the outbox, not resent as new', async () => {
    const server = new FakeServer();
    const { store, drainer, write } = await setup(server, 3);
    const ops = await write(30);
    server.commitThenFail({ network: true }); // batch 1 commits, its answer is lost; 2 and 3 commit too
    await drainer.drain();
    expect(server.committed.map((op) => op.id)).toEqual(ops.map((op) => op.id));
    expect(server.processed).toBe(30);
    // Only batch 1 had to go again (answered duplicate); 2 and 3 were acked while abandoned.
    expect(server.calls.map((seqs) => seqs[0])).toEqual([1, 11, 21, 1]);
    expect((await store.outboxStats()).count).toBe(0);
  });

  test('over HTTP (window 1) the next batch, read while the last was out, leaves once that one is acked, before its ack is applied', async () => {
    const server = new FakeServer();
    const store = await createStore({ indexedDB: new IDBFactory(), name: 'ferry' });
    const clock = createFakeClock(T0);
    const events: string[] = [];
    let inFlight = 0;
    let most = 0;
    const transport: Transport = {
      window: () => 1,
      async push(request) {
        most = Math.max(most, ++inFlight);
        const first = request.ops[0]!.seq;
        events.push(`push ${first}`);
        try {
          await new Promise((resolve) => setTimeout(resolve, 1));
          return await server.push(request);
        } finally {
          inFlight -= 1;
          events.push(`answer ${first}`);
        }
      },
    };
    const observed: DrainStore = {
      getDeviceId: () => store.getDeviceId(),
      readOutbox: async (from, limit) => {
        events.push(`read ${from}`);
        return store.readOutbox(from, limit);
      },
      outboxStats: () => store.outboxStats(),
      applyAck: async (ack, now, sent) => {
        const first = ack.results[0]!.seq;
        const applied = await store.applyAck(ack, now, sent);
        events.push(`applied ${first}`);
        return applied;
      },
      restamp: (floor) => store.restamp(floor),
      loadDrainState: () => store.loadDrainState(),
      saveDrainState: (state) => store.saveDrainState(state),
    };
    const drainer = createDrainer({
      store: observed, transport, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep, limits: { maxOps: 10 },
    });
    const ops = await store.enqueue(Array.from({ length: 30 }, (_, i) => ({ space: 's1', collection: 'items', key: `k${i}`, kind: 'put' as const, value: { n: i } })), T0);
    expect(await drainer.drain()).toEqual({ sent: 30, remaining: 0, phase: 'idle' });
    expect(most).toBe(1); // one request at a time, in seq order: the server never saw a gap
    expect(server.calls.map((seqs) => seqs[0])).toEqual([1, 11, 21]);
    expect(server.committed.map((op) => op.id)).toEqual(ops.map((op) => op.id));
    const at = (event: string) => events.indexOf(event);
    for (const [batch, next] of [[1, 11], [11, 21]] as const) {
      expect(at(`read ${next}`)).toBeLessThan(at(`answer ${batch}`)); // read ahead while the batch was out
      expect(at(`push ${next}`)).toBeGreaterThan(at(`answer ${batch}`));
      expect(at(`push ${next}`)).toBeLessThan(at(`applied ${batch}`)); // left before its ack was applied
    }
    expect(await audit(store)).toEqual([]);
    expect((await store.outboxStats()).count).toBe(0);
  });

  test('property: whatever fails, pipelined, every op is processed once and none is lost', async () => {
    type Failure = 'network' | 'lost-ack' | '500' | '429' | '413' | 'floor';
    const failure = fc.constantFrom<Failure>('network', 'lost-ack', '500', '429', '413', 'floor');
    const step = fc.oneof(
      fc.record({ write: fc.integer({ min: 1, max: 25 }) }),
      fc.record({ fail: failure }),
      fc.constant({ drain: true as const }),
    );
    // Window 1 is HTTP's: the next batch leaves as an ack arrives, while that ack is applied.
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 4 }), async (steps, window) => {
      const server = new FakeServer({ collections: no13s });
      const { store, drainer, write, clock, most } = await setup(server, window, { maxOps: 6, waitBudgetMs: 3000 });
      const quietly = (p: Promise<unknown>) => p.catch((e: unknown) => expect(e).toBeInstanceOf(SyncError));
      const written: Op[] = [];
      for (const s of steps) {
        if ('write' in s) written.push(...(await write(s.write, written.length)));
        else if ('drain' in s) await quietly(drainer.drain());
        else if (s.fail === 'network') server.failNext({ network: true });
        else if (s.fail === 'lost-ack') server.commitThenFail();
        else if (s.fail === '500') server.failNext(httpError(500, 'internal', 'Oops.'));
        else if (s.fail === '429') server.failNext(httpError(429, 'rate_limited', 'Slow.', { retryAfterMs: 900 }));
        else if (s.fail === '413') server.failNext(httpError(413, 'too_large', 'Big.'));
        else server.maxLamport = Math.max(server.maxLamport, (await store.getLamport()) + 3);
      }
      for (let round = 0; round < 60 && (await store.outboxStats()).count > 0; round++) {
        clock.advance(60 * 60_000);
        await quietly(drainer.drain());
      }
      const rejected = written.filter((op) => Number(op.value?.n) % 13 === 0).map((op) => op.seq);
      expect(server.processed).toBe(written.length);
      expect(server.committed.map((op) => op.id)).toEqual(written.filter((op) => !rejected.includes(op.seq)).map((op) => op.id));
      expect((await store.listDead()).map((letter) => letter.seq)).toEqual(rejected);
      expect((await store.outboxStats()).count).toBe(0);
      // Over HTTP (window 1) never two requests at once. Over a socket, batches abandoned after a failure may
      // still be out when the resend goes; the server answers them first, in order.
      if (window === 1) expect(most()).toBeLessThanOrEqual(1);
      expect(await audit(store)).toEqual([]);
    }), { numRuns: 60 });
  }, 60_000);
});
