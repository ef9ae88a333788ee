// Full-jitter exponential backoff for transient failures (429, 5xx, network errors, unparseable
// answers). Ops are never given up on (DESIGN invariant 8), so there is no max-attempts: the delay
// just stops growing at the cap. Full jitter (uniform in [0, ceiling)) rather than "ceiling ± a bit"
// spreads out the many devices that all lose the server at the same moment and would otherwise come
// back in lockstep. Time and randomness are parameters; the caller owns the timer.
//
//   initialRetry() ──recordFailure──▶ { attempt: n+1, nextAt, lastError, since } ──recordFailure──▶ …
//         ▲                                         │
//         └────────────── clearFailures ────────────┘

export interface BackoffPolicy {
  /** Upper bound of the first delay; each failure doubles it. */
  baseMs: number;
  /** The bound stops doubling here. */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 5 * 60_000 };

/**
 * The most a server-sent floor (`retryAfterMs`, Retry-After) can hold a device back. The floor is
 * honoured even above `capMs`, since retrying earlier would only earn another 429, but a
 * misconfigured or hostile server must not park a person's writes for days: after an hour the
 * device asks again.
 */
export const MAX_SERVER_FLOOR_MS = 60 * 60_000;

// 2 ** 1023 is the largest finite power of two. Past it the bound would be Infinity, and with a zero
// base 0 * Infinity is NaN; any realistic cap is reached long before this exponent anyway.
const MAX_EXPONENT = 1023;

/** The exclusive upper bound of the jittered delay for `attempt` (0 for the first retry). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  // `> 0` also sends NaN and negative attempts to exponent 0.
  const exponent = attempt > 0 ? Math.min(Math.floor(attempt), MAX_EXPONENT) : 0;
  const grown = policy.baseMs * 2 ** exponent;
  return grown < policy.capMs ? grown : policy.capMs;
}

/**
 * How long to wait before retry number `attempt` (0-based):
 * `max(floor, ⌊random() · min(cap, base · 2^attempt)⌋)`, where `floor` is the server's
 * `retryAfterMs`, rounded up to whole ms and clamped to [0, MAX_SERVER_FLOOR_MS].
 */
export function backoffDelay(
  attempt: number,
  random: () => number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  floorMs?: number,
): number {
  const floor = serverFloor(floorMs);
  const jittered = Math.floor(unitInterval(random()) * backoffCeiling(attempt, policy));
  return jittered > floor ? jittered : floor;
}

function serverFloor(floorMs: number | undefined): number {
  // `> 0` also turns undefined and NaN into "no floor"; Infinity meets the clamp.
  if (floorMs === undefined || !(floorMs > 0)) return 0;
  return Math.min(Math.ceil(floorMs), MAX_SERVER_FLOOR_MS);
}

// A random source outside [0, 1) must not produce a delay outside the documented range. Mapping a
// broken 1 to "just below 1" rather than to 0 avoids turning a bad RNG into a retry storm.
function unitInterval(r: number): number {
  if (r >= 1) return 1 - 2 ** -53;
  return r > 0 ? r : 0;
}

/** What a drainer remembers about the failures of its current streak; shown in the sync status. */
export interface RetryState {
  /** Failures in a row; also the exponent for the next delay. */
  attempt: number;
  /** When the next try is due (ms, the caller's clock); null when not waiting. */
  nextAt: number | null;
  lastError: string | null;
  /** When the streak began, so the page can say "failing since T". */
  since: number | null;
}

export interface FailureInput {
  now: number;
  random: () => number;
  error: string;
  /** The server's floor (429 `retryAfterMs` or Retry-After), if it sent one. */
  retryAfterMs?: number;
  policy?: BackoffPolicy;
}

export function initialRetry(): RetryState {
  return { attempt: 0, nextAt: null, lastError: null, since: null };
}

export function recordFailure(state: RetryState, failure: FailureInput): RetryState {
  const delay = backoffDelay(state.attempt, failure.random, failure.policy, failure.retryAfterMs);
  return {
    attempt: state.attempt + 1,
    nextAt: failure.now + delay,
    lastError: failure.error,
    since: state.since ?? failure.now,
  };
}

/** Ends the streak. Returns `state` itself when there was none, so callers can skip a write. */
export function clearFailures(state: RetryState): RetryState {
  const idle = state.attempt === 0 && state.nextAt === null && state.lastError === null && state.since === null;
  return idle ? state : initialRetry();
}

/** Whether a try may start at `now`. */
export function retryDue(state: RetryState, now: number): boolean {
  return state.nextAt === null || now >= state.nextAt;
}
