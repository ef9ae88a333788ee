// What every plugin of one server instance shares: the stores, the committer, the hub, the change bus and
// the policies. Built once by createApp from its deps; plugins receive it instead of reaching for globals.
// Nothing here that several instances must agree on lives in memory: heads, lamport floors and device rows
// are read in the write transaction (or per request), and commits reach other instances over the bus.
import type { Batch, BatchOutcome } from '../core/apply.ts';
import type { WriteRules } from '../core/logic.ts';
import type { CollectionVersions } from '../core/versions.ts';
import type { Op } from '../core/types.ts';
import { collectionCheck, type CollectionSchemas } from '../schema/collections.ts';
import { createAccounts, type Accounts } from './accounts.ts';
import { builtInAuthenticate, checkCookieWrite, refuseUrlTokens, type Authenticate, type Principal } from './auth.ts';
import { type ChangeBus, type ChangeNotice, createLocalBus } from './change-bus.ts';
import { createCommitter, type Committer } from './committer.ts';
import { createDispatcher, type Dispatcher, effectSelection, type EffectHandlers, type EffectOptions } from './effects.ts';
import { fail } from './errors.ts';
import { logFailure } from './log.ts';
import { createHub, type Connection, type Hub } from './hub.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createRateLimiter, DEFAULT_RATE_LIMITS, type RateLimiter, type RateLimits } from './rate-limit.ts';
import type { FerryDb } from './storage/db.ts';
import { createEffectStore, type EffectStore } from './storage/effects-store.ts';
import { type CommitExtra, createSyncStore, type SyncStore } from './storage/sync-store.ts';
import type { SocketAdapter } from './sync-socket.ts';

export interface AppDeps {
  db: FerryDb;
  /** Exact origins allowed to open sockets and send cookie-authenticated writes (besides same-origin). */
  origins?: string[];
  /**
   * Replace the built-in accounts (sessions and tokens) with your own: return any stable user id (and a name
   * to show). Ferry provisions its own rows for that user on first sight — a row no password opens, a
   * personal space `u:<id>` they own — so spaces, devices and memberships work as for built-in users.
   */
  authenticate?: Authenticate;
  /** Per-collection valibot schemas for op values; collections without one get the envelope limits only. */
  collections?: CollectionSchemas;
  /**
   * Per-collection write rules (core/logic.ts WriteRule): pure functions of the op, the entity as it is and the
   * writer, run in the apply transaction once per new op; they accept (optionally with server-computed
   * fields) or reject with a code and a sentence. A duplicate is answered with its first result, never re-run.
   */
  rules?: WriteRules;
  /**
   * Per-collection schema versions (core/versions.ts): `{ items: { version: 2, upgrade(op, from) { … } } }`.
   * An op the page library wrote under an older version (queued for days, or behind a worker update) is
   * brought up to `version` by `upgrade` (its value as the new schema writes it) before `collections` and
   * `rules` see it, or rejected `outdated_app` when there is no upgrade. Absent: every collection at 1.
   */
  versions?: CollectionVersions;
  /**
   * Side effects by name (server/effects.ts): for each op genuinely applied to `collection` (never a duplicate,
   * a rejected or a superseded one) the commit records one, delivered after it at least once with the op id
   * as the idempotency key, retried with backoff; `ferry effect` lists, retries and drops them.
   */
  effects?: EffectHandlers;
  effectOptions?: EffectOptions;
  rateLimits?: RateLimits;
  sessionTtlMs?: number;
  /** Tombstones older than this are removed by the purge; cursors below the horizon get `reset`. Default 30 days. */
  tombstoneRetentionMs?: number;
  /** How often the purge runs while the app listens (default a 24th of the retention, at most hourly). */
  purgeEveryMs?: number;
  /** Serves the PWA and other static files for GET requests no route matched. */
  assets?: (path: string) => Promise<Response | null>;
  now?: () => number;
  /** Socket backpressure: pause above this many buffered bytes, close after `maxPausedMs` paused. */
  pauseBytes?: number;
  maxPausedMs?: number;
  /**
   * Sync sockets one user may hold open on this instance (every tab and device counts); one more is closed
   * at once with 4429 and says why. Default DEFAULT_MAX_SOCKETS_PER_USER.
   */
  maxSocketsPerUser?: number;
  /** How changes reach the sockets of every instance; default in-process (a single instance). */
  bus?: ChangeBus;
  /** This instance's name in connection ids and bus notices; default a random one. */
  instance?: string;
  /** How this runtime serves the sync socket; default the running runtime's (socket-bun.ts, socket-deno.ts). */
  socket?: SocketAdapter;
}

