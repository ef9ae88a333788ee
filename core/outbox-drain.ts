// The drain state machine: after each event (a wake-up, an ack, a failure, a sign-in, the person
// pressing retry) it says what the drainer does next. DESIGN.md's failure table lives here, one
// branch per row. Transitions are pure: time, randomness and what the outbox holds are passed in,
// and every state is plain, cloneable data, so the drainer can keep it in IndexedDB across Service
// Worker restarts and the page can show it as the sync status.
//
//                     wake, ops pending
//     +------+ ------------------------------> +---------+ <--+ ack, ops left: keep sending.
//     | idle |                                 | sending |    | seq_gap, lamport_regression,
//     +------+ <------------------------------ +---------+ ---+ too_large: adjust, resend at once
//                     ack, outbox empty         |   |   |
//                                               |   |   | invalid, forbidden, protocol,
//       network, 5xx, 429, unparseable, reset,  |   |   | a seq_gap the outbox cannot serve
//       too_large at 1 op, or at-once retries   |   |   v
//       used up                                 v   |  +--------+  resume   +---------+
//                               +---------+         |  | failed | --------> | sending |
//                 sending <---- | backoff |     401 |  +--------+           +---------+
//         wake once due, resume +---------+         v
//                                          +-------------+  sign-in  +---------+
//                                          | paused-auth | --------> | sending |
//                                          +-------------+           +---------+
//
// Only answers to what was sent in the current `sending` phase count: the drainer drops what it has
// in flight whenever an action tells it to (re)start, so a late error for an abandoned batch is
// stale. Acks of abandoned batches are still applied to the outbox (that is always safe), but they
// do not move this machine. In any other phase onAck and onFailure leave the state as it is.
import {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  type RetryState,
  initialRetry,
  recordFailure,
  clearFailures,
  retryDue,
} from './backoff.ts';
import { type SyncError, type SyncErrorData, dispositionOf, unreachable } from './errors.ts';

export type DrainPhase = 'idle' | 'sending' | 'backoff' | 'paused-auth' | 'failed';

export interface DrainState {
  phase: DrainPhase;
  /** The configured batch size, which the limit grows back to. */
  maxOps: number;
  /** Ops per batch now: halved by each too_large (down to 1) and by a push that timed out, shrunk to fit
   * BATCH_TARGET_MS when answers come slowly, doubled back after a run of quick acks. */
  batchLimit: number;
  /** Quick acks in a row (see BATCH_TARGET_MS) since the limit last changed. */
  okStreak: number;
  /** At-once retries (seq_gap, restamp, too_large) since the last ack or backoff; see MAX_QUICK_RETRIES. */
  quickRetries: number;
  /** The failure streak: attempts, next attempt at, failing since. Reset only by an ack. */
  retry: RetryState;
  /** The last failure as data (kind, message, status, raw text); null once an ack arrives. */
  error: SyncErrorData | null;
  /** Why the drain stopped, in words for the person; set only in `failed`. */
  reason: string | null;
}

/**
 * What the drainer does next. After any (re)start it first forgets what it has in flight.
 * - send: send batches of at most maxOps from the first op not in flight (after a failure: the first).
 * - resend-from: send from `seq` (the server's expected seq).
 * - restamp: in one transaction with the clock, raise every unsent op above `floor` (outbox.restamp)
 *   and observe the returned clock; then send from the first op.
 * - wait: arm the drain timer (one, replacing any other) for `until`, then call onWake.
 * - none: nothing until the next event.
 */
export type DrainAction =
  | { type: 'send'; maxOps: number }
  | { type: 'resend-from'; seq: number; maxOps: number }
  | { type: 'restamp'; floor: number; maxOps: number }
  | { type: 'wait'; until: number }
  | { type: 'none' };

export interface DrainStep {
  state: DrainState;
  action: DrainAction;
}

