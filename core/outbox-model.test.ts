// Model test: the outbox policy and the drain machine, driven by a tiny drainer against a fake
// server that follows DESIGN.md (dedupe by seq, seq_gap, lamport_regression, per-op rejection),
// with random faults on every request. Whatever happens, every op ends up applied exactly once or
// dead-lettered, per-device lamports on the server strictly increase, and the drain ends idle.
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { observe, tick } from './clock.ts';
import { SyncError, errorFromResponse, networkError } from './errors.ts';
import { type Ack, type BatchLimits, type DeadLetter, type OutboxEntry, chooseBatch, entryOf, planAckOnEntries, planRestamp } from './outbox.ts';
import { type DrainStep, initialDrain, onAck, onFailure, onSignIn, onWake } from './outbox-drain.ts';
import type { Op, OpResult } from './types.ts';

type Fault = 'ok' | 'drop-request' | 'drop-ack' | 'garbage-ack' | '500' | '429' | '401' | 'lost-then-gap';

class FakeServer {
  expected = 1;
  lamport: number;
  commits = 0;
  readonly committed = new Map<number, { op: Op; result: OpResult }>();

  /** `floor`: the highest lamport already accepted from this device (say, before its clock was reset). */
  constructor(private floor: number, private readonly bodyLimitOps: number) {
    this.lamport = floor;
  }

  /** Answers a batch as the real server would: an error for the whole batch, or a result per op. */
  push(ops: Op[]): OpResult[] | SyncError {
    if (ops.length > this.bodyLimitOps) return errorFromResponse(413, '<html>413 Request Entity Too Large</html>')!;
    if (ops[0]!.seq > this.expected) {
      return errorFromResponse(409, JSON.stringify({ code: 'seq_gap', message: 'Gap.', expected: this.expected }))!;
    }
    let floor = this.floor;
    for (const op of ops) {
      if (op.seq < this.expected) continue;
      if (op.lamport <= floor) {
        return errorFromResponse(409, JSON.stringify({ code: 'lamport_regression', message: 'Old clock.', floor: this.floor }))!;
      }
      floor = op.lamport;
    }
    return ops.map((op) => this.apply(op));
  }

  ack(results: OpResult[]): Ack {
    return { through: this.expected - 1, lamport: this.lamport, results };
  }

  private apply(op: Op): OpResult {
    const seen = this.committed.get(op.seq);
    if (seen !== undefined) {
      const { seq, id, result, code, message } = seen.result;
      return { seq, id, result: 'duplicate', first: result as 'applied' | 'rejected', ...(code === undefined ? {} : { code, message }) };
    }
    const result: OpResult = op.value?.bad
      ? { seq: op.seq, id: op.id, result: 'rejected', code: 'invalid', message: 'Field "bad" is not allowed.' }
      : { seq: op.seq, id: op.id, result: 'applied' };
    this.committed.set(op.seq, { op, result });
    this.commits++;
    this.expected = op.seq + 1;
    this.floor = op.lamport;
    this.lamport = Math.max(this.lamport, op.lamport);
    return result;
  }
}

interface Scenario {
  ops: boolean[]; // one per op: is it one the server will reject?
  later: number[]; // steps at which the person makes another (valid) change
  faults: Fault[];
  maxOps: number;
  bodyLimitOps: number;
  serverFloor: number;
  seed: number;
}

