// Model-based reliability test of the socket path (DESIGN invariants 1–5), real parts end to end:
//
//   device × 2–3, each 1–2 tabs (tests/support/model-socket-device.ts): device/store.ts on fake-indexeddb,
//   the real drainer pipelining batches over device/socket-transport.ts, device/socket-session.ts
//   (hello/welcome, catch-up, reset + snapshot, ack watermarks) on device/socket-manager.ts
//        │  Bun WebSocket, bearer token as subprotocol
//        ▼
//   tests/support/fault-proxy.ts WebSocket relay (seeded, per frame, both directions: drop, duplicate,
//   delay, reorder within 3 frames, cut; also forced at chosen moments)
//        ▼
//   ONE real listening server on ONE libSQL file, restarted now and then on the same file
//
// Each run is a seeded scenario on a fresh shared space (small keyspace, so writes collide). Commands:
// writes, drains over the socket (also all devices at once, also two tabs of one device at once),
// forced frame faults, cuts, tabs going offline and back, reconnects, server restarts (also mid-drain),
// tombstone purges (then stale replicas get `reset` and read the snapshot), pauses. Then quiesce
// (faults off, every tab reconnected and caught up, every outbox drained empty, every replica's cursor
// at the space's head; bounded) and check:
//   - ledger: each device's ops are exactly seqs 1..n, once each, none rejected (invariants 1, 2)
//   - per-device order: the ledger's insertion order follows seq (invariant 3)
//   - the server's state equals the merge of every op sent (invariant 4); counters hold their last value
//   - each device's cursor, read after every change it applied, never went back (a reset may take it
//     to 0 until its snapshot and catch-up are in) and ends at the head
//   - every replica holds exactly the server's docs, values AND stamps, tombstones included (invariant 4)
//     — with one exception the protocol cannot avoid, checked precisely and counted: a tombstone the
//     server purged may still be held. A `changes` frame the relay dropped mid-stream (no TCP connection
//     can) is a gap the device sees (the next frame's `from`, PROTOCOL §7) and repairs by subscribing
//     again: a replica left behind by one (a hole) fails the run. Some commands aim the drop at a
//     `changes` frame with more behind it, and the figures count the gaps seen (> 0, or the path is idle).
//
// FERRY_MODEL_SOCKET_RUNS=N (default 300), FERRY_MODEL_SOCKET_SEED=S (base seed; run i uses S+i;
// FERRY_MODEL_SEED is read too). A failing seed is printed; add it to REGRESSIONS.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Op } from '../core/types.ts';
import { docOfWire, type Draft } from '../device/records.ts';
import { type FaultProxy, rng, startFaultProxy, type WsFault, type WsPlan } from './support/fault-proxy.ts';
import { checkLedger, checkServerState, MODEL_KEYS, runSeeds, warpClock, writeRandom } from './support/model-socket-checks.ts';
import { closeDevice, drainTab, makeSocketDevice, reconnectTab, type SocketDevice, type SocketEnv, type Tab, tabReady,
  waitFor, wake } from './support/model-socket-device.ts';
import { checkReplicas, createFrameWatch, type FrameWatch, purgeTombstones } from './support/model-socket-replicas.ts';
import { removeDir, startServer, type TestServer } from './support/server.ts';

/** Seeds that once failed: replayed before the random runs. 9000087: the relay's reorder buffer lost
 * frames of the other direction (a fault-proxy bug). 9000210, 9000281: quiesce ended while the relay
 * still held an older `changes` frame (a test bug: it now waits the relay's longest hold out). 9000242,
 * 9000128, 9000164, 9000219: after a reset the client subscribed from the snapshot's head, past the
 * tombstones the snapshot leaves out (a client bug, fixed in device/socket-session.ts; the last three
 * fail alone, every time, without the fix). 9000202, 9000293: a device whose first write went out over HTTP
 * while its socket was down folded the ack into its replica; a delete then superseded it and was purged,
 * and the device, subscribing from cursor 0 (never reset), kept the entity for good (a client bug, found
 * once the tabs ran the real engine with its HTTP fallback; fixed in device/socket-session.ts). 9000007,
 * 9000016, 9000025: a `changes` frame lost mid-stream left a hole (protocol v1 gave no way to see it; fixed
 * by `from` on every frame and the device subscribing again: each fails without it). */
