// A manual clock with timers, for the fast suites: time moves only when a test calls `advance`, and
// timers fire in due order, each with `now()` reading its own due time, as they would for real.
// The members are arrow functions so the clock can be passed whole or taken apart as ports.

export interface FakeClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): number;
  clearTimeout(handle: unknown): void;
  /** Moves time forward by `ms`, firing every timer that falls due on the way (and any they set). */
  advance(ms: number): void;
  /** Timers set and not yet fired or cleared. */
  pending(): number;
  /** A Sleep port on this clock: moves time by `ms` (firing what falls due) instead of waiting. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Every sleep asked for, in ms. */
  readonly sleeps: number[];
}

// A timer that keeps re-arming itself at 0 ms would hang `advance`; fail the test instead.
const MAX_FIRES_PER_ADVANCE = 100_000;

export function createFakeClock(start = 0): FakeClock {
  let time = start;
  let nextId = 1;
  const timers = new Map<number, { at: number; callback: () => void }>();
  const sleeps: number[] = [];

  const advance = (ms: number) => {
    const end = time + ms;
    for (let fired = 0; ; fired++) {
      if (fired > MAX_FIRES_PER_ADVANCE) throw new Error('fake clock: timers keep re-arming without time passing');
      let due: number | undefined;
      // Map order is insertion order, so timers due at the same instant fire in the order they were set.
      for (const [id, timer] of timers) {
        if (timer.at <= end && (due === undefined || timer.at < timers.get(due)!.at)) due = id;
      }
      if (due === undefined) break;
      const timer = timers.get(due)!;
      timers.delete(due);
      time = timer.at;
      timer.callback();
    }
    time = end;
  };

  return {
    now: () => time,
    setTimeout: (callback, ms) => {
      const id = nextId++;
      timers.set(id, { at: time + Math.max(0, ms), callback });
      return id;
    },
    clearTimeout: (handle) => {
      if (typeof handle === 'number') timers.delete(handle);
    },
    advance,
    pending: () => timers.size,
    sleeps,
    sleep: async (ms) => {
      sleeps.push(ms);
      advance(ms);
    },
  };
}
