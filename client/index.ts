// Ferry's page library: `createFerry()` gives an app collections that write to the device first and
// sync whenever a network appears, live queries over the local replica, and one status to show.
//
//   write ─▶ IndexedDB (outbox + replica, one transaction) ─▶ live queries, other tabs (BroadcastChannel)
//         └▶ wake the drain: Background Sync (worker) │ message the worker │ this page's own drainer
//   socket (socket-manager + socket-session) ─▶ remote changes and acks into the replica ─▶ live queries
//   worker / page drainer / socket / online flag / outbox counts ─▶ status.ts ─▶ onStatus
//
// Who drains: the Service Worker when one controls the page (HTTP, cookie: it works with no page
// open); this page otherwise (first load before the worker claims it, no worker support, or a token
// app), pipelining batches over its socket when open, HTTP when not. Either way under the Web Lock
// `ferry:drain`, so there is one drainer per device. Fallback wake-ups: the socket's welcome, the
// `online` event, the page becoming visible, and a timer while the page is open.
import type * as v from 'valibot';
import { isSyncError } from '../core/errors.ts';
import { entryOf } from '../core/outbox.ts';
import type { Json, Op } from '../core/types.ts';
import { createDrainer, observeAcks, type Transport } from '../sw/drainer.ts';
import { createHttpTransport } from '../sw/http-transport.ts';
import { type Broadcast, channelName, type DrainBroadcast } from '../sw/messages.ts';
import { createWebLock, timerSleep } from '../sw/ports.ts';
import { type AckApplied, InvalidDraftError } from '../sw/records.ts';
import { createStore, DB_NAME, type Draft, type Store } from '../sw/store.ts';
import { checkValue, type Collection, createCollection, type CollectionHost } from './collection.ts';
import { FerryError } from './errors.ts';
import { authFetch, fetchSnapshot, type TokenSource } from './http.ts';
import { createBus, createLiveQueries, type Row } from './live.ts';
import { createSocketManager, type SocketConstructor, type TimerPort } from './socket-manager.ts';
import { createSocketSession } from './socket-session.ts';
import { createSocketTransport, DEFAULT_SOCKET_WINDOW } from './socket-transport.ts';
import { createStatusTracker, drainViewOf, drainViewOfState, type FerryStatus } from './status.ts';
import { connectWorker, type DrainRequest } from './worker-link.ts';

export { login, logout, me, type Account } from './auth.ts';
export { FerryError, type FerryErrorCode } from './errors.ts';
export type { Collection, FerryStatus, Json, Op, Row };
export type { FerryState } from './status.ts';

export interface FerryOptions {
  /** The server's origin (and base path), default this page's origin. */
  url?: string;
  /** The Service Worker to register, default '/sw.js'; false for none (this page drains itself). */
  swUrl?: string | false;
  /** The device database, default 'ferry'. One per device: never shared by two users of one browser. */
  dbName?: string;
  /** Per-collection schemas, checked before a write is enqueued (throws FerryError 'invalid'). */
  collections?: Record<string, v.GenericSchema>;
  /** A bearer token, for apps that do not use the session cookie (offered as `ferry.auth.<t>`). */
  token?: TokenSource;
  /** A new app version's worker is waiting: call `apply` to switch (reloads). Default: switch at once. */
  onUpdate?: (apply: () => void) => void;
}

export interface DeadLetterView {
  seq: number;
  op: Op;
  code: string;
  message: string;
  at: number;
}

export interface Ferry {
  deviceId: string;
  collection<T extends Record<string, Json>>(space: string, name: string): Collection<T>;
  /** The spaces to keep in sync (subscribed from their stored cursors). */
  sync(spaces: string[]): void;
  status(): FerryStatus;
  /** Called at once and whenever the status changes; returns the unsubscribe. */
  onStatus(callback: (status: FerryStatus) => void): () => void;
  /** Drain now (cutting any backoff short) and reconnect now; resolves when that drain is done. */
  syncNow(): Promise<void>;
  deadLetters(): Promise<DeadLetterView[]>;
  /** Sends a rejected change again, as a new change. */
  retry(seq: number): Promise<void>;
  discard(seq: number): Promise<void>;
  /** After a sign-in: resume the drain paused for auth and reconnect the socket. */
  signedIn(): Promise<void>;
  close(): Promise<void>;
}

