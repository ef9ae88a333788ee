// Apply planning, free of transport, SQL and time: given the rows a group of batches touches, decide every
// result and every row to write. The server's storage loads those rows inside one write transaction, calls
// `planGroup`, writes the plan in multi-row statements and commits; only then are the answers released
// (invariant 1: no ack before commit). The device suites' fake server plans with this same function.
//
// Per batch, in order: device ownership → duplicates (first result) → seq gap → lamport floor →
// per-op limits, membership and role (a viewer only reads), the app's upgrade of an op of an older schema
// version (core/versions.ts), collection schema, the app's write rule
// (core/logic.ts) → merge, with the rule's computed fields → the app's effects to record, for applied ops. A refused batch writes nothing; later batches in
// the same group see the state as if it never came.
import { computedStampOf } from './clock.ts';
import { type AppliedWrite, type EffectSelection, ruleVerdict, type WriteRules } from './logic.ts';
import { applyOp, writeFields } from './merge.ts';
import { opProblem } from './validate.ts';
import { type CollectionVersions, UPGRADED, upgradeOp } from './versions.ts';
import type { Doc, EntityRow, Fields, Op, OpResult, OpResultKind, Role } from './types.ts';

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
  /** A rejection's code; for an applied or superseded op, UPGRADED when the app's upgrade rewrote it (its
   * answer, and its duplicates', carry that code: a client that predates it reads it as any code). */
  code: string | null;
  message: string | null;
}

/** Checks an op's value against its collection's schema; null when fine or no schema is registered. */
export type CollectionCheck = (collection: string, op: Op) => string | null;

export interface GroupInput {
  devices: ReadonlyMap<string, DeviceRow>;
  /** Ledger rows for the seqs of each batch that are at or below its device's lastSeq. */
  ledger: ReadonlyMap<string, LedgerRow>;
  /** The role of each membership of the group's users, by `memberKey(user, space)`. */
  members: ReadonlyMap<string, Role>;
  entities: ReadonlyMap<string, EntityRow>;
  /** Op ids of the group's new ops that the ledger already holds (under another device or seq). */
  takenIds: ReadonlySet<string>;
  serverSeq: number;
  lamport: number;
  check?: CollectionCheck;
  /** The app's write rules per collection (core/logic.ts). */
  rules?: WriteRules;
  /** The app's schema version per collection, and its upgrades of older ops (core/versions.ts). */
  versions?: CollectionVersions;
  /** The commit's time (ms), as a rule sees it. */
  now?: number;
  /** The app's effects an applied op calls for (core/logic.ts). */
  effects?: EffectSelection;
}

/** A whole batch refused: nothing of it was processed (PROTOCOL.md §6, §8). `rate_limited` comes from the
 * server's limiter before planning; the others from `planGroup`. */
export interface Refusal {
  code: 'forbidden' | 'seq_gap' | 'lamport_regression' | 'rate_limited';
  message: string;
  /** seq_gap: the seq the server expects next. */
  expected?: number;
  /** lamport_regression: the device's highest accepted lamport. */
  floor?: number;
  /** rate_limited: wait at least this long. */
  retryAfterMs?: number;
}

export type BatchOutcome =
  | { ok: true; through: number; lamport: number; results: OpResult[] }
  | { ok: false; error: Refusal };

export interface GroupPlan {
  outcomes: BatchOutcome[];
  /** New and changed devices, keyed by id (the last state wins). */
  devices: Map<string, DeviceRow>;
  /** New ledger rows, each with the `entityKey` of the entity its op was aimed at. */
  ledger: (LedgerRow & { entity: string })[];
  /** Changed entities, each once, in serverSeq order. */
  entities: EntityRow[];
  /** The effects to record in the same commit: one per applied op and effect name, in op order. */
  effects: PlannedEffect[];
  serverSeq: number;
  lamport: number;
}

/** One effect of one applied op: what its handler is given, at least once, after the commit. */
export interface PlannedEffect {
  name: string;
  write: AppliedWrite;
}

export const ledgerKey = (device: string, seq: number) => `${device}\u0000${seq}`;
export const memberKey = (user: string, space: string) => `${user}\u0000${space}`;
export const entityKey = (space: string, collection: string, key: string) =>
  `${space}\u0000${collection}\u0000${key}`;

