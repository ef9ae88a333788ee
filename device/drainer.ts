// The drainer: carries the outbox to the server, one bounded batch at a time, under the device-wide
// lock `ferry:drain`. What to do after each answer is core's drain machine (core/outbox-drain.ts,
// one branch per row of DESIGN.md's failure table); this module only carries its actions out and
// keeps its state in the store, so a Service Worker killed mid-drain resumes where it was.
//
//   drain() ─lock─▶ load state ─onWake─▶ ┌─────────── action ───────────┐
//                                        │ send / resend-from ─▶ fill ──┼─ ack ──▶ applyAck ─ onAck ─────┐
//                                        │                              └─ error ─▶ onFailure ───────────┤
//                                        │ restamp ─▶ store.restamp ─▶ send ────────────────────────────┤
//                                        │ wait ─▶ sleep within budget ─▶ onWake ───────────────────────┤
//                                        │         over budget ─▶ reject with the transient SyncError    │
//                                        │ none ─▶ resolve { sent, remaining, phase }                     │
//                                        └──────────────────────────◀────────── next step ◀──────────────┘
//
// Ops leave the outbox only through store.applyAck, i.e. only on an ack: peek, send, delete on ack.
//
// Pipelining: `fill` keeps up to `transport.window()` batches in flight (1 over HTTP, several over the
// page's socket, whose server answers a device's pushes in the order sent). Answers are taken in that
// order; the first failure abandons the rest (core: "after any (re)start it first forgets what it has
// in flight"), whose acks, should they still arrive, are applied to the outbox and otherwise ignored.
//
// The three steps overlap, so IndexedDB and the network never wait on each other:
//
//   network   ──push N──────────▶ack N ──push N+1────────────▶ack N+1 ──push N+2──
//   IndexedDB     read N+1 (ahead)      apply ack N, read N+2        apply ack N+1, …
//
// While a batch is out, the page after it is read ahead. When a batch's ack answers every op of it, the
// next batch (already read) leaves before that ack is applied: the server committed batch N before N+1
// was sent, so even over HTTP (one request at a time) the server sees a device's batches in seq order.
import { type DrainAction, type DrainState, type DrainStep, fitToTime, initialDrain, onAck, onFailure, onResume,
  onSignIn, onWake } from '../core/outbox-drain.ts';
import { isSyncError, SyncError, type SyncErrorData } from '../core/errors.ts';
import { chooseBatch, type OutboxEntry } from '../core/outbox.ts';
import { DRAIN_LOCK } from '../schema/protocol.ts';
import type { AckBody } from '../schema/wire.ts';
import type { OutboxStats } from './records.ts';
import { DEFAULT_DRAIN_LIMITS, type DrainerDeps, type DrainLimits, type DrainResult } from './ports.ts';

// With the drainer, the test for what it rejects with: a page loads this module as a part (device.ts
// DeviceParts), and its first load holds no core/errors.ts.
export { isSyncError } from '../core/errors.ts';


type Trigger = 'wake' | 'resume' | 'sign-in';

/** What came back for one batch (`at`: when, on the drainer's clock); never a rejection, so an abandoned
 * batch cannot leak one. */
type Answer = { ok: true; ack: AckBody; at: number } | { ok: false; error: SyncError };

interface Flight {
  batch: OutboxEntry[];
  sentAt: number;
  answer: Promise<Answer>;
}

/** The bookkeeping of one locked drain. */
interface Run {
  state: DrainState;
  device: string;
  stats: OutboxStats;
  sent: number;
  waited: number;
  /** Batches sent and not yet answered, in seq (and so answer) order. */
  flight: Flight[];
  /** The outbox page after the last batch sent, read while that batch is out (see #fill). */
  ahead: ReadAhead | null;
  /** When the last ack of this run came: a pipelined batch's time is counted from it (BatchTiming). */
  lastAnswerAt: number;
}

interface ReadAhead {
  from: number;
  limit: number;
  /** Null when the read failed: the page is read again when it is needed, and fails there if it must. */
  page: Promise<OutboxEntry[] | null>;
}

export function createDrainer(deps: DrainerDeps): Drainer {
  return new Drainer(deps);
}

