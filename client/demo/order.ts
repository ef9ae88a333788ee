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

/** The highest order handed out per list in this tab, so items added faster than the list re-renders
 * (whose `orders` are then behind) still each get their own place at the end. */
const lastHanded = new Map<string, number>();

/** The order for a new item at the end of `list`, whose rendered orders are `orders`. */
export function nextOrder(list: string, orders: readonly number[]): number {
  const order = between(Math.max(orders.at(-1) ?? 0, lastHanded.get(list) ?? 0), undefined);
  lastHanded.set(list, order);
  return order;
}
