// Scale-out, real processes end to end: three `bun server/cli.ts serve --redis …` on ONE libSQL file (WAL,
// busy_timeout, BEGIN IMMEDIATE: serverSeq allocated inside the write transaction of whichever process
// holds the lock) and a real redis-server between them (tests/support/cluster.ts). Devices are the real
// device engine, each behind a relay that plays the load balancer.
//   - concurrent pushes to all three processes: each op committed once, serverSeqs 1..N without a gap or a
//     repeat, and a raw socket on each instance gets all of them live, once, in order;
//   - devices on different instances see each other's changes live (on the socket they opened);
//   - catch-up and reset work whichever instance a device comes back to;
//   - an instance that lost the bus says so (/healthz, /metrics) and catches up when Redis is back, with no
//     further commit to carry the news.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import type { Doc } from '../core/types.ts';
import { docOfWire } from '../device/records.ts';
import { createSyncStore } from '../server/storage/sync-store.ts';
import { metric } from './support/cli-server.ts';
import { checkAll, checkComplete, type Cluster, type ClusterDevice, clusterDevice, entitiesOf, health, lossless, moveDevice,
  settle, sharedEnv, startCluster, waitBus, writeOwn } from './support/cluster.ts';
import { closeDevice, waitFor } from './support/model-socket-device.ts';
import { makeOps, push } from './support/server.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';

let cluster: Cluster;
const devices: ClusterDevice[] = [];
const sockets: TestSocket[] = [];

beforeAll(async () => {
  cluster = await startCluster(3);
  for (const server of cluster.instances) await waitBus(server!, 'connected');
});
afterAll(async () => {
  for (const s of sockets) s.close();
  for (const d of devices) {
    await closeDevice(d.device, true).catch(() => {});
    await d.proxy.stop();
  }
  await cluster?.stop();
});

const serverSeqsOf = (socket: TestSocket) =>
  socket.frames.filter((f) => f.type === 'changes').flatMap((f) => f.entities.map((e: { serverSeq: number }) => e.serverSeq));

test('concurrent pushes to three processes on one file: every op once, serverSeqs 1..N, every instance\'s socket gets all live', async () => {
  const user = await cluster.instances[0]!.user('locking');
  for (const server of cluster.instances) {
    const socket = await helloSocket(server!.ws, user.token, `reader-${sockets.length}`);
    socket.send({ type: 'subscribe', spaces: [{ space: user.space, cursor: 0 }] });
    await socket.next((f) => f.type === 'caught_up');
    sockets.push(socket);
  }
  const readers = sockets.slice(-3);
  // 12 writers, 4 per instance, each 12 batches of 1–20 ops on keys of their own, all at once.
  let total = 0;
  const answers = await Promise.all(Array.from({ length: 12 }, async (_, w) => {
    const server = cluster.instances[w % 3]!;
    const device = `lock-${w}`;
    const statuses: number[] = [];
    let seq = 1;
    for (let b = 0; b < 12; b += 1) {
      const count = 1 + ((w * 7 + b * 5) % 20);
      const ops = makeOps(device, user.space, seq, count).map((op) => ({ ...op, key: `${device}-${op.seq}` }));
      const answer = await push(server.base, user.token, device, ops);
      statuses.push(answer.status);
      if (answer.status === 200) expect(answer.body.results.every((r: { result: string }) => r.result === 'applied')).toBe(true);
      seq += count;
    }
    total += seq - 1;
    return statuses;
  }));
  expect(answers.flat().every((status) => status === 200)).toBe(true); // no SQLITE_BUSY became a 500
  const seqs = (await entitiesOf(cluster, user.space)).map((e) => e.serverSeq);
  expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  const ledger = await cluster.admin.db.all<{ n: number; distinct_seqs: number }>(
    sql`SELECT count(*) AS n, count(DISTINCT server_seq) AS distinct_seqs FROM ops WHERE device LIKE 'lock-%'`);
  expect(ledger[0]).toEqual({ n: total, distinct_seqs: total });
  expect(await cluster.admin.db.all(sql`PRAGMA integrity_check`)).toEqual([{ integrity_check: 'ok' }]);
  for (const reader of readers) {
    expect(await waitFor(() => serverSeqsOf(reader).length >= total, 15_000)).toBe(true);
    expect(serverSeqsOf(reader)).toEqual(seqs);
  }
}, 60_000);

