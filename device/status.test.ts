// The status a person sees, folded from the drainer, the socket, the online flag and the outbox: each
// state where it belongs, failures never shown as syncing or synced, a healthy reconnect never shown as
// failing, and the fields that say why and until when.
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import type { DrainPhase } from '../core/outbox-drain.ts';
import { initialDrain } from '../core/outbox-drain.ts';
import type { SocketStatus } from './socket-manager.ts';
import { createFakeClock } from '../tests/support/fake-clock.ts';
import { aggregate as fold, createStatusTracker, type DrainView, drainViewOfState, EMPTY_OUTBOX, FAILING_AFTER_MS, IDLE_DRAIN,
  type StatusParts, UNKNOWN_STORAGE } from './status.ts';

const OPEN: SocketStatus = { state: 'open', since: 1 };
const base: StatusParts = {
  online: true, socket: OPEN, socketFailingSince: null, welcomed: true, subscribed: 1, caughtUp: 1,
  drain: IDLE_DRAIN, outbox: EMPTY_OUTBOX, serverLag: 12, socketError: null, signedOut: false, onlineSince: null,
  background: true, storage: { persisted: true, usage: 1000, quota: 1_000_000 },
};
/** The time the tests fold at: streaks below began at 100–700, so by default they are past the grace. */
const NOW = 100_000;
const aggregate = (p: StatusParts, now = NOW) => fold(p, now);
const parts = (change: Partial<StatusParts>): StatusParts => ({ ...base, ...change });
const drain = (change: Partial<DrainView>): DrainView => ({ ...IDLE_DRAIN, ...change });
const waiting = (attempt: number): SocketStatus => ({ state: 'waiting', attempt, nextAt: 9_000, lastError: 'The sync server could not be reached.' });
const outbox = (count: number) => ({ ...EMPTY_OUTBOX, count, bytes: count * 100, oldestAt: count > 0 ? 500 : null, span: count > 0 ? { first: 1, last: count } : null });
const networkError = { kind: 'network' as const, message: 'The server could not be reached.' };

