// The outbox policy: which ops go in the next batch, what an ack removes, how unsent ops are
// restamped after a lamport_regression. Plain functions over plain data; the module that owns
// IndexedDB carries out their answers inside its own transactions, and tests and fakes use the
// `planAckOnEntries` form directly. The drain state machine (what to do after each answer) lives in
// outbox-drain.ts.
import { observe } from './clock.ts';
import { LIMITS, utf8Length } from './limits.ts';
import type { Op, OpResult } from './types.ts';
import { UPGRADED } from './versions.ts';


/** One op waiting in the outbox, with its serialized size so batches can be bounded without re-encoding. */
export interface OutboxEntry {
  op: Op;
  /** UTF-8 bytes of `JSON.stringify(op)`: what the op adds to a batch body. */
  bytes: number;
}

/** An op the server rejected permanently, kept for the person to retry (as a new op) or discard. */
export interface DeadLetter {
  op: Op;
  code: string;
  message: string;
  /** When the device learned of the rejection (ms, the caller's clock). */
  at: number;
}

export interface BatchLimits {
  maxOps: number;
  /** Budget for the serialized ops array's contents (ops plus the commas between them). */
  maxBytes: number;
}

/** What a batch's envelope can take besides its ops: keys, protocol, rid, and a device id of up to
 * LIMITS.idBytes that JSON escaping can grow sixfold. Reserved so a full batch still fits the limit. */
export const ENVELOPE_RESERVE_BYTES = 1024;

export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxOps: LIMITS.batchOps,
  maxBytes: LIMITS.batchBytes - ENVELOPE_RESERVE_BYTES,
};

export function entryOf(op: Op): OutboxEntry {
  return { op, bytes: utf8Length(JSON.stringify(op)) };
}

/**
 * The next batch: the run of `entries` (sorted by seq, one page of the outbox) that starts at
 * `fromSeq` (or the first entry above it, if an ack removed it meanwhile; or the first entry) and is
 * bounded by `limits`.
 *
 * It always holds at least one op, even one over `maxBytes`. Leaving an over-size op out would block
 * every op behind it forever without a word; sent alone, the server rejects it permanently with
 * `too_large`, which consumes its seq and records the rejection, so it becomes a dead letter the
 * person can see and the ops behind it flow again.
 *
 * It stops at a gap in seq, because the server refuses a batch whose seqs are not consecutive. Seqs
 * are taken in the same transaction as the write, so the outbox is gapless except below an ack's
 * `through`, where an op still waits for its own result (see planAck) while later ones are gone.
 */
export function chooseBatch(entries: readonly OutboxEntry[], limits: BatchLimits, fromSeq?: number): OutboxEntry[] {
  const start = fromSeq === undefined ? 0 : entries.findIndex((entry) => entry.op.seq >= fromSeq);
  if (start < 0 || start >= entries.length) return [];
  const first = entries[start]!;
  const batch = [first];
  let bytes = first.bytes;
  for (let i = start + 1; i < entries.length && batch.length < limits.maxOps; i++) {
    const entry = entries[i]!;
    if (entry.op.seq !== batch[batch.length - 1]!.op.seq + 1) break;
    // +1 for the comma that separates it from the previous op in the JSON array.
    if (bytes + 1 + entry.bytes > limits.maxBytes) break;
    bytes += 1 + entry.bytes;
    batch.push(entry);
  }
  return batch;
}

/** Bytes the batch's ops take inside the JSON array (what chooseBatch bounds by `maxBytes`). */
export function batchBytes(batch: readonly OutboxEntry[]): number {
  let bytes = 0;
  for (const entry of batch) bytes += entry.bytes;
  return batch.length === 0 ? 0 : bytes + batch.length - 1;
}

/** The server's answer to a push (HTTP 200 body, or a socket `ack`). */
export interface Ack {
  /** The highest seq of this device the server has processed and durably committed. */
  through: number;
  /** The server's highest lamport, so the device's clock keeps up with everyone's. */
  lamport: number;
  results: readonly OpResult[];
}

export interface AckOutcome {
  /**
   * Seqs to take out of the outbox, ascending: exactly the ops this ack reports a result for, up to
   * `through`. The dead letters among them are moved to the dead-letter list rather than deleted.
   */
  remove: number[];
  /** The rejected ones (a subset of `remove`), to move to the dead-letter list if still held. */
  deadLetters: Array<{ seq: number; code: string; message: string; at: number }>;
  /** Committed ops the server applied as the app's upgrade rewrote them (core/versions.ts), ascending: the
   * server's state holds the upgraded op, not the one we sent, so it must not be folded into our copy of
   * it; the server's row reaches us through the change stream. */
  upgraded: number[];
  /** The device's clock after observing the ack. */
  clock: number;
}

