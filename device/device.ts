// The device engine: one composition of the store, the drainer, the sync socket, the status and the
// wake-up policy, shared by every context of a device. The page (client/index.ts) and the Service Worker
// (sw/worker.ts) are thin adapters that hand it their browser's ports; the model suites hand it fakes.
//
//   write ─▶ store (outbox + replica, one transaction) ─▶ onChange, other contexts (channel)
//         └▶ wake: the worker (Background Sync, or a message) when one drains for this page; else own drainer
//   socket (manager + session) ─▶ remote changes and acks into the replica ─▶ onChange, channel
//   drainer / socket / online / outbox counts ─▶ status tracker ─▶ onStatus
//
// Wake-ups besides writes (DESIGN's Background Sync fallbacks): the socket's welcome, the network coming
// back, the page becoming visible, and a timer while ops wait (wake-policy.ts decides when and how).
// Drains run under the Web Lock `ferry:drain` in whichever context runs them: one drainer per device.
// A page also says whether its worker can carry the outbox with the app closed (Background Sync), and
// keeps the storage the outbox lives in durable where it can (durable.ts).
//
// The drainer and the socket are parts (DeviceParts) the adapter hands in: a worker has them at once
// (parts.ts), a page loads each as a chunk of its own when it needs it — the socket as the engine starts,
// without waiting (late-socket.ts), the drainer only when this page drains itself (device-drain.ts).
import { entryOf } from '../core/outbox.ts';
import type { Op } from '../core/types.ts';
import type { SpaceRef } from '../schema/accounts.ts';
import { coalesced } from './coalesce.ts';
import { createDrains } from './device-drain.ts';
import type { createDeviceSocket } from './device-socket.ts';
import type { createDrainer, isSyncError } from './drainer.ts';
import { lateSocket } from './late-socket.ts';
import { createDurability, type StoragePort } from './durable.ts';
import type { Broadcast, DrainKind } from './messages.ts';
import type { DrainLimits, DrainLock, DrainResult, Sleep, TimerPort } from './ports.ts';
import type { AckApplied, DeadRow, Draft } from './records.ts';
import type { SocketConstructor, SocketState } from './socket-manager.ts';
import type { SessionInfo } from './socket-session.ts';
import { createStatusTracker, drainViewOf, drainViewOfState, type FerryStatus, type StatusTracker, UNKNOWN_STORAGE } from './status.ts';
import type { Store } from './store.ts';
import { createWriteQueue } from './write-queue.ts';
import { onlineWake, STATS_GAP_MS, welcomeWake } from './wake-policy.ts';

/** A boolean the environment knows and tells of changes (`navigator.onLine`, page visibility). */
export interface Signal {
  get(): boolean;
  /** Calls `changed` whenever the value may have changed; returns the unsubscribe. */
  subscribe(changed: () => void): () => void;
}

/** The channel every context of the device hears (BroadcastChannel; see channel.ts). */
export interface Channel {
  post(message: Broadcast): void;
  /** Starts delivering what other contexts post. */
  listen(receive: (message: Broadcast) => void): void;
  close(): void;
}

/** The page's Service Worker, which drains for it when it controls the page (client/worker-link.ts). */
export interface WorkerPort {
  controlled(): boolean;
  /** Asks the worker to run `kind`; settles when that drain is done (or the request times out). */
  request(kind: DrainKind): Promise<unknown>;
  /** Asks the browser for a `sync` event; false where Background Sync is missing or refused. */
  registerSync(): Promise<boolean>;
  /** A worker controls the page and the browser has Background Sync for it. */
  backgroundSync(): Promise<boolean>;
  close(): void;
}

/**
 * The engine's two larger parts, each answered at once or as a promise: a page loads them as chunks of their
 * own (client/index.ts), a worker and the model suites hand them in as they are (parts.ts).
 */
export interface DeviceParts {
  /** The drainer: asked for the first time this context drains (a page whose worker drains never does). */
  drainer(): DrainerPart | Promise<DrainerPart>;
  /** The socket and the transports (HTTP too): asked for as the engine starts, not waited for. */
  socket(): SocketPart | Promise<SocketPart>;
}

/** device/drainer.ts as a part: the drainer, and how to tell the transient failure it rejects with. */
export interface DrainerPart {
  createDrainer: typeof createDrainer;
  isSyncError: typeof isSyncError;
}

