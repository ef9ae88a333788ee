import 'fake-indexeddb/auto';
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import * as v from 'valibot';
import { IDBFactory } from 'fake-indexeddb';
import { SyncError } from '../core/errors.ts';
import type { Op } from '../core/types.ts';
import { createDrainer } from './drainer.ts';
import type { DrainerDeps, DrainLimits, DrainStore, Sleep, SyncStatus } from './ports.ts';
import { createFakeClock, type FakeClock } from '../tests/support/fake-clock.ts';
import { FakeServer, httpError } from '../tests/support/fake-server.ts';
import { createLocalLock, sleepOn } from './locks.ts';
import type { Draft } from './records.ts';
import { createStore, type Store } from './store.ts';

const T0 = 1_700_000_000_000;
const draft = (i: number): Draft => ({ space: 's1', collection: 'items', key: `k${i % 7}`, kind: 'patch', value: { n: i } });

interface Setup {
  factory?: IDBFactory;
  server?: FakeServer;
  clock?: FakeClock;
  limits?: Partial<DrainLimits>;
  deps?: Partial<DrainerDeps>;
}

async function setup(options: Setup = {}) {
  const factory = options.factory ?? new IDBFactory();
  const store = await createStore({ indexedDB: factory, name: 'ferry' });
  const server = options.server ?? new FakeServer();
  const clock = options.clock ?? createFakeClock(T0);
  const statuses: SyncStatus[] = [];
  const drainer = createDrainer({
    store, transport: server, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep,
    onStatus: (status) => statuses.push(status), limits: options.limits, ...options.deps,
  });
  const write = (count: number, from = 0) =>
    store.enqueue(Array.from({ length: count }, (_, i) => draft(from + i)), clock.now());
  const last = () => statuses[statuses.length - 1]!;
  return { factory, store, server, clock, statuses, drainer, write, last };
}

/** Every seq the server committed or rejected, each exactly once, and nothing left behind. */
async function expectDelivered(store: Store, server: FakeServer, ops: readonly Op[]) {
  expect(server.processed).toBe(ops.length);
  expect(server.committed.map((op) => op.seq)).toEqual(ops.map((op) => op.seq));
  expect(server.committed.map((op) => op.id)).toEqual(ops.map((op) => op.id));
  expect((await store.outboxStats()).count).toBe(0);
}

describe('ack', () => {
  test('drops acked ops, moves rejected ones to the dead letters, advances the clock', async () => {
    const server = new FakeServer({ collections: { items: v.object({ n: v.pipe(v.number(), v.check((n) => n !== 3, 'no 3s')) }) } });
    const { store, drainer, write, last } = await setup({ server });
    server.othersLamport = 500; // other devices wrote meanwhile; the ack says so
    const ops = await write(60);
    expect(await drainer.drain()).toEqual({ sent: 60, remaining: 0, phase: 'idle' });
    expect((await store.listDead()).map((letter) => [letter.seq, letter.code, letter.message])).toEqual([[4, 'invalid', 'items: n: no 3s']]);
    expect(server.committed.map((op) => op.seq)).toEqual(ops.map((op) => op.seq).filter((seq) => seq !== 4));
    expect((await store.outboxStats()).count).toBe(0);
    expect(await store.getLamport()).toBe(500);
    expect(last()).toMatchObject({ phase: 'idle', pending: 0, dead: 1, progress: null, lastError: null });
    expect((await store.enqueue([draft(1)], 0))[0]!.lamport).toBe(501);
  });

  test('reports progress as done of total while draining', async () => {
    const { drainer, write, statuses } = await setup({ limits: { maxOps: 10 } });
    await write(30);
    await drainer.drain();
    const progress = statuses.filter((s) => s.progress !== null).map((s) => s.progress);
    expect(progress).toEqual([{ done: 0, total: 30 }, { done: 10, total: 30 }, { done: 20, total: 30 }]);
    expect(statuses.filter((s) => s.phase === 'sending')).toHaveLength(3);
  });
});

