// Apply, free of transport and of SQL: given the rows a group of batches touches, decide every
// result and every row to write. The store (server/store.ts) loads those rows inside one write
// transaction, calls `planGroup`, writes the plan in multi-row statements and commits; only then are
// the answers released (DESIGN invariant 1: no ack before commit).
//
// Per batch, in order: device ownership → duplicates (first result) → seq gap → lamport floor →
// per-op limits, membership, collection schema → merge. A refused batch writes nothing; later batches in
// the same group see the state as if it never came.
import { applyOp } from '../core/merge.ts';
import { opProblem } from '../core/validate.ts';
import type { Doc, Op, OpResult, OpResultKind } from '../core/types.ts';
import type { ErrorBody } from '../schema/wire.ts';

export interface Batch {
  userId: string;
  device: string;
  ops: Op[];
}

export interface DeviceRow {
  id: string;
  userId: string;
  lastSeq: number;
  maxLamport: number;
}

/** A ledger row: the first result an op got, kept so a resend is answered the same way. */
export interface LedgerRow {
  device: string;
  seq: number;
  /** Null only for an op rejected because its id was taken: unique ids stay unique. */
  opId: string | null;
  result: Exclude<OpResultKind, 'duplicate'>;
  code: string | null;
  message: string | null;
}

export interface EntityState extends Doc {
  space: string;
  collection: string;
  key: string;
  serverSeq: number;
}

/** Checks an op's value against its collection's schema; null when fine or no schema is registered. */
export type CollectionCheck = (collection: string, op: Op) => string | null;

export interface GroupInput {
  devices: ReadonlyMap<string, DeviceRow>;
  /** Ledger rows for the seqs of each batch that are at or below its device's lastSeq. */
  ledger: ReadonlyMap<string, LedgerRow>;
  /** `memberKey(user, space)` for every membership of the users in the group. */
  members: ReadonlySet<string>;
  entities: ReadonlyMap<string, EntityState>;
  /** Op ids of the group's new ops that the ledger already holds (under another device or seq). */
  takenIds: ReadonlySet<string>;
  serverSeq: number;
  lamport: number;
  check?: CollectionCheck;
}

export type BatchOutcome =
  | { ok: true; through: number; lamport: number; results: OpResult[] }
  | { ok: false; error: ErrorBody };

export interface GroupPlan {
  outcomes: BatchOutcome[];
  /** New and changed devices, keyed by id (the last state wins). */
  devices: Map<string, DeviceRow>;
  /** New ledger rows, each with the `entityKey` of the entity its op was aimed at. */
  ledger: (LedgerRow & { entity: string })[];
  /** Changed entities, each once, in serverSeq order. */
  entities: EntityState[];
  serverSeq: number;
  lamport: number;
}

export const ledgerKey = (device: string, seq: number) => `${device}\u0000${seq}`;
export const memberKey = (user: string, space: string) => `${user}\u0000${space}`;
export const entityKey = (space: string, collection: string, key: string) =>
  `${space}\u0000${collection}\u0000${key}`;

export function planGroup(batches: readonly Batch[], input: GroupInput): GroupPlan {
  const devices = new Map<string, DeviceRow>();
  const entities = new Map<string, EntityState>();
  const ledger: GroupPlan['ledger'] = [];
  const plan = { serverSeq: input.serverSeq, lamport: input.lamport, ids: new Set<string>() };
  const outcomes = batches.map((batch) => {
    const device = devices.get(batch.device) ?? input.devices.get(batch.device);
    const refused = refusal(batch, device);
    if (refused) return { ok: false as const, error: refused };
    const state: DeviceRow = { ...(device ?? { id: batch.device, userId: batch.userId, lastSeq: 0, maxLamport: 0 }) };
    const results: OpResult[] = [];
    for (const op of batch.ops) {
      if (op.seq <= state.lastSeq) {
        results.push(duplicateOf(op, input.ledger.get(ledgerKey(op.device, op.seq)) ?? sameBatchFirst(ledger, op)));
        continue;
      }
      const row = applyOne(op, batch.userId, input, entities, plan);
      ledger.push(row);
      results.push(resultOf(op, row));
      state.lastSeq = op.seq;
      state.maxLamport = op.lamport;
      plan.lamport = Math.max(plan.lamport, op.lamport);
    }
    devices.set(state.id, { ...state });
    return { ok: true as const, through: state.lastSeq, lamport: plan.lamport, results };
  });
  const changed = [...entities.values()].sort((a, b) => a.serverSeq - b.serverSeq);
  return { outcomes, devices, ledger, entities: changed, serverSeq: plan.serverSeq, lamport: plan.lamport };
}