export function planGroup(batches: readonly Batch[], input: GroupInput): GroupPlan {
  const devices = new Map<string, DeviceRow>();
  const entities = new Map<string, EntityRow>();
  const ledger: GroupPlan['ledger'] = [];
  const plan: Progress = { serverSeq: input.serverSeq, lamport: input.lamport, ids: new Set<string>(), effects: [] };
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
  return { outcomes, devices, ledger, entities: changed, effects: plan.effects, serverSeq: plan.serverSeq, lamport: plan.lamport };
}

/** What planning a group has handed out so far. */
interface Progress {
  serverSeq: number;
  lamport: number;
  ids: Set<string>;
  effects: PlannedEffect[];
}

/** Whole-batch checks: ownership, seq continuity, lamport floor. Null when the batch may proceed. */
function refusal(batch: Batch, device: DeviceRow | undefined): Refusal | null {
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
  sent: Op,
  userId: string,
  input: GroupInput,
  entities: Map<string, EntityRow>,
  plan: Progress,
): LedgerRow & { entity: string } {
  const key = entityKey(sent.space, sent.collection, sent.key);
  const base = { device: sent.device, seq: sent.seq, opId: sent.id, entity: key };
  if (input.takenIds.has(sent.id) || plan.ids.has(sent.id)) {
    // It still consumes its seq; the ledger keeps it without an id so op ids stay unique.
    return { ...base, opId: null, result: 'rejected', code: 'invalid', message: `Op id "${sent.id}" was already used by another op.` };
  }
  plan.ids.add(sent.id);
  const problem = opProblem(sent);
  if (problem) return { ...base, result: 'rejected', code: problem.code, message: problem.message };
  const role = input.members.get(memberKey(userId, sent.space));
  if (role === undefined) {
    return { ...base, result: 'rejected', code: 'forbidden', message: `You are not a member of space "${sent.space}".` };
  }
  if (role === 'viewer') {
    return { ...base, result: 'rejected', code: 'read_only', message: `You can only read space "${sent.space}": your role there is viewer.` };
  }
  // From here on the op is the one the server's version of its collection takes: stored, fanned out, given
  // to the rule and the effects.
  const prepared = upgradeOp(sent, input.versions);
  if (!prepared.ok) return { ...base, result: 'rejected', code: prepared.code, message: prepared.message };
  const op = prepared.op;
  const note = prepared.upgraded ? UPGRADED : null;
  const schemaProblem = input.check?.(op.collection, op) ?? null;
  if (schemaProblem) return { ...base, result: 'rejected', code: 'invalid', message: schemaProblem };
  const current = entities.get(key) ?? input.entities.get(key) ?? null;
  const writer = { user: userId, role };
  const verdict = ruleVerdict({ op, current: visibleFields(current), writer, now: input.now ?? 0 }, input.rules);
  if (!verdict.ok) return { ...base, result: 'rejected', code: verdict.code, message: verdict.message };
  const { doc, changed } = merged(current, op, verdict.set);
  if (!changed) return { ...base, result: 'superseded', code: note, message: null };
  plan.serverSeq += 1;
  entities.set(key, { ...doc, space: op.space, collection: op.collection, key: op.key, serverSeq: plan.serverSeq });
  if (input.effects) {
    const write: AppliedWrite = { op, writer, before: visibleFields(current), after: visibleFields(doc) };
    for (const name of new Set(input.effects(write))) plan.effects.push({ name, write });
  }
  return { ...base, result: 'applied', code: note, message: null };
}

/** The op merged in, then the rule's computed fields at the stamp right after the op's (core/clock.ts). */
function merged(current: Doc | null, op: Op, set: Fields | null): { doc: Doc; changed: boolean } {
  const first = applyOp(current, op);
  if (set === null) return first;
  const second = writeFields(first.doc, set, computedStampOf(op));
  return { doc: second.doc, changed: first.changed || second.changed };
}

function visibleFields(doc: Doc | null): Fields | null {
  return doc === null || doc.deleted ? null : doc.fields;
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
