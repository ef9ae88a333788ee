// Fakes for the drainer's ports, shared by the SW suites and usable by the page library's: a
// fake server that follows PROTOCOL.md §6 for one device (dedupe by seq, first results for
// duplicates, seq_gap, lamport floor, per-op rejections) and can be told to fail the way real
// networks and servers do; and a fake clock whose sleep moves time instead of waiting.
//
// Failures are given as what came over the wire (status and body text), and go through core's
// errorFromResponse, so the suites also exercise the mapping the real transport uses.
import { errorFromResponse, networkError, SyncError } from '../core/errors.ts';
import type { Op, OpResult } from '../core/types.ts';
import type { AckBody } from '../schema/wire.ts';
import type { PushRequest, Sleep, Transport } from './drainer.ts';

/** An answer other than a normal ack: an HTTP status with its body, or no answer at all. */
export type FakeFailure = { status: number; body: string | object } | { network: true };

interface Scripted {
  failure: FakeFailure;
  /** Commit the batch first, then fail: the ack is lost on its way back. */
  afterCommit: boolean;
}

export interface FakeServerOptions {
  /** Rejects an op permanently (it still consumes its seq), like a collection schema would. */
  reject?: (op: Op) => { code: string; message: string } | null;
}

export class FakeServer implements Transport {
  /** Highest seq processed for the device. */
  processed = 0;
  /** Highest lamport accepted from the device: its floor. */
  maxLamport = 0;
  /** Highest lamport other devices wrote; acks carry the greater of the two. */
  othersLamport = 0;
  /** Ops of 413s above this many ops, like a proxy's body limit. */
  maxOpsPerBatch = Number.POSITIVE_INFINITY;
  /** Every push received, in order: the seqs it held. */
  readonly calls: number[][] = [];
  /** Every op committed, in commit order: each must appear once. */
  readonly committed: Op[] = [];
  readonly #ledger = new Map<number, OpResult>();
  readonly #script: Scripted[] = [];
  readonly #reject: FakeServerOptions['reject'];

  constructor(options: FakeServerOptions = {}) {
    this.#reject = options.reject;
  }

  /** The next push gets `failure` instead of being processed. */
  failNext(failure: FakeFailure, times = 1): this {
    for (let i = 0; i < times; i++) this.#script.push({ failure, afterCommit: false });
    return this;
  }

  /** The next push is committed, then its answer is lost (`failure` comes back instead). */
  commitThenFail(failure: FakeFailure = { network: true }): this {
    this.#script.push({ failure, afterCommit: true });
    return this;
  }

  async push(request: PushRequest): Promise<AckBody> {
    this.calls.push(request.ops.map((op) => op.seq));
    await Promise.resolve(); // answers come back asynchronously, as over a network
    const scripted = this.#script.shift();
    if (scripted !== undefined && !scripted.afterCommit) throw toError(scripted.failure);
    const ack = this.#process(request.ops);
    if (scripted !== undefined) throw toError(scripted.failure);
    return ack;
  }

  #process(ops: readonly Op[]): AckBody {
    if (ops.length > this.maxOpsPerBatch) throw toError(httpError(413, 'too_large', 'The batch is too large.'));
    const first = ops[0]!;
    if (first.seq > this.processed + 1) {
      throw toError(httpError(409, 'seq_gap', 'A change is missing.', { expected: this.processed + 1 }));
    }
    const fresh = ops.filter((op) => op.seq > this.processed);
    let floor = this.maxLamport;
    for (const op of fresh) {
      if (op.lamport <= floor) {
        throw toError(httpError(409, 'lamport_regression', 'The clock went back.', { floor: this.maxLamport }));
      }
      floor = op.lamport;
    }
    const results = ops.map((op) => (op.seq <= this.processed ? this.#duplicate(op) : this.#commit(op)));
    return { through: this.processed, lamport: Math.max(this.maxLamport, this.othersLamport), results };
  }

  #commit(op: Op): OpResult {
    const problem = this.#reject?.(op) ?? null;
    const result: OpResult = problem === null
      ? { seq: op.seq, id: op.id, result: 'applied' }
      : { seq: op.seq, id: op.id, result: 'rejected', code: problem.code, message: problem.message };
    if (problem === null) this.committed.push(op);
    this.#ledger.set(op.seq, result);
    this.processed = op.seq;
    this.maxLamport = Math.max(this.maxLamport, op.lamport);
    return result;
  }

  #duplicate(op: Op): OpResult {
    const first = this.#ledger.get(op.seq)!;
    const answer: OpResult = { seq: op.seq, id: op.id, result: 'duplicate', first: first.result as NonNullable<OpResult['first']> };
    if (first.code !== undefined) answer.code = first.code;
    if (first.message !== undefined) answer.message = first.message;
    return answer;
  }
}

export function httpError(status: number, code: string, message: string, extra: object = {}): FakeFailure {
  return { status, body: { code, message, ...extra } };
}

function toError(failure: FakeFailure): SyncError {
  if ('network' in failure) return networkError(new TypeError('Failed to fetch'));
  const text = typeof failure.body === 'string' ? failure.body : JSON.stringify(failure.body);
  return errorFromResponse(failure.status, text) ?? new SyncError('protocol', 'The fake was told to fail with a 2xx JSON body.');
}

/** A clock that only moves when told to, or when something sleeps on it. */
export class FakeClock {
  #now: number;
  /** Every sleep asked for, in ms. */
  readonly sleeps: number[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  readonly now = (): number => this.#now;

  advance(ms: number): void {
    this.#now += ms;
  }

  readonly sleep: Sleep = async (ms) => {
    this.sleeps.push(ms);
    this.#now += ms;
  };
}
