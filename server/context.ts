// What every plugin shares: the stores, the committer, the hub and the policies. Built once by
// createApp from its deps; plugins receive it instead of reaching for globals.
import * as v from 'valibot';
import type { Op } from '../core/types.ts';
import { createAccounts, type Accounts } from './accounts.ts';
import type { Batch, BatchOutcome, CollectionCheck } from './apply.ts';
import { builtInAuthenticate, checkCookieWrite, refuseUrlTokens, type Authenticate, type Principal } from './auth.ts';
import { createCommitter, type Committer } from './committer.ts';
import type { FerryDb } from './db.ts';
import { fail } from './errors.ts';
import { createHub, type Connection, type Hub } from './hub.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createRateLimiter, DEFAULT_RATE_LIMITS, type RateLimiter, type RateLimits } from './rate-limit.ts';
import { createSyncStore, type SyncStore } from './store.ts';

export interface AppDeps {
  db: FerryDb;
  /** Exact origins allowed to open sockets and send cookie-authenticated writes (besides same-origin). */
  origins?: string[];
  /** Replace the built-in accounts (sessions and tokens) with your own. */
  authenticate?: Authenticate;
  /** Per-collection valibot schemas for op values; collections without one get the envelope limits only. */
  collections?: Record<string, v.GenericSchema>;
  rateLimits?: RateLimits;
  sessionTtlMs?: number;
  /** Tombstones older than this are purged by `purge()`; cursors below the horizon get `reset`. */
  tombstoneRetentionMs?: number;
  /** Serves the PWA and other static files for GET requests no route matched. */
  assets?: (path: string) => Promise<Response | null>;
  now?: () => number;
  /** Socket backpressure: pause above this many buffered bytes, close after `maxPausedMs` paused. */
  pauseBytes?: number;
  maxPausedMs?: number;
  /**
   * TESTS ONLY — fault injection. `afterCommit` runs after a group's transaction has committed and before
   * any of its answers is released: throwing makes every batch of the group answer 500 `internal` although
   * it is committed (its resend must then be `duplicate`); a test harness may also SIGKILL the process here.
   * Unreachable in production: the CLI (and so the binary) never sets it, and no env var or flag does.
   */
  faults?: { afterCommit?: (batches: Batch[]) => void | Promise<void> };
}

export interface Ferry {
  deps: AppDeps;
  now: () => number;
  origins: string[];
  accounts: Accounts;
  store: SyncStore;
  committer: Committer;
  hub: Hub;
  metrics: Metrics;
  limiter: RateLimiter;
  authenticate: Authenticate;
  lamport: { value: number };
  /** Authenticates a request; throws auth_required. Cookie writes also pass the CSRF checks. */
  principal(request: Request, write: boolean): Promise<Principal>;
  /** Rate limit, then apply through group commit; `origin` is the socket that sent it, if any. */
  push(principal: Principal, device: string, ops: Op[], origin: Connection | null): Promise<BatchOutcome>;
}

export async function createFerry(deps: AppDeps): Promise<Ferry> {
  const now = deps.now ?? Date.now;
  const store = createSyncStore(deps.db, collectionCheck(deps.collections));
  const metrics = createMetrics();
  const hub = createHub({
    store, metrics, now,
    ...(deps.pauseBytes ? { pauseBytes: deps.pauseBytes } : {}),
    ...(deps.maxPausedMs ? { maxPausedMs: deps.maxPausedMs } : {}),
  });
  const accounts = createAccounts(deps.db);
  const lamport = { value: (await store.heads()).lamport };
  const origins = deps.origins ?? [];
  const limiter = createRateLimiter(deps.rateLimits ?? DEFAULT_RATE_LIMITS);
  const authenticate = deps.authenticate ?? builtInAuthenticate(accounts, now);
  const origin = new WeakMap<object, Connection>();

  const committer = createCommitter(
    async (batches) => {
      const started = performance.now();
      const result = await store.commitGroup(batches, now());
      metrics.applyLatency(performance.now() - started);
      await deps.faults?.afterCommit?.(batches); // tests only, see AppDeps.faults
      return result;
    },
    (extra, batches, outcomes) => {
      lamport.value = Math.max(lamport.value, extra.lamport);
      batches.forEach((batch, i) => {
        const outcome = outcomes[i]!;
        countOutcome(metrics, outcome);
        if (outcome.ok) {
          const { ok: _, ...ack } = outcome;
          hub.committed(batch.device, { type: 'ack', device: batch.device, ...ack }, origin.get(batch) ?? null, batch.userId);
        }
      });
      hub.fanOut(extra.entities, lamport.value);
    },
  );

  return {
    deps, now, origins, accounts, store, committer, hub, metrics, limiter, authenticate, lamport,
    async principal(request, write) {
      refuseUrlTokens(new URL(request.url));
      const principal = await authenticate(request);
      if (!principal) throw fail('auth_required', 'Sign in again: no valid session or token came with the request.');
      if (write && principal.via === 'cookie') checkCookieWrite(request, origins);
      return principal;
    },
    async push(principal, device, ops, from) {
      // Keyed by user too: pushing under another user's device id (refused as forbidden later) must not
      // spend that device's budget and lock its owner out.
      const wait = limiter.take(`${principal.user.id}\u0000${device}`, ops.length, now());
      if (wait > 0) {
        return { ok: false, error: { code: 'rate_limited', message: `Too many pushes; retry in ${wait} ms.`, retryAfterMs: wait } };
      }
      const batch = { userId: principal.user.id, device, ops };
      if (from) origin.set(batch, from);
      return committer.submit(batch);
    },
  };
}

function countOutcome(metrics: Metrics, outcome: BatchOutcome) {
  metrics.count('ferry_batches_total');
  if (!outcome.ok) return metrics.count('ferry_batches_refused_total');
  for (const r of outcome.results) {
    if (r.result === 'applied') metrics.count('ferry_ops_applied_total');
    else if (r.result === 'superseded') metrics.count('ferry_ops_superseded_total');
    else if (r.result === 'duplicate') metrics.count('ferry_ops_duplicate_total');
    else metrics.count('ferry_ops_rejected_total');
  }
}

function collectionCheck(schemas: Record<string, v.GenericSchema> | undefined): CollectionCheck | undefined {
  if (!schemas) return undefined;
  return (collection, op) => {
    const schema = schemas[collection];
    if (!schema || op.kind === 'delete') return null;
    // A patch carries some fields only: check it against the schema made partial when it is an object.
    const target = op.kind === 'patch' && 'entries' in schema ? v.partial(schema as v.ObjectSchema<v.ObjectEntries, undefined>) : schema;
    const result = v.safeParse(target, op.value);
    if (result.success) return null;
    const issue = result.issues[0];
    const path = issue ? v.getDotPath(issue) : null;
    return `${collection}: ${path ? `${path}: ` : ''}${issue?.message ?? 'value does not match the schema'}`;
  };
}
