// Real implementations of the drainer's small ports (lock and sleep), and an in-process lock for
// tests and for code that must serialize drains inside one context only.
import type { DrainLock, Sleep, TimerPort } from './ports.ts';

/**
 * The Web Locks API: one holder per name across every tab and the Service Worker of the origin,
 * which is what "one drainer at a time per device" needs (DESIGN: two drains at once send the same
 * batch twice). The lock is released when `fn` settles, or when its holder's context dies.
 */
export function createWebLock(locks: LockManager = navigator.locks): DrainLock {
  return {
    run: <T>(name: string, fn: () => Promise<T>) => locks.request(name, () => fn()) as Promise<T>,
  };
}

/** A FIFO mutex per name within this JavaScript context: the fake of createWebLock. */
export function createLocalLock(): DrainLock {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(name: string, fn: () => Promise<T>): Promise<T> {
      const previous = tails.get(name) ?? Promise.resolve();
      const result = previous.then(fn, fn);
      // The next holder waits for this one to settle, never for its outcome.
      const tail = result.then(() => undefined, () => undefined);
      tails.set(name, tail);
      void tail.then(() => {
        if (tails.get(name) === tail) tails.delete(name);
      });
      return result;
    },
  };
}

/** A Sleep on `timers`: resolves after `ms`, or at once when `signal` aborts. */
export function sleepOn(timers: TimerPort): Sleep {
  return (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        timers.clearTimeout(handle);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const handle = timers.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
}

/** The context's own timers as a TimerPort (bound: some runtimes' setTimeout must be called on globalThis). */
export const globalTimers: TimerPort = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** setTimeout as a Sleep. */
export const timerSleep: Sleep = sleepOn(globalTimers);
