// Ferry's page library: `createFerry()` gives an app collections that write to the device first and
// sync whenever a network appears, live queries over the local replica, and one status to show. It is the
// page's adapter over the device engine (device/device.ts): it hands the engine this window's ports (its
// IndexedDB, WebSocket, online and visibility events, BroadcastChannel, Web Locks and Service Worker) and
// adds what only a page has: the app's collections with their schema check, and live queries. Its
// StorageManager (client/storage.ts) lets the engine keep the outbox's storage durable and say so.
//
// Who drains: the Service Worker when one controls the page (HTTP, cookie: it works with no page
// open); this page otherwise (first load before the worker claims it, no worker support, or a token
// app), pipelining batches over its socket when open, HTTP when not. Either way under the Web Lock
// `ferry:drain`, so there is one drainer per device.
//
// What the first load holds is what opening Ferry, reading and writing need. The rest are chunks fetched
// with `import()` (scripts/build-web.ts writes them beside ferry.js): the sync socket as Ferry opens,
// without waiting for it; the page's own drainer only once this page drains; the worker's registration;
// the account calls (client/account.ts) on the first of them.
import type { Json, Op } from '../core/types.ts';
import { channelName, createChannel } from '../device/channel.ts';
import { createDevice, type Device, type DeviceParts, type Signal } from '../device/device.ts';
import { authFetch, sessionFetch, type TokenSource } from '../device/http.ts';
import { createWebLock, globalTimers } from '../device/locks.ts';
import { InvalidDraftError } from '../device/records.ts';
import type { SocketConstructor } from '../device/socket-manager.ts';
import type { FerryStatus } from '../device/status.ts';
import { deleteDatabase, openProfile } from '../device/profile.ts';
import { createStore, DB_NAME, type Store } from '../device/store.ts';
import type { SpaceRef } from '../schema/accounts.ts';
import type * as v from 'valibot';
import type { CollectionSchemas } from '../schema/collections.ts';
import { socketProtocols } from '../schema/protocol.ts';
import { type Collection, createCollection, type CollectionHost, withVersion } from './collection.ts';
import { createWriter } from './writer.ts';
import { FerryError } from './errors.ts';
import { createLiveQueries, type Row } from './live.ts';
import { browserStorage } from './storage.ts';
import { connectWorker } from './worker-link.ts';

export type { Account } from './auth.ts';
export type { Session } from './session.ts';
export { registerWorker } from './worker-link.ts';
export type { MemberRef, MemberRole, Role, SpaceRef } from './spaces.ts';
export { FerryError, type FerryErrorCode } from './errors.ts';
export type { Collection, FerryStatus, Json, Op, Row };
export type { Delivery, FerryState, StorageView } from '../device/status.ts';

/** The value type a collection's schema describes (what `put` takes and rows hold). */
export type DocOf<S> = S extends v.GenericSchema ? v.InferOutput<S> & Record<string, Json> : Record<string, Json>;