/** device/device-socket.ts as a part. */
export interface SocketPart {
  createDeviceSocket: typeof createDeviceSocket;
}

export interface DevicePorts {
  /** The device's IndexedDB, opened by the adapter (one connection per context). */
  store: Store;
  parts: DeviceParts;
  /** fetch with the app's credentials (the cookie, or the bearer token: see http.ts authFetch). */
  fetch: typeof fetch;
  lock: DrainLock;
  now: () => number;
  random: () => number;
  timers: TimerPort;
  /** Backoff sleeps; default setTimeout on `timers`. */
  sleep?: Sleep;
  channel: Channel;
  online: Signal;
  /** Page visibility; absent in a worker. */
  visible?: Signal;
  /** The sync socket (absent in a worker): the WebSocket constructor and the subprotocols to offer,
   * asked before every attempt (null: no credentials, so no attempt). */
  socket?: { WebSocket: SocketConstructor; protocols(): string[] | null };
  /** The page's Service Worker, when this page has one that drains (cookie apps). */
  worker?: WorkerPort;
  /** The browser's StorageManager (a page's); absent in a worker. */
  storage?: StoragePort;
}

export interface DeviceOptions {
  /** The server's origin (and base path). */
  url: string;
  /** Who this context is: broadcast with its status so the contexts can tell the drainers apart. */
  role: 'page' | 'worker';
  limits?: Partial<DrainLimits>;
  /** The ping interval of the socket (2× this silent means dead). */
  heartbeatMs?: number;
  /** Socket reconnect backoff. */
  reconnect?: { baseMs: number; capMs: number };
  /** How long a push (HTTP or socket) may go unanswered before it counts as a network failure. */
  pushTimeoutMs?: number;
  /** Pushes pipelined on the socket. */
  socketWindow?: number;
}

/** The connection's controls and state, for tests and for an app's "go offline" switch. */
export interface Connection {
  start(): void;
  stop(): void;
  /** Skip a backoff wait (the network is back); no-op while connecting or open. */
  reconnectNow(): void;
  state(): SocketState;
  info(): SessionInfo & { ready: boolean };
}

