// A device of tests/model-socket.test.ts: one fake-indexeddb database and 1–2 tabs. A tab is the device
// engine exactly as client/index.ts composes it for a page that drains itself (device/device.ts, role
// 'page', no Service Worker), with the model's ports:
//
//   engine ── drainer ── push ──▶ socket transport ─┐                       (window 4, rid per push)
//          └─ socket session ◀─ frames ─ socket manager ◀── RecordingSocket (Bun WebSocket) ─┴─▶ fault proxy ─▶ server
//               │ welcome ─▶ the engine wakes a drain, as on every (re)open
//               ▼ applyChanges / resetSpace / applyAck (recorded: the cursor after every change, what was received)
//          store (device/store.ts, this tab's own connection to the device's database)
//
// The tabs of a device share its drain lock (the Web Lock `ferry:drain`, so one drains at a time) and its
// channel (BroadcastChannel), and each tab's socket hears the acks of the other's pushes as watermarks.
import { IDBFactory } from 'fake-indexeddb';
import type { Op } from '../../core/types.ts';
import type { Channel, DeviceParts } from '../../device/device.ts';
import { createDevice, type Device as Engine } from '../../device/device.ts';
import { createDeviceSocket } from '../../device/device-socket.ts';
import { createDrainer, isSyncError } from '../../device/drainer.ts';
import { authFetch } from '../../device/http.ts';
import { createLocalLock, globalTimers } from '../../device/locks.ts';
import type { Broadcast } from '../../device/messages.ts';
import type { DrainLock } from '../../device/ports.ts';
import type { SocketConstructor, SocketLike } from '../../device/socket-manager.ts';
import { createStore, type Store } from '../../device/store.ts';
import { socketProtocols } from '../../schema/protocol.ts';
import type { FaultProxy } from './fault-proxy.ts';
import type { ModelDevice, warpClock } from './model-socket-checks.ts';

/** Client-side timing, in real ms: short, so a dropped frame costs little wall time. */
export const PUSH_TIMEOUT_MS = 150;
const HEARTBEAT_MS = 1_000;
const RECONNECT_POLICY = { baseMs: 10, capMs: 100 };

export interface SocketFigures {
  pushes: number;
  framesIn: number;
  drains: number;
  drainRejections: number;
  resets: number;
  snapshots: number;
  /** `changes` frames applied after a lost one (their `from` above the cursor): the cursor stayed. */
  gaps: number;
}

/**
 * The device's cursor for the run's space, read after every change a tab applied. The tabs share the database
 * but not an order: a tab's reading may be recorded after another tab's later one, and a reset by one tab may
 * land between another's change and its reading. So each tab is compared with its own readings, and a reading
 * taken while a reset was under way (started or running between the change and the reading) proves nothing
 * either way and is left out. What the store must hold, it holds per transaction: the cursor is only ever
 * raised, except by a reset, after which a snapshot and catch-up bring it back above where it was.
 */
export class CursorLog {
  values: number[] = [];
  regressions: string[] = [];
  #last = new Map<number, number>();
  /** The highest cursor before a reset: the snapshot and catch-up after it must get back above it. */
  #floor = 0;
  #recovering = false;
  #resets = 0;
  #running = 0;

  /** Call before applying a change; pass what it returns to `record` with the reading after it. */
  begin(): number {
    return this.#running > 0 ? -1 : this.#resets;
  }

