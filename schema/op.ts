// The op as it travels (PROTOCOL.md §3), and valibot's first problem as a sentence: apart from the rest of
// the wire (wire.ts builds its messages on these), so that a page checks its drafts before writing them
// (device/records.ts) without loading every message's schema.
import * as v from 'valibot';
import type { Json } from '../core/types.ts';

export const int = (min: number) =>
  v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(Number.MAX_SAFE_INTEGER));
export const Seq = int(1);
// A lone surrogate cannot be stored as UTF-8: SQLite would turn it into U+FFFD and two different ids
// could collide. Such strings are refused with the envelope.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** String.prototype.isWellFormed (ES2024) where the runtime has it, the regex elsewhere: five strings per
 * op, and the regex was a third of parsing a push frame's ops (docs/benchmarks.md, push→ack). */
const wellFormed: (s: string) => boolean = typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
  ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);
export const text = v.pipe(v.string(), v.check(wellFormed, 'Strings must be valid Unicode (no lone surrogates).'));
// Bodies and frames are parsed with JSON.parse, so every value below a field is JSON already.
// Checked as it came, not through v.record: that would turn an array into an empty object on the way.
export const Fields = v.custom<Record<string, Json>>(
  (value) => value !== null && typeof value === 'object' && !Array.isArray(value),
  'A value is a JSON object of fields, not an array or a scalar.');

/** Op-level limits (id length, names, value size) are checked per op by core/validate.ts, so a
 * well-formed op that breaks them is rejected alone instead of refusing its whole batch. */
export const OpSchema = v.strictObject({
  id: text,
  device: text,
  seq: Seq,
  lamport: Seq,
  space: text,
  collection: text,
  key: text,
  kind: v.picklist(['put', 'patch', 'delete']),
  value: v.optional(Fields),
  at: v.pipe(v.number(), v.finite()),
  /** The app's schema version for the op's collection (absent: 1; core/versions.ts). */
  version: v.optional(int(1)),
});

/** The first problem valibot found, as one sentence for the `message` of an `invalid` error. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return 'The message is malformed.';
  const path = v.getDotPath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}
