// The devices of tests/model.test.ts: one fake-indexeddb database per device, a "page" connection
// (writes, checks) and a killable "Service Worker": the device engine exactly as sw/worker.ts composes it
// (device/device.ts, role 'worker': its own connection, drainer and lock, HTTP only), with the model's
// ports (fake-indexeddb, a virtual clock, a network and a store that a kill cuts off), which the kill
// command replaces mid-batch the way a browser restarts a terminated worker. Also the run's figures and
// the per-scenario environment the commands share.
import { IDBFactory } from 'fake-indexeddb';
import * as v from 'valibot';
import type { Fields, Op } from '../../core/types.ts';
import { AckBody } from '../../schema/wire.ts';
import { createDevice, type Device as Engine } from '../../device/device.ts';
import { globalTimers } from '../../device/locks.ts';
import { STATIC_PARTS } from '../../device/parts.ts';
import type { FerryStatus } from '../../device/status.ts';
import { createLocalLock } from '../../device/locks.ts';
import type { Draft } from '../../device/records.ts';
import { createStore, type Store } from '../../device/store.ts';
import { cuttingFetch, type FaultProxy, type rng } from './fault-proxy.ts';
import type { TestServer } from './server.ts';

export type Rng = ReturnType<typeof rng>;
export interface User { id: string; name: string }

/** Where the kill command stops a worker (the seeded `push`-th request of its drain, or later). */
export type KillPoint = 'unsent' | 'in-flight' | 'answered' | 'before-apply' | 'after-apply';
export const KILL_POINTS: readonly KillPoint[] = ['unsent', 'in-flight', 'answered', 'before-apply', 'after-apply'];

export function newFigures() {
  return {
    runs: 0, ops: 0, drains: 0, drainRejections: 0, restarts: 0, restartsMidDrain: 0, pushesSent: 0,
    tokenExpiries: 0, tokenExpiriesMidDrain: 0, tokenRenewals: 0, authPausedDrains: 0,
    drainerKills: 0, drainerKillsIdle: 0, killOrphanRaces: 0,
    /** Ops of the batch in flight at a kill (not after-apply) that the server held / did not hold at the restart. */
    killedBatchCommitted: 0, killedBatchUncommitted: 0,
    killPoints: Object.fromEntries(KILL_POINTS.map((p) => [p, 0])) as Record<KillPoint, number>,
    /** Ops committed but still queued when a worker was restarted: each resend must say `duplicate`. */
    resendsWatched: 0, resentDuplicates: 0,
    lost: 0, doubled: 0, outOfOrder: 0, ms: 0,
  };
}
export type Figures = ReturnType<typeof newFigures>;

/** What one scenario's commands share. */
export interface ModelEnv {
  server(): TestServer;
  proxy: FaultProxy;
  figures: Figures;
  /** Bearer tokens by slot (`<userId>/<device index>`), reused across runs until one is expired. */
  tokens: Map<string, string>;
  /** Every op the server was sent, last version by id (restamps included): what the reference merge folds. */
  sent: Map<string, Op>;
  clock: VirtualClock;
  r: Rng;
  /** Requests that killed workers left in flight. */
  orphans: Promise<unknown>[];
}

export interface Worker {
  alive: boolean;
  /** The worker's own connection to the device's database. */
  store: Store;
  /** The device engine the worker runs. */
  engine: Engine;
  pushes: number;
  /** The seqs of its last request. */
  lastBatch: number[];
  plan: { push: number; point: KillPoint } | null;
  /** Resolves when the worker dies. */
  killed: Promise<void>;
  die(): void;
  /** The request it left in flight when it died ('in-flight'), settled with its answer or error. */
  orphan: Promise<unknown> | null;
}

export interface Device {
  index: number;
  user: User;
  slot: string;
  token: string;
  factory: IDBFactory;
  /** The page's connection: writes and checks. */
  store: Store;
  /** The current Service Worker (replaced when killed). */
  sw: Worker;
  id: string;
  written: number;
  counter: number;
  /** The last status the live worker reported. */
  status: FerryStatus | null;
  /** A test hook run before each request of the device leaves (the token expiring mid-drain). */
  beforePush: (() => Promise<void>) | null;
  /** Set while the token is expired: the ledger seqs and queued seqs when it expired. */
  expired: { ledger: number[]; queued: number[] } | null;
  /** Seqs committed but queued when a worker restarted: duplicate answers seen for each. */
  watch: Map<number, number>;
  violations: string[];
}