const REGRESSIONS: number[] = [9_000_007, 9_000_016, 9_000_025, 9_000_087, 9_000_128, 9_000_164, 9_000_202, 9_000_210, 9_000_219,
  9_000_157, 9_000_242, 9_000_281, 9_000_293];

const RUNS = Number(process.env.FERRY_MODEL_SOCKET_RUNS ?? 300);
const BASE_SEED = Number(process.env.FERRY_MODEL_SOCKET_SEED ?? process.env.FERRY_MODEL_SEED ?? 9_000_000);
const RATE = { pushesPerSecond: 1_000_000, opsPerSecond: 1_000_000_000 };
const FRAME_FAULTS: WsFault[] = ['ws-drop', 'ws-duplicate', 'ws-delay', 'ws-reorder'];

let server: TestServer;
let proxy: FaultProxy;
let dir: string;
const users: Array<{ id: string; token: string }> = [];
const figures = {
  runs: 0, ops: 0, pushes: 0, framesIn: 0, drains: 0, drainRejections: 0, forcedFaults: 0, cuts: 0, offline: 0,
  reconnects: 0, restarts: 0, restartsMidDrain: 0, purges: 0, purgesSkipped: 0, resets: 0, snapshots: 0,
  changesFramesLost: 0, changesDropsAimed: 0, gaps: 0, holes: 0, purgedTombstonesHeld: 0, quiesceRounds: 0, quiesceReconnects: 0,
  lost: 0, doubled: 0, outOfOrder: 0, cursorRegressions: 0, ms: 0,
};

beforeAll(async () => {
  server = await startServer({ rateLimits: RATE });
  dir = server.dir;
  proxy = startFaultProxy({ target: server.base, seed: BASE_SEED });
  for (const name of ['alice', 'bob', 'carol']) users.push(await server.user(`socket-model-${name}`));
});

afterAll(async () => {
  proxy?.observeWs(null);
  await proxy?.stop();
  await server?.stop();
  if (dir) removeDir(dir);
});

async function restartServer(): Promise<void> {
  await server.stop();
  server = await startServer({ rateLimits: RATE }, dir);
  proxy.setTarget(server.base);
  figures.restarts += 1;
}

/** FERRY_MODEL_SOCKET_TRACE=<seed> (or `all`) logs that run's commands and every relayed frame. */
let tracing = false;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function spaceHead(space: string): Promise<number> {
  const rows = await server.app.decorator.ferry.store.changesSince(space, 0, 10_000);
  return rows.reduce((max, e) => Math.max(max, e.serverSeq), 0);
}

const cursorOf = async (device: SocketDevice, space: string) => (await device.store.getCursors())[space] ?? 0;

/**
 * Faults off; every tab online, welcomed and caught up (a tab stuck on a frame the relay lost — a
 * hello, welcome or subscribe no TCP connection could lose — is reconnected); every outbox drained;
 * every cursor at the head. Bounded rounds; throws with what is still wrong.
 */