function run(s: Scenario) {
  const server = new FakeServer(s.serverFloor, s.bodyLimitOps);
  let clock = 0;
  let seq = 0;
  const made: Op[] = [];
  let entries: OutboxEntry[] = [];
  const mint = (bad: boolean) => {
    clock = tick(clock);
    const op: Op = { id: `d1:${++seq}`, device: 'd1', seq, lamport: clock, space: 's', collection: 'notes', key: `k${seq % 4}`, kind: 'put', value: bad ? { bad: true } : { n: seq }, at: seq };
    made.push(op);
    entries.push(entryOf(op));
  };
  s.ops.forEach(mint);
  const dead: DeadLetter[] = [];
  let rng = s.seed;
  const random = () => ((rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let now = 0;
  const faults = [...s.faults];
  const span = () => (entries.length === 0 ? null : { first: entries[0]!.op.seq, last: entries.at(-1)!.op.seq });
  const receive = (answer: Ack | SyncError, sentOps: number, state: DrainStep['state']): DrainStep => {
    if (answer instanceof SyncError) return onFailure(state, answer, { now, random, outbox: span(), sentOps });
    const out = planAckOnEntries(entries, answer, clock, now);
    entries = out.kept;
    dead.push(...out.dead);
    clock = out.clock;
    return onAck(state, { now, pending: entries.length });
  };

  let step = onWake(initialDrain(s.maxOps), { now, pending: entries.length });
  for (let i = 0; i < 5000; i++) {
    if (s.later.includes(i)) mint(false);
    const { state, action } = step;
    let from: number | undefined;
    if (action.type === 'none') {
      if (state.phase === 'paused-auth') step = onSignIn(state, { now, pending: entries.length });
      else if (entries.length > 0) step = onWake(state, { now, pending: entries.length });
      else if (i > Math.max(0, ...s.later)) return { server, made, dead, entries, state, clock };
      continue;
    }
    if (action.type === 'wait') {
      now = Math.max(now, action.until);
      step = onWake(state, { now, pending: entries.length });
      continue;
    }
    if (action.type === 'restamp') {
      const out = planRestamp(entries, action.floor);
      entries = out.entries;
      clock = observe(clock, out.clock);
    }
    if (action.type === 'resend-from') from = action.seq;
    const limits = { maxOps: action.maxOps, maxBytes: 1_000_000 };
    const batch = chooseBatch(entries, limits, from);
    expect(batch.length).toBeGreaterThan(0);
    now += 10;
    const { answer, sentOps } = deliver(server, faults.shift() ?? 'ok', batch, entries, limits);
    step = receive(answer, sentOps, state);
  }
  throw new Error(`The drain did not finish: ${JSON.stringify(step.state)}`);
}

/** Sends `batch` through a fault, returning what the device hears back and how many ops it sent. */
function deliver(server: FakeServer, fault: Fault, batch: OutboxEntry[], entries: OutboxEntry[], limits: BatchLimits) {
  const ops = batch.map((entry) => entry.op);
  const heard = (answer: OpResult[] | SyncError, sentOps = ops.length) =>
    ({ answer: answer instanceof SyncError ? answer : server.ack(answer), sentOps });
  switch (fault) {
    case 'drop-request':
      return heard(networkError(new TypeError('Load failed')));
    case '500':
      return heard(errorFromResponse(500, 'Internal Server Error')!);
    case '429':
      return heard(errorFromResponse(429, JSON.stringify({ code: 'rate_limited', message: 'Slow.', retryAfterMs: 5000 }))!);
    case '401':
      return heard(errorFromResponse(401, '')!);
    case 'lost-then-gap': {
      // Two batches pipelined; the first is lost on the way, the second arrives.
      const second = chooseBatch(entries, limits, ops.at(-1)!.seq + 1).map((entry) => entry.op);
      return second.length > 0 ? heard(server.push(second), second.length) : heard(networkError(null));
    }
    case 'drop-ack':
    case 'garbage-ack':
    case 'ok': {
      const answer = server.push(ops);
      if (answer instanceof SyncError || fault === 'ok') return heard(answer);
      // The server committed the batch, but its answer never reached the device intact.
      return heard(fault === 'drop-ack' ? networkError(new TypeError('Network connection was lost')) : errorFromResponse(200, '<html>Portal</html>')!);
    }
  }
}

const scenario: fc.Arbitrary<Scenario> = fc.record({
  ops: fc.array(fc.integer({ min: 0, max: 9 }).map((n) => n < 2), { minLength: 1, maxLength: 40 }),
  later: fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 5 }),
  faults: fc.array(
    fc.constantFrom<Fault>('ok', 'ok', 'ok', 'drop-request', 'drop-ack', 'garbage-ack', '500', '429', '401', 'lost-then-gap'),
    { maxLength: 40 },
  ),
  maxOps: fc.integer({ min: 1, max: 16 }),
  bodyLimitOps: fc.integer({ min: 1, max: 16 }),
  serverFloor: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 80 })),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
});

describe('outbox model: a drainer against a faulty server', () => {
  test('property: nothing lost, nothing applied twice, rejections dead-lettered, lamports increasing', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const { server, made, dead, entries, state, clock } = run(s);
        expect(entries).toEqual([]);
        expect(state.phase).toBe('idle');
        expect(state.error).toBeNull();
        // Exactly once: one commit per op, every seq 1..n.
        expect(server.commits).toBe(made.length);
        expect([...server.committed.keys()].sort((a, b) => a - b)).toEqual(made.map((op) => op.seq));
        // What the server holds is what the person made (only the lamport may have been raised).
        let prev = s.serverFloor;
        for (const op of made) {
          const stored = server.committed.get(op.seq)!.op;
          expect({ ...stored, lamport: 0 }).toEqual({ ...op, lamport: 0 });
          expect(stored.lamport).toBeGreaterThan(prev);
          prev = stored.lamport;
        }
        expect(clock).toBeGreaterThanOrEqual(server.lamport);
        // Every rejected op is a dead letter, once, with the server's reason.
        const rejected = made.filter((op) => op.value?.bad).map((op) => op.seq);
        // (In the order their results arrived: a lost ack's rejection can surface after later ones.)
        expect(dead.map((letter) => letter.op.seq).sort((a, b) => a - b)).toEqual(rejected);
        for (const letter of dead) expect(letter.code).toBe('invalid');
      }),
      { numRuns: 300 },
    );
  });

  test('a clock reset on the device is repaired by restamping, then everything is applied', () => {
    const { server, made, dead } = run({ ops: [false, false, false, false], later: [], faults: [], maxOps: 2, bodyLimitOps: 16, serverFloor: 50, seed: 1 });
    expect(dead).toEqual([]);
    expect(made.map((op) => server.committed.get(op.seq)!.op.lamport)).toEqual([51, 52, 53, 54]);
  });
});