describe('state', () => {
  test('synced: socket open, welcomed, every space caught up, nothing waiting', () => {
    expect(aggregate(base)).toMatchObject({ state: 'synced', connected: true, serverLag: 12, lastError: null });
  });

  test('syncing: draining, ops waiting, or still catching up', () => {
    expect(aggregate(parts({ drain: drain({ phase: 'sending', inFlight: 200, progress: { done: 0, total: 300 } }), outbox: outbox(300) })))
      .toMatchObject({ state: 'syncing', inFlight: 200, progress: { done: 0, total: 300 }, pending: 300, pendingBytes: 30_000 });
    expect(aggregate(parts({ outbox: outbox(2) }))).toMatchObject({ state: 'syncing', oldestPendingAt: 500 });
    expect(aggregate(parts({ caughtUp: 0 })).state).toBe('syncing');
    // Ops waiting while the socket is still connecting: the worker drains over HTTP regardless.
    expect(aggregate(parts({ socket: { state: 'connecting', attempt: 1 }, welcomed: false, outbox: outbox(1) })).state).toBe('syncing');
  });

  test('connecting: nothing waiting and no socket yet, or retrying within the grace, with the reason shown', () => {
    expect(aggregate(parts({ socket: { state: 'idle' }, welcomed: false })).state).toBe('connecting');
    expect(aggregate(parts({ socket: { state: 'connecting', attempt: 1 }, welcomed: false })).state).toBe('connecting');
    expect(aggregate(parts({ socket: OPEN, welcomed: false })).state).toBe('connecting'); // open, hello not answered
    const blip = aggregate(parts({ socket: waiting(3), welcomed: false, socketFailingSince: 700 }), 700 + FAILING_AFTER_MS - 1);
    expect(blip).toMatchObject({ state: 'connecting', nextAttemptAt: 9_000, failingSince: 700, connected: false, serverLag: null,
      lastError: 'The sync server could not be reached.', errorKind: 'network' });
    const backing = aggregate(parts({ outbox: outbox(3), drain: drain({ phase: 'backoff', lastError: networkError, failingSince: 100, nextAttemptAt: 5_000 }) }), 1_000);
    expect(backing).toMatchObject({ state: 'connecting', lastError: 'The server could not be reached.', nextAttemptAt: 5_000 });
  });

  test('a streak counts from when the network came back: coming online after an hour offline is not failing at once', () => {
    const longOffline = parts({ socket: waiting(9), welcomed: false, socketFailingSince: 100, onlineSince: 90_000 });
    expect(aggregate(longOffline, 90_500).state).toBe('connecting');
    expect(aggregate(longOffline, 90_000 + FAILING_AFTER_MS).state).toBe('failing');
  });

  test('failing: retrying past the grace, or stopped in a way only a person can fix (no grace)', () => {
    const backoff = aggregate(parts({
      outbox: outbox(3),
      drain: drain({ phase: 'backoff', lastError: networkError, failingSince: 100, nextAttemptAt: 5_000 }),
    }));
    expect(backoff).toMatchObject({ state: 'failing', failingSince: 100, nextAttemptAt: 5_000, lastError: 'The server could not be reached.', pending: 3 });
    const failed = aggregate(parts({ drain: drain({ phase: 'failed', reason: 'You are not a member of this space.', lastError: networkError, failingSince: NOW }) }));
    expect(failed).toMatchObject({ state: 'failing', lastError: 'You are not a member of this space.' });
    expect(aggregate(parts({ socket: waiting(2), welcomed: false, socketFailingSince: 700 })))
      .toMatchObject({ state: 'failing', failingSince: 700, lastError: 'The sync server could not be reached.' });
    expect(aggregate(parts({ socket: { state: 'stopped', lastError: 'Refused (4403).' }, welcomed: false })))
      .toMatchObject({ state: 'failing', lastError: 'Refused (4403).' });
  });

  test('never synced while an error stands: a space the server refused keeps the status failing, with the reason', () => {
    expect(aggregate(parts({ socketError: 'You are not a member of space "s:x".' })))
      .toMatchObject({ state: 'failing', lastError: 'You are not a member of space "s:x".', errorKind: 'forbidden' });
  });

  test('signed-out wins over everything, and shows no error', () => {
    const out = aggregate(parts({ signedOut: true, outbox: outbox(3), drain: drain({ phase: 'backoff', lastError: networkError, failingSince: 1 }) }));
    expect(out).toMatchObject({ state: 'signed-out', pending: 3, lastError: null, errorKind: null, nextAttemptAt: null });
  });

  test('offline wins over failing and syncing, but not over auth-required', () => {
    const failingOffline = parts({ online: false, outbox: outbox(4), drain: drain({ phase: 'backoff', lastError: networkError, failingSince: 1 }) });
    expect(aggregate(failingOffline)).toMatchObject({ state: 'offline', online: false, pending: 4 });
    expect(aggregate(parts({ online: false, drain: drain({ phase: 'paused-auth' }) })).state).toBe('auth-required');
  });

  test('auth-required: the drain paused for sign-in, or the socket refused with 4401', () => {
    expect(aggregate(parts({ drain: drain({ phase: 'paused-auth', lastError: { kind: 'auth_required', message: 'Sign in again.' } }), outbox: outbox(5) })))
      .toMatchObject({ state: 'auth-required', pending: 5, lastError: 'Sign in again.' });
    expect(aggregate(parts({ socket: { state: 'auth-required' }, welcomed: false })))
      .toMatchObject({ state: 'auth-required', lastError: 'Sign in again to keep syncing.' });
  });

  test('property: while any failure stands the state is never syncing or synced, and says why', () => {
    const phase = fc.constantFrom<DrainPhase>('idle', 'sending', 'backoff', 'paused-auth', 'failed');
    const socket = fc.constantFrom<SocketStatus>(OPEN, { state: 'idle' }, { state: 'connecting', attempt: 3 }, waiting(1), waiting(5),
      { state: 'auth-required' }, { state: 'stopped' }, { state: 'stopped', lastError: 'no' });
    fc.assert(fc.property(phase, socket, fc.boolean(), fc.boolean(), fc.nat(5), fc.nat(2 * FAILING_AFTER_MS), fc.option(fc.string({ minLength: 1 })),
      (p, s, online, welcomed, count, elapsed, socketError) => {
        const since = 50_000;
        const status = aggregate(parts({
          drain: drain({ phase: p, failingSince: p === 'backoff' || p === 'failed' ? since : null, lastError: p === 'idle' ? null : networkError }),
          socket: s, online, welcomed, outbox: outbox(count), socketFailingSince: s.state === 'waiting' ? since : null, socketError,
        }), since + elapsed);
        const failed = p === 'backoff' || p === 'failed' || p === 'paused-auth' || s.state === 'auth-required' || s.state === 'waiting'
          || (s.state === 'stopped' && s.lastError !== undefined) || socketError !== null;
        if (failed) {
          expect(['failing', 'connecting', 'auth-required', 'offline']).toContain(status.state);
          if (online) expect(status.lastError).not.toBeNull();
        }
        const stuck = p === 'failed' || (s.state === 'stopped' && s.lastError !== undefined) || socketError !== null;
        const auth = p === 'paused-auth' || s.state === 'auth-required';
        if (online && !auth && stuck) expect(status.state).toBe('failing');
        if (online && !auth && !stuck && failed) expect(status.state).toBe(elapsed >= FAILING_AFTER_MS ? 'failing' : 'connecting');
        if (status.state === 'synced') expect(status.pending).toBe(0);
      }));
  });
});