describe('seq_gap', () => {
  test('resends from the expected seq, then the ops before it come back as duplicates', async () => {
    const { store, server, drainer, write } = await setup();
    const ops = await write(6);
    await server.push({ device: ops[0]!.device, ops: ops.slice(0, 2) }); // committed; the device never heard
    server.calls.length = 0;
    server.failNext(httpError(409, 'seq_gap', 'Missing changes.', { expected: 3 }));
    await drainer.drain();
    expect(server.calls).toEqual([[1, 2, 3, 4, 5, 6], [3, 4, 5, 6], [1, 2]]);
    await expectDelivered(store, server, ops);
  });

  test('a gap the outbox cannot serve stops with a reason, keeping every op', async () => {
    const { store, server, drainer, write, last } = await setup();
    await write(4);
    server.failNext(httpError(409, 'seq_gap', 'Missing changes.', { expected: 9 }));
    expect(await drainer.drain()).toEqual({ sent: 0, remaining: 4, phase: 'failed' });
    expect(last()).toMatchObject({ phase: 'failed', pending: 4, lastError: { kind: 'seq_gap', expected: 9 } });
    expect(last().reason).toContain('#9');
    expect(await drainer.drain()).toMatchObject({ phase: 'failed' }); // only the person can resume
    expect(server.calls).toHaveLength(1);
    expect((await store.outboxStats()).count).toBe(4);
  });
});

describe('lamport_regression', () => {
  test('restamps unsent ops above the floor and retries at once', async () => {
    const { store, server, drainer, write, clock } = await setup();
    server.maxLamport = 100;
    const ops = await write(3);
    expect(await drainer.drain()).toMatchObject({ sent: 3, phase: 'idle' });
    expect(server.calls).toEqual([[1, 2, 3], [1, 2, 3]]);
    expect(server.committed.map((op) => op.lamport)).toEqual([101, 102, 103]);
    expect(clock.sleeps).toEqual([]);
    expect((await store.enqueue([draft(9)], 0))[0]!.lamport).toBe(104);
    expect(server.committed.map((op) => op.seq)).toEqual(ops.map((op) => op.seq));
  });
});

describe('401', () => {
  test('stops, keeps every op, reports auth-required, and resumes after sign-in', async () => {
    const { store, server, drainer, write, last } = await setup();
    const ops = await write(5);
    server.failNext(httpError(401, 'auth_required', 'Sign in again.'));
    expect(await drainer.drain()).toEqual({ sent: 0, remaining: 5, phase: 'paused-auth' });
    expect(last()).toMatchObject({ phase: 'paused-auth', pending: 5, lastError: { kind: 'auth_required', status: 401 } });
    expect(await drainer.drain()).toMatchObject({ sent: 0, phase: 'paused-auth' });
    expect(server.calls).toHaveLength(1); // a wake-up does not hammer the server with a dead session
    expect((await store.readOutbox(0, 10)).map((e) => e.op)).toEqual(ops);

    expect(await drainer.signedIn()).toEqual({ sent: 5, remaining: 0, phase: 'idle' });
    await expectDelivered(store, server, ops);
    expect(last()).toMatchObject({ phase: 'idle', pending: 0 });
  });
});

describe('413', () => {
  test('halves the batch until it fits, then sends everything', async () => {
    const { store, server, drainer, write, clock } = await setup({ limits: { pageSize: 500 } });
    server.maxOpsPerBatch = 50;
    const ops = await write(120);
    await drainer.drain();
    expect(server.calls.map((seqs) => seqs.length)).toEqual([120, 60, 30, 30, 30, 30]);
    expect(clock.sleeps).toEqual([]);
    await expectDelivered(store, server, ops);
  });
});

describe('batch size and the link', () => {
  test('on a slow link the batches shrink to what is answered within the target, and a timed-out push is halved', async () => {
    const clock = createFakeClock(T0);
    const server = new FakeServer();
    // 16 ms per op on the way (about 60 ops a second): a 500-op batch takes 8 s to be answered.
    const slowLink = { push: async (request: { device: string; ops: Op[] }) => {
      await clock.sleep(request.ops.length * 16);
      return server.push(request);
    } };
    const { store, drainer, write } = await setup({ clock, server, deps: { transport: slowLink } });
    const ops = await write(1200);
    await drainer.drain();
    expect(server.calls.map((seqs) => seqs.length)).toEqual([500, 125, 125, 125, 125, 125, 75]);
    await expectDelivered(store, server, ops);

    // A push cut off by its timeout: the retry, after the backoff, sends half.
    let cut = 1;
    const other = new FakeServer();
    const timingOut = { push: async (request: { device: string; ops: Op[] }) => {
      if (cut-- > 0) throw new SyncError('network', 'No answer to a push within 30 s.', { timedOut: true });
      return other.push(request);
    } };
    const next = await setup({ clock, server: other, deps: { transport: timingOut } });
    const more = await next.write(100);
    await next.drainer.drain();
    expect(next.server.calls.map((seqs) => seqs.length)).toEqual([50, 50]);
    await expectDelivered(next.store, next.server, more);
  });
});