export type VirtualClock = ReturnType<typeof virtualClock>;

/** The virtual clock the drainers' backoff runs on: sleeping advances it, nothing really waits. */
export function virtualClock() {
  let t = 1_700_000_000_000;
  return { now: () => t, sleep: async (ms: number) => { t += ms; } };
}

/** What a dead worker's calls return: its JavaScript stopped, so nothing after them ever runs. */
const hang = <T>(): Promise<T> => new Promise<T>(() => {});

export async function makeDevice(index: number, user: User, env: ModelEnv): Promise<Device> {
  const factory = new IDBFactory();
  const store = await createStore({ indexedDB: factory });
  const slot = `${user.id}/${index}`;
  let token = env.tokens.get(slot);
  if (token === undefined) {
    token = await env.server().app.decorator.ferry.accounts.createToken(user.id, `model-${index}`, Date.now(), null);
    env.tokens.set(slot, token);
  }
  const device: Device = {
    index, user, slot, token, factory, store, sw: undefined!, id: await store.getDeviceId(), written: 0, counter: 0,
    status: null, beforePush: null, expired: null, watch: new Map(), violations: [],
  };
  device.sw = await startWorker(device, env);
  return device;
}

/** Starts a Service Worker for the device: a fresh connection, drainer and lock, like a restarted worker. */
export async function startWorker(device: Device, env: ModelEnv): Promise<Worker> {
  const store = await createStore({ indexedDB: device.factory });
  let killed!: () => void;
  const worker: Worker = {
    alive: true, store, engine: undefined!, pushes: 0, lastBatch: [], plan: null, orphan: null,
    killed: new Promise<void>((resolve) => { killed = resolve; }),
    die: () => { worker.alive = false; killed(); },
  };
  worker.engine = await createDevice({
    store: gatedStore(worker),
    parts: STATIC_PARTS,
    fetch: gatedFetch(device, worker, cuttingFetch(authedFetch(device, env))),
    lock: createLocalLock(), now: env.clock.now, random: env.r.next, sleep: env.clock.sleep, timers: globalTimers,
    channel: { post() {}, listen() {}, close() {} },
    online: { get: () => true, subscribe: () => () => {} },
  }, {
    url: env.proxy.base, role: 'worker', pushTimeoutMs: 10_000,
    // Small batches so a drain takes several pushes and faults land between them.
    limits: { maxOps: 4, pageSize: 4, waitBudgetMs: 120_000 },
  });
  worker.engine.onStatus((status) => { if (worker.alive) device.status = status; });
  return worker;
}

