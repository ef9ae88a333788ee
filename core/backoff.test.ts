import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import {
  DEFAULT_BACKOFF, MAX_SERVER_FLOOR_MS, backoffCeiling, backoffDelay, initialRetry, recordFailure, clearFailures, retryDue,
  type BackoffPolicy, type RetryState,
} from './backoff.ts';

const RUNS = { numRuns: 1000 };
const JUST_BELOW_ONE = 1 - 2 ** -53;

const attempt = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 1_000_000 }));
const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const policy: fc.Arbitrary<BackoffPolicy> = fc
  .tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 24 * 60 * 60_000 }))
  .map(([baseMs, capMs]) => ({ baseMs, capMs }));
const floor = fc.option(fc.integer({ min: 0, max: 2 * MAX_SERVER_FLOOR_MS }), { nil: undefined });

/** The bound a delay must respect, written out independently of the module. */
function expectedCeiling(n: number, p: BackoffPolicy): number {
  let bound = p.baseMs;
  for (let i = 0; i < n && bound < p.capMs; i++) bound *= 2;
  return Math.min(bound, p.capMs);
}

describe('backoffCeiling', () => {
  test('doubles from the base and stops at the cap', () => {
    const seq = [0, 1, 2, 3, 9, 10, 11].map((n) => backoffCeiling(n));
    expect(seq).toEqual([500, 1000, 2000, 4000, 256_000, 300_000, 300_000]);
  });

  test('matches min(cap, base * 2^attempt)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2000 }), policy, (n, p) => {
        expect(backoffCeiling(n, p)).toBe(expectedCeiling(n, p));
      }),
      RUNS,
    );
  });

  test('never decreases as attempts grow', () => {
    fc.assert(
      fc.property(attempt, policy, (n, p) => {
        expect(backoffCeiling(n + 1, p)).toBeGreaterThanOrEqual(backoffCeiling(n, p));
      }),
      RUNS,
    );
  });

  test('does not overflow for huge attempts, even with a zero base', () => {
    for (const n of [1023, 1024, 10_000, 1e9, Number.MAX_SAFE_INTEGER, Infinity]) {
      expect(backoffCeiling(n)).toBe(DEFAULT_BACKOFF.capMs);
      expect(backoffCeiling(n, { baseMs: 0, capMs: 1000 })).toBe(0);
    }
  });

  test('treats a negative or NaN attempt as the first one', () => {
    expect(backoffCeiling(-3)).toBe(500);
    expect(backoffCeiling(Number.NaN)).toBe(500);
  });
});

describe('backoffDelay', () => {
  test('is ⌊random · ceiling⌋ without a floor', () => {
    expect(backoffDelay(0, () => 0.5)).toBe(250);
    expect(backoffDelay(3, () => 0.25)).toBe(1000);
    expect(backoffDelay(10_000, () => 0.5)).toBe(150_000);
  });

  test('lies in [floor, max(floor, ceiling)): the floor itself, or a jittered value under the ceiling', () => {
    fc.assert(
      fc.property(attempt, unit, policy, floor, (n, r, p, f) => {
        const delay = backoffDelay(n, () => r, p, f);
        const lowest = Math.min(f ?? 0, MAX_SERVER_FLOOR_MS);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(lowest);
        if (delay !== lowest) expect(delay).toBeLessThan(backoffCeiling(n, p));
      }),
      RUNS,
    );
  });

  test('stays within the cap for any attempt when no floor is given', () => {
    fc.assert(
      fc.property(attempt, unit, (n, r) => {
        expect(backoffDelay(n, () => r)).toBeLessThan(DEFAULT_BACKOFF.capMs);
      }),
      RUNS,
    );
    expect(backoffDelay(10_000, () => JUST_BELOW_ONE)).toBeLessThanOrEqual(DEFAULT_BACKOFF.capMs);
  });

  test('jitter spans the whole range: random 0 gives the floor, random near 1 gives nearly the ceiling', () => {
    fc.assert(
      fc.property(attempt, policy, floor, (n, p, f) => {
        const lowest = Math.min(f ?? 0, MAX_SERVER_FLOOR_MS);
        const ceiling = backoffCeiling(n, p);
        expect(backoffDelay(n, () => 0, p, f)).toBe(lowest);
        expect(backoffDelay(n, () => JUST_BELOW_ONE, p, f)).toBe(Math.max(lowest, Math.max(0, Math.ceil(ceiling) - 1)));
      }),
      RUNS,
    );
  });

  test('a larger random never gives a shorter delay', () => {
    fc.assert(
      fc.property(attempt, unit, unit, policy, floor, (n, r1, r2, p, f) => {
        const [lo, hi] = r1 <= r2 ? [r1, r2] : [r2, r1];
        expect(backoffDelay(n, () => hi, p, f)).toBeGreaterThanOrEqual(backoffDelay(n, () => lo, p, f));
      }),
      RUNS,
    );
  });

  test("respects the server's floor even above the cap", () => {
    expect(backoffDelay(0, () => 0, DEFAULT_BACKOFF, 10 * 60_000)).toBe(10 * 60_000);
    expect(backoffDelay(50, () => JUST_BELOW_ONE, DEFAULT_BACKOFF, 10 * 60_000)).toBe(10 * 60_000);
    expect(backoffDelay(20, () => 0.9, DEFAULT_BACKOFF, 1000)).toBe(270_000);
  });

  test("clamps the server's floor to one hour and rounds it up to whole ms", () => {
    expect(backoffDelay(0, () => 0, DEFAULT_BACKOFF, 7 * 24 * 60 * 60_000)).toBe(MAX_SERVER_FLOOR_MS);
    expect(backoffDelay(0, () => 0, DEFAULT_BACKOFF, Infinity)).toBe(MAX_SERVER_FLOOR_MS);
    expect(backoffDelay(0, () => 0, DEFAULT_BACKOFF, 1500.2)).toBe(1501);
  });

  test('ignores a meaningless floor', () => {
    expect(backoffDelay(1, () => 0.5, DEFAULT_BACKOFF, -5)).toBe(500);
    expect(backoffDelay(1, () => 0.5, DEFAULT_BACKOFF, Number.NaN)).toBe(500);
  });

  test('a broken random source still gives a delay in range', () => {
    expect(backoffDelay(2, () => 1)).toBe(1999);
    expect(backoffDelay(2, () => 7)).toBe(1999);
    expect(backoffDelay(2, () => -1)).toBe(0);
    expect(backoffDelay(2, () => Number.NaN)).toBe(0);
  });
});

