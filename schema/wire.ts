// Every message on the wire, one valibot union per direction. PROTOCOL.md is the normative text;
// this file is its executable form, parsed at every edge (server routes, socket, Service Worker).
//
// Protocol versions:
//   1 — first version: push/ack over HTTP and socket, subscribe with per-space cursors, catch-up pages,
//       live changes, ack watermarks to every connection of a device, reset below the purge horizon.
import * as v from 'valibot';
import { PROTOCOL_VERSION } from '../core/limits.ts';
import type { Json } from '../core/types.ts';

export { PROTOCOL_VERSION };

const int = (min: number) =>
  v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(Number.MAX_SAFE_INTEGER));
/** Op-level limits (id length, names, value size) are checked per op by core/validate.ts, so a
 * well-formed op that breaks them is rejected alone instead of refusing its whole batch. */
// A lone surrogate cannot be stored as UTF-8: SQLite would turn it into U+FFFD and two different ids
// could collide. Such strings are refused with the envelope.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const text = v.pipe(v.string(), v.check((s) => !LONE_SURROGATE.test(s), 'Strings must be valid Unicode (no lone surrogates).'));
const Seq = int(1);
const Cursor = int(0);
const Stamp = v.pipe(v.tuple([int(0), v.string()]), v.readonly());
// Bodies and frames are parsed with JSON.parse, so every value below a field is JSON already.
const JsonValue = v.custom<Json>(() => true);
const Fields = v.record(v.string(), JsonValue);

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
});

/** A batch's ops must all be the sender's and consecutive in seq, or the envelope is malformed. */
const Ops = v.pipe(
  v.array(OpSchema),
  v.minLength(1, 'A batch needs at least one op.'),
  v.check((ops) => ops.every((op, i) => i === 0 || op.seq === ops[i - 1]!.seq + 1), 'Ops must be in consecutive seq order.'),
);
const sameDevice = <T extends { device: string; ops: { device: string }[] }>(batch: T) =>
  batch.ops.every((op) => op.device === batch.device);
const SAME_DEVICE = 'Every op must belong to the device that sends the batch.';

// ─── device → server ────────────────────────────────────────────────────────────────────────────

/** Body of `POST /v1/push`. */
export const PushBody = v.pipe(
  v.strictObject({ protocol: v.literal(PROTOCOL_VERSION), device: text, ops: Ops }),
  v.check(sameDevice, SAME_DEVICE),
);

export const UpHello = v.strictObject({ type: v.literal('hello'), protocol: v.literal(PROTOCOL_VERSION), device: text });
export const UpPush = v.strictObject({ type: v.literal('push'), rid: int(0), device: text, ops: Ops });
export const UpSubscribe = v.strictObject({
  type: v.literal('subscribe'),
  spaces: v.pipe(v.array(v.strictObject({ space: text, cursor: Cursor })), v.minLength(1), v.maxLength(100)),
});
export const UpPing = v.strictObject({ type: v.literal('ping'), t: v.number() });

export const Up = v.pipe(
  v.variant('type', [UpHello, UpPush, UpSubscribe, UpPing]),
  v.check((message) => message.type !== 'push' || sameDevice(message), SAME_DEVICE),
);

export const LoginBody = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  password: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
});

// ─── server → device ────────────────────────────────────────────────────────────────────────────

export const ErrorCode = v.picklist([
  'seq_gap', 'lamport_regression', 'auth_required', 'forbidden', 'invalid',
  'too_large', 'rate_limited', 'reset', 'not_found', 'internal',
]);

export const OpResultSchema = v.strictObject({
  seq: Seq,
  id: v.string(),
  result: v.picklist(['applied', 'duplicate', 'superseded', 'rejected']),
  first: v.optional(v.picklist(['applied', 'superseded', 'rejected'])),
  code: v.optional(v.string()),
  message: v.optional(v.string()),
});

/** Answer to a push, over HTTP (200 body) or the socket (`ack`, also sent to the device's other sockets). */
export const AckBody = v.strictObject({
  through: Cursor,
  lamport: Cursor,
  results: v.array(OpResultSchema),
});

export const ErrorBody = v.object({
  code: ErrorCode,
  message: v.string(),
  expected: v.optional(Seq),
  floor: v.optional(Cursor),
  retryAfterMs: v.optional(Cursor),
  horizon: v.optional(Cursor),
});

export const EntityWire = v.strictObject({
  collection: v.string(),
  key: v.string(),
  fields: Fields,
  stamps: v.record(v.string(), Stamp),
  base: v.nullable(Stamp),
  live: Stamp,
  deleted: v.boolean(),
  serverSeq: Seq,
});

export const SnapshotBody = v.strictObject({
  space: v.string(),
  entities: v.array(EntityWire),
  /** Pass as `after` for the next page; null on the last page. */
  next: v.nullable(Cursor),
  /** The space's head when the first page was read: subscribe from here once every page is in. */
  head: Cursor,
});

export const DownWelcome = v.strictObject({
  type: v.literal('welcome'),
  protocol: v.literal(PROTOCOL_VERSION),
  user: v.string(),
  lamport: Cursor,
  /** Highest seq the server has processed for this device (0 if none). */
  through: Cursor,
});
export const DownAck = v.strictObject({
  type: v.literal('ack'),
  rid: v.optional(int(0)),
  device: v.string(),
  ...AckBody.entries,
});
export const DownError = v.object({
  type: v.literal('error'),
  rid: v.optional(int(0)),
  space: v.optional(v.string()),
  ...ErrorBody.entries,
});
export const DownChanges = v.strictObject({
  type: v.literal('changes'),
  space: v.string(),
  entities: v.array(EntityWire),
  /** The serverSeq of the last entity in this message: store it as the space's cursor once applied. */
  cursor: Cursor,
  lamport: Cursor,
});
export const DownCaughtUp = v.strictObject({ type: v.literal('caught_up'), space: v.string(), cursor: Cursor });
export const DownReset = v.strictObject({ type: v.literal('reset'), space: v.string(), horizon: Cursor });
export const DownPong = v.strictObject({ type: v.literal('pong'), t: v.number() });

export const Down = v.variant('type', [DownWelcome, DownAck, DownError, DownChanges, DownCaughtUp, DownReset, DownPong]);

export type PushBody = v.InferOutput<typeof PushBody>;
export type Up = v.InferOutput<typeof Up>;
export type Down = v.InferOutput<typeof Down>;
export type AckBody = v.InferOutput<typeof AckBody>;
export type ErrorBody = v.InferOutput<typeof ErrorBody>;
export type ErrorCode = v.InferOutput<typeof ErrorCode>;
export type EntityWire = v.InferOutput<typeof EntityWire>;
export type SnapshotBody = v.InferOutput<typeof SnapshotBody>;

/** The first problem valibot found, as one sentence for the `message` of an `invalid` error. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return 'The message is malformed.';
  const path = v.getDotPath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}