/** The lowest and highest seq the outbox holds now, or null when it is empty. Seqs between are held
 * too, except below the server's `through` (see applyAck), where the server's `expected` never is. */
export type OutboxSpan = { first: number; last: number } | null;

export interface FailureContext {
  now: number;
  random: () => number;
  outbox: OutboxSpan;
  /** Ops in the batch that failed; too_large halves from this rather than from a limit it never reached. */
  sentOps?: number;
  policy?: BackoffPolicy;
}

/** Events other than failures need only the time and whether any op is waiting. */
export interface EventContext {
  now: number;
  pending: number;
}

/** An acked batch: its ops, and how long its answer took — from when it was sent, or from the answer
 * before it when batches were pipelined, so it is this batch's own share of the link and the server. */
export interface BatchTiming {
  ops: number;
  ms: number;
}

export interface AckContext extends EventContext {
  batch?: BatchTiming;
}

/**
 * How long one batch's answer should take at most: batch sizes follow the measured time. A slower one
 * shrinks the limit in proportion, so on a slow link a batch never nears the push timeout (30 s) and a
 * connection cut mid-batch wastes at most this much upload; the limit grows back only while a batch of
 * twice the size is expected within half of this. Where answers come quickly (a fast link, or a slow one
 * with a short round trip) the limit stays at maxOps, the server's own bound, the cheapest per op.
 */
export const BATCH_TARGET_MS = 2_000;

/**
 * At-once retries allowed before the machine falls back to backoff. Halving 500 ops down to 1 takes
 * 8; the rest is headroom for a gap or a restamp on the way. Past it a server that keeps answering
 * seq_gap or lamport_regression (a bug) gets exponentially rarer requests instead of a hot loop, and
 * since each new round starts with a fresh allowance, a slow fix still makes progress.
 */
export const MAX_QUICK_RETRIES = 16;

/** Acks in a row before the batch limit doubles back toward maxOps. A 413 often comes from a proxy's
 * byte limit, so climbing back in steps finds the size that fits instead of overshooting at once. */
export const GROW_AFTER_ACKS = 4;

const NONE: DrainAction = { type: 'none' };

export function initialDrain(maxOps: number): DrainState {
  const limit = Math.max(1, Math.floor(maxOps));
  return {
    phase: 'idle', maxOps: limit, batchLimit: limit, okStreak: 0, quickRetries: 0,
    retry: initialRetry(), error: null, reason: null,
  };
}

/** Something asked for a drain: a new op, a Background Sync event, `online`, a socket open, the timer. */
export function onWake(state: DrainState, ctx: EventContext): DrainStep {
  switch (state.phase) {
    case 'idle':
      return ctx.pending > 0 ? sending(state) : { state, action: NONE };
    case 'backoff':
      // Waking early (say on `online`) would ignore a server's retryAfterMs; re-arm the timer instead.
      if (!retryDue(state.retry, ctx.now)) return { state, action: { type: 'wait', until: state.retry.nextAt! } };
      if (ctx.pending > 0) return sending(state);
      // Another path got the ops acked meanwhile: the streak is over.
      return { state: { ...state, phase: 'idle', retry: initialRetry(), error: null }, action: NONE };
    case 'sending': // already draining; drains are idempotent, so the second request just joins it
    case 'paused-auth': // only a sign-in helps
    case 'failed': // only the person (or a new app version) helps
      return { state, action: NONE };
    default:
      return unreachable(state.phase);
  }
}