/** Whole-batch checks: ownership, seq continuity, lamport floor. Null when the batch may proceed. */
function refusal(batch: Batch, device: DeviceRow | undefined): ErrorBody | null {
  if (device && device.userId !== batch.userId) {
    return { code: 'forbidden', message: 'This device id belongs to another user; mint a new one.' };
  }
  const lastSeq = device?.lastSeq ?? 0;
  const fresh = batch.ops.filter((op) => op.seq > lastSeq);
  const first = fresh[0];
  if (!first) return null; // all duplicates
  if (first.seq !== lastSeq + 1) {
    return { code: 'seq_gap', message: `Expected seq ${lastSeq + 1} but got ${first.seq}.`, expected: lastSeq + 1 };
  }
  let floor = device?.maxLamport ?? 0;
  for (const op of fresh) {
    if (op.lamport <= floor) {
      return {
        code: 'lamport_regression',
        message: `Op ${op.seq} has lamport ${op.lamport}, not above ${floor}.`,
        floor: device?.maxLamport ?? 0,
      };
    }
    floor = op.lamport;
  }
  return null;
}

function applyOne(
  op: Op,
  userId: string,
  input: GroupInput,
  entities: Map<string, EntityState>,
  plan: { serverSeq: number; ids: Set<string> },
): LedgerRow & { entity: string } {
  const key = entityKey(op.space, op.collection, op.key);
  const base = { device: op.device, seq: op.seq, opId: op.id, entity: key };
  if (input.takenIds.has(op.id) || plan.ids.has(op.id)) {
    // It still consumes its seq; the ledger keeps it without an id so op ids stay unique.
    return { ...base, opId: null, result: 'rejected', code: 'invalid', message: `Op id "${op.id}" was already used by another op.` };
  }
  plan.ids.add(op.id);
  const problem = opProblem(op);
  if (problem) return { ...base, result: 'rejected', code: problem.code, message: problem.message };
  if (!input.members.has(memberKey(userId, op.space))) {
    return { ...base, result: 'rejected', code: 'forbidden', message: `You are not a member of space "${op.space}".` };
  }
  const schemaProblem = input.check?.(op.collection, op) ?? null;
  if (schemaProblem) return { ...base, result: 'rejected', code: 'invalid', message: schemaProblem };
  const current = entities.get(key) ?? input.entities.get(key) ?? null;
  const { doc, changed } = applyOp(current, op);
  if (!changed) return { ...base, result: 'superseded', code: null, message: null };
  plan.serverSeq += 1;
  entities.set(key, { ...doc, space: op.space, collection: op.collection, key: op.key, serverSeq: plan.serverSeq });
  return { ...base, result: 'applied', code: null, message: null };
}

function resultOf(op: Op, row: LedgerRow): OpResult {
  const result: OpResult = { seq: op.seq, id: op.id, result: row.result };
  if (row.code) result.code = row.code;
  if (row.message) result.message = row.message;
  return result;
}

function duplicateOf(op: Op, first: LedgerRow | undefined): OpResult {
  // A processed seq with no ledger row can only mean the ledger was pruned; "applied" is the honest
  // default because rejected ops are kept in the ledger forever.
  const result: OpResult = { seq: op.seq, id: op.id, result: 'duplicate', first: first?.result ?? 'applied' };
  if (first?.code) result.code = first.code;
  if (first?.message) result.message = first.message;
  return result;
}

/** A batch resent within the same group (pipelined twice) finds its first result in this plan's ledger. */
function sameBatchFirst(ledger: readonly LedgerRow[], op: Op): LedgerRow | undefined {
  for (let i = ledger.length - 1; i >= 0; i--) {
    const row = ledger[i]!;
    if (row.device === op.device && row.seq === op.seq) return row;
  }
  return undefined;
}