async function quiesce(devices: SocketDevice[], env: SocketEnv): Promise<void> {
  proxy.setPlan({}, {});
  // Frames the relay holds (reorder: ≤ 50 ms, delay: ≤ 30 ms) all go out first: until then a replica's
  // cursor may be at the head while an older frame is still on its way.
  await waitFor(() => proxy.pendingWs() === 0, 200);
  const tabs = devices.flatMap((d) => d.tabs);
  for (const tab of tabs) if (['idle', 'stopped'].includes(tab.engine.connection!.state())) tab.engine.connection!.start();
  let problem = 'not started';
  for (let round = 0; round < 12; round += 1) {
    figures.quiesceRounds += 1;
    if (!(await waitFor(() => tabs.every(tabReady), 400))) {
      const stuck = tabs.filter((tab) => !tabReady(tab));
      problem = `tabs not ready: ${stuck.map((t) => `${t.engine.connection!.state()}/${JSON.stringify(t.engine.connection!.info())}`).join(', ')}`;
      for (const tab of stuck) reconnectTab(tab);
      figures.quiesceReconnects += stuck.length;
      continue;
    }
    await Promise.all(devices.map(async (device) => {
      for (let i = 0; i < 4 && (await device.store.outboxStats()).count > 0; i += 1) {
        const phase = (await device.store.loadDrainState())?.phase;
        await drainTab(device.tabs[0]!, env, phase === 'failed' || phase === 'backoff');
      }
    }));
    const head = await spaceHead(env.space);
    const settled = async () => {
      for (const device of devices) {
        if ((await device.store.outboxStats()).count > 0 || (await cursorOf(device, env.space)) < head) return false;
      }
      return true;
    };
    // Settled, and still so after a quiet moment (a frame sent meanwhile has landed and been applied).
    if (await waitFor(settled, 300)) {
      await waitFor(() => proxy.pendingWs() === 0, 200);
      await pause(5);
      await Promise.all(tabs.map((tab) => tab.engine.settled()));
      if (await settled()) return;
    }
    const behind: string[] = [];
    for (const device of devices) {
      const stats = await device.store.outboxStats();
      const cursor = await cursorOf(device, env.space);
      if (stats.count > 0 || cursor < head) behind.push(`device ${device.index}: outbox ${stats.count}, cursor ${cursor} < head ${head}`);
      // Behind on a live socket: a lost frame; a new socket catches up from the stored cursor.
      if (cursor < head) for (const tab of device.tabs) reconnectTab(tab);
    }
    problem = behind.join('; ');
  }
  throw new Error(`quiesce did not settle: ${problem}`);
}

/**
 * A device is offline while another deletes and the server purges the tombstone (the retention horizon
 * passing), and often deletes again after the purge (a tombstone above the horizon, which snapshots
 * leave out). Back online, its cursor is below the horizon: `reset`, snapshot, catch-up.
 */
async function offlineAcrossPurge(r: ReturnType<typeof rng>, away: SocketDevice, devices: SocketDevice[], env: SocketEnv,
  watch: FrameWatch): Promise<void> {
  for (const tab of away.tabs) tab.engine.connection!.stop();
  const other = r.pick(devices.filter((d) => d !== away));
  const remove = async () => {
    await other.store.enqueue([{ space: env.space, collection: 'items', key: r.pick(MODEL_KEYS), kind: 'delete' }], env.clock.now());
    other.written += 1;
    await drainTab(other.tabs[0]!, env);
  };
  await remove();
  await pause(r.int(0, 5));
  if (await purgeTombstones(server, devices, env.space, watch)) figures.purges += 1;
  else figures.purgesSkipped += 1;
  if (r.chance(0.6)) await remove();
  if (r.chance(0.7)) for (const tab of away.tabs) tab.engine.connection!.start();
}

