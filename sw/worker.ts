// Ferry inside a Service Worker: the device engine (device/device.ts) with the worker's ports — HTTP only
// (the session cookie authenticates it, so it works with no page open), no socket, no timer — woken by
// Background Sync and by every fallback DESIGN.md lists. `sw.ts` is the ready worker; an app with its own
// worker calls `installFerry(self, options)` from it and bundles this module.
//
//   sync 'ferry:drain' ──▶ drain ── resolves: done, or needs a person (auth, failed) ──▶ event ok
//                                └─ rejects: transient, past the drain's wait budget ──▶ rethrown, so
//                                                                     the browser retries the sync later
//   activate ─▶ claim pages, drop old shell caches; then (not holding activation) drain
//   message { drain | resume | signed-in } ─▶ that drain, answered on the message's port
//   message { SKIP_WAITING } (workbox-window's update flow) ─▶ skipWaiting
//
// The worker may be killed at any moment, so it keeps nothing that matters in memory: the outbox, the
// clock and the drain machine's state live in IndexedDB (device/store.ts), and the drainer resumes from them.
import { channelName, createChannel } from '../device/channel.ts';
import { createDevice, type Device } from '../device/device.ts';
import { STATIC_PARTS } from '../device/parts.ts';
import { sessionFetch } from '../device/http.ts';
import { createWebLock, globalTimers } from '../device/locks.ts';
import { type DrainKind, isWorkerRequest, type WorkerReply } from '../device/messages.ts';
import type { DrainLimits, DrainResult } from '../device/ports.ts';
import { databaseExists, databaseOf, openProfile, type Profile } from '../device/profile.ts';
import { createStore, DB_NAME } from '../device/store.ts';
import { SYNC_TAG } from '../schema/protocol.ts';
import { installShell, type Shell } from './shell.ts';

export interface FerryWorkerOptions {
  /** The server's origin (and base path), default this worker's origin. */
  url?: string;
  /** The device databases' base name; must match the pages' `dbName`. */
  dbName?: string;
  /** The app shell to cache for offline starts; leave out when the app's own worker caches. */
  shell?: { precache: readonly string[]; version: string };
  limits?: Partial<DrainLimits>;
}

export interface FerryWorker {
  /** What a `sync` event does; null when the pages drain instead (see DrainerOwner). */
  drain(): Promise<DrainResult | null>;
}

/**
 * Installs Ferry in a Service Worker (`self`): drains the outbox on Background Sync, on activation and when a
 * page asks, with no page open (cookie apps; a token app's pages drain). Claims the pages on activation. Call
 * it once, at the worker's top level, beside the app's own caching (Workbox's `precacheAndRoute`); pass
 * `shell` only when this worker should cache the app shell itself.
 */
