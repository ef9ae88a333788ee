// The drainer's ports (what it needs of the store, the transport, the lock and the clock), its limits,
// and the status it reports: the contract that the Service Worker, the page and the tests' fakes all
// implement or read.
import { type BackoffPolicy, DEFAULT_BACKOFF } from '../core/backoff.ts';
import type { SyncErrorData } from '../core/errors.ts';
import { type Ack, DEFAULT_BATCH_LIMITS, type OutboxEntry } from '../core/outbox.ts';
import type { DrainPhase, DrainState } from '../core/outbox-drain.ts';
import type { Op } from '../core/types.ts';
import type { AckBody } from '../schema/wire.ts';
import type { AckApplied, OutboxStats } from './records.ts';

export interface PushRequest {
  device: string;
  ops: Op[];
}

/** Sends one batch. Resolves with the server's ack; rejects with a SyncError for anything else. */
export interface Transport {
  push(request: PushRequest): Promise<AckBody>;
  /**
   * How many batches may be in flight at once right now (default 1). Only a transport whose server
   * answers in the order sent may say more than 1; asked again before every batch, so a transport
   * that switches between a socket and HTTP can narrow the window as the socket comes and goes.
   */
  window?(): number;
}

/** Runs `fn` while holding the named lock (navigator.locks in browsers; see ports.ts). */
export interface DrainLock {
  run<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

/** Timers, called as methods: pass `globalThis`, or an object of arrow functions (fake clocks do). */
export interface TimerPort {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Waits `ms`, or less if `signal` aborts; never rejects for the abort. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** What the drainer needs of the store (device/store.ts implements it; tests may wrap it). */
export interface DrainStore {
  getDeviceId(): Promise<string>;
  readOutbox(fromSeq: number, limit: number): Promise<OutboxEntry[]>;
  outboxStats(): Promise<OutboxStats>;
  /**
   * `sent`: the batch this ack answers, as the drainer sent it (the outbox rows it read), so the store
   * need not read them again; rows of the ack that are not among them are read as usual.
   */
  applyAck(ack: Ack, now: number, sent?: readonly OutboxEntry[]): Promise<AckApplied>;
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
  // One full batch: per-batch costs (a round trip, a commit, an ack's transaction) dominate a drain,
  // and 500 ops are a few hundred KB at most.
  pageSize: DEFAULT_BATCH_LIMITS.maxOps,
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

/** What a drainer reports after each step; device/status.ts folds it into the one status the app sees. */
export interface SyncStatus {
  phase: DrainPhase;
  /** Ops waiting in the outbox, and when the oldest of them was made. */
  pending: number;
  oldestAt: number | null;
  /** Rejected ops waiting for the person's retry or discard. */
  dead: number;
  /** This drain's progress (ops acked of ops to send), for a progress bar; null when not draining. */
  progress: { done: number; total: number } | null;
  /** Ops sent and not yet answered. */
  inFlight: number;
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

/**
 * The store with a listener on every ack applied through it (the drainer's own, and abandoned
 * batches' late ones): whoever owns the drainer tells its live queries and the other tabs.
 */
export function observeAcks(store: DrainStore, onApplied: (applied: AckApplied, at: number) => void): DrainStore {
  return {
    getDeviceId: () => store.getDeviceId(),
    readOutbox: (fromSeq, limit) => store.readOutbox(fromSeq, limit),
    outboxStats: () => store.outboxStats(),
    restamp: (floor) => store.restamp(floor),
    loadDrainState: () => store.loadDrainState(),
    saveDrainState: (state) => store.saveDrainState(state),
    async applyAck(ack, now, sent) {
      const applied = await store.applyAck(ack, now, sent);
      onApplied(applied, now);
      return applied;
    },
  };
}
