// The device engine's draining: where a drain runs (this context's own drainer, or the page's Service
// Worker, by Background Sync or a message), wake-ups that never reject, writes sharing wake-ups, and the
// timer that wakes a page while ops wait (wake-policy.ts decides when). device.ts composes it.
// The drainer itself is a part (DeviceParts): asked for the first time this context drains, so a page whose
// worker drains never loads it.
import { coalesced } from './coalesce.ts';
import type { Drainer } from './drainer.ts';
import { sleepOn } from './locks.ts';
import type { DrainKind } from './messages.ts';
import { observeAcks, type DrainResult, type Transport } from './ports.ts';
import type { AckApplied } from './records.ts';
import { drainViewOf, type StatusTracker } from './status.ts';
import { nextWakeIn, WRITE_WAKE_GAP_MS } from './wake-policy.ts';
import type { DeviceOptions, DevicePorts, DrainerPart } from './device.ts';

export interface Drains {
  /** Runs `kind` where the drain lives. Null: it ran elsewhere, or not at all (see DrainerOwner). */
  drain(kind?: DrainKind): Promise<DrainResult | null>;
  /** `drain` that never rejects: failures become status. */
  wake(kind?: DrainKind): Promise<void>;
  /**
   * After a write. Where a worker drains with Background Sync, the write's promise waits for the sync
   * registration (a few ms, once per burst), so a tab closed right after a write still leaves the browser
   * holding the wake-up for the network. Elsewhere: the first write wakes a drain at once, a stream of writes
   * folds into one wake-up per interval.
   */
  afterWrite(): Promise<void>;
  close(): void;
}

export interface DrainHooks {
  tracker: StatusTracker;
  transport: Transport;
  acked(applied: AckApplied): void;
  report(error: unknown): void;
  /** Runs a wake-up in the background, where `settled()` can wait for it. */
  track(work: Promise<unknown>): void;
}

export function createDrains(ports: DevicePorts, options: DeviceOptions, hooks: DrainHooks): Drains {
  const { store, timers, now } = ports;
  const { tracker } = hooks;
  let closed = false;
  let part: DrainerPart | null = null;
  let drainer: Drainer | Promise<Drainer> | null = null;
  const made = (loaded: DrainerPart): Drainer => {
    part = loaded;
    return (drainer = loaded.createDrainer({
      store: observeAcks(store, hooks.acked),
      transport: hooks.transport, lock: ports.lock, now, random: ports.random, sleep: ports.sleep ?? sleepOn(timers),
      onStatus: (status) => {
        tracker.update({ drain: drainViewOf(status) });
        ports.channel.post({ type: 'status', status: { ...status, source: options.role } });
      },
      ...(options.limits ? { limits: options.limits } : {}),
    }));
  };
  const drainerNow = (): Drainer | Promise<Drainer> => {
    if (drainer !== null) return drainer;
    const loading = ports.parts.drainer();
    if (!(loading instanceof Promise)) return made(loading);
    return (drainer = loading.then(made, (error: unknown) => {
      drainer = null; // not loaded (offline, a new deploy): the next wake-up asks again
      throw error;
    }));
  };
  const worker = ports.worker ?? null;

  async function drain(kind: DrainKind = 'drain'): Promise<DrainResult | null> {
    if (closed) return null;
    if (options.role === 'worker' && (await store.getDrainerOwner()) === 'page') {
      return null; // an app with a bearer token drains from its pages; the worker's fetch would only get 401s
    }
    if (worker?.controlled()) {
      // A failure comes back as an error answer or a timeout; the worker's broadcasts say how it went.
      await worker.request(kind).catch(() => undefined);
      return null;
    }
    const local = await drainerNow();
    return kind === 'drain' ? local.drain() : kind === 'resume' ? local.resume() : local.signedIn();
  }

  async function wake(kind: DrainKind = 'drain'): Promise<void> {
    try {
      await drain(kind);
    } catch (error) {
      // A SyncError is a drain that gave up waiting within its budget; the timer wakes it again. (Without
      // the part, what failed was loading it.)
      if (!part?.isSyncError(error)) hooks.report(error);
    }
  }

  // The page's timer while ops wait (a worker is woken by events instead: its timers die with it).
  let timer: unknown = null;
  const armTimer = () => {
    if (timer !== null) timers.clearTimeout(timer);
    timer = null;
    const { drain: view, outbox } = tracker.parts();
    const due = closed || options.role === 'worker' ? null : nextWakeIn(view, outbox.count, now());
    if (due === null) return;
    timer = timers.setTimeout(() => {
      timer = null;
      hooks.track(wake().then(armTimer));
    }, due);
  };
  const stopWatching = tracker.subscribe(armTimer);
  armTimer();

  const wakeAfterWrite = coalesced(() => wake('drain'), hooks.report, WRITE_WAKE_GAP_MS, timers);
  // The trailing registration of a burst, and when the last awaited one was made.
  const registerLater = coalesced(async () => void (await worker?.registerSync()), hooks.report, WRITE_WAKE_GAP_MS, timers);
  let registeredAt = Number.NEGATIVE_INFINITY;

  return {
    drain,
    wake,
    async afterWrite() {
      if (closed) return;
      if (worker?.controlled()) {
        if (now() - registeredAt < 4 * WRITE_WAKE_GAP_MS) return registerLater(); // one burst, one wait
        if (await worker.registerSync()) {
          registeredAt = now();
          return;
        }
      }
      wakeAfterWrite(); // no Background Sync here: the worker (or this page) drains now
    },
    close() {
      closed = true;
      stopWatching();
      if (timer !== null) timers.clearTimeout(timer);
      worker?.close();
    },
  };
}
