// The drainer: carries the outbox to the server, one bounded batch at a time, under the device-wide
// lock `ferry:drain`. What to do after each answer is core's drain machine (core/outbox-drain.ts,
// one branch per row of DESIGN.md's failure table); this module only carries its actions out and
// keeps its state in the store, so a Service Worker killed mid-drain resumes where it was.
//
//   drain() ─lock─▶ load state ─onWake─▶ ┌─────────── action ───────────┐
//                                        │ send / resend-from ─▶ push ──┼─ ack ──▶ applyAck ─ onAck ─────┐
//                                        │                              └─ error ─▶ onFailure ───────────┤
//                                        │ restamp ─▶ store.restamp ─▶ send ────────────────────────────┤
//                                        │ wait ─▶ sleep within budget ─▶ onWake ───────────────────────┤
//                                        │         over budget ─▶ reject with the transient SyncError    │
//                                        │ none ─▶ resolve { sent, remaining, phase }                     │
//                                        └──────────────────────────◀────────── next step ◀──────────────┘
//
// Ops leave the outbox only through store.applyAck, i.e. only on an ack: peek, send, delete on ack.
import { type DrainAction, type DrainPhase, type DrainState, type DrainStep, initialDrain, onAck, onFailure, onResume,
  onSignIn, onWake } from '../core/outbox-drain.ts';
import { type BackoffPolicy, DEFAULT_BACKOFF } from '../core/backoff.ts';
import { isSyncError, SyncError, type SyncErrorData } from '../core/errors.ts';
import { type Ack, chooseBatch, DEFAULT_BATCH_LIMITS, type OutboxEntry } from '../core/outbox.ts';
import type { Op } from '../core/types.ts';
import type { AckBody } from '../schema/wire.ts';
import type { AckApplied, OutboxStats } from './records.ts';

export const DRAIN_LOCK = 'ferry:drain';

// ─── ports ──────────────────────────────────────────────────────────────────────────────────────

export interface PushRequest {
  device: string;
  ops: Op[];
}

/** Sends one batch. Resolves with the server's ack; rejects with a SyncError for anything else. */
export interface Transport {
  push(request: PushRequest): Promise<AckBody>;
}

