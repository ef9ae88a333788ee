// Item order as numbers: a moved item takes a number between its new neighbours, so a move is one
// patch of one field and concurrent moves of different items merge without conflict.

/** The order for an item placed between `before` and `after` (either may be missing). */
export function between(before: number | undefined, after: number | undefined): number {
  if (before === undefined && after === undefined) return 1;
  if (before === undefined) return after! - 1;
  if (after === undefined) return before + 1;
  return (before + after) / 2;
}

/** The new order for the item at `index` moved by `delta` places (−1 up, +1 down), or null at an edge. */
export function moved(orders: readonly number[], index: number, delta: -1 | 1): number | null {
  const target = index + delta;
  if (target < 0 || target >= orders.length) return null;
  return delta < 0 ? between(orders[target - 1], orders[target]) : between(orders[target], orders[target + 1]);
}