  record(tab: number, begun: number, stored: number, frameCursor: number, what: string): void {
    this.values.push(stored);
    if (begun !== this.#resets || this.#running > 0) return; // a reset overlapped: see above
    if (this.#recovering) {
      if (stored >= this.#floor) this.#recovering = false;
    } else {
      const last = this.#last.get(tab) ?? 0;
      if (stored < last) this.regressions.push(`${what}: cursor went back from ${last} to ${stored}`);
      if (stored < frameCursor) this.regressions.push(`${what}: cursor ${stored} after applying changes up to ${frameCursor}`);
    }
    this.#last.set(tab, stored);
    this.#floor = Math.max(this.#floor, stored);
  }

  /** PROTOCOL §7.1: the replica of the space is discarded, its cursor with it, until the snapshot is in.
   * Returns the call that ends the reset, once the store has carried it out. */
  reset(): () => void {
    this.#recovering = true;
    this.#resets += 1;
    this.#running += 1;
    for (const tab of this.#last.keys()) this.#last.set(tab, 0);
    return () => {
      this.#running -= 1;
    };
  }

  recovering(): boolean {
    return this.#recovering;
  }
}

export interface Tab {
  index: number;
  /** The tab's own connection to the device's database. */
  store: Store;
  /** The device engine the tab runs. */
  engine: Engine;
  socket: SocketLike | null;
}

export interface SocketDevice extends ModelDevice {
  token: string;
  factory: IDBFactory;
  lock: DrainLock;
  tabs: Tab[];
  cursor: CursorLog;
  /** serverSeqs of each entity (`collection/key`) that reached the replica in changes or snapshots. */
  received: Map<string, Set<number>>;
  /** Every serverSeq of the run's space that `changes` frames brought, in the order applied. */
  seqs: number[];
  /** Store calls of the socket session that failed (the session records them and goes on). */
  errors: string[];
  /** The BroadcastChannel between the device's tabs. */
  channel: () => Channel;
}

export interface SocketEnv {
  proxy: FaultProxy;
  space: string;
  clock: ReturnType<typeof warpClock>;
  /** The PRNG of the client parts (backoff jitter): separate from the command PRNG, whose sequence
   * must not depend on when real I/O made them draw. */
  random: () => number;
  /** Every op the server was sent, last version by id (restamps included). */
  sent: Map<string, Op>;
  figures: SocketFigures;
  maxOps: number;
}

/** Bun's WebSocket behind the manager's port, recording the pushes sent and counting frames received. */
function recordingSocket(tab: () => Tab, env: SocketEnv): SocketConstructor {
  return class implements SocketLike {
    onopen: ((event: Event) => void) | null = null;
    onmessage: ((event: MessageEvent) => void) | null = null;
    onerror: ((event: Event) => void) | null = null;
    onclose: ((event: CloseEvent) => void) | null = null;
    readonly #ws: WebSocket;

    constructor(url: string, protocols: string[]) {
      this.#ws = new WebSocket(url, protocols);
      tab().socket = this;
      this.#ws.onopen = (event) => this.onopen?.(event);
      this.#ws.onerror = (event) => this.onerror?.(event);
      this.#ws.onclose = (event) => this.onclose?.(event);
      this.#ws.onmessage = (event) => {
        if (this.onmessage === null) return; // released by the manager: never seen by the page
        env.figures.framesIn += 1;
        this.onmessage(event);
      };
    }

    get readyState(): number {
      return this.#ws.readyState;
    }

    send(data: string): void {
      if (data.startsWith('{"type":"push"')) {
        env.figures.pushes += 1;
        for (const op of (JSON.parse(data) as { ops: Op[] }).ops) env.sent.set(op.id, op);
      }
      this.#ws.send(data);
    }

    close(code?: number, reason?: string): void {
      this.#ws.close(code, reason);
    }
  };
}

/** The tab's HTTP (pushes while its socket is not ready, snapshots), recording the ops it pushes. */
function recordingFetch(inner: typeof fetch, env: SocketEnv): typeof fetch {
  return ((input: RequestInfo | URL, init?: RequestInit) => {
    if (String(input).endsWith('/v1/push') && typeof init?.body === 'string') {
      env.figures.pushes += 1;
      for (const op of (JSON.parse(init.body) as { ops: Op[] }).ops) env.sent.set(op.id, op);
    }
    return inner(input, init);
  }) as typeof fetch;
}

/** The tab's store, recording the cursor after every change the session applies and what arrived. */
function recordingStore(store: Store, tab: number, device: SocketDevice, env: SocketEnv): Store {
  const resetSpace: Store['resetSpace'] = async (space, when) => {
    // Only a `reset` frame has a cursor to recover; at cursor 0 the session merely forgets what acks
    // folded in before its first subscribe (PROTOCOL §7).
    if (when === 'if-unsynced') return store.resetSpace(space, when);
    const done = device.cursor.reset();
    env.figures.resets += 1;
    return store.resetSpace(space, when).finally(done);
  };
  const applyChanges: Store['applyChanges'] = async (space, entities, cursor, lamport, from) => {
    const begun = device.cursor.begin();
    const applied = await store.applyChanges(space, entities, cursor, lamport, from).catch((error: unknown) => {
      device.errors.push(`applyChanges ${entities.map((e) => e.serverSeq)}: ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    });
    if (space !== env.space) return applied;
    for (const e of entities) {
      const id = `${e.collection}/${e.key}`;
      const seen = device.received.get(id) ?? new Set<number>();
      seen.add(e.serverSeq);
      device.received.set(id, seen);
    }
    if (lamport === undefined) env.figures.snapshots += 1;
    else for (const e of entities) device.seqs.push(e.serverSeq);
    const stored = (await store.getCursors())[space] ?? 0;
    // A frame after a lost one (PROTOCOL §7 `from`) leaves the cursor where it was, by design.
    if (applied.gap) env.figures.gaps += 1;
    device.cursor.record(tab, begun, stored, applied.gap ? 0 : cursor, `${lamport === undefined ? 'snapshot page' : 'changes'} ${entities.map((e) => e.serverSeq)}`);
    return applied;
  };
  return new Proxy(store, {
    get(target, name) {
      if (name === 'resetSpace') return resetSpace;
      if (name === 'applyChanges') return applyChanges;
      const member = Reflect.get(target, name, target) as unknown;
      return typeof member === 'function' ? (member as (...a: unknown[]) => unknown).bind(target) : member;
    },
  });
}

/** A page's parts arrive as chunks after its engine started (client/index.ts): here a turn later, so the tabs
 * run the engine's wait for them (the spaces to sync and the start, kept until the socket is there). */
const later = <T>(part: T) => new Promise<T>((resolve) => setTimeout(() => resolve(part), 0));
const PAGE_PARTS: DeviceParts = { drainer: () => later({ createDrainer, isSyncError }), socket: () => later({ createDeviceSocket }) };

async function makeTab(index: number, device: SocketDevice, env: SocketEnv): Promise<Tab> {
  const store = await createStore({ indexedDB: device.factory });
  const tab: Tab = { index, store, engine: undefined!, socket: null };
  tab.engine = await createDevice({
    store: recordingStore(store, index, device, env),
    parts: PAGE_PARTS,
    fetch: recordingFetch(authFetch(() => device.token), env),
    lock: device.lock, now: env.clock.now, random: env.random, sleep: env.clock.sleep, timers: globalTimers,
    channel: device.channel(),
    online: { get: () => true, subscribe: () => () => {} },
    socket: { WebSocket: recordingSocket(() => tab, env), protocols: () => socketProtocols(device.token) },
  }, {
    url: env.proxy.base, role: 'page', heartbeatMs: HEARTBEAT_MS, reconnect: RECONNECT_POLICY,
    pushTimeoutMs: PUSH_TIMEOUT_MS, socketWindow: 4,
    // Small batches, several in flight: faults land between and inside the pipelined pushes.
    limits: { maxOps: env.maxOps, pageSize: env.maxOps, waitBudgetMs: 120_000 },
  });
  tab.engine.sync([env.space]);
  return tab;
}

/** A BroadcastChannel between the tabs of one device: what one posts, the others hear, a turn later. */
function tabChannel(): () => Channel {
  const listeners = new Set<(message: Broadcast) => void>();
  return () => {
    let mine: ((message: Broadcast) => void) | null = null;
    return {
      post(message) {
        for (const listener of listeners) if (listener !== mine) setTimeout(() => listener(message), 0);
      },
      listen(receive) {
        mine = receive;
        listeners.add(receive);
      },
      close() {
        if (mine) listeners.delete(mine);
      },
    };
  };
}

export async function makeSocketDevice(index: number, token: string, tabs: number, env: SocketEnv): Promise<SocketDevice> {
  const factory = new IDBFactory();
  const first = await createStore({ indexedDB: factory });
  const device: SocketDevice = {
    index, id: await first.getDeviceId(), store: first, written: 0, counter: 0, token, factory, lock: createLocalLock(),
    tabs: [], cursor: new CursorLog(), received: new Map(), seqs: [], errors: [], channel: tabChannel(),
  };
  for (let i = 0; i < tabs; i += 1) device.tabs.push(await makeTab(i, device, env));
  return device;
}

/** A drain the page starts and does not wait for (after a write); the engine's settled() awaits it. */
export function wake(tab: Tab): void {
  void tab.engine.wake();
}

/** One drain over the tab's socket (resuming a backoff or failure when asked); a rejection is transient. */
export async function drainTab(tab: Tab, env: SocketEnv, resume = false): Promise<void> {
  env.figures.drains += 1;
  try {
    await tab.engine.drain(resume ? 'resume' : 'drain');
  } catch {
    // Over its virtual backoff budget: the ops stay for the next drain.
    env.figures.drainRejections += 1;
  }
}

/** Open, welcomed, subscribed and caught up, ready for pushes. */
export function tabReady(tab: Tab): boolean {
  const connection = tab.engine.connection!;
  const info = connection.info();
  return connection.state() === 'open' && info.welcomed && info.caughtUp >= 1 && info.ready;
}

/** Gets the tab a fresh socket whatever state it is in (a closed socket reconnects after its backoff). */
export function reconnectTab(tab: Tab): void {
  const connection = tab.engine.connection!;
  const state = connection.state();
  if (state === 'open' || state === 'connecting') tab.socket?.close();
  else if (state === 'waiting') connection.reconnectNow();
  else connection.start();
}

/** Stops every tab's socket and lets its drains and frames settle; `close`: also its connections. */
export async function closeDevice(device: SocketDevice, close: boolean): Promise<void> {
  for (const tab of device.tabs) tab.engine.connection!.stop();
  for (const tab of device.tabs) await tab.engine.settled();
  if (!close) return;
  for (const tab of device.tabs) {
    await tab.engine.close();
    tab.store.close();
  }
  device.store.close();
}

/** Waits until `done()` or `ms` pass, polling every few ms. */
export async function waitFor(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
}
