// The status a person sees, folded from the drainer, the socket, the online flag and the outbox: each
// state where it belongs, failures never shown as syncing, and the fields that say why and until when.
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import type { DrainPhase } from '../core/outbox-drain.ts';
import { initialDrain } from '../core/outbox-drain.ts';
import type { SocketStatus } from './socket-manager.ts';
import { aggregate, createStatusTracker, type DrainView, drainViewOfState, EMPTY_OUTBOX, IDLE_DRAIN, type StatusParts } from './status.ts';

const OPEN: SocketStatus = { state: 'open', since: 1 };
const base: StatusParts = {
  online: true, socket: OPEN, socketFailingSince: null, welcomed: true, subscribed: 1, caughtUp: 1,
  drain: IDLE_DRAIN, outbox: EMPTY_OUTBOX, serverLag: 12, socketError: null,
};
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

  test('connecting: nothing waiting and no socket yet, or one failed reconnect (a blip)', () => {
    expect(aggregate(parts({ socket: { state: 'idle' }, welcomed: false })).state).toBe('connecting');
    expect(aggregate(parts({ socket: { state: 'connecting', attempt: 1 }, welcomed: false })).state).toBe('connecting');
    expect(aggregate(parts({ socket: OPEN, welcomed: false })).state).toBe('connecting'); // open, hello not answered
    const blip = aggregate(parts({ socket: waiting(1), welcomed: false, socketFailingSince: 700 }));
    expect(blip).toMatchObject({ state: 'connecting', nextAttemptAt: 9_000, failingSince: null, connected: false, serverLag: null });
  });

  test('failing: drain backing off or stopped, socket refused for good or failing twice in a row', () => {
    const backoff = aggregate(parts({
      outbox: outbox(3),
      drain: drain({ phase: 'backoff', lastError: networkError, failingSince: 100, nextAttemptAt: 5_000 }),
    }));
    expect(backoff).toMatchObject({ state: 'failing', failingSince: 100, nextAttemptAt: 5_000, lastError: 'The server could not be reached.', pending: 3 });
    const failed = aggregate(parts({ drain: drain({ phase: 'failed', reason: 'You are not a member of this space.', lastError: networkError }) }));
    expect(failed).toMatchObject({ state: 'failing', lastError: 'You are not a member of this space.' });
    expect(aggregate(parts({ socket: waiting(2), welcomed: false, socketFailingSince: 700 })))
      .toMatchObject({ state: 'failing', failingSince: 700, lastError: 'The sync server could not be reached.' });
    expect(aggregate(parts({ socket: { state: 'stopped', lastError: 'Refused (4403).' }, welcomed: false })))
      .toMatchObject({ state: 'failing', lastError: 'Refused (4403).' });
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

  test('property: after any failure the state is never syncing (or synced)', () => {
    const phase = fc.constantFrom<DrainPhase>('idle', 'sending', 'backoff', 'paused-auth', 'failed');
    const socket = fc.constantFrom<SocketStatus>(OPEN, { state: 'idle' }, { state: 'connecting', attempt: 3 }, waiting(1), waiting(5),
      { state: 'auth-required' }, { state: 'stopped' }, { state: 'stopped', lastError: 'no' });
    fc.assert(fc.property(phase, socket, fc.boolean(), fc.boolean(), fc.nat(5), (p, s, online, welcomed, count) => {
      const status = aggregate(parts({ drain: drain({ phase: p }), socket: s, online, welcomed, outbox: outbox(count) }));
      const failed = p === 'backoff' || p === 'failed' || p === 'paused-auth' || s.state === 'auth-required'
        || (s.state === 'waiting' && s.attempt >= 2) || (s.state === 'stopped' && s.lastError !== undefined);
      if (failed) expect(['failing', 'auth-required', 'offline']).toContain(status.state);
      if (status.state === 'synced') expect(status.pending).toBe(0);
    }));
  });
});

describe('drain view of a stored state', () => {
  test('a page that has heard no broadcast shows what the drainer stored', () => {
    const stored = { ...initialDrain(500), phase: 'backoff' as const, error: networkError,
      retry: { attempt: 3, nextAt: 9_000, lastError: networkError.message, since: 100 } };
    expect(drainViewOfState(stored, 50)).toEqual({
      phase: 'backoff', inFlight: 0, progress: null, lastError: networkError, failingSince: 100, nextAttemptAt: 9_000, reason: null, lastAckAt: 50,
    });
    expect(drainViewOfState(undefined, null)).toEqual(IDLE_DRAIN);
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
    expect(tracker.get()).toMatchObject({ state: 'failing', failingSince: 1_000 });
    tracker.update({ socket: OPEN, welcomed: true });
    now = 9_000;
    tracker.update({ socket: waiting(2), welcomed: false });
    expect(tracker.get().failingSince).toBe(9_000);
  });

  test('the newest ack time wins, whichever drainer reported it', () => {
    const tracker = createStatusTracker(base, () => 0);
    tracker.update({ drain: drain({ lastAckAt: 500 }) });
    tracker.update({ drain: drain({ lastAckAt: null }) }); // a fresh drainer in another context
    expect(tracker.get().lastAckAt).toBe(500);
    tracker.update({ drain: drain({ lastAckAt: 800 }) });
    expect(tracker.get().lastAckAt).toBe(800);
  });
});