export class Drainer {
  readonly #deps: DrainerDeps;
  readonly #limits: DrainLimits;
  /** Aborts the backoff sleep of the drain in progress, when the person asks to retry now. */
  #wakeEarly: AbortController | null = null;
  #resumeAsked = false;

  constructor(deps: DrainerDeps) {
    this.#deps = deps;
    this.#limits = { ...DEFAULT_DRAIN_LIMITS, ...deps.limits };
  }

  /**
   * Sends what the outbox holds. Resolves when there is nothing more to do now (outbox empty, or
   * paused for sign-in, or failed in a way only a person can fix: see `phase`); rejects with the
   * transient SyncError when it must wait longer than its budget, so a `sync` handler can rethrow it
   * inside waitUntil and the browser tries again later.
   */
  drain(): Promise<DrainResult> {
    return this.#locked('wake');
  }

  /** The person pressed "retry now": leaves `failed`, or cuts a backoff short (also one in progress). */
  resume(): Promise<DrainResult> {
    this.#resumeAsked = true;
    this.#wakeEarly?.abort();
    return this.#locked('resume');
  }

  /** The person signed in again after `auth-required`: every op was kept, so sending resumes. */
  signedIn(): Promise<DrainResult> {
    return this.#locked('sign-in');
  }

  #locked(trigger: Trigger): Promise<DrainResult> {
    return this.#deps.lock.run(DRAIN_LOCK, () => this.#session(trigger));
  }

  async #session(trigger: Trigger): Promise<DrainResult> {
    const { store } = this.#deps;
    const run: Run = {
      state: normalize(await store.loadDrainState(), this.#limits.maxOps),
      device: await store.getDeviceId(),
      stats: await store.outboxStats(),
      sent: 0,
      waited: 0,
      flight: [],
      ahead: null,
      lastAnswerAt: 0,
    };
    try {
      return await this.#loop(run, this.#start(run, trigger));
    } catch (error) {
      this.#abandon(run);
      // A store failure mid-drain must not leave the page showing "syncing…" forever.
      if (run.state.phase === 'sending') this.#emit({ ...run, state: { ...run.state, phase: 'idle' } }, false);
      throw error;
    }
  }

  #start(run: Run, trigger: Trigger): DrainStep {
    const ctx = this.#ctx(run);
    if (trigger === 'sign-in') return onSignIn(run.state, ctx);
    if (trigger === 'resume' || this.#takeResume()) {
      this.#resumeAsked = false;
      return onResume(run.state, ctx);
    }
    return onWake(run.state, ctx);
  }

  async #loop(run: Run, first: DrainStep): Promise<DrainResult> {
    let step = first;
    for (;;) {
      const action: DrainAction = step.action;
      // A send announces itself once its batches are in flight (see #send), so `inFlight` is true.
      await this.#enter(run, step.state, action.type !== 'send' && action.type !== 'resend-from');
      switch (action.type) {
        case 'none':
          // Another path acked what was in flight; nothing here waits for those answers any more.
          this.#abandon(run);
          return { sent: run.sent, remaining: run.stats.count, phase: run.state.phase };
        case 'wait':
          step = await this.#wait(run, action.until);
          break;
        case 'restamp':
          await this.#deps.store.restamp(action.floor);
          step = { state: run.state, action: { type: 'send', maxOps: action.maxOps } };
          break;
        case 'send':
          step = await this.#send(run, undefined, action.maxOps);
          break;
        case 'resend-from':
          step = await this.#send(run, action.seq, action.maxOps);
          break;
      }
    }
  }

  /**
   * Tops the window up from `fromSeq` (or after the last batch in flight, or from the first op), then
   * takes the answer to the oldest batch in flight and applies it.
   */
  async #send(run: Run, fromSeq: number | undefined, maxOps: number): Promise<DrainStep> {
    const { store, now } = this.#deps;
    await this.#fill(run, fromSeq, maxOps);
    this.#emit(run, true);
    const head = run.flight.shift();
    if (head === undefined) {
      // Another path (the socket's ack stream) emptied the outbox meanwhile.
      run.stats = await store.outboxStats();
      return onAck(run.state, this.#ctx(run));
    }
    const answer = await head.answer;
    if (!answer.ok) return this.#failed(run, answer.error, head.batch.length);
    const unanswered = unansweredIn(answer.ack, head.batch);
    const batch = { ops: head.batch.length, ms: answer.at - Math.max(head.sentAt, run.lastAnswerAt) };
    run.lastAnswerAt = answer.at;
    // Every op of the batch is committed: the next batch may leave now (sized by this answer's time, as
    // onAck will), while this ack is applied (the next `send` the machine asks for finds it in flight).
    // Nothing new is sent after a failure.
    if (unanswered === null) {
      await this.#fill(run, run.flight.length > 0 ? undefined : head.batch.at(-1)!.op.seq + 1, fitToTime(maxOps, batch));
    }
    // The batch as sent is what the server committed: the store need not read its rows again.
    const applied = await store.applyAck(answer.ack, now(), head.batch);
    // Counted from the answer, not from what this application removed: the device's other contexts
    // get the same ack on their sockets and may well have applied it first.
    run.sent += answeredIn(answer.ack, head.batch);
    if (unanswered !== null) return this.#failed(run, unanswered, head.batch.length);
    run.stats = applied.stats;
    return onAck(run.state, { ...this.#ctx(run), batch });
  }

  /**
   * Sends bounded batches until the transport's window is full or nothing is left to send, then reads
   * the page after the last one ahead, so the next batch is ready when the window opens again.
   */
  async #fill(run: Run, fromSeq: number | undefined, maxOps: number): Promise<void> {
    const { transport, now } = this.#deps;
    const window = Math.max(1, Math.floor(transport.window?.() ?? 1));
    const last = run.flight.at(-1)?.batch.at(-1);
    let next = fromSeq ?? (last === undefined ? undefined : last.op.seq + 1);
    const limit = Math.min(this.#limits.pageSize, maxOps);
    while (run.flight.length < window) {
      const page = await this.#page(run, next ?? 0, limit);
      const batch = chooseBatch(page, { maxOps, maxBytes: this.#limits.maxBytes }, next);
      if (batch.length === 0) return;
      const ops = batch.map((entry) => entry.op);
      // A transport that throws instead of rejecting is a bug in it, kept visible and retried (asSyncError).
      const answer = Promise.resolve()
        .then(() => transport.push({ device: run.device, ops }))
        .then((ack): Answer => ({ ok: true, ack, at: now() }), (error: unknown): Answer => ({ ok: false, error: asSyncError(error) }));
      run.flight.push({ batch, sentAt: now(), answer });
      next = batch[batch.length - 1]!.op.seq + 1;
    }
    if (run.ahead === null && next !== undefined) {
      const from = next;
      run.ahead = { from, limit, page: this.#deps.store.readOutbox(from, limit).catch(() => null) };
    }
  }

  /** The outbox page from `from`: the one read ahead when it is that page, else read now. */
  async #page(run: Run, from: number, limit: number): Promise<OutboxEntry[]> {
    const ahead = run.ahead;
    run.ahead = null;
    if (ahead !== null && ahead.from === from && ahead.limit === limit) {
      const page = await ahead.page;
      if (page !== null) return page;
    }
    return this.#deps.store.readOutbox(from, limit);
  }

  /**
   * Forgets the batches in flight. Their answers no longer move the machine, but an ack among them is
   * still a durable commit, so it is applied to the outbox (idempotent, and harmless in any order).
   */
  #abandon(run: Run): void {
    const { store, now } = this.#deps;
    // What was read ahead follows what is abandoned; a restamp or a resend from elsewhere reads anew.
    run.ahead = null;
    for (const flight of run.flight.splice(0)) {
      void flight.answer
        .then((answer) => (answer.ok ? store.applyAck(answer.ack, now()) : undefined))
        .catch(() => {}); // the ops stay in the outbox and are sent again: nothing is lost
    }
  }

  async #failed(run: Run, error: SyncError, sentOps: number): Promise<DrainStep> {
    const { store, now, random } = this.#deps;
    this.#abandon(run);
    run.stats = await store.outboxStats();
    return onFailure(run.state, error, {
      now: now(), random, outbox: run.stats.span, sentOps, policy: this.#limits.policy,
    });
  }

  /**
   * Backoff: sleep until `until` if this drain's budget allows, else hand the retry to the caller
   * (the SyncError it rejects with). A pending "retry now" skips the sleep.
   */
  async #wait(run: Run, until: number): Promise<DrainStep> {
    if (!this.#resumeAsked) {
      const delay = Math.max(0, until - this.#deps.now());
      if (run.waited + delay > this.#limits.waitBudgetMs) throw transientError(run.state.error);
      run.waited += delay;
      await this.#pause(delay);
    }
    run.stats = await this.#deps.store.outboxStats();
    if (this.#takeResume()) return onResume(run.state, this.#ctx(run));
    return onWake(run.state, this.#ctx(run));
  }

  async #pause(ms: number): Promise<void> {
    const controller = new AbortController();
    this.#wakeEarly = controller;
    try {
      await this.#deps.sleep(ms, controller.signal);
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    } finally {
      this.#wakeEarly = null;
    }
  }

  #takeResume(): boolean {
    const asked = this.#resumeAsked;
    this.#resumeAsked = false;
    return asked;
  }

  /** Makes `state` current: persisted when it changed (other contexts and restarts read it), and shown. */
  async #enter(run: Run, state: DrainState, show: boolean): Promise<void> {
    if (state !== run.state) {
      run.state = state;
      await this.#deps.store.saveDrainState(state);
    }
    if (show) this.#emit(run, state.phase === 'sending');
  }

  #emit(run: Run, draining: boolean): void {
    const { state, stats } = run;
    this.#deps.onStatus?.({
      phase: state.phase,
      pending: stats.count,
      oldestAt: stats.oldestAt,
      dead: stats.dead,
      progress: draining ? { done: run.sent, total: run.sent + stats.count } : null,
      inFlight: run.flight.reduce((sum, flight) => sum + flight.batch.length, 0),
      attempts: state.retry.attempt,
      lastError: state.error,
      failingSince: state.retry.since,
      nextAttemptAt: state.retry.nextAt,
      reason: state.reason,
    });
  }

  #ctx(run: Run): { now: number; pending: number } {
    return { now: this.#deps.now(), pending: run.stats.count };
  }
}