/** Adds the device's current bearer token and records what the server is sent. */
function authedFetch(device: Device, env: ModelEnv): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (device.beforePush !== null) await device.beforePush();
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${device.token}`);
    if (typeof init?.body === 'string') {
      for (const op of (JSON.parse(init.body) as { ops: Op[] }).ops) env.sent.set(op.id, op);
      env.figures.pushesSent += 1;
    }
    return fetch(input as any, { ...init, headers });
  }) as typeof fetch;
}

/**
 * The worker's network: nothing once it is dead, and it dies at its kill point — 'unsent' as the
 * batch is handed to fetch (it never leaves), 'in-flight' right after the request left (it goes on
 * to the server: the orphan), 'answered' once the whole answer (or error) is in but before the
 * drainer sees it.
 */
function gatedFetch(device: Device, worker: Worker, inner: typeof fetch): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (!worker.alive) return hang();
    worker.pushes += 1;
    if (typeof init?.body === 'string') worker.lastBatch = (JSON.parse(init.body) as { ops: Op[] }).ops.map((op) => op.seq);
    const point = worker.plan?.push === worker.pushes ? worker.plan.point : null;
    if (point === 'unsent') { worker.die(); return hang(); }
    const answer = inner(input as any, init).then(async (response) => ({
      status: response.status, type: response.headers.get('content-type'), text: await response.text(),
    }));
    if (point === 'in-flight') {
      worker.orphan = answer.catch(() => undefined);
      worker.die();
      return hang();
    }
    let got: Awaited<typeof answer>;
    try {
      got = await answer;
    } catch (error) {
      if (!worker.alive || point === 'answered') { worker.die(); return hang(); }
      throw error;
    }
    if (!worker.alive) return hang();
    observeAnswer(device, got.status, got.text);
    if (point === 'answered') { worker.die(); return hang(); }
    return new Response(got.text, { status: got.status, headers: got.type === null ? {} : { 'content-type': got.type } });
  }) as typeof fetch;
}

/** Checks the server's answers for ops that were committed before a worker restart: `duplicate` only. */
function observeAnswer(device: Device, status: number, text: string): void {
  if (device.watch.size === 0 || status !== 200) return;
  let json: unknown;
  try { json = JSON.parse(text); } catch { return; }
  const ack = v.safeParse(AckBody, json);
  if (!ack.success) return;
  for (const result of ack.output.results) {
    const seen = device.watch.get(result.seq);
    if (seen === undefined) continue;
    if (result.result === 'duplicate') device.watch.set(result.seq, seen + 1);
    else device.violations.push(`seq ${result.seq} was committed before its worker was killed, yet its resend was answered ${result.result}`);
  }
}

/**
 * The worker's store: a dead worker never touches it again (a call in progress may finish its
 * transaction, all or nothing, but nothing after it runs). 'before-apply' / 'after-apply' kill the
 * worker at the first ack it applies from its seeded push on, before the transaction or after it.
 */
function gatedStore(worker: Worker): Store {
  const store = worker.store;
  const gate = <T>(call: () => Promise<T>): Promise<T> => {
    if (!worker.alive) return hang();
    return call().then((value) => (worker.alive ? value : hang<T>()), (error) => (worker.alive ? Promise.reject(error) : hang<T>()));
  };
  const applyAck: Store['applyAck'] = (ack, now, sent) => {
    const point = worker.plan !== null && worker.pushes >= worker.plan.push ? worker.plan.point : null;
    if (point === 'before-apply') worker.die();
    return gate(async () => {
      const applied = await store.applyAck(ack, now, sent);
      if (point === 'after-apply') worker.die();
      return applied;
    });
  };
  // Every other call of the store, gated alike.
  return new Proxy(store, {
    get(target, name) {
      if (name === 'applyAck') return applyAck;
      const member = Reflect.get(target, name, target) as unknown;
      if (typeof member !== 'function') return member;
      return (...args: unknown[]) => gate(() => (member as (...a: unknown[]) => Promise<unknown>).apply(target, args));
    },
  });
}

function valueFor(r: Rng): Fields {
  const value: Fields = {};
  for (const field of ['title', 'n', 'done']) if (r.chance(0.6)) value[field] = field === 'done' ? r.chance(0.5) : r.int(0, 99);
  if (Object.keys(value).length === 0) value.n = r.int(0, 99);
  return value;
}

const KEYS = ['a', 'b', 'c', 'd'];

/** The page writes one op on a shared key, and sometimes bumps the device's own counter key. */
export async function write(device: Device, space: string, r: Rng, now: number): Promise<void> {
  const key = r.pick(KEYS);
  const roll = r.next();
  const drafts: Draft[] = [];
  if (roll < 0.4) drafts.push({ space, collection: 'items', key, kind: 'put' as const, value: valueFor(r) });
  else if (roll < 0.8) drafts.push({ space, collection: 'items', key, kind: 'patch' as const, value: valueFor(r) });
  else drafts.push({ space, collection: 'items', key, kind: 'delete' as const });
  if (r.chance(0.3)) {
    device.counter += 1;
    drafts.push({ space, collection: 'items', key: `count_${device.index}`, kind: 'patch' as const, value: { n: device.counter } });
  }
  await device.store.enqueue(drafts, now);
  device.written += drafts.length;
}