export interface Device {
  readonly id: string;
  /** Stamps and writes the drafts (one transaction, shared with the other writes of this turn), tells
   * every context, and wakes a drain; resolves once they are durable. */
  write(drafts: readonly Draft[]): Promise<Op[]>;
  /** Runs `kind` where this device drains (the worker for a controlled page); rejects with the transient
   * SyncError when a local drain outlasts its wait budget. Null: nothing ran here (see DrainerOwner). */
  drain(kind?: DrainKind): Promise<DrainResult | null>;
  /** `drain` that never rejects: failures become status. */
  wake(kind?: DrainKind): Promise<void>;
  /** The network is back (`online`, a Background Sync event): a drain waiting out a network failure goes at
   * once (also one asleep in its backoff); a server's own `retryAfterMs` is still waited out. */
  networkBack(): Promise<DrainResult | null>;
  /** The spaces to keep in sync over the socket. */
  sync(spaces: readonly string[]): void;
  status(): FerryStatus;
  /** Called on every status change; returns the unsubscribe. */
  onStatus(listener: (status: FerryStatus) => void): () => void;
  /** The replica of (space, collection) changed in some context; `*`: every collection of the space. */
  onChange(listener: (space: string, collection: string) => void): () => void;
  /** The user's spaces changed on the server (an invitation, a removal, a rename): the whole list. */
  onSpaces(listener: (spaces: SpaceRef[]) => void): () => void;
  /** Reconnect now, and drain now cutting any backoff short; resolves once that drain is done and the
   * status says so. */
  syncNow(): Promise<void>;
  /** A new session exists: leave auth-required in every context, reconnect, drain. */
  signedIn(): Promise<void>;
  /** The person signed out: this context and every other one of this device stop talking to the server
   * at once (status `signed-out`); everything queued stays in the store. */
  signedOut(): void;
  deadLetters(): Promise<DeadRow[]>;
  retryDead(seq: number): Promise<Op | null>;
  discardDead(seq: number): Promise<boolean>;
  /** Present when the device has a socket. */
  connection: Connection | null;
  /** Resolves once every frame received so far is applied and every wake-up started is done. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export async function createDevice(ports: DevicePorts, options: DeviceOptions): Promise<Device> {
  const { store, timers, now } = ports;
  const url = options.url.replace(/\/+$/, '');
  const id = await store.getDeviceId();
  const report = (error: unknown) => console.warn('ferry:', error);
  let closed = false;
  const background = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    const done = work.catch(report).finally(() => background.delete(done));
    background.add(done);
  };

  const tracker = createStatusTracker({
    online: ports.online.get(), socket: { state: 'idle' }, welcomed: false, subscribed: 0, caughtUp: 0,
    drain: drainViewOfState(await store.loadDrainState()), outbox: await store.outboxStats(),
    serverLag: null, socketError: null, signedOut: false, background: false, storage: UNKNOWN_STORAGE,
  }, now, timers);
  // Re-read at most every STATS_GAP_MS: each read queues behind, and in front of, the next write.
  const refreshOutbox = coalesced(async () => {
    if (!closed) tracker.update({ outbox: await store.outboxStats() });
  }, report, STATS_GAP_MS, timers);

  // Change notices: to this context's listeners, and to every other context on the channel.
  const changeListeners = new Set<(space: string, collection: string) => void>();
  const notify = (space: string, collection: string) => {
    for (const listener of changeListeners) listener(space, collection);
  };
  const changed = (space: string, collection: string) => {
    notify(space, collection);
    ports.channel.post({ type: 'changed', space, collection });
  };
  const acked = (applied: AckApplied) => {
    for (const { space, collection } of applied.touched) changed(space, collection);
    if (!closed) tracker.update({ outbox: applied.stats }); // read in the ack's own transaction
  };

  const spaceListeners = new Set<(spaces: SpaceRef[]) => void>();
  const socket = lateSocket(ports.parts.socket, ({ createDeviceSocket }) => createDeviceSocket(ports, options, {
    id, url, tracker, changed, acked,
    spaces: (spaces) => {
      for (const listener of spaceListeners) listener(spaces);
    },
    // The server knows ops up to `through`; any still here are resent to learn their results. And the
    // handshake just proved the credentials work, so a drain paused for sign-in may go on.
    welcomed: () => track(drains.wake(welcomeWake(tracker.parts().drain))),
  }), ports.socket !== undefined, report);
  const drains = createDrains(ports, options, { tracker, transport: socket.transport, acked, report, track });
  const signedOut = () => {
    tracker.update({ signedOut: true });
    socket.stop();
  };
  const stopListening = listen(ports, {
    notify, refreshOutbox, tracker, signedOut,
    reconnect: () => !closed && !tracker.parts().signedOut && socket.reconnect(),
    wake: (kind) => track(drains.wake(kind)),
  });
  const durability = createDurability(ports.storage, tracker, timers, report);
  // Re-asked on every wake-up, which a worker taking control of the page also causes.
  const refreshDelivery = async () => {
    const worker = ports.worker;
    const background = worker !== undefined && worker.controlled() && (await worker.backgroundSync());
    if (!closed) tracker.update({ background });
  };
  const outboxChanged = () => {
    ports.channel.post({ type: 'outbox' });
    refreshOutbox();
  };

  socket.start();
  if (options.role === 'page') {
    // Whatever the last session left waiting goes now: the app opening is as good a sign as the network
    // returning, so a backoff that was waiting for the network is cut short.
    track(refreshDelivery());
    track(drains.wake(onlineWake(tracker.parts().drain)));
  }

  // Writes of one turn share one transaction (device/write-queue.ts); what follows runs once per commit.
  // Before the writes resolve: what the person's next look must show (the status's count, this context's
  // live queries). The rest (telling the other contexts: a BroadcastChannel post costs the main thread
  // ~0.5 ms in Chromium; re-reading the stats; the storage's durability; waking a drain) runs in a task
  // of its own after they resolved, so an app's next write starts its transaction first and that work
  // overlaps the storage process's. `settled()` waits for it.
  const writes = createWriteQueue({
    commit: (drafts) => store.enqueue(drafts, now()),
    async after(ops) {
      const connected = tracker.get().connected;
      // Counted at once, so the status right after a write already says it waits; the re-read corrects.
      const { outbox } = tracker.parts();
      tracker.update({ outbox: {
        ...outbox, count: outbox.count + ops.length, oldestAt: outbox.oldestAt ?? ops[0]?.at ?? null,
        bytes: ops.reduce((sum, op) => sum + entryOf(op).bytes, outbox.bytes),
      } });
      const touched = collectionsOf(ops);
      for (const [space, collection] of touched) notify(space, collection);
      track(nextTask().then(() => {
        if (closed) return;
        for (const [space, collection] of touched) ports.channel.post({ type: 'changed', space, collection });
        refreshOutbox();
        durability.written(connected);
        return drains.afterWrite();
      }));
    },
  });

  return {
    id,
    write: (drafts) => writes.write(drafts),
    drain: (kind) => drains.drain(kind),
    async wake(kind) {
      track(refreshDelivery());
      await drains.wake(kind);
    },
    networkBack: () => drains.drain(onlineWake(tracker.parts().drain)),
    sync: (spaces) => socket.setSpaces(spaces),
    status: () => tracker.get(),
    onStatus: (listener) => tracker.subscribe(listener),
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    onSpaces(listener) {
      spaceListeners.add(listener);
      return () => spaceListeners.delete(listener);
    },
    async syncNow() {
      socket.reconnect();
      await drains.wake('resume');
      // The drain may have run in the worker, whose last broadcast may still be on its way: what it stored
      // is the truth, so the status is true when this resolves.
      const [state, outbox] = await Promise.all([store.loadDrainState(), store.outboxStats()]);
      tracker.update({ drain: drainViewOfState(state), outbox });
    },
    async signedIn() {
      socket.reconnect();
      ports.channel.post({ type: 'signed-in' });
      await drains.wake('signed-in');
      await drains.wake('drain');
    },
    signedOut() {
      signedOut();
      ports.channel.post({ type: 'signed-out' });
    },
    deadLetters: () => store.listDead(),
    async retryDead(seq) {
      const op = await store.retryDead(seq, now());
      if (op !== null) changed(op.space, op.collection);
      outboxChanged();
      await drains.afterWrite();
      return op;
    },
    async discardDead(seq) {
      const found = await store.discardDead(seq);
      outboxChanged();
      return found;
    },
    connection: socket.connection,
    async settled() {
      while (background.size > 0) await Promise.allSettled([...background]);
      await socket.settled();
    },
    async close() {
      if (closed) return;
      closed = true;
      stopListening();
      tracker.close();
      drains.close();
      socket.stop();
      ports.channel.close();
      await socket.settled();
    },
  };
}

/** After the current task, and the microtasks it queued (an app's next write among them). */
function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** What the other contexts (channel) and the environment (online, visibility) say, routed to the engine. */
function listen(ports: DevicePorts, engine: {
  notify(space: string, collection: string): void;
  refreshOutbox(): void;
  tracker: StatusTracker;
  reconnect(): void;
  wake(kind?: DrainKind): void;
  signedOut(): void;
}): () => void {
  const { tracker } = engine;
  ports.channel.listen((message) => {
    switch (message.type) {
      case 'changed':
        engine.notify(message.space, message.collection);
        return engine.refreshOutbox();
      case 'outbox':
        return engine.refreshOutbox();
      case 'status':
        tracker.update({ drain: drainViewOf(message.status) });
        return engine.refreshOutbox();
      case 'signed-in':
        return engine.reconnect();
      case 'signed-out':
        return engine.signedOut();
    }
  });
  const stops = [ports.online.subscribe(() => {
    const online = ports.online.get();
    tracker.update({ online });
    if (!online) return;
    engine.reconnect();
    engine.wake(onlineWake(tracker.parts().drain));
  })];
  const visible = ports.visible;
  if (visible) {
    stops.push(visible.subscribe(() => {
      if (!visible.get()) return;
      engine.refreshOutbox();
      engine.wake();
    }));
  }
  return () => {
    for (const stop of stops) stop();
  };
}

/** The (space, collection) pairs some ops touch, each once. */
function collectionsOf(ops: readonly Op[]): Array<[string, string]> {
  const seen = new Map<string, [string, string]>();
  for (const op of ops) seen.set(`${op.space}\u0000${op.collection}`, [op.space, op.collection]);
  return [...seen.values()];
}
