import { expect, test } from 'bun:test';
import fc from 'fast-check';
import { between, moved, nextOrder } from './order.ts';

test('moving an item up or down puts it exactly one place further', () => {
  fc.assert(fc.property(
    fc.uniqueArray(fc.integer({ min: -1000, max: 1000 }), { minLength: 2, maxLength: 12 }).map((a) => a.sort((x, y) => x - y)),
    fc.nat(), fc.boolean(),
    (orders, i, up) => {
      const index = i % orders.length;
      const next = moved(orders, index, up ? -1 : 1);
      const target = index + (up ? -1 : 1);
      if (target < 0 || target >= orders.length) return expect(next).toBeNull();
      const rest = orders.filter((_, j) => j !== index);
      const placed = [...rest, next!].sort((x, y) => x - y);
      expect(placed.indexOf(next!)).toBe(target);
    },
  ), { numRuns: 1000 });
});

test('between works at the ends and in the middle', () => {
  expect(between(undefined, undefined)).toBe(1);
  expect(between(undefined, 3)).toBe(2);
  expect(between(3, undefined)).toBe(4);
  expect(between(1, 2)).toBe(1.5);
});

test('items added faster than the list re-renders each get their own place, in the order added', () => {
  const rendered = [1, 2, 3]; // what the screen showed before a burst of 30 adds, none rendered yet
  const handed = Array.from({ length: 30 }, () => nextOrder('burst', rendered));
  expect(new Set(handed).size).toBe(30);
  expect([...handed].sort((a, b) => a - b)).toEqual(handed);
  expect(handed[0]).toBeGreaterThan(3);
  // Once the burst is rendered, the next add still goes after it.
  expect(nextOrder('burst', [...rendered, ...handed])).toBeGreaterThan(handed.at(-1)!);
});