/**
 * The stored state as this drain starts. We hold the lock, so no drain is running: a stored
 * `sending` is one whose context died mid-batch (the machine would otherwise take it for a drain
 * in progress and wait for it forever). The batch size follows this app version's configuration.
 */
function normalize(stored: DrainState | undefined, maxOps: number): DrainState {
  if (stored === undefined) return initialDrain(maxOps);
  const phase = stored.phase === 'sending' ? 'idle' : stored.phase;
  return { ...stored, phase, maxOps, batchLimit: Math.min(stored.batchLimit, maxOps) };
}

/** The transport promises SyncErrors; anything else is a bug in it, kept visible and retried. */
function asSyncError(error: unknown): SyncError {
  if (isSyncError(error)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new SyncError('network', `The transport failed unexpectedly: ${detail}`, { cause: error });
}

/**
 * The server answers every op of a batch (PROTOCOL.md §6). An op it left unanswered stays in the
 * outbox, and resending it to a server that keeps doing so would loop without end: a protocol break.
 */
function unansweredIn(ack: AckBody, batch: readonly OutboxEntry[]): SyncError | null {
  const answered = new Set(ack.results.map((result) => result.seq));
  const missing = batch.find((entry) => !answered.has(entry.op.seq) || entry.op.seq > ack.through);
  if (missing === undefined) return null;
  return new SyncError('protocol', `The server's ack does not answer change #${missing.op.seq} of the batch it was sent.`);
}

function answeredIn(ack: AckBody, batch: readonly OutboxEntry[]): number {
  const answered = new Set(ack.results.filter((result) => result.seq <= ack.through).map((result) => result.seq));
  return batch.filter((entry) => answered.has(entry.op.seq)).length;
}

function transientError(data: SyncErrorData | null): SyncError {
  return data === null ? new SyncError('network', 'Waiting to retry.') : SyncError.fromData(data);
}
