// An app's own write rules, as the apply planning runs them (core/apply.ts): for every new op that passed the
// envelope's limits, its writer's membership and role, and its collection's schema, the collection's rule
// sees the op, the entity as it is now and the writer, and decides:
//
//   rule(op, current, writer, now) ──nothing──▶ merge the op as sent                      ──▶ applied / superseded
//                                  ──{ set }──▶ merge the op, then `set` at computedStampOf(op)
//                                  ──{ reject, message }──▶ rejected with that code (a dead letter)
//                                  ──throws / malformed──▶ rejected `rule_failed`
//
// It is pure and runs inside the apply transaction, once per new op, on whichever instance commits it: a
// duplicate is answered from the ledger and never reaches it (invariant 2), so the first result stands. The
// computed fields are written at the stamp right after the op's own (core/clock.ts computedStampOf), so every
// replica converges on them with the one merge, whatever it folded of the op as sent. A rule that throws or
// answers something malformed rejects its op (which the person can retry from their dead letters once the
// app is fixed) rather than failing the commit of every batch grouped with it.
import { NAME_PATTERN, LIMITS, utf8Length } from './limits.ts';
import type { Fields, Op, Role } from './types.ts';

/** Who wrote an op: the signed-in user and their role in the op's space (never a viewer: see apply.ts). */
export interface Writer {
  user: string;
  role: Role;
}

export interface RuleInput {
  /** The op as sent, already checked against the envelope's limits and the collection's schema. */
  op: Op;
  /** The entity's visible fields before this op; null when it does not exist or was deleted. */
  current: Readonly<Fields> | null;
  writer: Writer;
  /** The commit's time (ms), the server's clock: for a computed `updated_at` and the like. */
  now: number;
}

/**
 * A collection's write rule: nothing (accept as sent), `{ set }` (accept, with fields the server computes,
 * e.g. `{ updated_by: writer.user }`; ignored on a delete, a tombstone holds no fields), or
 * `{ reject, message }` (refuse: `reject` is the code, snake_case, `message` one sentence for the person).
 * Pure: no I/O, no randomness, nothing but its input. Runs once per new op.
 */
export type RuleResult = undefined | void | { set: Fields } | { reject: string; message: string };
export type WriteRule = (input: RuleInput) => RuleResult;
export type WriteRules = Readonly<Record<string, WriteRule>>;

export type Verdict = { ok: true; set: Fields | null } | { ok: false; code: string; message: string };

/** At most this much of a rule's rejection message reaches the device. */
export const RULE_MESSAGE_MAX = 500;

/** The collection's rule on one op: accept (with computed fields, or none) or reject with a code. */
export function ruleVerdict(input: RuleInput, rules: WriteRules | undefined): Verdict {
  const rule = rules?.[input.op.collection];
  if (rule === undefined) return { ok: true, set: null };
  let result: unknown;
  try {
    result = rule(input);
  } catch {
    return failed(input.op.collection, 'it threw');
  }
  if (result === undefined || result === null) return { ok: true, set: null };
  if (typeof result !== 'object') return failed(input.op.collection, 'it answered neither nothing, { set } nor { reject, message }');
  if ('reject' in result) {
    const { reject, message } = result as { reject: unknown; message?: unknown };
    if (typeof reject !== 'string' || !NAME_PATTERN.test(reject) || typeof message !== 'string' || message === '') {
      return failed(input.op.collection, 'a rejection needs a snake_case code and a message');
    }
    return { ok: false, code: reject, message: message.slice(0, RULE_MESSAGE_MAX) };
  }
  if ('set' in result && computedFieldsOk((result as { set: unknown }).set)) {
    return { ok: true, set: input.op.kind === 'delete' ? null : (result as { set: Fields }).set };
  }
  return failed(input.op.collection, 'it answered neither nothing, { set } with valid field names nor { reject, message }');
}

/** Computed fields keep the envelope's limits: field names, and the size of a value. */
function computedFieldsOk(set: unknown): set is Fields {
  if (set === null || typeof set !== 'object' || Array.isArray(set)) return false;
  if (!Object.keys(set).every((name) => NAME_PATTERN.test(name))) return false;
  let text: string | undefined;
  try {
    text = JSON.stringify(set);
  } catch {
    return false; // a cycle or a BigInt: not JSON
  }
  return text !== undefined && utf8Length(text) <= LIMITS.valueBytes;
}

function failed(collection: string, why: string): { ok: false; code: string; message: string } {
  return { ok: false, code: 'rule_failed', message: `The server's rule for ${collection} failed on this change (${why}); it was not applied.` };
}

/** An op that changed its entity, as an effect's selection and its handler see it. */
export interface AppliedWrite {
  op: Op;
  writer: Writer;
  /** The entity's visible fields before the op and after it (computed fields included); null: absent. */
  before: Readonly<Fields> | null;
  after: Readonly<Fields> | null;
}

/**
 * Which of the app's effects an applied op calls for: their names, recorded in the op's own commit (never
 * for a duplicate, a rejected or a superseded op). Pure, like a rule.
 */
export type EffectSelection = (write: AppliedWrite) => readonly string[];
