// Several `bun server/cli.ts serve --redis …` processes on ONE libSQL file, a real redis-server between
// them, and real device engines (tests/support/model-socket-device.ts: device/device.ts on fake-indexeddb
// with Bun's WebSocket) each behind a transparent relay of its own (tests/support/fault-proxy.ts with no
// faults) that plays the load balancer: `moveDevice` points it at another instance and cuts the device's
// socket, so the device reconnects (and resubscribes from its cursor) there, as behind a real balancer.
//
// The end-of-run checks every scale-out suite shares: settle (every outbox empty, every cursor at the head,
// WITHOUT reconnecting anyone: a socket that missed a change must not be rescued by a new connection),
// then the ledger, the server state, every replica, and what each device's sockets received.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Doc } from '../../core/types.ts';
import type { Draft } from '../../device/records.ts';
import { docOfWire } from '../../device/records.ts';
import { openDatabase } from '../../server/storage/db.ts';
import { createSyncStore } from '../../server/storage/sync-store.ts';
import { type CliServer, serveCli } from './cli-server.ts';
import { type FaultProxy, startFaultProxy } from './fault-proxy.ts';
import { checkLedger, checkServerState, type LedgerFigures, warpClock } from './model-socket-checks.ts';
import { drainTab, makeSocketDevice, type SocketDevice, type SocketEnv, waitFor } from './model-socket-device.ts';
import { checkReplicas, type FrameWatch } from './model-socket-replicas.ts';
import { startRedis, type RedisServer } from './redis.ts';
import { rng } from './rng.ts';
import { removeDir } from './server.ts';

export type Admin = Awaited<ReturnType<typeof openDatabase>>;

export interface Cluster {
  redis: RedisServer;
  dir: string;
  dbUrl: string;
  /** The instances; null while one is down (killed and not yet restarted). */
  instances: Array<CliServer | null>;
  /** A connection of the test's own to the same file (a 5th process would do the same): reads and purges. */
  admin: Admin;
  /** Indexes of the instances that are up. */
  up(): number[];
  /** SIGKILL instance `i`; resolves once it is gone. */
  kill(i: number): Promise<void>;
  /** Starts instance `i` (again), on a new port; resolves once it answers /healthz. */
  start(i: number): Promise<CliServer>;
  stop(): Promise<void>;
}

let channels = 0;

/** `n` instances on one fresh database (started one after another: the first migrates it) and Redis. */
export async function startCluster(n: number): Promise<Cluster> {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-cluster-'));
  const flags = ['--redis', redis.url, '--redis-channel', `ferry:cluster:${process.pid}:${++channels}`];
  const instances: Array<CliServer | null> = [];
  const start = async (i: number) => {
    const server = await serveCli(flags, dir);
    instances[i] = server;
    return server;
  };
  for (let i = 0; i < n; i += 1) await start(i);
  const dbUrl = instances[0]!.dbUrl;
  const admin = await openDatabase(dbUrl);
  return {
    redis, dir, dbUrl, instances, admin, start,
    up: () => instances.flatMap((s, i) => (s ? [i] : [])),
    async kill(i) {
      const server = instances[i];
      instances[i] = null;
      if (!server || server.proc.exitCode !== null) return;
      server.proc.kill('SIGKILL');
      await server.proc.exited;
    },
    async stop() {
      for (const server of instances) await server?.stop();
      admin.close();
      await redis.stop();
      removeDir(dir);
    },
  };
}

/** GET /healthz of an instance. */
export async function health(server: CliServer): Promise<{ ok: boolean; serverSeq: number; bus: string }> {
  return (await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(5000) })).json() as Promise<any>;
}

/** Waits (bounded) until the instance's /healthz says the bus is `state`. */
export async function waitBus(server: CliServer, state: 'connected' | 'lost', ms = 15_000): Promise<void> {
  if (!(await waitFor(async () => (await health(server)).bus === state, ms))) throw new Error(`${server.base}: bus not ${state} within ${ms} ms`);
}

export interface ClusterDevice {
  device: SocketDevice;
  /** The device's own relay: its "load balancer" connection to instance `at`. */
  proxy: FaultProxy;
  at: number;
  /** Relayed connections opened so far (1 = never reconnected). */
  connections(): number;
}

/** The parts of a SocketEnv every device of a run shares (each device gets its own relay). */
export type SharedEnv = Omit<SocketEnv, 'proxy'>;

export function sharedEnv(space: string, seed: number, maxOps = 4): SharedEnv {
  return {
    space, clock: warpClock(), random: rng(seed).next, sent: new Map(), maxOps,
    figures: { pushes: 0, framesIn: 0, drains: 0, drainRejections: 0, resets: 0, snapshots: 0, gaps: 0 },
  };
}

/** A device engine (one tab) connected to instance `at` through its own relay. */
export async function clusterDevice(index: number, token: string, cluster: Cluster, at: number, shared: SharedEnv): Promise<ClusterDevice> {
  const proxy = startFaultProxy({ target: cluster.instances[at]!.base, seed: index });
  let conns = 0;
  proxy.observeWs((event) => void (conns = Math.max(conns, event.conn)));
  const device = await makeSocketDevice(index, token, 1, { ...shared, proxy });
  return { device, proxy, at, connections: () => conns };
}

/** The balancer sends the device to instance `to`: its socket is cut and it reconnects there. */
export function moveDevice(d: ClusterDevice, cluster: Cluster, to: number): void {
  d.proxy.setTarget(cluster.instances[to]!.base);
  d.at = to;
  d.proxy.cutWs();
}

