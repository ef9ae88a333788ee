// The one status a page shows, folded from what each part knows: the drainer (in the worker or this
// page), the socket, the browser's online flag and the outbox counts. Pure: `aggregate` takes the
// parts and the time; the tracker below only remembers the latest of each and says when the sum moves.
//
// The state, first match wins (so a failure is never shown as "syncing", nor an error as "synced"):
//   signed-out     the person signed out on this device; nothing is sent
//   auth-required  the drain is paused for sign-in, or the socket was refused with 4401
//   offline        the browser says so
//   failing        something only a person can fix (the drain stopped, the socket was refused for good,
//                  the server refused a space), or retrying for FAILING_AFTER_MS since the network was back
//   connecting     retrying within that grace (the reason and the next try are shown), or no socket yet
//   synced         socket open and every subscribed space caught up, nothing waiting, not draining
//   syncing        draining, ops waiting (a drain is on its way), or catching up
//
// Beside the state, two facts the state does not say: whether waiting changes can leave with the app
// closed (`delivery`: only where a worker with Background Sync carries them), and whether the browser
// may clear the storage they wait in (`storage`, `unsentAtRisk`).
import type { DrainPhase, DrainState } from '../core/outbox-drain.ts';
import type { SyncErrorData, SyncErrorKind } from '../core/errors.ts';
import type { OutboxStats } from './records.ts';
import type { SyncStatus, TimerPort } from './ports.ts';
import type { SocketStatus } from './socket-manager.ts';

export type FerryState = 'offline' | 'connecting' | 'syncing' | 'synced' | 'auth-required' | 'failing' | 'signed-out';

/**
 * When waiting changes can be sent. `background`: a Service Worker with Background Sync controls the
 * page, so the browser sends them when the network returns even with Ferry closed (Chromium).
 * `when-open`: only while Ferry is open (Firefox, Safari, no worker, a token app): closed, they wait
 * for its next start.
 */
export type Delivery = 'background' | 'when-open';

/** What the browser says of this origin's storage; null where it does not say (no StorageManager). */
export interface StorageView {
  /** Kept until the person clears it (`navigator.storage.persisted()`), not evicted under pressure. */
  persisted: boolean | null;
  /** Bytes used and allowed (`navigator.storage.estimate()`). */
  usage: number | null;
  quota: number | null;
}

export interface FerryStatus {
  state: FerryState;
  /** navigator.onLine. */
  online: boolean;
  /** The sync socket is open and the server said welcome. */
  connected: boolean;
  /** Ops not yet acknowledged by the server, their bytes, and when the oldest was made. */
  pending: number;
  pendingBytes: number;
  oldestPendingAt: number | null;
  /** Ops sent and not yet answered. */
  inFlight: number;
  lastAckAt: number | null;
  /** Round trip to the server in ms (the last ping), null until measured on the open socket. */
  serverLag: number | null;
  deadLetters: number;
  failingSince: number | null;
  /** What went wrong last, for a person; null once things work again. */
  lastError: string | null;
  /** The same, for the app to switch on (`auth_required`, `network`, `forbidden`, …); null with it. */
  errorKind: SyncErrorKind | null;
  /** When the next automatic try is due (drain backoff, or the socket's reconnect). */
  nextAttemptAt: number | null;
  /** The running drain's ops acked of ops to send; null when not draining. */
  progress: { done: number; total: number } | null;
  delivery: Delivery;
  storage: StorageView;
  /** Changes not yet on the server (waiting, or refused and kept for retry) live in storage the browser
   * may clear (not persisted, or it cannot say): the person should hear about it. */
  unsentAtRisk: boolean;
}

/** What the status needs of a drainer, from its live broadcast or from the state it stored. */
export interface DrainView {
  phase: DrainPhase;
  inFlight: number;
  progress: { done: number; total: number } | null;
  lastError: SyncErrorData | null;
  failingSince: number | null;
  nextAttemptAt: number | null;
  /** Why it stopped (`failed`). */
  reason: string | null;
}

