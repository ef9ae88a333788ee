// Real implementations of the drainer's small ports (lock and sleep), and an in-process lock for
// tests and for code that must serialize drains inside one context only.
import type { DrainLock, Sleep } from './drainer.ts';

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

/** setTimeout as a Sleep: resolves after `ms`, or at once when `signal` aborts. */
export const timerSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