describe('transient failures', () => {
  test('429 waits at least retryAfterMs, then sends', async () => {
    const { store, server, drainer, write, clock, statuses } = await setup();
    const ops = await write(3);
    server.failNext(httpError(429, 'rate_limited', 'Slow down.', { retryAfterMs: 7000 }));
    await drainer.drain();
    expect(clock.sleeps).toEqual([7000]);
    const waiting = statuses.find((s) => s.phase === 'backoff')!;
    expect(waiting).toMatchObject({ attempts: 1, lastError: { kind: 'rate_limited', retryAfterMs: 7000 } });
    expect(waiting.nextAttemptAt).toBe(waiting.failingSince! + 7000);
    await expectDelivered(store, server, ops);
  });

  test('5xx and network errors back off with full jitter, then succeed with nothing lost', async () => {
    const { store, server, drainer, write, clock, statuses, last } = await setup();
    const ops = await write(4);
    server.failNext({ status: 502, body: '<html>Bad gateway</html>' }).failNext({ network: true }).failNext(httpError(500, 'internal', 'Oops.'));
    await drainer.drain();
    // random() = 0.5 of the ceilings 500, 1000, 2000 ms.
    expect(clock.sleeps).toEqual([250, 500, 1000]);
    const retrying = statuses.filter((s) => s.phase === 'backoff');
    expect(retrying.map((s) => [s.attempts, s.lastError?.kind])).toEqual([[1, 'server'], [2, 'network'], [3, 'server']]);
    expect(retrying[0]!.lastError?.raw).toBe('<html>Bad gateway</html>');
    expect(new Set(retrying.map((s) => s.failingSince)).size).toBe(1);
    expect(last()).toMatchObject({ phase: 'idle', pending: 0, attempts: 0, lastError: null, failingSince: null });
    await expectDelivered(store, server, ops);
  });

  test('an unparseable answer is a transient failure recorded with its raw text', async () => {
    const { store, server, drainer, write, statuses } = await setup();
    const ops = await write(2);
    server.failNext({ status: 200, body: '<html>Sign in to the café Wi-Fi</html>' });
    await drainer.drain();
    const failure = statuses.find((s) => s.lastError !== null)!;
    expect(failure.lastError).toMatchObject({ kind: 'unparseable', status: 200, raw: '<html>Sign in to the café Wi-Fi</html>' });
    await expectDelivered(store, server, ops);
  });

  test('past its wait budget the drain rejects with the SyncError; a later drain carries on', async () => {
    const { store, server, drainer, write, clock, last } = await setup({ limits: { waitBudgetMs: 5000 } });
    const ops = await write(3);
    server.failNext({ network: true }, 5);
    const error = await drainer.drain().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).kind).toBe('network');
    // Four waits fit in 5 s; the fifth (≈ 4 s more) does not, so the drain hands back after 5 tries.
    expect(clock.sleeps).toEqual([250, 500, 1000, 2000]);
    expect(last()).toMatchObject({ phase: 'backoff', pending: 3, attempts: 5, lastError: { kind: 'network' } });

    // Woken before the next try is due (say by `online`) with no budget left for the wait: still rejects.
    const early = await createDrainer({
      store, transport: server, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep,
      limits: { waitBudgetMs: 0 },
    }).drain().catch((e: unknown) => e);
    expect(early).toBeInstanceOf(SyncError);
    expect(server.calls).toHaveLength(5);

    clock.advance(60_000);
    expect(await drainer.drain()).toMatchObject({ sent: 3, phase: 'idle' });
    expect(server.calls).toHaveLength(6);
    await expectDelivered(store, server, ops);
  });

  test('resume() with no drain before it sends what waits (syncNow() as the network comes back)', async () => {
    const { store, server, drainer, write } = await setup();
    const ops = await write(3);
    expect(await drainer.resume()).toEqual({ sent: 3, remaining: 0, phase: 'idle' });
    await expectDelivered(store, server, ops);
  });

  test('resume() cuts a backoff short', async () => {
    const { store, server, drainer, write } = await setup({ limits: { waitBudgetMs: 0 } });
    const ops = await write(2);
    server.failNext(httpError(503, 'internal', 'Down for maintenance.'));
    await expect(drainer.drain()).rejects.toBeInstanceOf(SyncError);
    expect(await drainer.resume()).toMatchObject({ sent: 2, phase: 'idle' });
    await expectDelivered(store, server, ops);
  });

  test('resume() wakes a drain sleeping in backoff at once', async () => {
    // Backoff sleeps on a fake clock that nobody advances: only the drain's abort can end one. Each
    // sleep is recorded with its signal, and the first one tells the test the drain is asleep.
    const clock = createFakeClock(T0);
    const naps: Array<{ ms: number; signal: AbortSignal }> = [];
    let fellAsleep!: () => void;
    const asleep = new Promise<void>((resolve) => (fellAsleep = resolve));
    const onClock = sleepOn(clock);
    const sleep: Sleep = (ms, signal) => {
      naps.push({ ms, signal });
      fellAsleep();
      return onClock(ms, signal);
    };
    const { store, server, drainer, write } = await setup({ clock, limits: { waitBudgetMs: 10 * 60_000 }, deps: { sleep } });
    const ops = await write(2);
    server.failNext(httpError(429, 'rate_limited', 'Slow down.', { retryAfterMs: 5 * 60_000 }));
    const draining = drainer.drain();
    await asleep;
    expect(naps.map((nap) => nap.ms)).toEqual([5 * 60_000]); // asleep for the server's five minutes
    expect(naps[0]!.signal.aborted).toBe(false);
    expect(clock.pending()).toBe(1);

    const resuming = drainer.resume();
    expect(naps[0]!.signal.aborted).toBe(true); // resume() reached the sleep in progress
    const [slept, resumed] = await Promise.all([draining, resuming]);
    expect(slept).toMatchObject({ sent: 2, phase: 'idle' });
    expect(resumed).toMatchObject({ sent: 0, phase: 'idle' });
    // The abort, not time, ended the sleep: the clock never moved and the sleep's timer is gone.
    expect(clock.now()).toBe(T0);
    expect(clock.pending()).toBe(0);
    expect(naps).toHaveLength(1);
    await expectDelivered(store, server, ops);
  });

  test('a transport that throws something other than a SyncError is retried, not trusted', async () => {
    const server = new FakeServer();
    let broken = true;
    const transport = {
      push: (request: Parameters<FakeServer['push']>[0]) => {
        if (broken) {
          broken = false;
          throw new RangeError('bug');
        }
        return server.push(request);
      },
    };
    const { store, drainer, write, statuses } = await setup({ server, deps: { transport } });
    const ops = await write(2);
    await drainer.drain();
    expect(statuses.find((s) => s.lastError !== null)?.lastError?.message).toContain('bug');
    await expectDelivered(store, server, ops);
  });
});