/** An ack for the current send. `pending`: ops left in the outbox once it is applied. */
export function onAck(state: DrainState, ctx: AckContext): DrainStep {
  if (state.phase !== 'sending') return { state, action: NONE };
  const fitted = fitToTime(state.batchLimit, ctx.batch);
  const full = fitted >= state.maxOps;
  const quickAck = fitted === state.batchLimit && roomToDouble(fitted, ctx.batch);
  const grow = quickAck && !full && state.okStreak + 1 >= GROW_AFTER_ACKS;
  const batchLimit = grow ? Math.min(state.maxOps, fitted * 2) : fitted;
  // Counted only while there is a limit to grow back to; a slow ack starts the run again.
  const okStreak = batchLimit !== state.batchLimit || !quickAck ? 0 : full ? state.okStreak : state.okStreak + 1;
  const next: DrainState = {
    ...state,
    phase: ctx.pending > 0 ? 'sending' : 'idle',
    batchLimit,
    okStreak,
    quickRetries: 0,
    retry: clearFailures(state.retry),
    error: null,
  };
  // An ack in the middle of a healthy drain changes nothing: the same state, so nothing is saved again.
  const same = next.phase === state.phase && next.batchLimit === state.batchLimit && next.okStreak === state.okStreak &&
    next.quickRetries === state.quickRetries && next.retry === state.retry && state.error === null;
  return { state: same ? state : next, action: ctx.pending > 0 ? { type: 'send', maxOps: next.batchLimit } : NONE };
}

/** The limit that answers a batch like this one within BATCH_TARGET_MS (never more than now). The
 * drainer also uses it for the batch it sends before it hands the ack to onAck (the overlap). */
export function fitToTime(limit: number, batch: BatchTiming | undefined): number {
  if (batch === undefined || batch.ops < 2 || batch.ms <= BATCH_TARGET_MS) return limit;
  return Math.max(1, Math.min(limit, Math.floor((batch.ops * BATCH_TARGET_MS) / batch.ms)));
}

/** A batch of twice `limit` ops, at this batch's time per op, would be answered within half the target. */
function roomToDouble(limit: number, batch: BatchTiming | undefined): boolean {
  return batch === undefined || batch.ms * ((2 * limit) / Math.max(1, batch.ops)) <= BATCH_TARGET_MS / 2;
}

/** The person signed in again: every op was kept, so draining simply resumes. */
export function onSignIn(state: DrainState, ctx: EventContext): DrainStep {
  if (state.phase !== 'paused-auth') return { state, action: NONE };
  const resumed: DrainState = { ...state, phase: 'idle', error: null };
  return ctx.pending > 0 ? sending(resumed) : { state: resumed, action: NONE };
}

/**
 * The person pressed retry (or a new app version started): leave `failed`, or cut a backoff short.
 * That one early request may ignore a server's retryAfterMs; a person asking is worth it, and the
 * failure streak (attempts, since) carries on if it fails again. Idle with ops waiting (no wake-up has
 * come yet: the network is barely back, Background Sync has not fired), it sends them as a wake-up
 * would: `syncNow()` resolves only once what it asked for was tried.
 */
export function onResume(state: DrainState, ctx: EventContext): DrainStep {
  if (state.phase === 'idle') return onWake(state, ctx);
  if (state.phase !== 'failed' && state.phase !== 'backoff') return { state, action: NONE };
  const resumed: DrainState = { ...state, phase: 'idle', reason: null };
  return ctx.pending > 0 ? sending(resumed) : { state: resumed, action: NONE };
}

/** A failure of the current send: one branch per row of DESIGN.md's failure table. */
export function onFailure(state: DrainState, error: SyncError, ctx: FailureContext): DrainStep {
  if (state.phase !== 'sending') return { state, action: NONE };
  const data = error.toData();
  const disposition = dispositionOf(error.kind);
  switch (disposition) {
    case 'retry':
      return retryAfter(state, data, ctx);
    case 'needs-auth':
      // Every op stays in the outbox; nothing is sent until onSignIn.
      return { state: { ...state, phase: 'paused-auth', error: data }, action: NONE };
    case 'reject':
      return fail(state, data, `The server refused a batch as malformed (${data.message}). ` +
        'This is a bug in this app or it is older than the server; every change is kept on this device.');
    case 'fatal':
      return fail(state, data, data.message);
    default:
      return unreachable(disposition);
  }
}