export function installFerry(scope: ServiceWorkerGlobalScope, options: FerryWorkerOptions = {}): FerryWorker {
  const url = (options.url ?? scope.location.origin).replace(/\/+$/, '');
  const dbName = options.dbName ?? DB_NAME;
  const shell: Shell | null = options.shell ? installShell(scope, { ...options.shell, serverUrl: url }) : null;

  // Opened on the first event rather than at start-up: a worker started for a fetch needs no database.
  // One engine per device database: the signed-in user's (see device/profile.ts), or the profile's single
  // database for an app that does not sign users in through Ferry.
  const engines = new Map<string, Promise<Device>>();
  let profile: Promise<Profile> | null = null;
  const engineFor = (name: string, signedIn: () => Promise<boolean>) => {
    let engine = engines.get(name);
    if (engine === undefined) {
      engine = openEngine(scope, url, name, signedIn, options);
      engines.set(name, engine);
      engine.catch(() => engines.delete(name)); // a failed open (storage pressure, a blocked upgrade) is tried again next event
    }
    return engine;
  };

  /**
   * A drain that could not finish (offline, the server away) asks the browser for a sync event, so the ops go
   * once the network is back even if no page is ever opened again. Where Background Sync is missing this is
   * a no-op: the next page, the next `online`, the next activation wake it instead.
   */
  const needsSync = (result: DrainResult | null) => result?.phase === 'backoff';
  const registerSync = () => scope.registration.sync?.register(SYNC_TAG).catch(() => undefined);
  const run = async (kind: DrainKind | 'network-back'): Promise<DrainResult | null> => {
    try {
      const result = await drainFor(kind);
      if (needsSync(result)) await registerSync();
      return result;
    } catch (error) {
      await registerSync(); // a transient failure past the drain's wait budget
      throw error;
    }
  };

  const drainFor = async (kind: DrainKind | 'network-back'): Promise<DrainResult | null> => {
    const who = await (profile ??= openProfile(dbName)).then((p) => p.active());
    if (who === null) return null; // signed out: nothing of this profile may send
    // Nobody signed in and nothing written yet (the first visit only cached the app): nothing to send.
    if (who === undefined && !engines.has(dbName) && !(await databaseExists(dbName))) return null;
    const engine = who === undefined
      ? await engineFor(dbName, async () => true)
      // Every request re-checks: a sign-out in a page stops this engine's next push before it leaves.
      : await engineFor(databaseOf(dbName, who), async () => (await (await profile!).active()) === who);
    return kind === 'network-back' ? engine.networkBack() : engine.drain(kind);
  };

  scope.addEventListener('sync', (event) => {
    if (event.tag !== SYNC_TAG) return;
    // The browser believes the network is back: a drain waiting out a network failure goes at once. A
    // rejection here is the point: the browser schedules another sync event with its own backoff.
    event.waitUntil(run('network-back').catch((error: unknown) => {
      if (event.lastChance) console.warn('ferry: last Background Sync attempt failed; pages will retry', error);
      throw error;
    }));
  });

  scope.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
      await scope.clients.claim();
      await shell?.cleanup();
    })());
    // Where Background Sync is missing (Safari, Firefox), activation is one of the wake-ups. Not inside the
    // event's waitUntil: until activation ends, every request of the pages it controls waits (a reload
    // too), and a drain that meets no network sleeps out its backoff for up to its wait budget (30 s).
    run('drain').catch((error: unknown) => console.warn('ferry: drain on activate failed', error));
  });

  scope.addEventListener('message', (event) => {
    const request: unknown = event.data;
    if (!isWorkerRequest(request)) return;
    if (request.type === 'SKIP_WAITING') {
      void scope.skipWaiting();
      return;
    }
    const port = event.ports[0];
    const answer = (reply: WorkerReply) => port?.postMessage(reply);
    event.waitUntil(run(request.type).then(
      (result) => answer({ ok: true, result }),
      (error: unknown) => answer({ ok: false, error: error instanceof Error ? error.message : String(error) }),
    ));
  });

  return { drain: () => run('drain') };
}

function openEngine(scope: ServiceWorkerGlobalScope, url: string, name: string, signedIn: () => Promise<boolean>,
  options: FerryWorkerOptions): Promise<Device> {
  return (async () => {
    const channel = createChannel(channelName(name, DB_NAME));
    return createDevice({
      store: await createStore({ name }),
      parts: STATIC_PARTS,
      fetch: sessionFetch(((input, init) => scope.fetch(input, init)) as typeof fetch, signedIn),
      lock: createWebLock(scope.navigator.locks),
      now: Date.now,
      random: Math.random,
      timers: globalTimers,
      // The worker only tells: its pages re-read what changed. What they post is theirs to act on.
      channel: { post: (message) => channel.post(message), listen() {}, close: () => channel.close() },
      // Woken by events, not by a network signal: a worker runs only while an event holds it.
      online: { get: () => true, subscribe: () => () => {} },
    }, { url, role: 'worker', ...(options.limits ? { limits: options.limits } : {}) });
  })();
}