export interface StatusParts {
  online: boolean;
  socket: SocketStatus;
  /** When the socket's current failure streak began (the tracker keeps it). */
  socketFailingSince: number | null;
  /** The server said welcome on the open socket. */
  welcomed: boolean;
  subscribed: number;
  caughtUp: number;
  drain: DrainView;
  outbox: OutboxStats;
  serverLag: number | null;
  /** An error frame the socket got (a space we may not read, a refused frame). */
  socketError: string | null;
  /** The person signed out on this device: nothing is sent until they sign in again. */
  signedOut: boolean;
  /** When the browser last came online (the tracker keeps it): a failure streak counts from here. */
  onlineSince: number | null;
  /** A worker with Background Sync carries this device's outbox (see Delivery). */
  background: boolean;
  storage: StorageView;
}

export const IDLE_DRAIN: DrainView = {
  phase: 'idle', inFlight: 0, progress: null, lastError: null, failingSince: null, nextAttemptAt: null, reason: null,
};

export const UNKNOWN_STORAGE: StorageView = { persisted: null, usage: null, quota: null };

export const EMPTY_OUTBOX: OutboxStats = { count: 0, bytes: 0, oldestAt: null, span: null, dead: 0, lastAckAt: null };

/** A drainer's status (its own, or another context's broadcast) as a view. */
export function drainViewOf(status: SyncStatus): DrainView {
  return {
    phase: status.phase, inFlight: status.inFlight ?? 0, progress: status.progress, lastError: status.lastError,
    failingSince: status.failingSince, nextAttemptAt: status.nextAttemptAt, reason: status.reason,
  };
}

/**
 * The state a drainer stored, for a page that has heard no broadcast yet (the worker was asleep). A
 * stored `sending` belongs to a drain that is running now or died mid-batch; either way ops are
 * waiting, which shows as syncing, and the page's first wake-up settles which.
 */
export function drainViewOfState(state: DrainState | undefined): DrainView {
  if (state === undefined) return IDLE_DRAIN;
  return {
    phase: state.phase, inFlight: 0, progress: null, lastError: state.error,
    failingSince: state.retry.since, nextAttemptAt: state.retry.nextAt, reason: state.reason,
  };
}

/**
 * How long a failure streak lasts, counted from the later of its start and the network coming back,
 * before the status says `failing`. A healthy reconnect (coming online, a server restart, a backlog's first
 * batch meeting a socket that is still connecting) takes a second or two and reads as `connecting`, with
 * the reason and the next try shown; a server that stays away reads as `failing` soon after.
 */
export const FAILING_AFTER_MS = 8_000;

export function aggregate(parts: StatusParts, now: number): FerryStatus {
  const { socket, drain, outbox } = parts;
  const connected = socket.state === 'open' && parts.welcomed;
  const socketRefused = socket.state === 'stopped' && socket.lastError !== undefined;
  const socketRetrying = socket.state === 'waiting';
  const draining = drain.phase === 'sending';
  const socketText = socketRetrying ? socket.lastError : socketRefused ? (socket.lastError ?? null) : null;
  // Only a person (or an operator) can fix these: no grace.
  const stuck = drain.phase === 'failed' || socketRefused || parts.socketError !== null;
  const retrying = drain.phase === 'backoff' || socketRetrying;
  const since = drain.phase === 'backoff' || drain.phase === 'failed' ? drain.failingSince : parts.socketFailingSince;
  const streakFrom = Math.max(since ?? now, parts.onlineSince ?? 0);

  let state: FerryState;
  if (parts.signedOut) state = 'signed-out';
  else if (drain.phase === 'paused-auth' || socket.state === 'auth-required') state = 'auth-required';
  else if (!parts.online) state = 'offline';
  else if (stuck || (retrying && now - streakFrom >= FAILING_AFTER_MS)) state = 'failing';
  else if (retrying) state = 'connecting';
  else if (connected && parts.caughtUp >= parts.subscribed && outbox.count === 0 && !draining) state = 'synced';
  else if (draining || outbox.count > 0 || connected) state = 'syncing';
  else state = 'connecting';

  const drainError = drain.phase === 'backoff' || drain.phase === 'failed' ? (drain.reason ?? drain.lastError?.message ?? null) : null;
  const lastError = state === 'signed-out'
    ? null
    : state === 'auth-required'
      ? (drain.lastError?.message ?? 'Sign in again to keep syncing.')
      : (drainError ?? socketText ?? parts.socketError);
  const nextAttemptAt = drain.phase === 'backoff' ? drain.nextAttemptAt : socketRetrying ? socket.nextAt : null;

  return {
    state,
    online: parts.online,
    connected,
    pending: outbox.count,
    pendingBytes: outbox.bytes,
    oldestPendingAt: outbox.oldestAt,
    inFlight: draining ? drain.inFlight : 0,
    lastAckAt: outbox.lastAckAt,
    serverLag: connected ? parts.serverLag : null,
    deadLetters: outbox.dead,
    failingSince: lastError === null || state === 'auth-required' ? null : since,
    lastError,
    errorKind: lastError === null ? null : errorKindOf(state, drain, drainError !== null, socketText !== null),
    nextAttemptAt: state === 'signed-out' ? null : nextAttemptAt,
    progress: draining ? drain.progress : null,
    delivery: parts.background ? 'background' : 'when-open',
    storage: parts.storage,
    unsentAtRisk: outbox.count + outbox.dead > 0 && parts.storage.persisted !== true,
  };
}