describe('delivery and storage', () => {
  test('delivery says whether waiting changes can leave with the app closed', () => {
    expect(aggregate(parts({ outbox: outbox(2) })).delivery).toBe('background');
    expect(aggregate(parts({ outbox: outbox(2), background: false })).delivery).toBe('when-open');
  });

  test('unsent changes in storage the browser may clear are at risk: not persisted, or it cannot say', () => {
    const refused = { persisted: false, usage: 10, quota: 100 };
    expect(aggregate(parts({ outbox: outbox(3), storage: refused }))).toMatchObject({ unsentAtRisk: true, storage: refused });
    expect(aggregate(parts({ outbox: outbox(3), storage: UNKNOWN_STORAGE })).unsentAtRisk).toBe(true);
    // Refused changes kept for retry are unsent too.
    expect(aggregate(parts({ outbox: { ...EMPTY_OUTBOX, dead: 1 }, storage: refused })).unsentAtRisk).toBe(true);
    // Persisted, or nothing unsent: nothing to warn about.
    expect(aggregate(parts({ outbox: outbox(3) })).unsentAtRisk).toBe(false);
    expect(aggregate(parts({ storage: refused })).unsentAtRisk).toBe(false);
  });
});

describe('drain view of a stored state', () => {
  test('a page that has heard no broadcast shows what the drainer stored', () => {
    const stored = { ...initialDrain(500), phase: 'backoff' as const, error: networkError,
      retry: { attempt: 3, nextAt: 9_000, lastError: networkError.message, since: 100 } };
    expect(drainViewOfState(stored)).toEqual({
      phase: 'backoff', inFlight: 0, progress: null, lastError: networkError, failingSince: 100, nextAttemptAt: 9_000, reason: null,
    });
    expect(drainViewOfState(undefined)).toEqual(IDLE_DRAIN);
  });
});

describe('tracker', () => {
  test('tells listeners only when the folded status changes', () => {
    const tracker = createStatusTracker(base, () => 1_000);
    const seen: string[] = [];
    tracker.subscribe((status) => seen.push(status.state));
    tracker.update({ serverLag: 12 });
    tracker.update({ outbox: outbox(1) });
    tracker.update({ outbox: outbox(1) });
    tracker.update({ outbox: outbox(0) });
    expect(seen).toEqual(['syncing', 'synced']);
  });

  test('keeps since when the socket has been failing, until it opens again', () => {
    let now = 1_000;
    const tracker = createStatusTracker(base, () => now);
    tracker.update({ socket: waiting(1), welcomed: false });
    now = 5_000;
    tracker.update({ socket: { state: 'connecting', attempt: 2 } });
    tracker.update({ socket: waiting(2) });
    expect(tracker.get()).toMatchObject({ state: 'connecting', failingSince: 1_000 });
    now = 1_000 + FAILING_AFTER_MS;
    tracker.update({ socket: waiting(3) });
    expect(tracker.get()).toMatchObject({ state: 'failing', failingSince: 1_000 });
    tracker.update({ socket: OPEN, welcomed: true });
    now = 90_000;
    tracker.update({ socket: waiting(2), welcomed: false });
    expect(tracker.get().failingSince).toBe(90_000);
  });

  test('turns failing by itself once a streak outlasts the grace, with no new event (timers port)', () => {
    const clock = createFakeClock(1_000);
    const tracker = createStatusTracker(base, clock.now, clock);
    const seen: string[] = [];
    tracker.subscribe((status) => seen.push(status.state));
    tracker.update({ socket: waiting(1), welcomed: false });
    clock.advance(FAILING_AFTER_MS - 100);
    expect(seen).toEqual(['connecting']);
    clock.advance(200);
    expect(seen).toEqual(['connecting', 'failing']);
    tracker.update({ socket: OPEN, welcomed: true });
    expect(seen.at(-1)).toBe('synced');
    expect(clock.pending()).toBe(0);
    tracker.close();
  });

  test('the last ack time is the outbox\'s, whichever drainer applied it; a fresh drainer does not hide it', () => {
    const tracker = createStatusTracker(base, () => 0);
    tracker.update({ outbox: { ...EMPTY_OUTBOX, lastAckAt: 500 } });
    tracker.update({ drain: IDLE_DRAIN }); // a fresh drainer in another context reports in
    expect(tracker.get().lastAckAt).toBe(500);
    tracker.update({ outbox: { ...EMPTY_OUTBOX, lastAckAt: 800 } });
    expect(tracker.get().lastAckAt).toBe(800);
  });
});
