import { describe, expect, test } from 'bun:test';
import { createLocalLock, timerSleep } from './locks.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('createLocalLock', () => {
  test('runs holders of one name one at a time, in order, even when one fails', async () => {
    const lock = createLocalLock();
    const log: string[] = [];
    const hold = (name: string, label: string, fail = false) =>
      lock.run(name, async () => {
        log.push(`${label}:in`);
        await tick();
        log.push(`${label}:out`);
        if (fail) throw new Error(label);
        return label;
      });
    const results = await Promise.allSettled([hold('a', '1', true), hold('a', '2'), hold('b', '3')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    // '3' holds another name, so it runs alongside '1'; '2' waits for '1' to finish.
    expect(log.indexOf('2:in')).toBeGreaterThan(log.indexOf('1:out'));
    expect(log.indexOf('3:in')).toBeLessThan(log.indexOf('1:out'));
  });
});

describe('timerSleep', () => {
  test('waits, or returns at once when aborted', async () => {
    const controller = new AbortController();
    let done = false;
    const sleeping = timerSleep(60_000, controller.signal).then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    controller.abort();
    await sleeping;
    expect(done).toBe(true);
    const start = performance.now();
    await timerSleep(5, new AbortController().signal);
    expect(performance.now() - start).toBeGreaterThanOrEqual(4);
  });
});