export function statusEquals(a: FerryStatus, b: FerryStatus): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The kind behind `lastError`: the drain's error when the drain is what fails, else the socket's. */
function errorKindOf(state: FerryState, drain: DrainView, drainFailing: boolean, socketFailed: boolean): SyncErrorKind {
  if (state === 'auth-required') return 'auth_required';
  if (drainFailing && drain.lastError !== null) return drain.lastError.kind;
  return socketFailed ? 'network' : 'forbidden';
}

/** What the tracker keeps itself, besides the parts it is told. */
type Kept = 'socketFailingSince' | 'onlineSince';

/**
 * Remembers the latest of each part and tells its listeners when the folded status differs. It also
 * keeps what no single part knows: since when the socket has been failing, and since when the network is
 * back; and it re-folds when a retrying streak's grace runs out, so `failing` shows without a new event.
 */
export function createStatusTracker(initial: Omit<StatusParts, Kept>, now: () => number, timers?: TimerPort) {
  let parts: StatusParts = { ...initial, socketFailingSince: null, onlineSince: null };
  let current = aggregate(parts, now());
  let timer: unknown = null;
  const listeners = new Set<(status: FerryStatus) => void>();
  const refold = () => {
    const status = aggregate(parts, now());
    if (timers) {
      if (timer !== null) timers.clearTimeout(timer);
      timer = null;
      // Still within a retrying streak's grace: look again once it runs out.
      const since = Math.max(status.failingSince ?? Infinity, parts.onlineSince ?? 0);
      if (status.state === 'connecting' && status.failingSince !== null) {
        timer = timers.setTimeout(() => {
          timer = null;
          refold();
        }, Math.max(0, since + FAILING_AFTER_MS - now()) + 10);
      }
    }
    if (statusEquals(status, current)) return;
    current = status;
    for (const listener of listeners) listener(status);
  };
  return {
    get: (): FerryStatus => current,
    parts: (): StatusParts => parts,
    update(change: Partial<Omit<StatusParts, Kept>>): void {
      const next: StatusParts = { ...parts, ...change };
      if (change.socket) {
        const socket = change.socket;
        const failed = socket.state === 'waiting' || (socket.state === 'stopped' && socket.lastError !== undefined);
        // A reconnect attempt is part of the streak; only an open socket (or a halt) ends it.
        if (failed) next.socketFailingSince = parts.socketFailingSince ?? now();
        else if (socket.state !== 'connecting') next.socketFailingSince = null;
      }
      if (change.online === true && !parts.online) next.onlineSince = now();
      parts = next;
      refold();
    },
    subscribe(listener: (status: FerryStatus) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close(): void {
      if (timer !== null) timers?.clearTimeout(timer);
      timer = null;
    },
  };
}

export type StatusTracker = ReturnType<typeof createStatusTracker>;