describe('devices spread over the instances', () => {
  let user: { id: string; token: string; space: string };
  let shared: ReturnType<typeof sharedEnv>;

  beforeAll(async () => {
    user = await cluster.instances[0]!.user('spread');
    shared = sharedEnv(user.space, 15_001);
    for (let i = 0; i < 3; i += 1) devices.push(await clusterDevice(i, user.token, cluster, i, shared));
    await settle(devices, cluster, shared);
  });

  test('a device on each instance sees the others\' changes live, on the socket it opened', async () => {
    for (let round = 0; round < 4; round += 1) {
      for (const d of devices) await writeOwn(d, user.space, 1 + round);
    }
    await settle(devices, cluster, shared);
    checkComplete(devices, (await entitiesOf(cluster, user.space)).map((e) => e.serverSeq));
    expect(devices.map((d) => d.connections())).toEqual([1, 1, 1]);
    expect(await checkAll(devices, cluster, shared, 15_001)).toEqual({ lost: 0, doubled: 0, outOfOrder: 0 });
  }, 60_000);

  test('a device that was away catches up on another instance; one whose cursor fell below the horizon is reset there', async () => {
    const [a, b, c] = devices as [ClusterDevice, ClusterDevice, ClusterDevice];
    // b goes away (its socket stopped) while a and c write and a deletes some of its own keys.
    b.device.tabs[0]!.engine.connection!.stop();
    await writeOwn(a, user.space, 3);
    await writeOwn(c, user.space, 2);
    await settle([a, c], cluster, shared);
    moveDevice(b, cluster, 2);
    b.device.tabs[0]!.engine.connection!.start();
    await settle(devices, cluster, shared);
    checkComplete(devices, (await entitiesOf(cluster, user.space)).map((e) => e.serverSeq)); // catch-up, no reset
    expect(shared.figures.resets).toBe(0);

    // Now c is away while a deletes and the tombstones are purged (the retention horizon passing, as an
    // instance's purge timer does); c comes back on instance 0: reset, snapshot, catch-up.
    c.device.tabs[0]!.engine.connection!.stop();
    const doomed = [0, 1, 2].map((n) => `d${a.device.index}-${n}`);
    await a.device.tabs[0]!.engine.write(doomed.map((key) => ({ space: user.space, collection: 'items', key, kind: 'delete' as const })));
    a.device.written += doomed.length;
    await settle([a, b], cluster, shared);
    const store = createSyncStore(cluster.admin.db);
    const { lamport } = await store.heads();
    for (const d of devices) await d.device.store.observeLamport(lamport); // retention's assumption (model-socket-replicas.ts)
    const dead = (await entitiesOf(cluster, user.space)).filter((e) => e.deleted);
    expect(dead.length).toBe(3);
    expect(await store.purgeTombstones(Date.now() + 1)).toBe(3);
    const purged = new Map<string, Doc[]>(dead.map((e) => [`${e.collection}/${e.key}`, [docOfWire(e)]]));
    await writeOwn(a, user.space, 1); // a live row above the horizon
    moveDevice(c, cluster, 0);
    c.device.tabs[0]!.engine.connection!.start();
    await settle(devices, cluster, shared);
    expect(shared.figures.resets).toBe(1);
    expect(await checkAll(devices, cluster, shared, 15_002, lossless(purged))).toEqual({ lost: 0, doubled: 0, outOfOrder: 0 });
  }, 60_000);
});

test('an instance that lost the bus says so, and its sockets get what they missed when Redis is back, with no further commit', async () => {
  const user = await cluster.instances[0]!.user('bus-lost');
  const socket = await helloSocket(cluster.instances[1]!.ws, user.token, 'bus-reader');
  sockets.push(socket);
  socket.send({ type: 'subscribe', spaces: [{ space: user.space, cursor: 0 }] });
  await socket.next((f) => f.type === 'caught_up');
  const failuresBefore = await metric(cluster.instances[0]!.base, 'ferry_bus_publish_failures_total');

  await cluster.redis.kill();
  for (const server of cluster.instances) await waitBus(server!, 'lost');
  for (const server of cluster.instances) {
    expect(await health(server!)).toMatchObject({ ok: true, bus: 'lost' });
    expect(await metric(server!.base, 'ferry_bus_up')).toBe(0);
  }
  const ops = makeOps('bus-writer', user.space, 1, 4).map((op) => ({ ...op, key: `bw-${op.seq}` }));
  expect((await push(cluster.instances[0]!.base, user.token, 'bus-writer', ops)).status).toBe(200); // the database is enough to write
  expect(await metric(cluster.instances[0]!.base, 'ferry_bus_publish_failures_total')).toBeGreaterThan(failuresBefore);
  expect(serverSeqsOf(socket)).toEqual([]); // the notice had nowhere to go, and nothing polls

  const back = performance.now();
  await cluster.redis.start();
  const all = (await entitiesOf(cluster, user.space)).map((e) => e.serverSeq);
  expect(await waitFor(() => serverSeqsOf(socket).length >= all.length, 20_000)).toBe(true);
  const repairMs = performance.now() - back;
  expect(serverSeqsOf(socket)).toEqual(all);
  for (const server of cluster.instances) await waitBus(server!, 'connected');
  expect(await metric(cluster.instances[1]!.base, 'ferry_bus_resyncs_total')).toBeGreaterThan(0);
  console.log(`scale-out: a lost-bus instance's socket had the missed rows ${Math.round(repairMs)} ms after redis-server was started again`);
}, 60_000);
