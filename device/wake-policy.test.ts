// When a wake-up cuts a backoff short: the network returning, the app opening, and the socket's welcome
// (the one sign a browser without Background Sync gets when the server, not the network, was away).
import { describe, expect, test } from 'bun:test';
import { IDLE_DRAIN, type DrainView } from './status.ts';
import { onlineWake, welcomeWake } from './wake-policy.ts';

const networkError = { kind: 'network' as const, message: 'The server could not be reached.' };
const backoff: DrainView = { ...IDLE_DRAIN, phase: 'backoff', lastError: networkError, failingSince: 1, nextAttemptAt: 300_000 };
const floored: DrainView = { ...backoff, lastError: { kind: 'rate_limited' as const, message: 'Slow down.', retryAfterMs: 60_000 } };

describe('wake-ups that prove the server is reachable', () => {
  test('the socket\'s welcome ends a network backoff at once, but not a floor the server set', () => {
    expect(welcomeWake(backoff)).toBe('resume');
    expect(welcomeWake(floored)).toBe('drain');
    expect(welcomeWake(IDLE_DRAIN)).toBe('drain');
    expect(welcomeWake({ ...IDLE_DRAIN, phase: 'paused-auth' })).toBe('signed-in');
    // A drain that needs the person (refused for good) is not restarted by a reconnect.
    expect(welcomeWake({ ...IDLE_DRAIN, phase: 'failed', reason: 'Refused.' })).toBe('drain');
  });

  test('the network (or the app) coming back does the same, and leaves sign-in to the person', () => {
    expect(onlineWake(backoff)).toBe('resume');
    expect(onlineWake(floored)).toBe('drain');
    expect(onlineWake({ ...IDLE_DRAIN, phase: 'paused-auth' })).toBe('drain');
  });
});