export interface FerryOptions<C extends CollectionSchemas = CollectionSchemas> {
  /** The server's origin (and base path), default this page's origin. */
  url?: string;
  /** The Service Worker to register, default '/sw.js'; false for none (this page drains itself). */
  swUrl?: string | false;
  /** The device databases' base name, default 'ferry'. */
  dbName?: string;
  /**
   * The signed-in user's id (from `login`, `me` or your own backend). Each user of a shared browser then has
   * a device database of their own, and `signOut` stops everything sent under them at once. Without it,
   * one database serves the whole browser profile: only for apps whose browsers are never shared.
   */
  user?: string;
  /** Per-collection valibot schemas, checked before a write is enqueued (throws FerryError 'invalid'), and the
   * collections' types: `ferry.collection(space, 'items')` is typed by `collections.items`. Pass the same
   * schemas to the server (`createApp({ collections })`), which rejects what breaks them. */
  collections?: C;
  /**
   * The app's schema version per collection (an integer ≥ 1; absent: 1), stamped on every op it writes. When
   * an app update changes a collection's schema, raise its version here and give the server the same number
   * with an upgrade (`createApp({ versions: { items: { version: 2, upgrade } } })`): ops still queued under
   * the old version, sent days later or by the updated worker, are upgraded there (or come back to the dead
   * letters `outdated_app` when there is no upgrade).
   */
  versions?: { readonly [K in keyof C & string]?: number } & Readonly<Record<string, number>>;
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

export interface Ferry<C extends CollectionSchemas = CollectionSchemas> {
  deviceId: string;
  /** A collection with a schema in `collections`: typed by it. */
  collection<N extends keyof C & string>(space: string, name: N): Collection<DocOf<C[N]>>;
  /** Any other collection, typed as the caller says. */
  collection<T extends Record<string, Json>>(space: string, name: string): Collection<T>;
  /**
   * Writes everything `build` writes through collections (put, patch, delete, not awaited inside) as one
   * change set: one transaction, all of it or none (a bad value anywhere fails it whole). Resolves once it
   * is durable on this device. Writes made in one turn without `batch` also share a transaction, but each
   * succeeds or fails alone.
   */
  batch(build: () => void): Promise<void>;
  /** The spaces to keep in sync (subscribed from their stored cursors). */
  sync(spaces: string[]): void;
  /** Called when the user's spaces change on the server (invited, removed, renamed), with the whole list;
   * a space they left stops syncing and its local data goes by itself. Returns the unsubscribe. */
  onSpaces(callback: (spaces: SpaceRef[]) => void): () => void;
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
  /**
   * Signs the user out on this device: from this moment no context of the browser sends anything under
   * them; the server session is ended now or, offline, as soon as the server can be reached (the next
   * `currentAccount` or `login`). Changes not yet on the server stay on the device for their next sign-in,
   * unless `wipe` deletes this user's local data with them: check `status().pending` first and ask. Closes
   * this Ferry. Needs `user`.
   */
  signOut(options?: { wipe?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens Ferry on this page: the device's database (this user's, with `user`), the Service Worker link, and the
 * engine that sends the outbox and brings acks and other devices' changes back. Call `sync(spaces)` next, then
 * read and write through `collection(space, name)`. Writes work offline from the first call; nothing here
 * waits for the network.
 */
export async function createFerry<const C extends CollectionSchemas = CollectionSchemas>(options: FerryOptions<C> = {}): Promise<Ferry<C>> {
  const url = (options.url ?? location.origin).replace(/\/+$/, '');
  const base = options.dbName ?? DB_NAME;
  const user = options.user;
  const profile = user === undefined ? null : await openProfile(base);
  const dbName = profile === null || user === undefined ? base : await profile.signIn(user);
  const store = await createStore({ name: dbName });
  // A token app's worker cannot see the token, so its pages drain; a cookie app's worker drains.
  const owner = options.token ? 'page' : 'worker';
  if ((await store.getDrainerOwner()) !== owner) await store.setDrainerOwner(owner);
  const link = connectWorker({
    swUrl: options.swUrl ?? '/sw.js',
    ...(options.onUpdate ? { onUpdate: options.onUpdate } : {}),
    onControlled: () => void device.wake(),
  });
  const token = options.token;
  let signedOut = false;
  // Every request re-checks who is signed in on this profile: another tab's sign-out stops this one too.
  const signedIn = async () => !signedOut && (profile === null || (await profile.active()) === user);
  const device: Device = await createDevice({
    store,
    parts: PAGE_PARTS,
    fetch: sessionFetch(authFetch(token), signedIn),
    lock: createWebLock(),
    now: Date.now,
    random: Math.random,
    timers: globalTimers,
    channel: createChannel(channelName(dbName, DB_NAME)),
    online: windowSignal(() => navigator.onLine, ['online', 'offline']),
    visible: {
      get: () => document.visibilityState === 'visible',
      subscribe(changed) {
        document.addEventListener('visibilitychange', changed);
        return () => document.removeEventListener('visibilitychange', changed);
      },
    },
    socket: {
      WebSocket: WebSocket as unknown as SocketConstructor,
      protocols: () => {
        if (signedOut) return null;
        if (!token) return socketProtocols(null);
        const value = token();
        return value ? socketProtocols(value) : null;
      },
    },
    ...(owner === 'worker' ? { worker: link } : {}),
    storage: browserStorage(),
  }, { url, role: 'page' });
  device.onStatus((status) => {
    if (status.state === 'signed-out') signedOut = true; // another tab signed this user out
  });

  const live = createLiveQueries((space, collection) => rowsOf(store, space, collection), (error) => console.warn('ferry:', error));
  device.onChange((space, collection) => live.notify(space, collection));
  let closed = false;
  const writer = createWriter({
    collections: options.collections,
    write: (drafts) => refused(() => device.write(drafts)),
    open() {
      if (closed) throw new FerryError('closed', 'This Ferry was closed.');
    },
  });
  const host: CollectionHost = {
    write: (draft) => writer.write(withVersion(draft, options.versions)),
    get: async (space, collection, key) => {
      const entity = await store.get(space, collection, key);
      return entity === null ? null : { key: entity.key, value: entity.fields as never, pending: entity.pending > 0 };
    },
    all: (space, collection) => rowsOf(store, space, collection),
    live,
  };
  const collections = new Map<string, Collection<never>>();
  const close = async () => {
    if (closed) return;
    closed = true;
    link.close();
    live.close();
    await device.close();
    store.close();
  };

  return {
    deviceId: device.id,
    collection(space: string, name: string): Collection<never> {
      const key = `${space}\u0000${name}`;
      let collection = collections.get(key);
      if (collection === undefined) collections.set(key, (collection = createCollection<never>(host, space, name)));
      return collection;
    },
    batch: (build) => writer.batch(build),
    sync: (spaces) => device.sync(spaces),
    onSpaces: (callback) => device.onSpaces(callback),
    status: () => device.status(),
    onStatus(callback) {
      const unsubscribe = device.onStatus(callback);
      callback(device.status());
      return unsubscribe;
    },
    syncNow: () => device.syncNow(),
    async deadLetters() {
      return (await device.deadLetters()).map(({ seq, op, code, message, at }) => ({ seq, op, code, message, at }));
    },
    async retry(seq) {
      await refused(() => device.retryDead(seq));
    },
    async discard(seq) {
      await device.discardDead(seq);
    },
    signedIn: () => device.signedIn(),
    async signOut({ wipe = false } = {}) {
      if (profile === null) throw new FerryError('invalid', 'signOut needs createFerry({ user }).');
      signedOut = true;
      await profile.signOut(); // from here on no context of this profile sends for this user
      device.signedOut();
      await close();
      // Offline, the server hears of it at the next currentSession or signIn, before anything else.
      await accountCall('endServerSession')(url, profile).catch(() => false);
      if (wipe) await deleteDatabase(dbName);
      profile.close();
    },
    close,
  };
}

type AccountCalls = typeof import('./account.ts');

/** An account call that loads the account chunk first (see the top of this file). A chunk that cannot be
 * fetched is the network's failure, as the call's own would be. */
function accountCall<K extends keyof AccountCalls>(name: K): AccountCalls[K] {
  return (async (...args: unknown[]) => {
    const calls = await import('./account.ts').catch((cause: unknown) => {
      throw new FerryError('network', 'The server could not be reached.', { cause });
    });
    return (calls[name] as (...args: unknown[]) => unknown)(...args);
  }) as AccountCalls[K];
}

/** Signs in with a name and password (client/auth.ts); `signIn` also makes them this profile's user. */
export const login = accountCall('login');
/** Ends the server session (client/auth.ts); `signOut` on a Ferry also stops this device sending. */
export const logout = accountCall('logout');
/** Who the session cookie belongs to, with their spaces; null when nobody (client/auth.ts). */
export const me = accountCall('me');
/** Who is signed in on this browser profile, and their account when the server can say (client/session.ts). */
export const currentSession = accountCall('currentSession');
/** Signs in and makes the person this browser profile's user (client/session.ts). */
export const signIn = accountCall('signIn');
/** Spaces and their members (client/spaces.ts). */
export const createSpace = accountCall('createSpace');
export const invite = accountCall('invite');
export const setRole = accountCall('setRole');
export const members = accountCall('members');
export const removeMember = accountCall('removeMember');
export const leave = accountCall('leave');
export const renameSpace = accountCall('renameSpace');

/** The engine's larger parts, each a chunk of its own (see the top of this file). */
const PAGE_PARTS: DeviceParts = {
  drainer: () => import('../device/drainer.ts'),
  socket: () => import('../device/device-socket.ts'),
};

/** A boolean the window tells of with events (`navigator.onLine` with `online` / `offline`). */
function windowSignal(get: () => boolean, events: string[]): Signal {
  return {
    get,
    subscribe(changed) {
      for (const name of events) addEventListener(name, changed);
      return () => {
        for (const name of events) removeEventListener(name, changed);
      };
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