describe('other refusals', () => {
  test('403 stops with the reason and keeps every op until the person resumes', async () => {
    const { store, server, drainer, write, last } = await setup();
    const ops = await write(2);
    server.failNext(httpError(403, 'forbidden', 'You are not a member of this space.'));
    expect(await drainer.drain()).toMatchObject({ phase: 'failed', remaining: 2 });
    expect(last()).toMatchObject({ phase: 'failed', reason: 'You are not a member of this space.' });
    expect(await drainer.resume()).toMatchObject({ phase: 'idle', sent: 2 });
    await expectDelivered(store, server, ops);
  });

  test('an ack that leaves ops of the batch unanswered is a protocol break, not a hot loop', async () => {
    const server = new FakeServer();
    const transport = {
      push: async (request: Parameters<FakeServer['push']>[0]) => {
        const ack = await server.push(request);
        return { ...ack, results: ack.results.slice(0, 1) };
      },
    };
    const { store, drainer, write, last } = await setup({ server, deps: { transport } });
    await write(3);
    expect(await drainer.drain()).toMatchObject({ phase: 'failed', sent: 1, remaining: 2 });
    expect(last().lastError).toMatchObject({ kind: 'protocol' });
    expect(server.calls).toHaveLength(1);
    expect((await store.outboxStats()).count).toBe(2);
  });
});

