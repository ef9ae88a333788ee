// A device of tests/model-socket.test.ts: one fake-indexeddb database and 1–2 tabs. A tab is a page
// context wired the way client/index.ts wires a page that drains itself, all real parts:
//
//   drainer (sw/drainer.ts) ── push ──▶ socket transport ─┐                       (window 4, rid per push)
//   socket session ◀─ frames ─ socket manager ◀── RecordingSocket (Bun WebSocket) ─┴─▶ fault proxy ─▶ server
//        │ welcome ─▶ drain, like the page's wake-up on (re)open
//        ▼ applyChanges / resetSpace / applyAck (recorded: the cursor after every change, what was received)
//   store (sw/store.ts, this tab's own connection to the device's database)
//
// The tabs of a device share its drain lock (the Web Lock `ferry:drain`), so one drains at a time, and
// each tab's socket hears the acks of the other's pushes as watermarks (acks without a rid).
import { IDBFactory } from 'fake-indexeddb';
import { authFetch, fetchSnapshot } from '../../client/http.ts';
import { createSocketManager, type SocketConstructor, type SocketLike, type SocketManager } from '../../client/socket-manager.ts';
import { createSocketSession, type SessionStore, type SocketSession } from '../../client/socket-session.ts';
import { createSocketTransport, type SocketTransport } from '../../client/socket-transport.ts';
import type { Op } from '../../core/types.ts';
import { createDrainer, type DrainLock, type Drainer } from '../../sw/drainer.ts';
import { createLocalLock } from '../../sw/ports.ts';
import { createStore, type Store } from '../../sw/store.ts';
import type { FaultProxy } from './fault-proxy.ts';
import type { ModelDevice, virtualClock } from './model-socket-checks.ts';

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
}

/** The device's cursor for the run's space, read after every change it applied. */
export class CursorLog {
  values: number[] = [];
  regressions: string[] = [];
  #last = 0;
  /** The highest cursor before a reset: the snapshot and catch-up after it must get back above it. */
  #floor = 0;
  #recovering = false;

