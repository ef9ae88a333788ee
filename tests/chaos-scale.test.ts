// Scale-out chaos (DESIGN invariants 1–5 across processes), in the style of tests/chaos-binary.test.ts:
// three `bun server/cli.ts serve --redis …` processes on one libSQL file and a real redis-server
// (tests/support/cluster.ts); six real device engines, two per instance to begin with, write steadily (puts on
// keys of their own, so every serverSeq handed out stays in the database) while seeded chaos strikes:
//   kill -9 of an instance (the balancer sends its devices elsewhere at once; it is restarted a little later
//   and gets devices back), kill -9 of redis-server (started again after a while), devices moved between
//   instances. KILLS instance kills and REDIS_RESTARTS Redis restarts per run, and one more at the end: the
//   last writes land while Redis is down.
// Then: writers stop, everything is up, and every device settles WITHOUT being reconnected (the socket it
// has must get every change), and:
//   - ledger: each device's ops are seqs 1..n once each (0 lost, 0 doubled), processed in seq order;
//   - the server's state is the merge of every op sent; every replica equals the server's docs;
//   - every device's cursor never went back, and the serverSeqs its sockets received, across all its
//     reconnects, are exactly the space's, strictly increasing: no socket missed or repeated a change.
// FERRY_CHAOS_SCALE_SEED=S replays a run (real I/O aside).
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { metric } from './support/cli-server.ts';
import { checkAll, checkComplete, type Cluster, type ClusterDevice, clusterDevice, entitiesOf, moveDevice, settle, sharedEnv,
  startCluster, waitBus, writeOwn } from './support/cluster.ts';
import { closeDevice } from './support/model-socket-device.ts';
import { rng } from './support/rng.ts';

const SEED = Number(process.env.FERRY_CHAOS_SCALE_SEED ?? 15_015);
const KILLS = 6;
const REDIS_RESTARTS = 3;
const EVENTS = 16;
const DEVICES = 6;

let cluster: Cluster;
const devices: ClusterDevice[] = [];

beforeAll(async () => {
  cluster = await startCluster(3);
});
afterAll(async () => {
  for (const d of devices) {
    await closeDevice(d.device, true).catch(() => {});
    await d.proxy.stop();
  }
  await cluster?.stop();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('3 instances + Redis under kill -9, Redis restarts and moving devices: nothing lost, doubled or missed by any socket', async () => {
  const started = performance.now();
  const r = rng(SEED);
  const user = await cluster.instances[0]!.user('chaos-scale');
  const shared = sharedEnv(user.space, SEED);
  for (let i = 0; i < DEVICES; i += 1) devices.push(await clusterDevice(i, user.token, cluster, i % 3, shared));
  const stats = { kills: 0, restarts: 0, redisRestarts: 0, moves: 0, writes: 0 };

  let stopped = false;
  const writer = async (d: ClusterDevice, i: number) => {
    const own = rng(SEED + 100 + i);
    while (!stopped) {
      await writeOwn(d, user.space, own.int(1, 3));
      stats.writes += 1;
      await pause(own.int(5, 60));
    }
  };
  const writers = devices.map(writer);

  /** The balancer: every device aimed at a down instance goes to an up one. */
  const rebalance = () => {
    const up = cluster.up();
    for (const d of devices) if (cluster.instances[d.at] === null) { moveDevice(d, cluster, r.pick(up)); stats.moves += 1; }
  };
  const plan = [...Array(KILLS).fill('kill'), ...Array(REDIS_RESTARTS).fill('redis'),
    ...Array(EVENTS - KILLS - REDIS_RESTARTS).fill('move')].sort(() => r.next() - 0.5) as Array<'kill' | 'redis' | 'move'>;
  const restarting: Promise<unknown>[] = [];
  for (const event of plan) {
    await pause(r.int(50, 400));
    if (event === 'kill') {
      const up = cluster.up();
      if (up.length < 2) await Promise.all(restarting.splice(0)); // keep one instance up
      const victim = r.pick(cluster.up());
      await cluster.kill(victim);
      stats.kills += 1;
      rebalance();
      // Restarted a little later (a supervisor), then the balancer sends it a device or two.
      restarting.push(pause(r.int(100, 600)).then(() => cluster.start(victim)).then(() => {
        stats.restarts += 1;
        for (const d of devices) if (r.chance(0.3)) { moveDevice(d, cluster, victim); stats.moves += 1; }
      }));
    } else if (event === 'redis') {
      await cluster.redis.kill();
      await pause(r.int(30, 500));
      await cluster.redis.start();
      stats.redisRestarts += 1;
    } else {
      const d = r.pick(devices);
      moveDevice(d, cluster, r.pick(cluster.up()));
      stats.moves += 1;
    }
  }
  await Promise.all(restarting);
  // The last writes land while Redis is down: their notices are lost for good, and only the instances'
  // recovery (every subscriber checks the database) can bring them to the other instances' sockets.
  await cluster.redis.kill();
  await pause(r.int(50, 300));
  stopped = true;
  await Promise.all(writers);
  await cluster.redis.start();
  stats.redisRestarts += 1;

  // Quiescence: everything up, every bus connected; then every device settles on the socket it has.
  for (const server of cluster.instances) await waitBus(server!, 'connected');
  await settle(devices, cluster, shared, 60_000);
  const all = (await entitiesOf(cluster, user.space)).map((e) => e.serverSeq);
  checkComplete(devices, all);
  for (const { device } of devices) expect(device.cursor.regressions).toEqual([]);
  expect(shared.figures.resets).toBe(0);
  expect(await checkAll(devices, cluster, shared, SEED)).toEqual({ lost: 0, doubled: 0, outOfOrder: 0 });

  expect(stats.kills).toBe(KILLS);
  expect(stats.redisRestarts).toBe(REDIS_RESTARTS + 1);
  let resyncs = 0;
  for (const server of cluster.instances) resyncs += await metric(server!.base, 'ferry_bus_resyncs_total');
  const ops = devices.reduce((sum, d) => sum + d.device.written, 0);
  console.log(`chaos-scale: seed ${SEED}, ${ops} ops, ${all.length} serverSeqs, ${JSON.stringify({ ...stats, pushes: shared.figures.pushes,
    reconnects: devices.map((d) => d.connections() - 1), resyncsSinceLastRestart: resyncs })}, ${Math.round(performance.now() - started)} ms`);
}, 120_000);