/** Batches in flight on the socket when this page drains. */
const PIPELINE_WINDOW = DEFAULT_SOCKET_WINDOW;
/** While ops wait and nothing else wakes a drain, the page asks again this often. */
const WAKE_EVERY_MS = 30_000;
/** The least time between two outbox re-reads for the status, and between two wake-ups after writes. */
const STATS_GAP_MS = 50;
const WRITE_WAKE_GAP_MS = 50;
/** The timer never fires sooner: a wake-up that changes nothing (a failing store) must not spin. */
const MIN_TIMER_MS = 1000;

export async function createFerry(options: FerryOptions = {}): Promise<Ferry> {
  const url = (options.url ?? location.origin).replace(/\/+$/, '');
  const dbName = options.dbName ?? DB_NAME;
  const now = Date.now;
  const timers: TimerPort = {
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
  const store = await createStore({ name: dbName });
  const deviceId = await store.getDeviceId();
  const owner = options.token ? 'page' : 'worker';
  if ((await store.getDrainerOwner()) !== owner) await store.setDrainerOwner(owner);
  const fetchFn = authFetch(options.token);
  let closed = false;
  const report = (error: unknown) => console.warn('ferry:', error);

  const tracker = createStatusTracker({
    online: navigator.onLine, socket: { state: 'idle' }, welcomed: false, subscribed: 0, caughtUp: 0,
    drain: drainViewOfState(await store.loadDrainState(), null), outbox: await store.outboxStats(),
    serverLag: null, socketError: null,
  }, now);
  // Re-read at most every STATS_GAP_MS: a write already counted itself (see `write`), and each read
  // would queue behind, and in front of, the next write's transaction.
  const refreshOutbox = coalesced(async () => tracker.update({ outbox: await store.outboxStats() }), report, STATS_GAP_MS);

  // ─── change notices ───────────────────────────────────────────────────────────────────────────
  const live = createLiveQueries((space, collection) => rowsOf(store, space, collection), report);
  const bus = createBus(channelName(dbName, DB_NAME), (message: Broadcast) => {
    switch (message.type) {
      case 'changed':
        live.notify(message.space, message.collection);
        return refreshOutbox();
      case 'outbox':
        return refreshOutbox();
      case 'status':
        tracker.update({ drain: drainViewOf(message.status) });
        return refreshOutbox();
      case 'signed-in':
        return reconnect();
    }
  });
  const changed = (space: string, collection: string) => {
    live.notify(space, collection);
    bus.post({ type: 'changed', space, collection });
  };
  let lastAckAt: number | null = null;
  const acked = (applied: AckApplied, at: number) => {
    lastAckAt = at;
    for (const { space, collection } of applied.touched) changed(space, collection);
    refreshOutbox();
  };

  // ─── the socket ───────────────────────────────────────────────────────────────────────────────
  const socketTransport = createSocketTransport({ timers, window: PIPELINE_WINDOW });
  const session = createSocketSession({
    store, device: deviceId, transport: socketTransport, now,
    snapshot: (space, after, head) => fetchSnapshot(fetchFn, url, space, after, head),
    changed, acked,
    // The server knows ops up to `through`; any still here are resent to learn their results. And the
    // handshake just proved the credentials work, so a drain paused for sign-in may go on.
    welcomed: () => void wake(tracker.parts().drain.phase === 'paused-auth' ? 'signed-in' : 'drain'),
    updated: () => {
      const info = session.info();
      tracker.update({
        welcomed: info.welcomed, subscribed: info.subscribed, caughtUp: info.caughtUp,
        serverLag: info.serverLag, socketError: info.lastError,
      });
    },
  });
  const socket = createSocketManager({
    url: `${url.replace(/^http/, 'ws')}/v1/sync`,
    protocols: () => {
      if (!options.token) return ['ferry.v1'];
      const token = options.token();
      return token ? ['ferry.v1', `ferry.auth.${token}`] : null;
    },
    WebSocket: WebSocket as unknown as SocketConstructor,
    timers, now, random: Math.random,
    onOpen: (send) => session.opened(send),
    onFrame: (frame) => session.frame(frame),
    onStatus: (status) => {
      if (status.state !== 'open') session.closed();
      tracker.update({ socket: status });
    },
  });
  const reconnect = () => {
    if (closed) return;
    const state = socket.status().state;
    if (state === 'idle' || state === 'stopped') socket.start();
    else socket.reconnectNow();
  };

  // ─── draining ─────────────────────────────────────────────────────────────────────────────────
  const http = createHttpTransport({ url, fetch: fetchFn });
  const pageTransport: Transport = {
    push: (request) => (socketTransport.ready() ? socketTransport : http).push(request),
    window: () => (socketTransport.ready() ? PIPELINE_WINDOW : 1),
  };
  const drainer = createDrainer({
    store: observeAcks(store, acked),
    transport: pageTransport, lock: createWebLock(), now, random: Math.random, sleep: timerSleep,
    onStatus: (status) => {
      const broadcast: DrainBroadcast = { ...status, lastAckAt, source: 'page' };
      tracker.update({ drain: drainViewOf(broadcast) });
      bus.post({ type: 'status', status: broadcast });
    },
  });
  const worker = connectWorker({
    swUrl: options.swUrl ?? '/sw.js',
    ...(options.onUpdate ? { onUpdate: options.onUpdate } : {}),
    onControlled: () => void wake('drain'),
  });

  /** Runs `kind` wherever the drain lives. `viaSync`: a write's wake-up, which Background Sync
   * carries when it can (it survives this tab closing). Never rejects: failures are status. */
  async function wake(kind: DrainRequest, viaSync = false): Promise<void> {
    if (closed) return;
    try {
      if (owner === 'worker' && worker.controlled()) {
        if (viaSync && (await worker.registerSync())) return;
        // A transient failure comes back as { ok: false }, and a drain longer than the request's
        // timeout as a rejection: either way the worker's broadcasts already say how it went.
        await worker.request(kind).catch(() => undefined);
        return;
      }
      await (kind === 'drain' ? drainer.drain() : kind === 'resume' ? drainer.resume() : drainer.signedIn());
    } catch (error) {
      // A SyncError is a drain that gave up waiting within its budget; the timer wakes it again.
      if (!isSyncError(error)) report(error);
    }
  }
  // A stream of writes shares wake-ups: the first goes at once, the rest fold into one per interval.
  const wakeAfterWrite = coalesced(() => wake('drain', true), report, WRITE_WAKE_GAP_MS);
  let timer: ReturnType<typeof setTimeout> | null = null;
  const armTimer = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const { drain, outbox } = tracker.parts();
    if (closed || outbox.count === 0 || drain.phase === 'paused-auth' || drain.phase === 'failed') return;
    const due = drain.phase === 'backoff' && drain.nextAttemptAt !== null ? drain.nextAttemptAt - now() + 50 : WAKE_EVERY_MS;
    timer = setTimeout(() => {
      timer = null;
      void wake('drain').then(armTimer);
    }, Math.max(MIN_TIMER_MS, Math.min(WAKE_EVERY_MS, due)));
  };
  tracker.subscribe(armTimer);

  // ─── browser events ───────────────────────────────────────────────────────────────────────────
  const onOnline = () => {
    tracker.update({ online: true });
    reconnect();
    // The network is back: a backoff that was waiting for it need not run out, unless the server set it.
    const { drain } = tracker.parts();
    void wake(drain.phase === 'backoff' && drain.lastError?.retryAfterMs === undefined ? 'resume' : 'drain');
  };
  const onOffline = () => tracker.update({ online: false });
  const onVisible = () => {
    if (document.visibilityState !== 'visible') return;
    refreshOutbox();
    void wake('drain');
  };
  addEventListener('online', onOnline);
  addEventListener('offline', onOffline);
  document.addEventListener('visibilitychange', onVisible);

  // ─── the API ──────────────────────────────────────────────────────────────────────────────────
  const write = async (draft: Draft): Promise<void> => {
    if (closed) throw new FerryError('closed', 'This Ferry was closed.');
    checkValue(options.collections, draft);
    const ops = await refused(() => store.enqueue([draft], now()));
    // Counted at once, so the status right after a write already says it waits; the re-read corrects.
    const { outbox } = tracker.parts();
    tracker.update({ outbox: {
      ...outbox, count: outbox.count + ops.length, oldestAt: outbox.oldestAt ?? ops[0]?.at ?? null,
      bytes: ops.reduce((sum, op) => sum + entryOf(op).bytes, outbox.bytes),
    } });
    changed(draft.space, draft.collection);
    refreshOutbox();
    wakeAfterWrite();
  };
  const host: CollectionHost = {
    write,
    get: async (space, collection, key) => {
      const entity = await store.get(space, collection, key);
      return entity === null ? null : { key: entity.key, value: entity.fields as never, pending: entity.pending > 0 };
    },
    all: (space, collection) => rowsOf(store, space, collection),
    live,
  };
  const collections = new Map<string, Collection<never>>();

  socket.start();
  armTimer();
  void wake('drain'); // whatever the last session left waiting

  return {
    deviceId,
    collection<T extends Record<string, Json>>(space: string, name: string): Collection<T> {
      const key = `${space}\u0000${name}`;
      let collection = collections.get(key);
      if (collection === undefined) collections.set(key, (collection = createCollection<never>(host, space, name)));
      return collection as unknown as Collection<T>;
    },
    sync: (spaces) => session.setSpaces(spaces),
    status: () => tracker.get(),
    onStatus(callback) {
      const unsubscribe = tracker.subscribe(callback);
      callback(tracker.get());
      return unsubscribe;
    },
    async syncNow() {
      reconnect();
      await wake('resume');
      refreshOutbox();
    },
    async deadLetters() {
      return (await store.listDead()).map(({ seq, op, code, message, at }) => ({ seq, op, code, message, at }));
    },
    async retry(seq) {
      const op = await refused(() => store.retryDead(seq, now()));
      if (op !== null) changed(op.space, op.collection);
      bus.post({ type: 'outbox' });
      refreshOutbox();
      wakeAfterWrite();
    },
    async discard(seq) {
      await store.discardDead(seq);
      bus.post({ type: 'outbox' });
      refreshOutbox();
    },
    async signedIn() {
      reconnect();
      bus.post({ type: 'signed-in' });
      await wake('signed-in');
      await wake('drain');
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer !== null) clearTimeout(timer);
      removeEventListener('online', onOnline);
      removeEventListener('offline', onOffline);
      document.removeEventListener('visibilitychange', onVisible);
      socket.stop();
      worker.close();
      bus.close();
      live.close();
      await session.settled();
      store.close();
    },
  };
}

async function rowsOf(store: Store, space: string, collection: string): Promise<Row<never>[]> {
  return (await store.all(space, collection)).map((entity) => ({
    key: entity.key, value: entity.fields as never, pending: entity.pending > 0,
  }));
}

/** The store's refusal of a draft, as the app's error. */
async function refused<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InvalidDraftError) throw new FerryError(error.code, error.message, { cause: error });
    throw error;
  }
}

/**
 * `run` at most once at a time and at most once per `gapMs`: the first call runs at once, calls
 * meanwhile fold into one more run after the gap. Never rejects (errors go to `onError`).
 */
function coalesced(run: () => Promise<void>, onError: (error: unknown) => void, gapMs: number): () => void {
  let busy = false;
  let again = false;
  const go = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      await run();
    } catch (error) {
      onError(error);
    }
    setTimeout(() => {
      busy = false;
      if (!again) return;
      again = false;
      void go();
    }, gapMs);
  };
  return () => void go();
}