describe('RetryState', () => {
  const failureInput = fc.record({
    now: fc.integer({ min: 0, max: 2 ** 45 }),
    random: unit.map((r) => () => r),
    error: fc.string({ maxLength: 10 }),
    retryAfterMs: floor,
  });

  test('starts idle and due', () => {
    expect(initialRetry()).toEqual({ attempt: 0, nextAt: null, lastError: null, since: null });
    expect(retryDue(initialRetry(), 0)).toBe(true);
  });

  test('a first failure waits up to the base and records when the trouble began', () => {
    const state = recordFailure(initialRetry(), { now: 10_000, random: () => 0.5, error: 'HTTP 503' });
    expect(state).toEqual({ attempt: 1, nextAt: 10_250, lastError: 'HTTP 503', since: 10_000 });
    expect(retryDue(state, 10_249)).toBe(false);
    expect(retryDue(state, 10_250)).toBe(true);
  });

  test('later failures count up, keep the first failure time, and use the given policy', () => {
    let state = recordFailure(initialRetry(), { now: 0, random: () => 0.5, error: 'offline' });
    state = recordFailure(state, { now: 5000, random: () => 0.5, error: 'HTTP 502', policy: { baseMs: 100, capMs: 150 } });
    expect(state).toEqual({ attempt: 2, nextAt: 5075, lastError: 'HTTP 502', since: 0 });
    state = recordFailure(state, { now: 9000, random: () => 0, error: 'HTTP 429', retryAfterMs: 30_000 });
    expect(state).toEqual({ attempt: 3, nextAt: 39_000, lastError: 'HTTP 429', since: 0 });
  });

  test('over any streak: attempt counts failures, nextAt = now + a valid delay, since is the first failure', () => {
    fc.assert(
      fc.property(fc.array(failureInput, { minLength: 1, maxLength: 20 }), (failures) => {
        let state: RetryState = initialRetry();
        failures.forEach((failure, i) => {
          state = recordFailure(state, failure);
          expect(state.attempt).toBe(i + 1);
          expect(state.since).toBe(failures[0]!.now);
          expect(state.lastError).toBe(failure.error);
          const delay = (state.nextAt as number) - failure.now;
          expect(delay).toBe(backoffDelay(i, failure.random, DEFAULT_BACKOFF, failure.retryAfterMs));
        });
      }),
      RUNS,
    );
  });

  test('success after any streak resets to the initial state, and the next failure starts small again', () => {
    fc.assert(
      fc.property(fc.array(failureInput, { maxLength: 30 }), (failures) => {
        const streak = failures.reduce<RetryState>((state, failure) => recordFailure(state, failure), initialRetry());
        const reset = clearFailures(streak);
        expect(reset).toEqual(initialRetry());
        const again = recordFailure(reset, { now: 1, random: () => JUST_BELOW_ONE, error: 'x' });
        expect(again.nextAt).toBe(1 + DEFAULT_BACKOFF.baseMs - 1);
        expect(again.since).toBe(1);
      }),
      RUNS,
    );
  });

  test('clearFailures returns an idle state itself so callers can skip persisting it', () => {
    const idle = initialRetry();
    expect(clearFailures(idle)).toBe(idle);
    const busy = recordFailure(idle, { now: 0, random: () => 0, error: 'e' });
    expect(clearFailures(busy)).not.toBe(busy);
  });

  test('never mutates the state it is given', () => {
    const state = Object.freeze(recordFailure(initialRetry(), { now: 0, random: () => 0.3, error: 'e' }));
    expect(() => recordFailure(state, { now: 1, random: () => 0.3, error: 'f' })).not.toThrow();
    expect(() => clearFailures(state)).not.toThrow();
    expect(state.attempt).toBe(1);
  });
});