/** The server answers after a few ms, as over a network, so concurrent drains overlap in flight. */
function slow(server: FakeServer) {
  return {
    push: async (request: Parameters<FakeServer['push']>[0]) => {
      await new Promise((resolve) => setTimeout(resolve, 3));
      return server.push(request);
    },
  };
}

describe('concurrency and interruptions', () => {
  test('two drains at once (two contexts, one lock) send each batch once', async () => {
    const factory = new IDBFactory();
    const lock = createLocalLock();
    const server = new FakeServer();
    const a = await setup({ factory, server, limits: { maxOps: 10 }, deps: { lock, transport: slow(server) } });
    const b = await setup({ factory, server, limits: { maxOps: 10 }, deps: { lock, transport: slow(server) } });
    const ops = await a.write(35);
    const [ra, rb] = await Promise.all([a.drainer.drain(), b.drainer.drain()]);
    expect(ra.sent + rb.sent).toBe(35);
    expect(a.server.calls.flat()).toEqual(ops.map((op) => op.seq)); // no seq sent twice
    await expectDelivered(a.store, a.server, ops);
  });

  test('(control) without the lock the same two drains do send batches twice', async () => {
    const factory = new IDBFactory();
    const noLock = { run: <T>(_name: string, fn: () => Promise<T>) => fn() };
    const server = new FakeServer();
    const a = await setup({ factory, server, limits: { maxOps: 10 }, deps: { lock: noLock, transport: slow(server) } });
    const b = await setup({ factory, server, limits: { maxOps: 10 }, deps: { lock: noLock, transport: slow(server) } });
    await a.write(35);
    await Promise.all([a.drainer.drain(), b.drainer.drain()]);
    expect(a.server.calls.flat().length).toBeGreaterThan(35);
  });

  test('a batch committed by the server but whose answer was lost is neither lost nor doubled', async () => {
    const { store, server, drainer, write } = await setup({ limits: { maxOps: 4 } });
    const ops = await write(10);
    server.commitThenFail({ network: true });
    await drainer.drain();
    expect(server.calls).toEqual([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
    await expectDelivered(store, server, ops);
    expect(await store.listDead()).toEqual([]);
  });

  test('a context killed mid-batch leaves the next context to finish from the outbox', async () => {
    const factory = new IDBFactory();
    const first = await setup({ factory, limits: { maxOps: 4 } });
    const ops = await first.write(10);
    // The first context dies while its push is in flight: the push never settles.
    let committedThenDied = false;
    const dying = {
      push: async (request: Parameters<FakeServer['push']>[0]) => {
        await first.server.push(request);
        committedThenDied = true;
        return new Promise<never>(() => {});
      },
    };
    void createDrainer({
      store: first.store, transport: dying, lock: { run: (_n, fn) => fn() }, now: first.clock.now, random: Math.random,
      sleep: first.clock.sleep,
    }).drain();
    while (!committedThenDied) await new Promise((resolve) => setTimeout(resolve, 1));
    expect((await first.store.loadDrainState())?.phase).toBe('sending');

    const second = await setup({ factory, server: first.server, clock: first.clock });
    expect(await second.drainer.drain()).toMatchObject({ sent: 10, phase: 'idle' });
    await expectDelivered(second.store, first.server, ops);
  });

  test('a 2,000-op outbox drains in pages of 200, never holding more than one page', async () => {
    const { store, server, write, clock } = await setup();
    const ops: Op[] = [];
    for (let i = 0; i < 4; i++) ops.push(...(await write(500, i * 500)));
    const reads: Array<{ limit: number; rows: number }> = [];
    const spy: DrainStore = {
      getDeviceId: () => store.getDeviceId(),
      readOutbox: async (fromSeq, limit) => {
        const page = await store.readOutbox(fromSeq, limit);
        reads.push({ limit, rows: page.length });
        return page;
      },
      outboxStats: () => store.outboxStats(),
      applyAck: (ack, now, sent) => store.applyAck(ack, now, sent),
      restamp: (floor) => store.restamp(floor),
      loadDrainState: () => store.loadDrainState(),
      saveDrainState: (state) => store.saveDrainState(state),
    };
    const drainer = createDrainer({
      store: spy, transport: server, lock: createLocalLock(), now: clock.now, random: () => 0.5, sleep: clock.sleep,
      limits: { pageSize: 200 },
    });
    expect(await drainer.drain()).toEqual({ sent: 2000, remaining: 0, phase: 'idle' });
    expect(Math.max(...reads.map((read) => read.limit))).toBe(200);
    expect(Math.max(...reads.map((read) => read.rows))).toBe(200);
    expect(server.calls).toHaveLength(10);
    await expectDelivered(store, server, ops);
  }, 60_000);
});

describe('model', () => {
  type Failure = 'network' | 'lost-ack' | '500' | '429' | '413' | '401' | 'floor';
  type Command = { type: 'write'; count: number } | { type: 'fail'; failure: Failure } | { type: 'drain' | 'resume' | 'sign-in' };
  const command: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ type: fc.constant('write' as const), count: fc.integer({ min: 1, max: 12 }) }),
    fc.record({
      type: fc.constant('fail' as const),
      failure: fc.constantFrom<Failure>('network', 'lost-ack', '500', '429', '413', '401', 'floor'),
    }),
    fc.record({ type: fc.constantFrom('drain' as const, 'resume' as const, 'sign-in' as const) }),
  );

  function script(server: FakeServer, failure: Failure, lamport: number): void {
    if (failure === 'network') server.failNext({ network: true });
    else if (failure === 'lost-ack') server.commitThenFail();
    else if (failure === '500') server.failNext(httpError(500, 'internal', 'Oops.'));
    else if (failure === '429') server.failNext(httpError(429, 'rate_limited', 'Slow.', { retryAfterMs: 1200 }));
    else if (failure === '413') server.failNext(httpError(413, 'too_large', 'Big.'));
    else if (failure === '401') server.failNext(httpError(401, 'auth_required', 'Sign in.'));
    else server.maxLamport = Math.max(server.maxLamport, lamport + 3); // the device's clock fell behind
  }

  test('property: whatever fails, in whatever order, every op is processed once and none is lost', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), async (commands) => {
        const server = new FakeServer({ collections: { items: v.object({ n: v.pipe(v.number(), v.check((n) => n % 11 !== 0, 'no')) }) } });
        const { store, drainer, write, clock } = await setup({ server, limits: { maxOps: 8, waitBudgetMs: 3000 } });
        const quietly = (p: Promise<unknown>) => p.catch((e: unknown) => expect(e).toBeInstanceOf(SyncError));
        const written: Op[] = [];
        for (const cmd of commands) {
          if (cmd.type === 'write') written.push(...(await write(cmd.count, written.length)));
          else if (cmd.type === 'fail') script(server, cmd.failure, await store.getLamport());
          else if (cmd.type === 'drain') await quietly(drainer.drain());
          else if (cmd.type === 'resume') await quietly(drainer.resume());
          else await quietly(drainer.signedIn());
        }
        // The network heals and the person signs in; leftover scripted failures are used up.
        for (let round = 0; round < 60 && (await store.outboxStats()).count > 0; round++) {
          clock.advance(60 * 60_000);
          await quietly(drainer.signedIn());
          await quietly(drainer.drain());
        }
        const rejected = written.filter((op) => Number(op.value?.n) % 11 === 0).map((op) => op.seq);
        expect(server.processed).toBe(written.length);
        expect(server.committed.map((op) => op.id)).toEqual(written.filter((op) => !rejected.includes(op.seq)).map((op) => op.id));
        expect((await store.listDead()).map((letter) => letter.seq)).toEqual(rejected);
        expect((await store.outboxStats()).count).toBe(0);
      }),
      { numRuns: 60 },
    );
  }, 60_000);
});