/**
 * TESTS ONLY — fault injection, not part of AppDeps (server/testing.ts passes it). `afterCommit` runs after a
 * group's transaction has committed and before any of its answers is released: throwing makes every batch of
 * the group answer 500 `internal` although it is committed (its resend must then be `duplicate`); a test
 * harness may also SIGKILL the process here. The CLI (and so the binary) never sets it; no env var or flag does.
 */
export interface TestHooks {
  afterCommit?: (batches: Batch[]) => void | Promise<void>;
}

export interface ServerContext {
  deps: AppDeps;
  now: () => number;
  instance: string;
  origins: string[];
  accounts: Accounts;
  store: SyncStore;
  committer: Committer;
  effects: EffectStore;
  dispatcher: Dispatcher;
  hub: Hub;
  bus: ChangeBus;
  metrics: Metrics;
  limiter: RateLimiter;
  authenticate: Authenticate;
  /** Authenticates a request; throws auth_required. Cookie writes also pass the CSRF checks. */
  principal(request: Request, write: boolean): Promise<Principal>;
  /** Rate limit, then apply through group commit; `origin` is the socket that sent it, if any. */
  /** `at`: when the push arrived (a socket's pipelined pushes are taken later; the limiter judges the
   * client's pace, not the server's). */
  push(principal: Principal, device: string, ops: Op[], origin: Connection | null, at?: number): Promise<BatchOutcome>;
  /** These users' memberships changed: tell their sockets on every instance (live invitations and removals). */
  membershipChanged(users: readonly string[]): void;
  /** These users signed out or lost a credential: their sockets on every instance check theirs now. */
  credentialsChanged(users: readonly string[]): void;
  /** Removes the tombstones older than the retention now; returns how many. */
  purge(): Promise<number>;
  /** Starts what runs on a schedule while the app serves (the purge); the app's onStart calls it. Idempotent. */
  startBackground(): void;
  stopBackground(): void;
  /** Stops listening to the bus (the bus itself belongs to whoever made it). */
  close(): void;
}

export const DEFAULT_TOMBSTONE_RETENTION_MS = 30 * 86_400_000;
/** Enough for a person's tabs on several devices and a few scripts; a runaway client stops here. */
export const DEFAULT_MAX_SOCKETS_PER_USER = 100;