/**
 * What an ack does to the outbox. The carrying-out side, in one transaction, moves each dead letter
 * the outbox still holds to the dead-letter list and deletes the other `remove` seqs it holds.
 * Applying the same ack again (it may come over HTTP and over the socket) finds those ops gone and
 * changes nothing, observe() is idempotent, and acks may be applied in any order.
 *
 * Why not "delete every op with seq <= through", as DESIGN.md's write path puts it: an op below
 * `through` that this ack has no result for is one whose own ack never reached us (a lost frame, a
 * pipelined batch whose answer went missing). If it was rejected, deleting it on a later ack would
 * drop it without a dead letter, silently (invariant 7). Kept, it goes out again with the next send
 * from the first op, and the server answers it as a `duplicate` carrying its first result. The
 * cost is resending those few ops; the drainer's watchdog on unanswered batches triggers it.
 *
 * A result above `through` is ignored: that op was not committed, so it must stay.
 */
export function planAck(ack: Ack, clock: number, now: number): AckOutcome {
  const remove = new Set<number>();
  const deadLetters: AckOutcome['deadLetters'] = [];
  const upgraded: number[] = [];
  for (const result of ack.results) {
    if (result.seq > ack.through || remove.has(result.seq)) continue;
    remove.add(result.seq);
    if (!isRejection(result)) {
      if (result.code === UPGRADED) upgraded.push(result.seq);
      continue;
    }
    deadLetters.push({
      seq: result.seq,
      code: result.code ?? 'rejected',
      message: result.message ?? 'The server refused this change.',
      at: now,
    });
  }
  deadLetters.sort((a, b) => a.seq - b.seq);
  upgraded.sort((a, b) => a - b);
  return { remove: [...remove].sort((a, b) => a - b), deadLetters, upgraded, clock: observe(clock, ack.lamport) };
}

/** A rejected op, or a resent one whose first answer was a rejection (its first ack was lost). */
function isRejection(result: OpResult): boolean {
  return result.result === 'rejected' || (result.result === 'duplicate' && result.first === 'rejected');
}

export interface AckedEntries {
  kept: OutboxEntry[];
  dead: DeadLetter[];
  clock: number;
}

/** planAck carried out on an in-memory outbox: the reference the IndexedDB side must match. */
export function planAckOnEntries(entries: readonly OutboxEntry[], ack: Ack, clock: number, now: number): AckedEntries {
  const outcome = planAck(ack, clock, now);
  const removed = new Set(outcome.remove);
  const held = new Map(entries.map((entry) => [entry.op.seq, entry.op] as const));
  const dead: DeadLetter[] = [];
  for (const letter of outcome.deadLetters) {
    const op = held.get(letter.seq);
    if (op !== undefined) dead.push({ op, code: letter.code, message: letter.message, at: letter.at });
  }
  const kept = entries.filter((entry) => !removed.has(entry.op.seq));
  return { kept, dead, clock: outcome.clock };
}

export interface Restamped {
  /** The same entries in the same order; unchanged ones are the very same objects. */
  entries: OutboxEntry[];
  /** max(floor, the last restamped lamport): observe() it into the device's clock. */
  clock: number;
}

/**
 * Raises unsent ops' lamports strictly above `floor` (a lamport_regression), keeping them strictly
 * increasing in seq order, with the least change: lamport_i = max(lamport_i, prev + 1), prev starting
 * at floor. Ops already above stay as they are, so their stamps (and the merge order the person
 * already sees on the replica) move only where they must.
 *
 * `entries` must be sorted by seq. For an outbox read in pages, pass each page's returned `clock` as
 * the next page's floor. Do it in the same IndexedDB transaction that raises the stored clock, so an
 * op minted by a tab meanwhile is either restamped here or ticks from the raised clock. Unchanged
 * entries keep their identity, so only the changed ones need writing back.
 */
export function planRestamp(entries: readonly OutboxEntry[], floor: number): Restamped {
  let prev = floor;
  const out = entries.map((entry) => {
    const lamport = Math.max(entry.op.lamport, prev + 1);
    prev = lamport;
    return lamport === entry.op.lamport ? entry : entryOf({ ...entry.op, lamport });
  });
  return { entries: out, clock: Math.max(floor, prev) };
}
