// The one merge function the server and every device share (DESIGN invariant 4).
//
// A Doc is a product of last-writer-wins registers, ordered by stamp (lamport, then device):
//   - one register per field name. A put writes its listed fields and writes "absent" to every
//     other name; a delete writes "absent" to every name; a patch writes only its listed fields.
//   - `live`, the existence register: put and patch write "alive", delete writes "dead".
// Every implicit "absent" write of a put or delete happens at that op's stamp, so instead of keeping
// a register per conceivable name, `base` keeps the newest put/delete stamp and a field is visible
// iff its own stamp is >= base (the base op writes its own fields at exactly that stamp). A field
// whose stamp falls below base can never become visible again, because base only grows, so it is
// dropped for good and late old patches cannot resurrect it.
//
// Because each component is a register joined by `max`, applying ops in any order, any number of
// times, and joining replicas with `mergeDocs`, all reach the same state. That rests on stamps being
// unique (one op per stamp), which the server enforces per device (invariant 5).
//
// Docs are treated as immutable: nothing here mutates an input, results share unchanged field values
// and stamps with their inputs, and an op that changes nothing returns the input doc itself.
import { compareStamps, maxStamp, stampOf } from './clock.ts';
import type { Doc, Fields, Json, Op, Stamp } from './types.ts';

export interface ApplyResult {
  doc: Doc;
  /** False when the op lost everywhere (the server answers `superseded`) or was already applied. */
  changed: boolean;
}

const NO_NAMES: readonly string[] = [];

export function applyOp(doc: Doc | null, op: Op): ApplyResult {
  const stamp = stampOf(op);
  if (doc === null) return { doc: docOf(op, stamp), changed: true };
  // maxStamp hands back `doc.base` itself when it is not older, so identity tells us whether it moved.
  const base = op.kind === 'patch' ? doc.base : maxStamp(doc.base, stamp);
  const wonLive = compareStamps(stamp, doc.live) > 0;
  const deleted = wonLive ? op.kind === 'delete' : doc.deleted;
  // A tombstone holds no fields. With unique stamps a losing write to one would be dropped by the
  // base rule anyway; checking `deleted` keeps the invariant true even for a corrupt replica.
  const winners = deleted || op.kind === 'delete' ? NO_NAMES : winningNames(doc, op.value, stamp, base);
  if (base === doc.base && !wonLive && winners.length === 0) return { doc, changed: false };

  const fields: Fields = {};
  const stamps: Record<string, Stamp> = {};
  if (!deleted) {
    for (const name of Object.keys(doc.stamps)) {
      const kept = doc.stamps[name] as Stamp;
      if (base !== null && compareStamps(kept, base) < 0) continue;
      setOwn(fields, name, doc.fields[name] as Json);
      setOwn(stamps, name, kept);
    }
    const value = op.value as Fields;
    for (const name of winners) {
      setOwn(fields, name, value[name] as Json);
      setOwn(stamps, name, stamp);
    }
  }
  return { doc: { fields, stamps, base, live: wonLive ? stamp : doc.live, deleted }, changed: true };
}

/** Names in `value` whose write at `stamp` beats the doc's current register and survives `base`. */
function winningNames(doc: Doc, value: Fields | undefined, stamp: Stamp, base: Stamp | null): readonly string[] {
  if (value === undefined || (base !== null && compareStamps(stamp, base) < 0)) return NO_NAMES;
  const names: string[] = [];
  for (const name of Object.keys(value)) {
    if (!isWritten(value, name)) continue;
    const current = ownStamp(doc.stamps, name);
    if (current === undefined || compareStamps(stamp, current) > 0) names.push(name);
  }
  return names;
}

function docOf(op: Op, stamp: Stamp): Doc {
  const fields: Fields = {};
  const stamps: Record<string, Stamp> = {};
  if (op.kind !== 'delete' && op.value !== undefined) {
    for (const name of Object.keys(op.value)) {
      if (!isWritten(op.value, name)) continue;
      setOwn(fields, name, op.value[name] as Json);
      setOwn(stamps, name, stamp);
    }
  }
  const base = op.kind === 'patch' ? null : stamp;
  return { fields, stamps, base, live: stamp, deleted: op.kind === 'delete' };
}

/**
 * Writes `fields` at `stamp` into the field registers only (a field wins iff `stamp` is newer than its
 * stamp and not below `base`), leaving existence alone: how the server applies the fields its rule
 * computed for an op (core/logic.ts), at core/clock.ts `computedStampOf`. A tombstone takes none.
 */
