import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { DEFAULT_BACKOFF } from './backoff.ts';
import { SyncError, errorFromResponse, networkError } from './errors.ts';
import {
  BATCH_TARGET_MS,
  type DrainState,
  type FailureContext,
  GROW_AFTER_ACKS,
  MAX_QUICK_RETRIES,
  initialDrain,
  onAck,
  onFailure,
  onResume,
  onSignIn,
  onWake,
} from './outbox-drain.ts';

const T0 = 1_700_000_000_000;
const ctx = (over: Partial<FailureContext> = {}): FailureContext => ({
  now: T0,
  random: () => 0.5,
  outbox: { first: 1, last: 10 },
  ...over,
});

/** A drain that is mid-send with ops 1..10 pending. */
function sendingState(maxOps = 500): DrainState {
  const step = onWake(initialDrain(maxOps), { now: T0, pending: 10 });
  expect(step.state.phase).toBe('sending');
  return step.state;
}

const gap = (expected: number) => errorFromResponse(409, JSON.stringify({ code: 'seq_gap', message: 'Gap.', expected }))!;

describe('waking up', () => {
  test('idle with ops pending starts sending a full batch; with none it stays idle', () => {
    expect(onWake(initialDrain(500), { now: T0, pending: 3 }).action).toEqual({ type: 'send', maxOps: 500 });
    expect(onWake(initialDrain(500), { now: T0, pending: 0 })).toEqual({ state: initialDrain(500), action: { type: 'none' } });
  });

  test('a second wake while sending joins the running drain instead of sending the batch twice', () => {
    const state = sendingState();
    expect(onWake(state, { now: T0, pending: 10 })).toEqual({ state, action: { type: 'none' } });
  });

  test('the state is plain data that survives structured clone and JSON (kept in IndexedDB)', () => {
    const { state } = onFailure(sendingState(), errorFromResponse(200, '<html>portal</html>')!, ctx());
    expect(structuredClone(state)).toEqual(state);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});

describe('ack', () => {
  test('with ops left: keep sending; with none: idle', () => {
    expect(onAck(sendingState(), { now: T0, pending: 4 }).action).toEqual({ type: 'send', maxOps: 500 });
    const done = onAck(sendingState(), { now: T0, pending: 0 });
    expect(done.state.phase).toBe('idle');
    expect(done.action).toEqual({ type: 'none' });
  });

  test('ends a failure streak: attempts, error and "failing since" are cleared', () => {
    let state = sendingState();
    state = onFailure(state, networkError(new TypeError('Failed to fetch')), ctx()).state;
    state = onWake(state, { now: state.retry.nextAt!, pending: 10 }).state;
    expect(state.retry.attempt).toBe(1);
    const after = onAck(state, { now: T0 + 9000, pending: 10 }).state;
    expect(after.retry).toEqual({ attempt: 0, nextAt: null, lastError: null, since: null });
    expect(after.error).toBeNull();
  });

  test('an ack mid-drain at the full batch size is the same state, so the drainer saves nothing; a change is saved', () => {
    const sending = sendingState();
    const acked = onAck(sending, { now: T0, pending: 5 });
    expect(acked.state).toBe(sending);
    expect(onAck(acked.state, { now: T0, pending: 5 }).state).toBe(sending);
    expect(onAck(sending, { now: T0, pending: 0 }).state).toMatchObject({ phase: 'idle' });
    // Below the configured size the streak counts toward growing back, so every ack is news.
    const halved = onFailure(sending, new SyncError('too_large', 'Big.'), ctx({ sentOps: 500 })).state;
    expect(onAck(halved, { now: T0, pending: 5 }).state).toMatchObject({ okStreak: 1, batchLimit: 250 });
  });

  test('a late ack for an abandoned send does not move a stopped drain', () => {
    const paused = onFailure(sendingState(), errorFromResponse(401, '')!, ctx()).state;
    expect(onAck(paused, { now: T0, pending: 0 }).state).toBe(paused);
  });
});

describe('seq_gap (409)', () => {
  test('the outbox still holds the expected seq: resend from it at once', () => {
    const step = onFailure(sendingState(), gap(4), ctx({ outbox: { first: 2, last: 10 } }));
    expect(step.action).toEqual({ type: 'resend-from', seq: 4, maxOps: 500 });
    expect(step.state.phase).toBe('sending');
    expect(step.state.retry.attempt).toBe(0); // not a backoff
  });

  test('the server expects a seq this device already removed: stop, keep every op, say why', () => {
    const step = onFailure(sendingState(), gap(3), ctx({ outbox: { first: 5, last: 10 } }));
    expect(step.state.phase).toBe('failed');
    expect(step.action).toEqual({ type: 'none' });
    expect(step.state.reason).toContain('#3');
    expect(step.state.reason).toContain('lost data');
    expect(step.state.error?.expected).toBe(3);
  });

  test('the server expects a seq beyond anything pending: stop and say why', () => {
    const step = onFailure(sendingState(), gap(12), ctx({ outbox: { first: 5, last: 10 } }));
    expect(step.state.phase).toBe('failed');
    expect(step.state.reason).toContain('#12');
    expect(step.state.reason).toContain('#10');
  });

  test('the outbox emptied meanwhile (acked on another path): nothing to resend', () => {
    const step = onFailure(sendingState(), gap(11), ctx({ outbox: null }));
    expect(step.state.phase).toBe('idle');
    expect(step.action).toEqual({ type: 'none' });
  });
});

describe('lamport_regression (409)', () => {
  test('restamp above the floor and retry at once', () => {
    const error = errorFromResponse(409, JSON.stringify({ code: 'lamport_regression', message: 'm', floor: 77 }))!;
    const step = onFailure(sendingState(), error, ctx());
    expect(step.action).toEqual({ type: 'restamp', floor: 77, maxOps: 500 });
    expect(step.state.phase).toBe('sending');
    expect(step.state.retry.nextAt).toBeNull();
  });

  test('a server that keeps answering it cannot spin the device: after the allowance, back off', () => {
    const error = new SyncError('lamport_regression', 'm', { floor: 5 });
    let state = sendingState();
    for (let i = 0; i < MAX_QUICK_RETRIES; i++) {
      const step = onFailure(state, error, ctx());
      expect(step.action.type).toBe('restamp');
      state = step.state;
    }
    const step = onFailure(state, error, ctx());
    expect(step.state.phase).toBe('backoff');
    expect(step.action.type).toBe('wait');
    // After the wait a fresh allowance lets a real fix (restamp) happen again.
    const resumed = onWake(step.state, { now: step.state.retry.nextAt!, pending: 10 }).state;
    expect(onFailure(resumed, error, ctx()).action.type).toBe('restamp');
  });
});

describe('resume', () => {
  test('from idle sends what waits (syncNow before any wake-up came), and does nothing when nothing waits', () => {
    const idle = initialDrain(500);
    expect(onResume(idle, { now: T0, pending: 3 })).toEqual({ state: { ...idle, phase: 'sending' }, action: { type: 'send', maxOps: 500 } });
    expect(onResume(idle, { now: T0, pending: 0 }).action).toEqual({ type: 'none' });
  });
});

describe('401', () => {
  test('stops draining and keeps every op until the person signs in again', () => {
    const step = onFailure(sendingState(), errorFromResponse(401, JSON.stringify({ code: 'auth_required', message: 'Expired.' }))!, ctx());
    expect(step.state.phase).toBe('paused-auth');
    expect(step.action).toEqual({ type: 'none' }); // never a dead letter, never a removal
    expect(step.state.error?.kind).toBe('auth_required');
    const paused = step.state;
    expect(onWake(paused, { now: T0 + 1, pending: 10 }).action).toEqual({ type: 'none' });
    expect(onResume(paused, { now: T0 + 1, pending: 10 }).action).toEqual({ type: 'none' });
    expect(onFailure(paused, networkError(null), ctx()).state).toBe(paused); // stale answers are ignored
    const signedIn = onSignIn(paused, { now: T0 + 2, pending: 10 });
    expect(signedIn.state.phase).toBe('sending');
    expect(signedIn.action).toEqual({ type: 'send', maxOps: 500 });
    expect(signedIn.state.error).toBeNull();
  });
});

describe('413 / too many ops', () => {
  const tooLarge = errorFromResponse(413, '<html>Request Entity Too Large</html>')!;

  test('halves the batch down to 1, retrying at once, then backs off', () => {
    let state = sendingState(500);
    const limits: number[] = [];
    for (;;) {
      const step = onFailure(state, tooLarge, ctx({ sentOps: state.batchLimit }));
      state = step.state;
      if (step.action.type !== 'send') break;
      expect(step.action.maxOps).toBe(state.batchLimit);
      limits.push(state.batchLimit);
    }
    expect(limits).toEqual([250, 125, 62, 31, 15, 7, 3, 1]);
    expect(state.phase).toBe('backoff'); // one op that still does not fit cannot be split
    expect(state.batchLimit).toBe(1);
    expect(state.error?.raw).toContain('Too Large');
  });

  test('halves from what was actually sent when the byte bound made the batch smaller', () => {
    const step = onFailure(sendingState(500), tooLarge, ctx({ sentOps: 40 }));
    expect(step.action).toEqual({ type: 'send', maxOps: 20 });
  });

  test('recovers slowly: the limit doubles after each run of acks, back to the configured max', () => {
    let state = sendingState(500);
    for (let i = 0; i < 8; i++) state = onFailure(state, tooLarge, ctx({ sentOps: state.batchLimit })).state;
    expect(state.batchLimit).toBe(1);
    expect(state.phase).toBe('sending'); // the eighth halving reached 1 and is being sent
    const seen: number[] = [];
    for (let acks = 0; state.batchLimit < 500; acks++) {
      expect(acks).toBeLessThan(100);
      state = onAck(state, { now: T0, pending: 10 }).state;
      seen.push(state.batchLimit);
    }
    expect(seen.slice(0, GROW_AFTER_ACKS)).toEqual([1, 1, 1, 2]);
    expect(seen.at(-1)).toBe(500);
    expect(new Set(seen)).toEqual(new Set([1, 2, 4, 8, 16, 32, 64, 128, 256, 500]));
  });
});

describe('429, 5xx, network error', () => {
  test('429 honours retryAfterMs even when the jitter would come back sooner', () => {
    const error = errorFromResponse(429, JSON.stringify({ code: 'rate_limited', message: 'Slow down.', retryAfterMs: 30_000 }))!;
    const step = onFailure(sendingState(), error, ctx({ random: () => 0 }));
    expect(step.state.phase).toBe('backoff');
    expect(step.action).toEqual({ type: 'wait', until: T0 + 30_000 });
    // Waking early (an `online` event) does not cut the server's floor short.
    expect(onWake(step.state, { now: T0 + 29_999, pending: 10 }).action).toEqual({ type: 'wait', until: T0 + 30_000 });
    expect(onWake(step.state, { now: T0 + 30_000, pending: 10 }).action.type).toBe('send');
  });

  test('attempts grow, delays stay under the cap, "failing since" stays at the first failure', () => {
    const errors = [errorFromResponse(503, 'Service Unavailable')!, networkError(new TypeError('Failed to fetch'))];
    let state = sendingState();
    let now = T0;
    let maxSeen = 0;
    for (let i = 0; i < 40; i++) {
      const step = onFailure(state, errors[i % 2]!, ctx({ now, random: () => 0.999 }));
      state = step.state;
      expect(state.phase).toBe('backoff');
      expect(state.retry.attempt).toBe(i + 1);
      expect(state.retry.since).toBe(T0);
      const delay = state.retry.nextAt! - now;
      expect(delay).toBeLessThanOrEqual(DEFAULT_BACKOFF.capMs);
      expect(delay).toBeGreaterThanOrEqual(maxSeen === DEFAULT_BACKOFF.capMs ? 0 : maxSeen); // grows until the cap
      maxSeen = Math.max(maxSeen, delay);
      now = state.retry.nextAt!;
      state = onWake(state, { now, pending: 10 }).state;
    }
    expect(maxSeen).toBeGreaterThan(DEFAULT_BACKOFF.capMs * 0.99);
    expect(state.retry.lastError).toContain('could not be reached');
  });

  test('property: whatever the failures and randomness, the next try is never past max(cap, server floor)', () => {
    const kinds = fc.constantFrom<'server' | 'network' | 'rate_limited' | 'unparseable'>('server', 'network', 'rate_limited', 'unparseable');
    fc.assert(
      fc.property(fc.array(fc.tuple(kinds, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.nat(600_000)), { minLength: 1, maxLength: 30 }), (failures) => {
        let state = sendingState();
        let now = T0;
        for (const [kind, r, retryAfterMs] of failures) {
          const error = new SyncError(kind, kind, kind === 'rate_limited' ? { retryAfterMs } : {});
          state = onFailure(state, error, ctx({ now, random: () => r })).state;
          const bound = Math.max(DEFAULT_BACKOFF.capMs, kind === 'rate_limited' ? retryAfterMs : 0);
          expect(state.retry.nextAt! - now).toBeLessThanOrEqual(bound);
          expect(state.retry.since).toBe(T0);
          now = state.retry.nextAt!;
          state = onWake(state, { now, pending: 1 }).state;
          expect(state.phase).toBe('sending');
        }
      }),
    );
  });

  test('reset on the push path says nothing about the ops: back off, never stop', () => {
    const step = onFailure(sendingState(), errorFromResponse(410, JSON.stringify({ code: 'reset', message: 'Below horizon.' }))!, ctx());
    expect(step.state.phase).toBe('backoff');
    expect(step.action.type).toBe('wait');
  });

  test('the person pressing retry cuts a backoff short', () => {
    const { state } = onFailure(sendingState(), networkError(null), ctx());
    expect(onResume(state, { now: T0 + 1, pending: 10 }).action).toEqual({ type: 'send', maxOps: 500 });
  });

  test('a stale failure while already waiting does not count as another attempt', () => {
    const { state } = onFailure(sendingState(), networkError(null), ctx());
    expect(onFailure(state, networkError(null), ctx()).state).toBe(state);
  });
});

describe('unparseable answer', () => {
  test('is a transient failure recorded with the raw text, never a silent stop', () => {
    const raw = '<html><body>Please accept the terms of the hotel WiFi</body></html>';
    const step = onFailure(sendingState(), errorFromResponse(200, raw)!, ctx());
    expect(step.state.phase).toBe('backoff');
    expect(step.action.type).toBe('wait');
    expect(step.state.error).toMatchObject({ kind: 'unparseable', raw, status: 200 });
    expect(step.state.retry.attempt).toBe(1);
  });
});

describe('refusals that retrying cannot fix', () => {
  test('invalid (a malformed batch: our bug) stops with every op kept, until the person retries', () => {
    const error = errorFromResponse(400, JSON.stringify({ code: 'invalid', message: 'ops.0.at: Invalid type' }))!;
    const step = onFailure(sendingState(), error, ctx());
    expect(step.state.phase).toBe('failed');
    expect(step.action).toEqual({ type: 'none' });
    expect(step.state.reason).toContain('ops.0.at: Invalid type');
    expect(step.state.reason).toContain('kept');
    expect(onWake(step.state, { now: T0, pending: 10 }).action).toEqual({ type: 'none' });
    const resumed = onResume(step.state, { now: T0, pending: 10 });
    expect(resumed.state.phase).toBe('sending');
    expect(resumed.state.reason).toBeNull();
  });

  test('forbidden and protocol breaks stop with the server message as the reason', () => {
    for (const error of [errorFromResponse(403, JSON.stringify({ code: 'forbidden', message: 'Not a member of s1.' }))!, gapWithoutExpected()]) {
      const step = onFailure(sendingState(), error, ctx());
      expect(step.state.phase).toBe('failed');
      expect(step.state.reason).toBe(error.message);
    }
  });
});

function gapWithoutExpected(): SyncError {
  const error = errorFromResponse(409, JSON.stringify({ code: 'seq_gap', message: 'Gap.' }))!;
  expect(error.kind).toBe('protocol');
  return error;
}

describe('batch size follows the measured time of each answer', () => {
  const acked = (state: DrainState, ops: number, ms: number) => onAck(state, { now: T0, pending: 10, batch: { ops, ms } }).state;
  const timedOut = new SyncError('network', 'No answer to a push within 30 s.', { timedOut: true });

  test('a slow answer shrinks the limit in proportion, so the next batch is answered within the target', () => {
    const state = acked(sendingState(500), 500, 4 * BATCH_TARGET_MS);
    expect(state.batchLimit).toBe(125);
    expect(onAck(state, { now: T0, pending: 10 }).action).toEqual({ type: 'send', maxOps: 125 });
    // Slower still: smaller again, never below one op.
    expect(acked(state, 125, 1000 * BATCH_TARGET_MS).batchLimit).toBe(1);
  });

  test('quick answers keep the full size; an answer for one op, or just within the target, changes nothing', () => {
    expect(acked(sendingState(500), 500, 20).batchLimit).toBe(500);
    expect(acked(sendingState(500), 500, BATCH_TARGET_MS).batchLimit).toBe(500);
    expect(acked(sendingState(500), 1, 10 * BATCH_TARGET_MS).batchLimit).toBe(500);
  });

  test('the limit grows back only while twice the batch is expected within half the target', () => {
    let state = acked(sendingState(500), 500, 4 * BATCH_TARGET_MS); // 125
    // At 8 ms per op, 250 ops would take 2 s: more than half the target, so 125 stays however many acks.
    for (let i = 0; i < 3 * GROW_AFTER_ACKS; i++) state = acked(state, 125, 1000);
    expect(state.batchLimit).toBe(125);
    // The link got faster (2 ms per op): after a run of acks it doubles, and on to the configured max.
    const seen: number[] = [];
    for (let i = 0; i < 10 * GROW_AFTER_ACKS && state.batchLimit < 500; i++) {
      state = acked(state, state.batchLimit, state.batchLimit * 2);
      seen.push(state.batchLimit);
    }
    expect([...new Set(seen)]).toEqual([125, 250, 500]);
  });

  test('a push that timed out halves the batch and backs off; other network failures keep the size', () => {
    const half = onFailure(sendingState(500), timedOut, ctx({ sentOps: 500 }));
    expect(half.state.phase).toBe('backoff');
    expect(half.state.batchLimit).toBe(250);
    expect(half.state.error?.timedOut).toBe(true);
    const away = onFailure(sendingState(500), networkError(new TypeError('Failed to fetch')), ctx({ sentOps: 500 }));
    expect(away.state.batchLimit).toBe(500);
    // An HTTP push cut off by AbortSignal.timeout is a timeout too.
    expect(networkError(new DOMException('The operation timed out.', 'TimeoutError')).timedOut).toBe(true);
  });
});