  record(stored: number, frameCursor: number, what: string): void {
    this.values.push(stored);
    if (this.#recovering) {
      if (stored >= this.#floor) this.#recovering = false;
    } else {
      if (stored < this.#last) this.regressions.push(`${what}: cursor went back from ${this.#last} to ${stored}`);
      if (stored < frameCursor) this.regressions.push(`${what}: cursor ${stored} after applying changes up to ${frameCursor}`);
    }
    this.#last = stored;
    this.#floor = Math.max(this.#floor, stored);
  }

  /** PROTOCOL §7.1: the replica of the space is discarded, its cursor with it, until the snapshot is in. */
  reset(): void {
    this.#recovering = true;
  }

  recovering(): boolean {
    return this.#recovering;
  }
}

export interface Tab {
  index: number;
  store: Store;
  transport: SocketTransport;
  session: SocketSession;
  manager: SocketManager;
  drainer: Drainer;
  socket: SocketLike | null;
  /** Drains started by a welcome, awaited at the end of the run. */
  background: Set<Promise<unknown>>;
}

export interface SocketDevice extends ModelDevice {
  token: string;
  factory: IDBFactory;
  lock: DrainLock;
  tabs: Tab[];
  cursor: CursorLog;
  /** serverSeqs of each entity (`collection/key`) that reached the replica in changes or snapshots. */
  received: Map<string, Set<number>>;
  /** Store calls of the socket session that failed (the session records them and goes on). */
  errors: string[];
}

export interface SocketEnv {
  proxy: FaultProxy;
  space: string;
  clock: ReturnType<typeof virtualClock>;
  /** The PRNG of the client parts (backoff jitter): separate from the command PRNG, whose sequence
   * must not depend on when real I/O made them draw. */
  random: () => number;
  /** Every op the server was sent, last version by id (restamps included). */
  sent: Map<string, Op>;
  figures: SocketFigures;
  maxOps: number;
}

const timers = {
  setTimeout: (callback: () => void, ms: number) => setTimeout(callback, ms),
  clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

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

/** The session's store: the tab's own, recording the cursor after every change and what arrived. */
function recordingStore(store: Store, device: SocketDevice, env: SocketEnv): SessionStore {
  return {
    observeLamport: (lamport) => store.observeLamport(lamport),
    getCursors: () => store.getCursors(),
    applyAck: (ack, now) => store.applyAck(ack, now),
    async resetSpace(space) {
      device.cursor.reset();
      env.figures.resets += 1;
      await store.resetSpace(space);
    },
    async applyChanges(space, entities, cursor, lamport) {
      const applied = await store.applyChanges(space, entities, cursor, lamport).catch((error: unknown) => {
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
      const stored = (await store.getCursors())[space] ?? 0;
      device.cursor.record(stored, cursor, `${lamport === undefined ? 'snapshot page' : 'changes'} ${entities.map((e) => e.serverSeq)}`);
      return applied;
    },
  };
}

async function makeTab(index: number, device: SocketDevice, env: SocketEnv): Promise<Tab> {
  const store = await createStore({ indexedDB: device.factory });
  const transport = createSocketTransport({ timers, window: 4, timeoutMs: PUSH_TIMEOUT_MS });
  const tab: Tab = { index, store, transport, session: undefined!, manager: undefined!, drainer: undefined!, socket: null, background: new Set() };
  tab.drainer = createDrainer({
    store, transport, lock: device.lock, now: env.clock.now, random: env.random, sleep: env.clock.sleep,
    // Small batches, several in flight: faults land between and inside the pipelined pushes.
    limits: { maxOps: env.maxOps, pageSize: env.maxOps, waitBudgetMs: 120_000 },
  });
  const fetchFn = authFetch(() => device.token);
  tab.session = createSocketSession({
    store: recordingStore(store, device, env), device: device.id, transport, now: Date.now,
    snapshot: (space, after, head) => fetchSnapshot(fetchFn, env.proxy.base, space, after, head),
    changed: () => {},
    acked: () => {},
    // client/index.ts: the welcome wakes a drain (ops at or below `through` are resent to learn their results).
    welcomed: () => wake(tab, env),
    updated: () => {},
  });
  tab.manager = createSocketManager({
    url: env.proxy.ws,
    protocols: () => ['ferry.v1', `ferry.auth.${device.token}`],
    WebSocket: recordingSocket(() => tab, env),
    timers, now: Date.now, random: env.random, heartbeatMs: HEARTBEAT_MS, policy: RECONNECT_POLICY,
    onOpen: (send) => tab.session.opened(send),
    onFrame: (frame) => tab.session.frame(frame),
    onStatus: (status) => {
      if (status.state !== 'open') tab.session.closed();
    },
  });
  tab.session.setSpaces([env.space]);
  tab.manager.start();
  return tab;
}

export async function makeSocketDevice(index: number, token: string, tabs: number, env: SocketEnv): Promise<SocketDevice> {
  const factory = new IDBFactory();
  const first = await createStore({ indexedDB: factory });
  const device: SocketDevice = {
    index, id: await first.getDeviceId(), store: first, written: 0, counter: 0, token, factory, lock: createLocalLock(),
    tabs: [], cursor: new CursorLog(), received: new Map(), errors: [],
  };
  for (let i = 0; i < tabs; i += 1) device.tabs.push(await makeTab(i, device, env));
  return device;
}

/** A drain the page starts and does not wait for (after a write, on a welcome); awaited at close. */
export function wake(tab: Tab, env: SocketEnv): void {
  background(tab, drainTab(tab, env));
}

function background(tab: Tab, work: Promise<unknown>): void {
  const tracked = work.catch(() => {}).finally(() => tab.background.delete(tracked));
  tab.background.add(tracked);
}

/** One drain over the tab's socket (resuming a backoff or failure when asked); a rejection is transient. */
export async function drainTab(tab: Tab, env: SocketEnv, resume = false): Promise<void> {
  env.figures.drains += 1;
  try {
    await (resume ? tab.drainer.resume() : tab.drainer.drain());
  } catch {
    // Over its virtual backoff budget: the ops stay for the next drain.
    env.figures.drainRejections += 1;
  }
}

/** Open, welcomed, subscribed and caught up, ready for pushes. */
export function tabReady(tab: Tab): boolean {
  const info = tab.session.info();
  return tab.manager.status().state === 'open' && info.welcomed && info.caughtUp >= 1 && tab.transport.ready();
}

/** Gets the tab a fresh socket whatever state it is in (a closed socket reconnects after its backoff). */
export function reconnectTab(tab: Tab): void {
  const state = tab.manager.status().state;
  if (state === 'open' || state === 'connecting') tab.socket?.close();
  else if (state === 'waiting') tab.manager.reconnectNow();
  else tab.manager.start();
}

/** Stops every tab's socket and lets its drains and frames settle; `close`: also its connections. */
export async function closeDevice(device: SocketDevice, close: boolean): Promise<void> {
  for (const tab of device.tabs) tab.manager.stop();
  for (const tab of device.tabs) {
    await Promise.allSettled([...tab.background]);
    await tab.session.settled();
  }
  if (!close) return;
  for (const tab of device.tabs) tab.store.close();
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
