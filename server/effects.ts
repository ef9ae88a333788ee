// An app's side effects, exactly once per new op (invariant 10): "when an item is assigned, notify the
// assignee". The embedder names handlers (AppDeps.effects); for each op that was genuinely applied — never a
// duplicate, a rejected or a superseded one — the apply commit records one row per handler that wants it
// (core/apply.ts, sync-store.ts), and this dispatcher delivers each row after the commit, at least once, with
// the op id as the idempotency key:
//
//   commit ──kick──▶ claim due rows under a lease (storage/effects-store.ts) ──▶ handler.run(effect)
//   timer (pollMs) ─┘      │ one instance at a time per row                       │ ok: done
//                          ▼                                                      │ threw / timed out:
//   lease ran out (instance died mid-handler) → claimed again, same id, next attempt   pending at now+backoff,
//                                                                                 failed after maxAttempts
//
// A kill -9 between the commit and the delivery leaves the row pending: the next start delivers it. A kill
// during the handler leaves it leased: once the lease runs out, an instance delivers it again with the same id.
import { backoffCeiling, type BackoffPolicy } from '../core/backoff.ts';
import { NAME_PATTERN } from '../core/limits.ts';
import type { AppliedWrite, EffectSelection } from '../core/logic.ts';
import type { OpKind } from '../core/types.ts';
import type { Metrics } from './metrics.ts';
import { logFailure } from './log.ts';
import type { EffectStore } from './storage/effects-store.ts';

/** What a handler gets: the applied write, keyed by its op id, and which attempt this is (1, 2, …). */
export interface Effect extends AppliedWrite {
  /** The op id: the idempotency key. A retry, or a delivery after a crash, carries the same one. */
  id: string;
  name: string;
  attempt: number;
}

export interface EffectHandler {
  /** The collection whose applied ops it is for. */
  collection: string;
  /** Only these kinds (default every kind). */
  kinds?: readonly OpKind[];
  /** Pure, in the apply transaction: whether this applied op wants the effect. A `when` that throws counts as
   * yes (the handler then decides), so an effect is never silently lost. */
  when?: (write: AppliedWrite) => boolean;
  /** Runs after the commit, at least once per recorded effect; resolve when done, throw to be retried. */
  run: (effect: Effect) => Promise<void> | void;
}

export type EffectHandlers = Readonly<Record<string, EffectHandler>>;

/** Thrown by a handler, its message is shown to the operator (`ferry effect list`); any other error is shown
 * by its name only, since an error's text may hold what must not reach a screen. */
export class EffectFailure extends Error {}

export interface EffectOptions {
  /** Backoff between attempts (full jitter; default 1 s doubling to 10 min). */
  retry?: BackoffPolicy;
  /** Attempts before an effect is `failed` (default 12). */
  maxAttempts?: number;
  /** How long a claim holds an effect; past it another instance may take it (default 60 s). */
  leaseMs?: number;
  /** A handler that takes longer has failed this attempt (default 30 s; keep it under leaseMs). */
  timeoutMs?: number;
  /** How often to look for due effects besides after each commit (default 1 s). */
  pollMs?: number;
  /** False: this instance records effects but never delivers them (another instance does). Default true. */
  deliver?: boolean;
}

export const DEFAULT_EFFECT_RETRY: BackoffPolicy = { baseMs: 1000, capMs: 10 * 60_000 };
const CLAIM_BATCH = 16;

/** The pure selection the commit runs: the names of the handlers an applied op wants. */
export function effectSelection(handlers: EffectHandlers): EffectSelection {
  for (const name of Object.keys(handlers)) {
    if (!NAME_PATTERN.test(name)) throw new Error(`effect name "${name}" must match ${NAME_PATTERN} (it is stored and shown)`);
  }
  const entries = Object.entries(handlers);
  return (write) => entries.filter(([, h]) => h.collection === write.op.collection && (h.kinds?.includes(write.op.kind) ?? true) && wants(h, write))
    .map(([name]) => name);
}

function wants(handler: EffectHandler, write: AppliedWrite): boolean {
  try {
    return handler.when?.(write) ?? true;
  } catch {
    return true;
  }
}

export interface Dispatcher {
  /** Look for due effects now (after a commit that recorded some). */
  kick(): void;
  start(): void;
  /** Stops claiming; resolves when the handlers running now have settled. */
  stop(): Promise<void>;
}

export function createDispatcher(deps: {
  store: EffectStore; handlers: EffectHandlers; options: EffectOptions; now: () => number; instance: string; metrics: Metrics;
  random?: () => number;
}): Dispatcher {
  const { store, handlers, options, now, metrics } = deps;
  const policy = options.retry ?? DEFAULT_EFFECT_RETRY;
  const maxAttempts = options.maxAttempts ?? 12;
  const leaseMs = options.leaseMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const random = deps.random ?? Math.random;
  // A lease holder is one run of one instance: a restarted instance never settles its predecessor's claims.
  const owner = `${deps.instance}:${crypto.randomUUID().slice(0, 8)}`;
  let timer: ReturnType<typeof setInterval> | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = true;

  const deliver = async (effect: Awaited<ReturnType<EffectStore['claim']>>[number]) => {
    const handler = handlers[effect.name];
    let error: string | null = null;
    if (!handler) error = `no handler named ${effect.name} on this server`;
    else {
      try {
        await withTimeout(Promise.resolve().then(() => handler.run({ ...effect.write, id: effect.opId, name: effect.name, attempt: effect.attempt })), timeoutMs);
      } catch (thrown) {
        error = failureText(thrown, timeoutMs);
      }
    }
    if (error === null) {
      if (await store.done(owner, effect.opId, effect.name, now())) metrics.count('ferry_effects_delivered_total');
      return;
    }
    const final = effect.attempt >= maxAttempts;
    const nextAt = final ? null : now() + Math.floor(random() * backoffCeiling(effect.attempt - 1, policy));
    await store.failed(owner, effect.opId, effect.name, error, nextAt, now());
    metrics.count(final ? 'ferry_effects_failed_total' : 'ferry_effects_retried_total');
  };

  const pass = async () => {
    do {
      again = false;
      for (;;) {
        if (stopped) return;
        const claimed = await store.claim(owner, now(), now() + leaseMs, CLAIM_BATCH);
        if (claimed.length === 0) break;
        await Promise.all(claimed.map(deliver));
      }
    } while (again && !stopped);
  };

  const kick = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().catch((error: unknown) => logFailure('effect delivery failed', error)).finally(() => {
      running = null;
    });
  };

  return {
    kick,
    start() {
      if (options.deliver === false || !stopped) return;
      stopped = false;
      timer = setInterval(kick, options.pollMs ?? 1000);
      kick();
    },
    async stop() {
      stopped = true;
      if (timer !== null) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}

function failureText(thrown: unknown, timeoutMs: number): string {
  if (thrown instanceof TimedOut) return `the handler took longer than ${timeoutMs} ms`;
  if (thrown instanceof EffectFailure) return thrown.message.slice(0, 500);
  const name = thrown instanceof Error ? thrown.name : typeof thrown;
  return `the handler threw ${/^[A-Za-z]\w{0,63}$/.test(name) ? name : 'an error'}`;
}

class TimedOut extends Error {}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimedOut()), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}