/** `count` puts, each on a key of the device's own that nothing else writes: every serverSeq stays. */
export async function writeOwn(d: ClusterDevice, space: string, count: number): Promise<void> {
  const drafts: Draft[] = Array.from({ length: count }, (_, i) => ({
    space, collection: 'items', key: `d${d.device.index}-${d.device.written + i}`, kind: 'put', value: { n: d.device.written + i },
  }));
  await d.device.tabs[0]!.engine.write(drafts);
  d.device.written += count;
}

/** Entities of the space as the database has them now. */
export const entitiesOf = (cluster: Cluster, space: string) => createSyncStore(cluster.admin.db).changesSince(space, 0, 1_000_000);

const cursorOf = async (d: ClusterDevice, space: string) => (await d.device.store.getCursors())[space] ?? 0;

/**
 * Every outbox empty and every cursor at the space's head, bounded. Drains are woken (pushing is the
 * device's business); sockets are NOT reconnected: each must get every change on the connection it has.
 */
export async function settle(devices: readonly ClusterDevice[], cluster: Cluster, shared: SharedEnv, ms = 30_000): Promise<void> {
  const { space } = shared;
  const deadline = Date.now() + ms;
  const draining = new Map<ClusterDevice, Promise<void>>();
  let problem = '';
  while (Date.now() < deadline) {
    const head = (await entitiesOf(cluster, space)).reduce((max, e) => Math.max(max, e.serverSeq), 0);
    const behind: string[] = [];
    for (const d of devices) {
      const outbox = (await d.device.store.outboxStats()).count;
      const cursor = await cursorOf(d, space);
      if (outbox > 0 || cursor < head) {
        const first = outbox > 0 ? (await d.device.store.readOutbox(0, 1))[0] : undefined;
        behind.push(`device ${d.device.index} on instance ${d.at}: outbox ${outbox}${first ? ` (first ${JSON.stringify(first).slice(0, 200)}; drain ${JSON.stringify(await d.device.store.loadDrainState())})` : ''}, cursor ${cursor}, head ${head}, socket ${
          d.device.tabs[0]!.engine.connection!.state()} ${JSON.stringify(d.device.tabs[0]!.engine.connection!.info())}, draining ${draining.has(d)}`);
      }
      if (outbox > 0 && !draining.has(d)) {
        // One drain at a time per device, as the model's quiesce asks for them: `resume` only gets a
        // failed or backed-off drain going again (the clock is warped: no real wait), `drain` an idle one.
        const phase = (await d.device.store.loadDrainState())?.phase;
        const resume = phase === 'failed' || phase === 'backoff';
        draining.set(d, drainTab(d.device.tabs[0]!, { ...shared, proxy: d.proxy }, resume).finally(() => draining.delete(d)));
      }
    }
    if (behind.length === 0) {
      await Promise.all(draining.values());
      for (const d of devices) await d.device.tabs[0]!.engine.settled();
      return;
    }
    problem = behind.join('; ');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`not settled within ${ms} ms: ${problem}`);
}

/** A FrameWatch for relays that lose nothing: no holes allowed; `purged`: tombstones the server forgot. */
export function lossless(purged: Map<string, Doc[]> = new Map()): FrameWatch {
  return { purged, lostFrames: 0, lostFor: () => new Set(), cut: () => 0, stop: () => {} };
}

/**
 * Each device's sockets, one after another, got every serverSeq of the space once, in order: the
 * serverSeqs `changes` frames brought it are strictly increasing (nothing doubled or reordered, across
 * reconnects too) and are exactly the space's (nothing missed). Only for runs where no row is ever
 * overwritten or purged (writeOwn), so every serverSeq handed out is still in the database.
 */
export function checkComplete(devices: readonly ClusterDevice[], all: readonly number[]): void {
  for (const { device } of devices) {
    for (let i = 1; i < device.seqs.length; i += 1) {
      if (device.seqs[i]! <= device.seqs[i - 1]!) throw new Error(`device ${device.index}: serverSeq ${device.seqs[i]} came after ${device.seqs[i - 1]}`);
    }
    const got = new Set(device.seqs);
    const missed = all.filter((seq) => !got.has(seq));
    if (missed.length > 0 || got.size !== all.length) {
      throw new Error(`device ${device.index}: ${got.size} of ${all.length} serverSeqs; never got ${missed.slice(0, 20).join(',')}`);
    }
  }
}

/** Ledger (lost, doubled, order), server state = merge of everything sent, every replica = the server. */
export async function checkAll(devices: readonly ClusterDevice[], cluster: Cluster, shared: SharedEnv, seed: number,
  watch: FrameWatch = lossless()): Promise<LedgerFigures> {
  const figures: LedgerFigures = { lost: 0, doubled: 0, outOfOrder: 0 };
  const models = devices.map((d) => d.device);
  await checkLedger({ database: cluster.admin }, models, figures);
  const entities = await entitiesOf(cluster, shared.space);
  checkServerState(new Map(entities.map((e) => [`${e.collection}/${e.key}`, docOfWire(e)])), shared.sent.values(), models, rng(seed), watch.purged);
  const tally = await checkReplicas(models, entities, shared.space, watch);
  if (tally.holes.length > 0) throw new Error(`replica holes over lossless relays: ${tally.holes.join('; ')}`);
  return figures;
}