async function command(r: ReturnType<typeof rng>, devices: SocketDevice[], env: SocketEnv, watch: FrameWatch): Promise<void> {
  const device = r.pick(devices);
  const tab: Tab = r.pick(device.tabs);
  const roll = r.next();
  if (tracing) console.log(`command ${roll.toFixed(3)} device ${device.index} (${device.id.slice(0, 4)}) tab ${tab.index}`);
  const write = (drafts: Draft[]) => tab.engine.write(drafts);
  if (roll < 0.36) {
    await writeRandom(device, env.space, r, env.clock.now(), write);
    // A page's write wakes a drain itself (device/device.ts write); this is one more, not awaited.
    if (r.chance(0.3)) wake(tab);
  } else if (roll < 0.52) await drainTab(tab, env);
  else if (roll < 0.58) await Promise.all(devices.map((d) => drainTab(r.pick(d.tabs), env)));
  else if (roll < 0.62) await Promise.all(device.tabs.map((t) => drainTab(t, env)).concat(drainTab(tab, env)));
  else if (roll < 0.66) {
    // A frame fault aimed at the next frame one way or the other, then a drain into it.
    proxy.forceNextWs(r.pick([...FRAME_FAULTS, 'ws-cut']), 1, r.chance(0.5) ? 'up' : 'down');
    figures.forcedFaults += 1;
    await drainTab(tab, env);
  } else if (roll < 0.70) {
    // The next `changes` frame to any tab is lost, and more follow it: the first one after says, by its
    // `from`, that something is missing, and that tab subscribes again from its cursor.
    proxy.forceNextWs('ws-drop', 1, 'down', 'changes');
    figures.changesDropsAimed += 1;
    for (let i = r.int(1, 3); i > 0; i -= 1) {
      const writer = r.pick(devices);
      const writerTab = r.pick(writer.tabs);
      await writeRandom(writer, env.space, r, env.clock.now(), (drafts) => writerTab.engine.write(drafts));
      await drainTab(writerTab, env);
    }
  } else if (roll < 0.75) {
    figures.cuts += r.chance(0.3) ? proxy.cutWs() : watch.cut(device.id);
  } else if (roll < 0.80) {
    // The tab goes offline (its socket stopped), or comes back.
    const connection = tab.engine.connection!;
    const state = connection.state();
    if (state === 'stopped' || state === 'idle') connection.start();
    else { connection.stop(); figures.offline += 1; }
  } else if (roll < 0.84) {
    reconnectTab(tab);
    figures.reconnects += 1;
  } else if (roll < 0.86) {
    await restartServer();
  } else if (roll < 0.875) {
    const pending = drainTab(tab, env);
    await pause(r.int(0, 3));
    await restartServer();
    figures.restartsMidDrain += 1;
    await pending;
  } else if (roll < 0.905) {
    await offlineAcrossPurge(r, device, devices, env, watch);
  } else if (roll < 0.95) {
    await pause(r.int(1, 40));
  } else {
    await writeRandom(device, env.space, r, env.clock.now(), write);
    await writeRandom(device, env.space, r, env.clock.now(), write);
  }
}

