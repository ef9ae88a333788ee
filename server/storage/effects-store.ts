// The effects table's SQL outside the commit (the commit's insert is sync-store.ts writePlan): claiming due
// effects under a lease, settling them, and what /metrics, /healthz and `ferry effect` read and change.
// Every write is one statement (atomic on its own) and waits for another process's lock off the JS thread.
import type { AppliedWrite } from '../../core/logic.ts';
import { type FerryDb, whenUnlocked } from './db.ts';

export type EffectStatus = 'pending' | 'done' | 'failed' | 'dropped';

/** One claimed effect: its key, what its handler is given, and which attempt this is (1 for the first). */
export interface ClaimedEffect {
  opId: string;
  name: string;
  write: AppliedWrite;
  attempt: number;
}

export interface EffectRow {
  opId: string;
  name: string;
  status: EffectStatus;
  attempts: number;
  nextAt: number;
  lastError: string | null;
  createdAt: number;
  settledAt: number | null;
}

export interface EffectCounts {
  pending: number;
  failed: number;
  done: number;
  dropped: number;
  /** When the oldest pending effect was recorded (ms); null when none is pending. */
  oldestPendingAt: number | null;
}

export function createEffectStore(db: FerryDb) {
  const run = (sql: string, args: (string | number | null)[]) => whenUnlocked(() => db.$client.execute({ sql, args }));
  return {
    /**
     * Takes up to `limit` due effects for `owner` until `leaseUntil`: pending, due, and not leased by anyone
     * (or their lease ran out: an instance that died mid-handler). One UPDATE, so two instances never take
     * the same row; the attempt is counted at the claim, so a crash mid-handler still counts it.
     */
    async claim(owner: string, now: number, leaseUntil: number, limit: number): Promise<ClaimedEffect[]> {
      const rs = await run(`UPDATE effects SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1
        WHERE rowid IN (SELECT rowid FROM effects WHERE status = 'pending' AND next_at <= ?3
          AND (lease_until IS NULL OR lease_until <= ?3) ORDER BY next_at, created_at LIMIT ?4)
        RETURNING op_id, name, payload, attempts`, [owner, leaseUntil, now, limit]);
      return rs.rows.map((r) => ({
        opId: String(r.op_id), name: String(r.name), write: JSON.parse(String(r.payload)) as AppliedWrite, attempt: Number(r.attempts),
      }));
    },

    /** Delivered. Only the lease holder settles it: a late answer of a lease that ran out changes nothing. */
    async done(owner: string, opId: string, name: string, now: number): Promise<boolean> {
      const rs = await run(`UPDATE effects SET status = 'done', settled_at = ?1, lease_owner = NULL, lease_until = NULL,
        last_error = NULL WHERE op_id = ?2 AND name = ?3 AND lease_owner = ?4 AND status = 'pending'`, [now, opId, name, owner]);
      return rs.rowsAffected > 0;
    },

    /** The handler failed: try again at `nextAt`, or (null) give up: `failed`, until an operator retries it. */
    async failed(owner: string, opId: string, name: string, error: string, nextAt: number | null, now: number): Promise<boolean> {
      const rs = await run(`UPDATE effects SET status = ?1, next_at = ?2, last_error = ?3, lease_owner = NULL,
        lease_until = NULL, settled_at = ?4 WHERE op_id = ?5 AND name = ?6 AND lease_owner = ?7 AND status = 'pending'`,
      [nextAt === null ? 'failed' : 'pending', nextAt ?? now, error, nextAt === null ? now : null, opId, name, owner]);
      return rs.rowsAffected > 0;
    },

    async counts(): Promise<EffectCounts> {
      const rs = await db.$client.execute(`SELECT status, count(*) AS n, min(created_at) AS oldest FROM effects GROUP BY status`);
      const counts: EffectCounts = { pending: 0, failed: 0, done: 0, dropped: 0, oldestPendingAt: null };
      for (const r of rs.rows) {
        counts[String(r.status) as EffectStatus] = Number(r.n);
        if (r.status === 'pending') counts.oldestPendingAt = Number(r.oldest);
      }
      return counts;
    },

    /** The newest effects first, of one status or of every one. */
    async list(status: EffectStatus | null, limit: number): Promise<EffectRow[]> {
      const rs = await db.$client.execute({
        sql: `SELECT op_id, name, status, attempts, next_at, last_error, created_at, settled_at FROM effects
          WHERE ?1 IS NULL OR status = ?1 ORDER BY created_at DESC, op_id LIMIT ?2`,
        args: [status, limit],
      });
      return rs.rows.map((r) => ({
        opId: String(r.op_id), name: String(r.name), status: String(r.status) as EffectStatus, attempts: Number(r.attempts),
        nextAt: Number(r.next_at), lastError: r.last_error === null ? null : String(r.last_error), createdAt: Number(r.created_at),
        settledAt: r.settled_at === null ? null : Number(r.settled_at),
      }));
    },

    /** Failed or dropped effects (of one op, or of one op and name; null: every failed one) are pending again,
     * due now, with their attempts counted afresh. How many. */
    async retry(opId: string | null, name: string | null, now: number): Promise<number> {
      const rs = await run(`UPDATE effects SET status = 'pending', attempts = 0, next_at = ?1, settled_at = NULL
        WHERE (?2 IS NULL AND status = 'failed' OR op_id = ?2 AND (?3 IS NULL OR name = ?3) AND status IN ('failed', 'dropped'))`,
      [now, opId, name]);
      return rs.rowsAffected;
    },

    /** Pending or failed effects of one op (and name) are given up: never delivered. How many. */
    async drop(opId: string, name: string | null, now: number): Promise<number> {
      const rs = await run(`UPDATE effects SET status = 'dropped', settled_at = ?1, lease_owner = NULL, lease_until = NULL
        WHERE op_id = ?2 AND (?3 IS NULL OR name = ?3) AND status IN ('pending', 'failed')`, [now, opId, name]);
      return rs.rowsAffected;
    },
  };
}

export type EffectStore = ReturnType<typeof createEffectStore>;
