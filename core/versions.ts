// Schema versions for queued ops. An app update may change a collection's schema while a device still holds
// ops queued under the old one (offline for days, or behind a worker update). Each op carries the app's
// schema version for its collection (`Op.version`, absent: 1); the apply planning (core/apply.ts) brings an
// older op up to the server's version before the collection's schema check and the app's rule:
//
//   op.version == current ──▶ as sent
//   op.version <  current ──upgrade(op, from) → value──▶ the op with that value, at `current`  (answered `upgraded`)
//                         ──no upgrade / it answers nothing──▶ rejected `outdated_app` (a dead letter)
//                         ──throws / malformed──▶ rejected `upgrade_failed`
//   op.version >  current ──▶ rejected `invalid` (a newer app than this server knows)
//
// A delete carries no value, so it needs no upgrade. Like a rule, an upgrade is pure and runs once per new op
// inside the apply transaction; a duplicate is answered from the ledger (the first result stands). The
// upgraded op is what is merged, stored, fanned out and given to effects; the writer's device, told
// `code: "upgraded"` on the op's applied (or superseded) result, does not fold the op it sent into its copy of the server's state but takes the server's row
// from the change stream (device/store.ts applyAck).
import type { Fields, Op } from './types.ts';
import { opProblem } from './validate.ts';

/**
 * A collection's schema version and how to bring an older op up to it: `upgrade(op, fromVersion)` answers
 * the op's value as the current version writes it (it sees the op as sent, `op.version` = fromVersion), or
 * nothing when there is no way (the op is then rejected `outdated_app`). Pure, like a write rule.
 */
export interface CollectionVersion {
  /** The schema version the server's collection schema and rule expect; an integer ≥ 1. */
  version: number;
  upgrade?: (op: Op, fromVersion: number) => Fields | null | undefined;
}
export type CollectionVersions = Readonly<Record<string, CollectionVersion>>;

/** The code of an op applied or superseded (and of its duplicates) as its upgrade rewrote it. */
export const UPGRADED = 'upgraded';

export type Prepared =
  | { ok: true; op: Op; upgraded: boolean }
  | { ok: false; code: 'outdated_app' | 'upgrade_failed' | 'invalid'; message: string };

/** The op as the server's version of its collection takes it, or why it cannot be taken. */
export function upgradeOp(op: Op, versions: CollectionVersions | undefined): Prepared {
  const entry = versions?.[op.collection];
  const current = entry?.version ?? 1;
  const from = op.version ?? 1;
  if (from === current) return { ok: true, op, upgraded: false };
  if (from > current) {
    return { ok: false, code: 'invalid', message: `This change was made by a newer version of the app (${op.collection} version ${from}) than the server knows (version ${current}).` };
  }
  if (op.kind === 'delete') return { ok: true, op: { ...op, version: current }, upgraded: false };
  const outdated = { ok: false as const, code: 'outdated_app' as const, message: `This change was made by an older version of the app (${op.collection} version ${from}; the server is at version ${current}) and cannot be brought up to date; it was not applied.` };
  if (entry?.upgrade === undefined) return outdated;
  let value: unknown;
  try {
    value = entry.upgrade(op, from);
  } catch {
    return failed(op.collection, from, 'it threw');
  }
  if (value === undefined || value === null) return outdated;
  if (typeof value !== 'object' || Array.isArray(value)) return failed(op.collection, from, 'it answered no value');
  const upgraded: Op = { ...op, value: value as Fields, version: current };
  let problem: string | null;
  try {
    problem = opProblem(upgraded)?.message ?? null;
  } catch {
    problem = 'its value is not JSON';
  }
  return problem === null ? { ok: true, op: upgraded, upgraded: true } : failed(op.collection, from, problem);
}

function failed(collection: string, from: number, why: string): Prepared {
  return { ok: false, code: 'upgrade_failed', message: `The server's upgrade of ${collection} from version ${from} failed on this change (${why}); it was not applied.` };
}
