// Every message on the wire, one valibot union per direction. PROTOCOL.md is the normative text;
// this file is its executable form, parsed at every edge (server routes, socket, Service Worker). The
// protocol version's history and the other fixed facts (names, close codes, statuses) are in protocol.ts;
// the op itself, and describeIssues, are in op.ts.
import * as v from 'valibot';
import { LIMITS, utf8Length } from '../core/limits.ts';
import type { EntityRow } from '../core/types.ts';
import { SpaceRef } from './accounts.ts';
import { Fields, int, OpSchema, Seq, text } from './op.ts';
import { ERROR_CODES, PROTOCOL_VERSION } from './protocol.ts';

/** The device id of an envelope: what every op of it carries too (PROTOCOL.md §3 limits). */
const DeviceId = v.pipe(text, v.minLength(1, 'The device id is empty.'),
  v.check((s) => utf8Length(s) <= LIMITS.idBytes, `The device id is longer than ${LIMITS.idBytes} bytes.`),
  // U+0000 ends every device id in the stamps of the fields a server rule computes (core/clock.ts).
  v.check((s) => !s.includes('\u0000'), 'The device id must not contain U+0000.'));
const Cursor = int(0);
const Stamp = v.pipe(v.tuple([int(0), v.string()]), v.readonly());

/** A batch's ops must all be the sender's and consecutive in seq, or the envelope is malformed. */
const Ops = v.pipe(
  v.array(OpSchema),
  v.minLength(1, 'A batch needs at least one op.'),
  v.check((ops) => ops.every((op, i) => i === 0 || op.seq === ops[i - 1]!.seq + 1), 'Ops must be in consecutive seq order.'),
);
const sameDevice = <T extends { device: string; ops: { device: string }[] }>(batch: T) =>
  batch.ops.every((op) => op.device === batch.device);
const SAME_DEVICE = 'Every op must belong to the device that sends the batch.';

export { describeIssues, OpSchema } from './op.ts';

// ─── device → server ────────────────────────────────────────────────────────────────────────────

/** Body of `POST /v1/push`. */
export const PushBody = v.pipe(
  v.strictObject({ protocol: v.literal(PROTOCOL_VERSION), device: DeviceId, ops: Ops }),
  v.check(sameDevice, SAME_DEVICE),
);

export const UpHello = v.strictObject({ type: v.literal('hello'), protocol: v.literal(PROTOCOL_VERSION), device: DeviceId });
export const UpPush = v.strictObject({ type: v.literal('push'), rid: int(0), device: DeviceId, ops: Ops });
export const UpSubscribe = v.strictObject({
  type: v.literal('subscribe'),
  spaces: v.pipe(v.array(v.strictObject({ space: text, cursor: Cursor })), v.minLength(1), v.maxLength(100)),
});
export const UpPing = v.strictObject({ type: v.literal('ping'), t: v.number() });

export const Up = v.pipe(
  v.variant('type', [UpHello, UpPush, UpSubscribe, UpPing]),
  v.check((message) => message.type !== 'push' || sameDevice(message), SAME_DEVICE),
);

// ─── server → device ────────────────────────────────────────────────────────────────────────────

export const ErrorCode = v.picklist(ERROR_CODES);

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
  /**
   * The cursor this frame continues from (sockets that offered `ferry.from`): it holds every entity with
   * `from < serverSeq ≤ cursor`. Above the client's stored cursor, a frame before it was lost.
   */
  from: v.optional(Cursor),
});
export const DownCaughtUp = v.strictObject({ type: v.literal('caught_up'), space: v.string(), cursor: Cursor });
export const DownReset = v.strictObject({ type: v.literal('reset'), space: v.string(), horizon: Cursor });
export const DownPong = v.strictObject({
  type: v.literal('pong'),
  t: v.number(),
  /**
   * Sockets that offered `ferry.sent`: per live subscription, the cursor of the last `changes` frame sent
   * before this pong. A caught-up space whose stored cursor is below it lost its last frame (PROTOCOL.md §7).
   */
  sent: v.optional(v.record(v.string(), Cursor)),
});

/** The user's spaces changed (an invitation, a removal, a new or renamed space): the whole list, now. A space
 * no longer in it is no longer synced; its queued ops will come back rejected `forbidden`. */
export const DownSpaces = v.strictObject({ type: v.literal('spaces'), spaces: v.array(SpaceRef) });

export const Down = v.variant('type', [DownWelcome, DownAck, DownError, DownChanges, DownCaughtUp, DownReset, DownPong, DownSpaces]);

export type PushBody = v.InferOutput<typeof PushBody>;
export type Up = v.InferOutput<typeof Up>;
export type Down = v.InferOutput<typeof Down>;
export type AckBody = v.InferOutput<typeof AckBody>;
export type ErrorBody = v.InferOutput<typeof ErrorBody>;
export type ErrorCode = v.InferOutput<typeof ErrorCode>;
export type EntityWire = v.InferOutput<typeof EntityWire>;
export type SnapshotBody = v.InferOutput<typeof SnapshotBody>;

/** The entity type is core's EntityRow; on the wire it leaves out the space, which its frame or page names
 * once. This fails to compile the moment the two drift apart. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const ENTITY_WIRE_IS_CORE_ROW: Same<EntityWire, Omit<EntityRow, 'space'>> = true;
