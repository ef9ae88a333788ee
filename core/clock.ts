// Lamport clock and the total order on stamps that every replica uses to pick a winner.
// The order must be identical on the server (Bun), in the Service Worker and in the page, so the
// device tie-break is a plain code-unit comparison: `localeCompare` depends on the runtime's ICU
// data and locale, and two replicas disagreeing on an order would never converge.
import type { Op, Stamp } from './types.ts';

/** The clock value for the next local op. */
export function tick(clock: number): number {
  return clock + 1;
}

/** Folds in a lamport seen from elsewhere (an ack, a change, a `lamport_regression` floor). */
export function observe(clock: number, remote: number): number {
  return remote > clock ? remote : clock;
}

/** Negative when `a` is older than `b`, positive when newer, 0 only for the same stamp. */
export function compareStamps(a: Stamp, b: Stamp): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] === b[1]) return 0;
  return a[1] < b[1] ? -1 : 1;
}

export function stampOf(op: Op): Stamp {
  return [op.lamport, op.device];
}

/**
 * The stamp of the fields the server's rule computes for an op (core/logic.ts): `[lamport, device + U+0000]`,
 * the very next stamp after the op's own in the order above (no string sorts between `d` and `d\u0000`,
 * and no device id holds a U+0000: the envelope refuses it). So a computed field beats the op's own write
 * of that field (a device that folded its op, as sent, into its copy of the server's state converges on the
 * rule's value) and orders against every other op exactly as the op itself does.
 */
export function computedStampOf(op: Op): Stamp {
  return [op.lamport, `${op.device}\u0000`];
}

/** The newer of two stamps; `null` (nothing seen yet) is older than every stamp. */
export function maxStamp(a: Stamp, b: Stamp | null): Stamp;
export function maxStamp(a: Stamp | null, b: Stamp): Stamp;
export function maxStamp(a: Stamp | null, b: Stamp | null): Stamp | null;
export function maxStamp(a: Stamp | null, b: Stamp | null): Stamp | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareStamps(a, b) >= 0 ? a : b;
}
