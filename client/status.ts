// The one status a page shows, folded from what each part knows: the drainer (in the worker or this
// page), the socket, the browser's online flag and the outbox counts. Pure: `aggregate` takes the
// parts and the time; the tracker below only remembers the latest of each and says when the sum moves.
//
// The state, first match wins (so a failure is never shown as "syncing"):
//   auth-required  the drain is paused for sign-in, or the socket was refused with 4401
//   offline        the browser says so
//   failing        the drain is backing off or stopped, the socket was refused for good, or it failed
//                  twice in a row (one failed reconnect is a blip, shown as connecting)
//   synced         socket open and every subscribed space caught up, nothing waiting, not draining
//   syncing        draining, ops waiting (a drain is on its way), or catching up
//   connecting     the rest: the socket is not open yet
import type { DrainPhase, DrainState } from '../core/outbox-drain.ts';
import type { SyncErrorData } from '../core/errors.ts';
import type { OutboxStats } from '../sw/records.ts';
import type { DrainBroadcast } from '../sw/messages.ts';
import type { SocketStatus } from './socket-manager.ts';

export type FerryState = 'offline' | 'connecting' | 'syncing' | 'synced' | 'auth-required' | 'failing';

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
  /** When the next automatic try is due (drain backoff, or the socket's reconnect). */
  nextAttemptAt: number | null;
  /** The running drain's ops acked of ops to send; null when not draining. */
  progress: { done: number; total: number } | null;
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
  lastAckAt: number | null;
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
}

export const IDLE_DRAIN: DrainView = {
  phase: 'idle', inFlight: 0, progress: null, lastError: null, failingSince: null, nextAttemptAt: null, reason: null, lastAckAt: null,
};

export const EMPTY_OUTBOX: OutboxStats = { count: 0, bytes: 0, oldestAt: null, span: null, dead: 0 };

/** A drainer's broadcast as a view. */
export function drainViewOf(status: DrainBroadcast): DrainView {
  return {
    phase: status.phase, inFlight: status.inFlight ?? 0, progress: status.progress, lastError: status.lastError,
    failingSince: status.failingSince, nextAttemptAt: status.nextAttemptAt, reason: status.reason, lastAckAt: status.lastAckAt,
  };
}

/**
 * The state a drainer stored, for a page that has heard no broadcast yet (the worker was asleep). A
 * stored `sending` belongs to a drain that is running now or died mid-batch; either way ops are
 * waiting, which shows as syncing, and the page's first wake-up settles which.
 */
export function drainViewOfState(state: DrainState | undefined, lastAckAt: number | null): DrainView {
  if (state === undefined) return { ...IDLE_DRAIN, lastAckAt };
  return {
    phase: state.phase, inFlight: 0, progress: null, lastError: state.error,
    failingSince: state.retry.since, nextAttemptAt: state.retry.nextAt, reason: state.reason, lastAckAt,
  };
}

export function aggregate(parts: StatusParts): FerryStatus {
  const { socket, drain, outbox } = parts;
  const connected = socket.state === 'open' && parts.welcomed;
  const socketRefused = socket.state === 'stopped' && socket.lastError !== undefined;
  const socketFailing = socketRefused || (socket.state === 'waiting' && socket.attempt >= 2);
  const drainFailing = drain.phase === 'backoff' || drain.phase === 'failed';
  const socketText = socket.state === 'waiting' ? socket.lastError : socket.state === 'stopped' ? (socket.lastError ?? null) : null;
  const draining = drain.phase === 'sending';

  let state: FerryState;
  if (drain.phase === 'paused-auth' || socket.state === 'auth-required') state = 'auth-required';
  else if (!parts.online) state = 'offline';
  else if (drainFailing || socketFailing) state = 'failing';
  else if (connected && parts.caughtUp >= parts.subscribed && outbox.count === 0 && !draining) state = 'synced';
  else if (draining || outbox.count > 0 || connected) state = 'syncing';
  else state = 'connecting';

  const failingSince = drainFailing ? drain.failingSince : socketFailing ? parts.socketFailingSince : null;
  const lastError = state === 'auth-required'
    ? (drain.lastError?.message ?? 'Sign in again to keep syncing.')
    : drainFailing
      ? (drain.reason ?? drain.lastError?.message ?? null)
      : (socketText ?? parts.socketError);
  const nextAttemptAt = drain.phase === 'backoff'
    ? drain.nextAttemptAt
    : socket.state === 'waiting' ? socket.nextAt : null;

  return {
    state,
    online: parts.online,
    connected,
    pending: outbox.count,
    pendingBytes: outbox.bytes,
    oldestPendingAt: outbox.oldestAt,
    inFlight: draining ? drain.inFlight : 0,
    lastAckAt: drain.lastAckAt,
    serverLag: connected ? parts.serverLag : null,
    deadLetters: outbox.dead,
    failingSince,
    lastError,
    nextAttemptAt,
    progress: draining ? drain.progress : null,
  };
}

export function statusEquals(a: FerryStatus, b: FerryStatus): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Remembers the latest of each part and tells its listeners when the folded status differs. It also
 * keeps what no single part knows: since when the socket has been failing, and the newest ack time
 * from any drainer (worker or page).
 */
export function createStatusTracker(initial: Omit<StatusParts, 'socketFailingSince'>, now: () => number) {
  let parts: StatusParts = { ...initial, socketFailingSince: null };
  let current = aggregate(parts);
  const listeners = new Set<(status: FerryStatus) => void>();
  return {
    get: (): FerryStatus => current,
    parts: (): StatusParts => parts,
    update(change: Partial<Omit<StatusParts, 'socketFailingSince'>>): void {
      const next: StatusParts = { ...parts, ...change };
      if (change.socket) {
        const socket = change.socket;
        const failed = socket.state === 'waiting' || (socket.state === 'stopped' && socket.lastError !== undefined);
        // A reconnect attempt is part of the streak; only an open socket (or a halt) ends it.
        if (failed) next.socketFailingSince = parts.socketFailingSince ?? now();
        else if (socket.state !== 'connecting') next.socketFailingSince = null;
      }
      if (change.drain) {
        // A drainer that has not acked anything yet must not hide an earlier ack seen from another one.
        const known = parts.drain.lastAckAt;
        const seen = change.drain.lastAckAt;
        next.drain = { ...change.drain, lastAckAt: known === null ? seen : seen === null ? known : Math.max(known, seen) };
      }
      parts = next;
      const status = aggregate(parts);
      if (statusEquals(status, current)) return;
      current = status;
      for (const listener of listeners) listener(status);
    },
    subscribe(listener: (status: FerryStatus) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export type StatusTracker = ReturnType<typeof createStatusTracker>;
