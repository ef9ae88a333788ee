// When the device engine wakes a drain besides after a write, as plain functions of what the status
// knows (device/status.ts DrainView): the timer while ops wait, the network coming back, the socket's
// welcome. Background Sync is a wake-up call, not the retry policy: the drain machine's backoff is.
import type { DrainKind } from './messages.ts';
import type { DrainView } from './status.ts';

/** While ops wait and nothing else wakes a drain, a page asks again this often. */
export const WAKE_EVERY_MS = 30_000;
/** The timer never fires sooner: a wake-up that changes nothing (a failing store) must not spin. */
export const MIN_TIMER_MS = 1000;
/** The least time between two outbox re-reads for the status, and between two wake-ups after writes. */
export const STATS_GAP_MS = 50;
export const WRITE_WAKE_GAP_MS = 50;

/**
 * Milliseconds until the page's next timer wake-up, or null for none: nothing waits, or only a person can
 * help (`paused-auth`, `failed`). In backoff it fires just after the next try is due, else every 30 s.
 */
export function nextWakeIn(drain: DrainView, pending: number, now: number): number | null {
  if (pending === 0 || drain.phase === 'paused-auth' || drain.phase === 'failed') return null;
  const due = drain.phase === 'backoff' && drain.nextAttemptAt !== null ? drain.nextAttemptAt - now + 50 : WAKE_EVERY_MS;
  return Math.max(MIN_TIMER_MS, Math.min(WAKE_EVERY_MS, due));
}

/** The network is back: a backoff that was waiting for it need not run out, unless the server set it. */
export function onlineWake(drain: DrainView): DrainKind {
  return drain.phase === 'backoff' && drain.lastError?.retryAfterMs === undefined ? 'resume' : 'drain';
}

/**
 * The socket's handshake just proved the server is reachable and the credentials work: a drain paused
 * for sign-in may go on, and one backing off from network errors need not wait out its backoff. Where no
 * `online` event comes (the server, not the network, was away; Firefox and Safari have no Background
 * Sync to notice either), this is how delivery starts as soon as the server is back.
 */
export function welcomeWake(drain: DrainView): DrainKind {
  return drain.phase === 'paused-auth' ? 'signed-in' : onlineWake(drain);
}