export function createServerContext(deps: AppDeps, hooks: TestHooks = {}): ServerContext {
  const now = deps.now ?? Date.now;
  const instance = deps.instance ?? crypto.randomUUID().slice(0, 8);
  const store = createSyncStore(deps.db, collectionCheck(deps.collections), {
    ...(deps.versions ? { versions: deps.versions } : {}), ...(deps.rules ? { rules: deps.rules } : {}), ...(deps.effects ? { effects: effectSelection(deps.effects) } : {}),
  });
  const metrics = createMetrics();
  const effects = createEffectStore(deps.db);
  const dispatcher = createDispatcher({ store: effects, handlers: deps.effects ?? {}, options: deps.effectOptions ?? {}, now, instance, metrics });
  const bus = deps.bus ?? createLocalBus();
  const accounts = createAccounts(deps.db);
  const hub = createHub({
    store, metrics, now, instance, spacesOf: (user) => accounts.spacesOf(user),
    ...(deps.pauseBytes ? { pauseBytes: deps.pauseBytes } : {}),
    ...(deps.maxPausedMs ? { maxPausedMs: deps.maxPausedMs } : {}),
  });
  const origins = deps.origins ?? [];
  const limiter = createRateLimiter(deps.rateLimits ?? DEFAULT_RATE_LIMITS);
  const authenticate = deps.authenticate ?? builtInAuthenticate(accounts, now);
  const origin = new WeakMap<object, Connection>();
  // Users an embedder's hook vouched for that this instance has provisioned already (the rows are the truth;
  // this only saves a transaction per request).
  const provisioned = new Set<string>();
  const authenticateAndProvision: Authenticate = async (request) => {
    const principal = await authenticate(request);
    if (principal && deps.authenticate && !provisioned.has(principal.user.id)) {
      await accounts.provision(principal.user, now());
      provisioned.add(principal.user.id);
    }
    return principal;
  };

  const purge = () => store.purgeTombstones(now() - (deps.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS));
  let purgeTimer: ReturnType<typeof setInterval> | null = null;
  // Another instance's notices (hints: their rows are read from the database) are handled one at a time,
  // in arrival order: handled at once, a later notice's read could finish first, find every subscriber
  // below its `from`, and send them all back to catch-up reads of their own. This instance's notices
  // carry their rows and go straight through.
  let remote = Promise.resolve();
  const fanOut = (notice: ChangeNotice) => hub.notice(notice).catch((error: unknown) => logFailure('fan-out failed', error));
  const unsubscribe = [
    bus.subscribe((notice) => {
      if (notice.origin === instance) void fanOut(notice);
      else remote = remote.then(() => fanOut(notice));
    }),
    bus.onRecovered(() => hub.resync()),
  ];

  const committer = createCommitter(
    async (take) => {
      const started = performance.now();
      const { batches, ...result } = await store.commitTaking(take, now());
      metrics.applyLatency(performance.now() - started);
      await hooks.afterCommit?.(batches); // tests only, see TestHooks
      return result;
    },
    (extra, batches, outcomes) => {
      batches.forEach((batch, i) => countOutcome(metrics, outcomes[i]!));
      if (extra.effects > 0) {
        metrics.count('ferry_effects_recorded_total', extra.effects);
        dispatcher.kick();
      }
      bus.publish(noticeOf(extra, batches, outcomes, instance, (batch) => origin.get(batch)?.id ?? null));
    },
  );

  return {
    deps, now, instance, origins, accounts, store, committer, effects, dispatcher, hub, bus, metrics, limiter, authenticate: authenticateAndProvision,
    async principal(request, write) {
      refuseUrlTokens(new URL(request.url));
      const principal = await authenticateAndProvision(request);
      if (!principal) throw fail('auth_required', 'Sign in again: no valid session or token came with the request.');
      if (write && principal.via === 'cookie') checkCookieWrite(request, origins);
      return principal;
    },
    async push(principal, device, ops, from, at = now()) {
      // Keyed by user too: pushing under another user's device id (refused as forbidden later) must not
      // spend that device's budget and lock its owner out.
      const wait = limiter.take(`${principal.user.id}\u0000${device}`, ops.length, at);
      if (wait > 0) {
        return { ok: false, error: { code: 'rate_limited', message: `Too many pushes; retry in ${wait} ms.`, retryAfterMs: wait } };
      }
      const batch = { userId: principal.user.id, device, ops };
      if (from) origin.set(batch, from);
      return committer.submit(batch);
    },
    membershipChanged(users) {
      if (users.length > 0) bus.publish({ spaces: [], lamport: 0, acks: [], members: [...new Set(users)], origin: instance });
    },
    credentialsChanged(users) {
      if (users.length > 0) bus.publish({ spaces: [], lamport: 0, acks: [], recheck: [...new Set(users)], origin: instance });
    },
    purge,
    startBackground() {
      const retention = deps.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;
      purgeTimer ??= setInterval(() => void purge().catch((error: unknown) => logFailure('purge failed', error)),
        deps.purgeEveryMs ?? Math.min(retention / 24, 3_600_000));
      if (deps.effects) dispatcher.start();
    },
    stopBackground() {
      if (purgeTimer !== null) clearInterval(purgeTimer);
      purgeTimer = null;
      void dispatcher.stop();
    },
    close() {
      void dispatcher.stop();
      for (const stop of unsubscribe) stop();
      if (purgeTimer !== null) clearInterval(purgeTimer);
      purgeTimer = null;
    },
  };
}

/** What one group commit tells every instance: its rows and spaces, and the acks for the devices' other sockets. */
function noticeOf(extra: CommitExtra, batches: readonly Batch[], outcomes: readonly BatchOutcome[], instance: string,
  originOf: (batch: Batch) => string | null): ChangeNotice {
  const acks: ChangeNotice['acks'] = [];
  batches.forEach((batch, i) => {
    const outcome = outcomes[i]!;
    if (!outcome.ok) return;
    const { ok: _, ...ack } = outcome;
    acks.push({ device: batch.device, user: batch.userId, ack: { type: 'ack', device: batch.device, ...ack }, skip: originOf(batch) });
  });
  return { spaces: extra.spaces, lamport: extra.lamport, entities: extra.entities, acks, origin: instance };
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
