import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { compareStamps, maxStamp, observe, stampOf, tick } from './clock.ts';
import type { Op, Stamp } from './types.ts';

const RUNS = { numRuns: 1000 };
const lamport = fc.integer({ min: 0, max: 1_000_000 });
const stamp: fc.Arbitrary<Stamp> = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.string({ maxLength: 3, unit: 'binary' }));

describe('Lamport clock', () => {
  test('tick advances by one', () => {
    expect(tick(0)).toBe(1);
    expect(tick(41)).toBe(42);
  });

  test('observe keeps the larger clock', () => {
    expect(observe(3, 10)).toBe(10);
    expect(observe(10, 3)).toBe(10);
    expect(observe(7, 7)).toBe(7);
  });

  test('a tick after observing a remote lamport is newer than that lamport', () => {
    fc.assert(
      fc.property(lamport, lamport, (mine, remote) => {
        const next = tick(observe(mine, remote));
        expect(next).toBeGreaterThan(remote);
        expect(next).toBeGreaterThan(mine);
      }),
      RUNS,
    );
  });
});

describe('compareStamps', () => {
  test('orders by lamport first, whatever the device', () => {
    expect(compareStamps([1, 'zzz'], [2, 'a'])).toBeLessThan(0);
    expect(compareStamps([2, 'a'], [1, 'zzz'])).toBeGreaterThan(0);
  });

  test('breaks lamport ties by device id', () => {
    expect(compareStamps([3, 'a'], [3, 'b'])).toBeLessThan(0);
    expect(compareStamps([3, 'b'], [3, 'a'])).toBeGreaterThan(0);
    expect(compareStamps([3, 'a'], [3, 'a'])).toBe(0);
  });

  test('device ids compare by code unit, not by locale', () => {
    // localeCompare would put 'a' before 'B' and 'ä' before 'z'; replicas on different
    // runtimes must agree, so the order is the plain one.
    expect(compareStamps([1, 'B'], [1, 'a'])).toBeLessThan(0);
    expect(compareStamps([1, 'z'], [1, 'ä'])).toBeLessThan(0);
    expect(compareStamps([1, 'a'], [1, 'ab'])).toBeLessThan(0);
    expect(compareStamps([1, '10'], [1, '9'])).toBeLessThan(0);
  });

  test('is a total order: antisymmetric, transitive, zero only for equal stamps', () => {
    fc.assert(
      fc.property(stamp, stamp, stamp, (a, b, c) => {
        expect(Math.sign(compareStamps(a, b)) + Math.sign(compareStamps(b, a))).toBe(0);
        expect(compareStamps(a, b) === 0).toBe(a[0] === b[0] && a[1] === b[1]);
        if (compareStamps(a, b) <= 0 && compareStamps(b, c) <= 0) {
          expect(compareStamps(a, c)).toBeLessThanOrEqual(0);
        }
      }),
      RUNS,
    );
  });

  test('agrees with sorting by (lamport, device) with < and >', () => {
    fc.assert(
      fc.property(fc.array(stamp, { maxLength: 12 }), (stamps) => {
        const sorted = [...stamps].sort(compareStamps);
        for (let i = 1; i < sorted.length; i++) {
          const [prev, next] = [sorted[i - 1]!, sorted[i]!];
          expect(prev[0] < next[0] || (prev[0] === next[0] && prev[1] <= next[1])).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('stampOf and maxStamp', () => {
  test('stampOf reads lamport and device from an op', () => {
    const op: Op = {
      id: 'd1:4', device: 'd1', seq: 4, lamport: 9, space: 's', collection: 'notes', key: 'k',
      kind: 'patch', value: { title: 'x' }, at: 0,
    };
    expect(stampOf(op)).toEqual([9, 'd1']);
  });

  test('maxStamp treats null as older than everything', () => {
    expect(maxStamp(null, null)).toBeNull();
    expect(maxStamp(null, [1, 'a'])).toEqual([1, 'a']);
    expect(maxStamp([1, 'a'], null)).toEqual([1, 'a']);
    expect(maxStamp([2, 'a'], [1, 'b'])).toEqual([2, 'a']);
    expect(maxStamp([1, 'a'], [1, 'b'])).toEqual([1, 'b']);
  });

  test('maxStamp returns one of its inputs, never older than either, and is commutative', () => {
    const maybe = fc.option(stamp, { nil: null });
    fc.assert(
      fc.property(maybe, maybe, (a, b) => {
        const m = maxStamp(a, b);
        expect(m === a || m === b).toBe(true);
        expect(maxStamp(b, a)).toEqual(m);
        if (m !== null && a !== null) expect(compareStamps(m, a)).toBeGreaterThanOrEqual(0);
        if (m !== null && b !== null) expect(compareStamps(m, b)).toBeGreaterThanOrEqual(0);
      }),
      RUNS,
    );
  });
});