async function scenario(seed: number): Promise<void> {
  const r = rng(seed);
  proxy.reseed(seed);
  proxy.setPlan({}, {});
  const ferry = server.app.decorator.ferry; // this run's setup only: a restart replaces it
  const space = (await ferry.accounts.createSpace(users[0]!.id, `socket-model-${seed}`, Date.now())).id;
  for (const u of users.slice(1)) await ferry.accounts.addMember(space, u.id);
  const sent = new Map<string, Op>();
  const env: SocketEnv = {
    proxy, space, clock: warpClock(), random: rng(seed ^ 0x5eed).next, sent, maxOps: r.pick([2, 3, 4]),
    figures: { pushes: 0, framesIn: 0, drains: 0, drainRejections: 0, resets: 0, snapshots: 0, gaps: 0 },
  };
  tracing = [String(seed), 'all'].includes(process.env.FERRY_MODEL_SOCKET_TRACE ?? '');
  const watch = createFrameWatch(proxy, space, tracing);
  const devices: SocketDevice[] = [];
  try {
    const count = r.int(2, 3);
    for (let i = 0; i < count; i += 1) devices.push(await makeSocketDevice(i, r.pick(users).token, r.chance(0.3) ? 2 : 1, env));
    const rate = r.pick([0, 0.02, 0.05, 0.1]);
    const plan: WsPlan = {
      'ws-drop': rate / 4, 'ws-duplicate': rate / 4, 'ws-delay': rate / 4, 'ws-reorder': rate / 4, 'ws-cut': rate / 20,
    };
    proxy.setPlan({}, plan);
    const steps = r.int(4, 14);
    for (let step = 0; step < steps; step += 1) await command(r, devices, env, watch);

    await quiesce(devices, env);
    for (const device of devices) await closeDevice(device, false);
    for (const device of devices) {
      const stats = await device.store.outboxStats();
      if (stats.count !== 0 || stats.dead !== 0) throw new Error(`device ${device.index}: outbox ${stats.count}, dead ${stats.dead} after quiesce`);
    }
    await checkLedger(server, devices, figures);
    figures.ops += devices.reduce((sum, d) => sum + d.written, 0);
    const serverEntities = await server.app.decorator.ferry.store.changesSince(space, 0, 10_000);
    const serverDocs = new Map(serverEntities.map((e) => [`${e.collection}/${e.key}`, docOfWire(e)]));
    checkServerState(serverDocs, sent.values(), devices, r, watch.purged);
    const head = serverEntities.reduce((max, e) => Math.max(max, e.serverSeq), 0);
    for (const device of devices) {
      figures.cursorRegressions += device.cursor.regressions.length;
      if (device.cursor.regressions.length > 0) throw new Error(`device ${device.index}: ${device.cursor.regressions[0]}`);
      if (device.cursor.recovering()) throw new Error(`device ${device.index}: still recovering from a reset after quiesce`);
      const cursor = await cursorOf(device, space);
      // Above the head only when the newest rows were tombstones the server purged since.
      if (cursor < head) throw new Error(`device ${device.index}: cursor ${cursor} < head ${head} after quiesce`);
    }
    const tally = await checkReplicas(devices, serverEntities, space, watch);
    figures.holes += tally.holes.length;
    figures.purgedTombstonesHeld += tally.purgedHeld;
    if (tally.holes.length > 0) throw new Error(`a lost changes frame left a hole no gap check repaired: ${tally.holes.join('; ')}`);
  } finally {
    proxy.setPlan({}, {});
    for (const device of devices) await closeDevice(device, true).catch(() => {});
    figures.changesFramesLost += watch.lostFrames;
    watch.stop();
    for (const key of ['pushes', 'framesIn', 'drains', 'drainRejections', 'resets', 'snapshots', 'gaps'] as const) figures[key] += env.figures[key];
  }
}

const replay = (seed: number) => `FERRY_MODEL_SOCKET_SEED=${seed} FERRY_MODEL_SOCKET_RUNS=1 bun test tests/model-socket.test.ts`;

test('regression seeds', async () => {
  expect(await runSeeds(REGRESSIONS, scenario, replay, () => {})).toEqual([]);
}, 60_000);

test(`socket model: ${RUNS} seeded runs, 2–3 devices over the socket, frame faults, cuts, restarts, purges`, async () => {
  const started = performance.now();
  const failures = await runSeeds(Array.from({ length: RUNS }, (_, i) => BASE_SEED + i), scenario, replay, () => { figures.runs += 1; });
  figures.ms = Math.round(performance.now() - started);
  const c = proxy.counts;
  console.log('socket model figures', JSON.stringify({
    ...figures, frames: c.frames, dropped: c['ws-drop'], duplicated: c['ws-duplicate'], delayed: c['ws-delay'],
    reordered: c['ws-reorder'], relayCuts: c['ws-cut'],
  }));
  expect(failures).toEqual([]);
  expect(figures.lost + figures.doubled + figures.outOfOrder + figures.cursorRegressions + figures.holes).toBe(0);
  // The gap path ran: frames were lost mid-stream and seen as gaps (a handful of runs suffice to reach it).
  if (RUNS >= 20) expect(figures.gaps).toBeGreaterThan(0);
}, 900_000);