export function writeFields(doc: Doc, fields: Fields, stamp: Stamp): ApplyResult {
  if (doc.deleted) return { doc, changed: false };
  const winners = winningNames(doc, fields, stamp, doc.base);
  if (winners.length === 0) return { doc, changed: false };
  const next: Fields = { ...doc.fields };
  const stamps: Record<string, Stamp> = { ...doc.stamps };
  for (const name of winners) {
    setOwn(next, name, fields[name] as Json);
    setOwn(stamps, name, stamp);
  }
  return { doc: { ...doc, fields: next, stamps }, changed: true };
}

export function applyAll(doc: Doc, ops: Iterable<Op>): Doc;
export function applyAll(doc: Doc | null, ops: Iterable<Op>): Doc | null;
export function applyAll(doc: Doc | null, ops: Iterable<Op>): Doc | null {
  let current = doc;
  for (const op of ops) current = applyOp(current, op).doc;
  return current;
}

/**
 * The join of two replicas of one entity: what a replica holds after seeing both op sets.
 * Commutative, associative and idempotent; `mergeDocs(applyAll(null, xs), applyAll(null, ys))`
 * equals `applyAll(null, xs ∪ ys)`.
 */
export function mergeDocs(a: Doc, b: Doc | null): Doc;
export function mergeDocs(a: Doc | null, b: Doc): Doc;
export function mergeDocs(a: Doc | null, b: Doc | null): Doc | null;
export function mergeDocs(a: Doc | null, b: Doc | null): Doc | null {
  if (a === null || a === b) return b;
  if (b === null) return a;
  const order = compareStamps(a.live, b.live);
  // Equal live stamps come from the same op, so `deleted` agrees; `||` only keeps the join
  // symmetric should a corrupt replica ever disagree.
  const deleted = order > 0 ? a.deleted : order < 0 ? b.deleted : a.deleted || b.deleted;
  const base = maxStamp(a.base, b.base);
  const fields: Fields = {};
  const stamps: Record<string, Stamp> = {};
  if (!deleted) {
    for (const name of Object.keys(a.stamps)) {
      const mine = a.stamps[name] as Stamp;
      const theirs = ownStamp(b.stamps, name);
      if (theirs !== undefined && compareStamps(theirs, mine) > 0) keep(b, name, theirs);
      else keep(a, name, mine);
    }
    for (const name of Object.keys(b.stamps)) {
      if (!Object.hasOwn(a.stamps, name)) keep(b, name, b.stamps[name] as Stamp);
    }
  }
  return { fields, stamps, base, live: order >= 0 ? a.live : b.live, deleted };

  function keep(from: Doc, name: string, stamp: Stamp): void {
    if (base !== null && compareStamps(stamp, base) < 0) return;
    setOwn(fields, name, from.fields[name] as Json);
    setOwn(stamps, name, stamp);
  }
}

/** Same state, stamps included; key order is irrelevant at every depth, array order is not. */
export function docEquals(a: Doc | null, b: Doc | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return (
    a.deleted === b.deleted &&
    stampEquals(a.live, b.live) &&
    (a.base === null || b.base === null ? a.base === b.base : stampEquals(a.base, b.base)) &&
    recordEquals(a.stamps, b.stamps, stampEquals) &&
    recordEquals(a.fields, b.fields, jsonEquals)
  );
}

export function jsonEquals(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEquals(a[i] as Json, b[i] as Json)) return false;
    return true;
  }
  return recordEquals(a, b, jsonEquals);
}

function stampEquals(a: Stamp, b: Stamp): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

function recordEquals<T>(a: Record<string, T>, b: Record<string, T>, equals: (x: T, y: T) => boolean): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  for (const name of names) {
    if (!Object.hasOwn(b, name) || !equals(a[name] as T, b[name] as T)) return false;
  }
  return true;
}

// Field names are data. 'constructor' is a legal field name, so a plain `record[name]` lookup
// would find Object.prototype's member and mistake it for a stamp.
function ownStamp(stamps: Record<string, Stamp>, name: string): Stamp | undefined {
  return Object.hasOwn(stamps, name) ? stamps[name] : undefined;
}

// Assigning to '__proto__' would swap the prototype instead of storing a field.
function setOwn<T>(record: Record<string, T>, name: string, value: T): void {
  if (name === '__proto__') {
    Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true });
  } else record[name] = value;
}

// JSON has no `undefined`: a `{ x: undefined }` written in the page reaches the server as `{}`.
// Treating it as "not listed" keeps the optimistic local replica equal to what the server computes.
function isWritten(value: Fields, name: string): boolean {
  return value[name] !== undefined;
}