function retryAfter(state: DrainState, error: SyncErrorData, ctx: FailureContext): DrainStep {
  switch (error.kind) {
    case 'seq_gap':
      return seqGap(state, error, ctx);
    case 'lamport_regression':
      return quick(state, error, ctx, { type: 'restamp', floor: error.floor ?? 0, maxOps: state.batchLimit });
    case 'too_large':
      return tooLarge(state, error, ctx);
    default:
      // network, server, rate_limited, unparseable; and reset, which the read side handles by
      // re-reading a snapshot: for the outbox it says nothing about the ops, so try again later. A push
      // that timed out may be too big for this link: the retry sends half of it.
      return backOff(error.timedOut ? halved(state, ctx) : state, error, ctx);
  }
}

function seqGap(state: DrainState, error: SyncErrorData, ctx: FailureContext): DrainStep {
  const expected = error.expected ?? 0;
  const span = ctx.outbox;
  // Nothing left to send: the failed batch was acked by another path meanwhile; a new op will ask again.
  if (span === null) return { state: { ...state, phase: 'idle' }, action: NONE };
  if (expected >= span.first && expected <= span.last) {
    return quick(state, error, ctx, { type: 'resend-from', seq: expected, maxOps: state.batchLimit });
  }
  const reason = expected < span.first
    ? `The server asks for change #${expected} again, but this device removed it after the server ` +
      'confirmed it. The server seems to have lost data (restored from a backup?).'
    : `The server expects change #${expected}, but this device's pending changes end at #${span.last}: ` +
      "the server has changes from this device that the device no longer knows about (the device's " +
      'data restored from a backup?).';
  return fail(state, error, `${reason} Every pending change is kept on this device.`);
}

function tooLarge(state: DrainState, error: SyncErrorData, ctx: FailureContext): DrainStep {
  const sent = Math.min(state.batchLimit, ctx.sentOps ?? state.batchLimit);
  // One op that is still too large cannot be split. The server rejects an op over its own limits
  // alone (a dead letter), so this is a proxy's body limit below ours: keep trying, slowly and
  // visibly, until an operator raises it.
  if (sent <= 1) return backOff({ ...state, batchLimit: 1, okStreak: 0 }, error, ctx);
  const half = halved(state, ctx);
  return quick(half, error, ctx, { type: 'send', maxOps: half.batchLimit });
}

/** Half of the batch that failed, rather than of a limit it never reached. */
function halved(state: DrainState, ctx: FailureContext): DrainState {
  const sent = Math.min(state.batchLimit, ctx.sentOps ?? state.batchLimit);
  return { ...state, batchLimit: Math.max(1, Math.floor(sent / 2)), okStreak: 0 };
}

/** Adjust and send again at once, unless this round's allowance is spent. */
function quick(state: DrainState, error: SyncErrorData, ctx: FailureContext, action: DrainAction): DrainStep {
  if (state.quickRetries >= MAX_QUICK_RETRIES) return backOff(state, error, ctx);
  return { state: { ...state, phase: 'sending', quickRetries: state.quickRetries + 1, error }, action };
}

function backOff(state: DrainState, error: SyncErrorData, ctx: FailureContext): DrainStep {
  const retry = recordFailure(state.retry, {
    now: ctx.now,
    random: ctx.random,
    error: error.message,
    policy: ctx.policy ?? DEFAULT_BACKOFF,
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
  });
  const next: DrainState = { ...state, phase: 'backoff', quickRetries: 0, retry, error };
  return { state: next, action: { type: 'wait', until: retry.nextAt! } };
}

function fail(state: DrainState, error: SyncErrorData, reason: string): DrainStep {
  return { state: { ...state, phase: 'failed', error, reason }, action: NONE };
}

function sending(state: DrainState): DrainStep {
  return { state: { ...state, phase: 'sending' }, action: { type: 'send', maxOps: state.batchLimit } };
}