/** Runs `fn` while holding the named lock (navigator.locks in browsers; see ports.ts). */
export interface DrainLock {
  run<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

/** Waits `ms`, or less if `signal` aborts; never rejects for the abort. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** What the drainer needs of the store (sw/store.ts implements it; tests may wrap it). */
export interface DrainStore {
  getDeviceId(): Promise<string>;
  readOutbox(fromSeq: number, limit: number): Promise<OutboxEntry[]>;
  outboxStats(): Promise<OutboxStats>;
  applyAck(ack: Ack, now: number): Promise<AckApplied>;
  restamp(floor: number): Promise<unknown>;
  loadDrainState(): Promise<DrainState | undefined>;
  saveDrainState(state: DrainState): Promise<void>;
}

export interface DrainLimits {
  /** Ops per batch at most (the server's limit is 500). */
  maxOps: number;
  /** Bytes of the batch's ops at most (core leaves room for the envelope). */
  maxBytes: number;
  /** Outbox rows read at once: the most this drainer ever holds in memory. */
  pageSize: number;
  /**
   * How long one drain may sleep in backoff before it gives up and rejects. A Service Worker's event
   * is given a few minutes at most, and the browser's own Background Sync retry (or the entry's
   * timer) takes over from there; the machine's state keeps the streak across drains.
   */
  waitBudgetMs: number;
  policy: BackoffPolicy;
}

export const DEFAULT_DRAIN_LIMITS: DrainLimits = {
  ...DEFAULT_BATCH_LIMITS,
  pageSize: 200,
  waitBudgetMs: 30_000,
  policy: DEFAULT_BACKOFF,
};

export interface DrainerDeps {
  store: DrainStore;
  transport: Transport;
  lock: DrainLock;
  now: () => number;
  random: () => number;
  sleep: Sleep;
  onStatus?: (status: SyncStatus) => void;
  limits?: Partial<DrainLimits>;
}

// ─── status ─────────────────────────────────────────────────────────────────────────────────────

/** What the page shows. `condition` is the one word; the rest says why, since when and how far. */
export type SyncCondition = 'synced' | 'pending' | 'syncing' | 'retrying' | 'auth-required' | 'failed';

export interface SyncStatus {
  condition: SyncCondition;
  phase: DrainPhase;
  /** Ops waiting in the outbox, and when the oldest of them was made. */
  pending: number;
  oldestAt: number | null;
  /** Rejected ops waiting for the person's retry or discard. */
  dead: number;
  /** This drain's progress (ops acked of ops to send), for a progress bar; null when not draining. */
  progress: { done: number; total: number } | null;
  /** Failures in a row, the last one, since when, and when the next try is due. */
  attempts: number;
  lastError: SyncErrorData | null;
  failingSince: number | null;
  nextAttemptAt: number | null;
  /** Why draining stopped (`failed`), in words for the person. */
  reason: string | null;
}

export interface DrainResult {
  /** Ops this drain got acked (dead letters included). */
  sent: number;
  remaining: number;
  /** Where the machine stands: `idle` when done; `paused-auth` or `failed` when it needs a person. */
  phase: DrainPhase;
}

type Trigger = 'wake' | 'resume' | 'sign-in';

/** The bookkeeping of one locked drain. */
interface Run {
  state: DrainState;
  device: string;
  stats: OutboxStats;
  sent: number;
  waited: number;
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
    };
    try {
      return await this.#loop(run, this.#start(run, trigger));
    } catch (error) {
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
      await this.#enter(run, step.state);
      const action: DrainAction = step.action;
      switch (action.type) {
        case 'none':
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

  /** One batch: read a page from `fromSeq` (or the first op), send its first bounded run, apply the answer. */
  async #send(run: Run, fromSeq: number | undefined, maxOps: number): Promise<DrainStep> {
    const { store, transport, now } = this.#deps;
    const page = await store.readOutbox(fromSeq ?? 0, Math.min(this.#limits.pageSize, maxOps));
    const batch = chooseBatch(page, { maxOps, maxBytes: this.#limits.maxBytes }, fromSeq);
    if (batch.length === 0) {
      // Another path (the socket's ack stream) emptied the outbox meanwhile.
      run.stats = await store.outboxStats();
      return onAck(run.state, this.#ctx(run));
    }
    let ack: AckBody;
    try {
      ack = await transport.push({ device: run.device, ops: batch.map((entry) => entry.op) });
    } catch (error) {
      return this.#failed(run, asSyncError(error), batch.length);
    }
    const applied = await store.applyAck(ack, now());
    run.sent += applied.removed;
    const unanswered = unansweredIn(ack, batch);
    if (unanswered !== null) return this.#failed(run, unanswered, batch.length);
    run.stats = await store.outboxStats();
    return onAck(run.state, this.#ctx(run));
  }

  async #failed(run: Run, error: SyncError, sentOps: number): Promise<DrainStep> {
    const { store, now, random } = this.#deps;
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

  /** Makes `state` current: persisted when it changed (other contexts and restarts read it), shown always. */
  async #enter(run: Run, state: DrainState): Promise<void> {
    if (state !== run.state) {
      run.state = state;
      await this.#deps.store.saveDrainState(state);
    }
    this.#emit(run, state.phase === 'sending');
  }

  #emit(run: Run, draining: boolean): void {
    const { state, stats } = run;
    this.#deps.onStatus?.({
      condition: conditionOf(state.phase, stats.count),
      phase: state.phase,
      pending: stats.count,
      oldestAt: stats.oldestAt,
      dead: stats.dead,
      progress: draining ? { done: run.sent, total: run.sent + stats.count } : null,
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

function conditionOf(phase: DrainPhase, pending: number): SyncCondition {
  switch (phase) {
    case 'idle':
      return pending > 0 ? 'pending' : 'synced';
    case 'sending':
      return 'syncing';
    case 'backoff':
      return 'retrying';
    case 'paused-auth':
      return 'auth-required';
    case 'failed':
      return 'failed';
  }
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

function transientError(data: SyncErrorData | null): SyncError {
  return data === null ? new SyncError('network', 'Waiting to retry.') : SyncError.fromData(data);
}
