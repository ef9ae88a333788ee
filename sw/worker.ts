// Ferry inside a Service Worker: the outbox drainer over HTTP (the session cookie authenticates it,
// so it works with no page open), woken by Background Sync and by every fallback DESIGN.md lists, and
// telling the pages what it did. `sw.ts` is the ready worker; an app with its own worker calls
// `installFerry(self, options)` from it and bundles this module.
//
//   sync 'ferry:drain' ──▶ drain ── resolves: done, or needs a person (auth, failed) ──▶ event ok
//                                └─ rejects: transient, past the drain's wait budget ──▶ rethrown, so
//                                                                     the browser retries the sync later
//   activate ─▶ claim pages, drop old shell caches, drain
//   message { drain | resume | signed-in } ─▶ drain / resume / signedIn, answered on the message's port
//   message { SKIP_WAITING } (workbox-window's update flow) ─▶ skipWaiting
//
// The worker may be killed at any moment, so it keeps nothing that matters in memory: the outbox, the
// clock and the drain machine's state live in IndexedDB (store.ts), and the drainer resumes from them.
import { createDrainer, type DrainLimits, type DrainResult, observeAcks } from './drainer.ts';
import { createHttpTransport } from './http-transport.ts';
import { type Broadcast, channelName, type DrainBroadcast, isWorkerRequest, SYNC_TAG, type WorkerReply } from './messages.ts';
import { createWebLock, timerSleep } from './ports.ts';
import { installShell, type Shell } from './shell.ts';
import { createStore, DB_NAME, type Store } from './store.ts';

export interface FerryWorkerOptions {
  /** The server's origin (and base path), default this worker's origin. */
  url?: string;
  /** The device database; must match the pages' `dbName`. */
  dbName?: string;
  /** The app shell to cache for offline starts; leave out when the app's own worker caches. */
  shell?: { precache: readonly string[]; version: string };
  limits?: Partial<DrainLimits>;
}

export interface FerryWorker {
  /** What a `sync` event does; null when the pages drain instead (see DrainerOwner). */
  drain(): Promise<DrainResult | null>;
}

type Kind = 'drain' | 'resume' | 'signed-in';

export function installFerry(scope: ServiceWorkerGlobalScope, options: FerryWorkerOptions = {}): FerryWorker {
  const url = (options.url ?? scope.location.origin).replace(/\/+$/, '');
  const dbName = options.dbName ?? DB_NAME;
  const channel = new BroadcastChannel(channelName(dbName, DB_NAME));
  const say = (message: Broadcast) => channel.postMessage(message);
  let lastAckAt: number | null = null;
  const shell: Shell | null = options.shell ? installShell(scope, { ...options.shell, serverUrl: url }) : null;

  // Opened on the first event rather than at start-up: a worker started for a fetch needs no database.
  let ready: Promise<{ store: Store; drain: (kind: Kind) => Promise<DrainResult> }> | null = null;
  const open = () =>
    (ready ??= (async () => {
      const store = await createStore({ name: dbName });
      const drainer = createDrainer({
        // Tells the pages what an ack changed: their live queries re-read those collections.
        store: observeAcks(store, (applied, at) => {
          lastAckAt = at;
          for (const { space, collection } of applied.touched) say({ type: 'changed', space, collection });
        }),
        transport: createHttpTransport({ url, fetch: (input, init) => scope.fetch(input, init) }),
        lock: createWebLock(scope.navigator.locks),
        now: Date.now,
        random: Math.random,
        sleep: timerSleep,
        onStatus: (status) => {
          const broadcast: DrainBroadcast = { ...status, lastAckAt, source: 'worker' };
          say({ type: 'status', status: broadcast });
        },
        ...(options.limits ? { limits: options.limits } : {}),
      });
      const drain = (kind: Kind) =>
        kind === 'drain' ? drainer.drain() : kind === 'resume' ? drainer.resume() : drainer.signedIn();
      return { store, drain };
    })().catch((error: unknown) => {
      ready = null; // a failed open (storage pressure, a blocked upgrade) is tried again next event
      throw error;
    }));

  const run = async (kind: Kind): Promise<DrainResult | null> => {
    const { store, drain } = await open();
    // An app that authenticates with a bearer token drains from its pages; our fetch would only get 401s.
    if ((await store.getDrainerOwner()) === 'page') return null;
    return drain(kind);
  };

  scope.addEventListener('sync', (event) => {
    if (event.tag !== SYNC_TAG) return;
    // A rejection here is the point: the browser schedules another sync event with its own backoff.
    event.waitUntil(run('drain').catch((error: unknown) => {
      if (event.lastChance) console.warn('ferry: last Background Sync attempt failed; pages will retry', error);
      throw error;
    }));
  });

  scope.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
      await scope.clients.claim();
      await shell?.cleanup();
      // Where Background Sync is missing (Safari, Firefox), activation is one of the wake-ups.
      await run('drain').catch((error: unknown) => console.warn('ferry: drain on activate failed', error));
    })());
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
