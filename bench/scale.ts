// Scale-out: 1 instance (the in-process bus) against 3 `ferry serve --redis …` instances on the SAME libSQL
// file with a real redis-server between them (tests/support/redis.ts), in one run. Clients are
// bench/fanout-client.ts child processes.
//
//   throughput   6 closed-loop writers pushing 100-op batches of fresh keys for a few seconds, spread over
//                the instances: acked ops/s, 3 instances against 1 (one SQLite file: the write lock is shared)
//   push→ack     20 writers × 20 single-op pushes/s spread over the instances, p50/p99, 3 against 1
//   fan-out      writers on instance 0 only; subscribers on instance 0 (same-instance: rows in memory) and
//                on instance 1 (cross-instance: a hint over Redis, then the rows from the database):
//                push sent → changes frame, p50/p99, cross against same, in the same run
//   bus cost     bytes and notices instance 0 published during the fan-out run, per commit
//   repair       redis-server killed, 20 ops pushed to instance 0, redis-server started again: time until
//                instance 1's subscribers have them (ioredis's reconnect backoff, then hub.resync), median
//                of 3; against the cross-instance fan-out p50
import type { Subprocess } from 'bun';
import { join } from 'node:path';
import { startRedis } from '../tests/support/redis.ts';
import { type Child, cli, client, histQuantile, serve, serverMetrics } from './fanout.ts';
import { freePort, median, quantile, round, sleep, tempDir, type Row, type Suite } from './lib.ts';

const SUBSCRIBERS = 50;

async function busOf(port: number): Promise<string> {
  const body = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { bus: string };
  return body.bus;
}

async function waitBus(port: number, state: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await busOf(port)) !== state) {
    if (Date.now() > deadline) throw new Error(`instance on ${port}: bus not ${state} within ${ms} ms`);
    await sleep(10);
  }
}

async function busCounters(port: number): Promise<{ published: number; bytes: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { published: pick('ferry_bus_published_total'), bytes: pick('ferry_bus_published_bytes_total') };
}

/** Waits (bounded) until every child's sampled subscribers got `want` rows each side; returns their stats. */
async function delivered(children: Child[], want: number): Promise<any[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const stats = await Promise.all(children.map((c) => c.ask({ kind: 'stats' }, 'stats')));
    if (stats.every((s) => s.entities >= want)) return stats;
    if (Date.now() > deadline) throw new Error(`fan-out: ${stats.map((s) => s.entities).join(' / ')} of ${want} deliveries after 30 s`);
    await sleep(50);
  }
}

export const scaleSuite: Suite = {
  name: 'scale',
  async run({ quick, log }) {
    const loadMs = quick ? 3000 : 8000;
    const tmp = tempDir('scale');
    const db = `file:${join(tmp.dir, 'ferry.db')}`;
    const redis = await startRedis();
    const children: Child[] = [];
    let servers: Subprocess[] = [];
    const stopServers = async () => {
      for (const s of servers) {
        s.kill('SIGTERM');
        await Promise.race([s.exited, sleep(5000)]);
        s.kill('SIGKILL');
      }
      servers = [];
    };
    try {
      const space = /personal space (\S+)/.exec(await cli(db, 'user', 'add', 'scale', '--password', 'bench-password'))![1]!;
      const token = await cli(db, 'token', 'create', 'scale');
      // Fan-out in spaces of their own: subscribers opened from cursor 0 must not first catch up the floods.
      const fan: Record<string, { space: string; token: string }> = {};
      for (const name of ['fan1', 'fan3']) {
        const own = /personal space (\S+)/.exec(await cli(db, 'user', 'add', name, '--password', 'bench-password'))![1]!;
        fan[name] = { space: own, token: await cli(db, 'token', 'create', name) };
      }
      const [same, pushers] = [await client(), await client()];
      children.push(same, pushers);

      const start = async (n: number) => {
        const ports = Array.from({ length: n }, () => freePort());
        for (const port of ports) servers.push(await serve(db, port, n > 1 ? ['--redis', redis.url] : []));
        if (n > 1) for (const port of ports) await waitBus(port, 'connected');
        return { ports, urls: ports.map((port) => `ws://127.0.0.1:${port}/v1/sync`) };
      };
      const measure = async (n: number) => {
        const { ports, urls } = await start(n);
        const flood = await pushers.ask({ kind: 'flood', urls, token, space, writers: 6, batch: 100, ms: loadMs, prefix: `flood${n}` }, 'flooded');
        if (flood.errors.length > 0) throw new Error(`flood: ${flood.errors.slice(0, 3).join(' | ')}`);
        const opsPerSecond = flood.ops / (loadMs / 1000);
        const spread = await pushers.ask({ kind: 'write', url: urls[0], urls, token, space, writers: 20, perWriterHz: 20, ms: loadMs, prefix: `spread${n}` }, 'written');
        log(`  scale ${n} instance(s): ${round(opsPerSecond)} ops/s closed loop; push→ack p50 ${round(quantile(spread.pushMs, 0.5))} ms, p99 ${round(quantile(spread.pushMs, 0.99))} ms`);
        return { ports, urls, opsPerSecond, pushMs: spread.pushMs as number[], errors: spread.errors.length as number };
      };

      const one = await measure(1);
      await same.ask({ kind: 'open', url: one.urls[0], ...fan.fan1!, count: SUBSCRIBERS, hot: true, sample: 1, prefix: 'one-sub' }, 'opened');
      await same.ask({ kind: 'reset' }, 'reset');
      const fan1 = await pushers.ask({ kind: 'write', url: one.urls[0], ...fan.fan1!, writers: 10, perWriterHz: 20, ms: loadMs, prefix: 'fan1' }, 'written');
      const [fanOne] = await delivered([same], fan1.pushMs.length * SUBSCRIBERS);
      same.proc.send({ kind: 'bye' }); // its sockets were on the 1-instance server
      await stopServers();

      const three = await measure(3);
      const [same3, cross3] = [await client(), await client()];
      children.push(same3, cross3);
      await same3.ask({ kind: 'open', url: three.urls[0], ...fan.fan3!, count: SUBSCRIBERS, hot: true, sample: 1, prefix: 'same-sub' }, 'opened');
      await cross3.ask({ kind: 'open', url: three.urls[1], ...fan.fan3!, count: SUBSCRIBERS, hot: true, sample: 1, prefix: 'cross-sub' }, 'opened');
      await Promise.all([same3.ask({ kind: 'reset' }, 'reset'), cross3.ask({ kind: 'reset' }, 'reset')]);
      const bus0 = await busCounters(three.ports[0]!);
      const m0 = await serverMetrics(three.ports[0]!);
      const fan3 = await pushers.ask({ kind: 'write', url: three.urls[0], ...fan.fan3!, writers: 10, perWriterHz: 20, ms: loadMs, prefix: 'fan3' }, 'written');
      const [fanSame, fanCross] = await delivered([same3, cross3], fan3.pushMs.length * SUBSCRIBERS);
      const bus1 = await busCounters(three.ports[0]!);
      const m1 = await serverMetrics(three.ports[0]!);
      const notices = bus1.published - bus0.published;
      const commits = m1.commits! - m0.commits!;
      const bytesPerNotice = (bus1.bytes - bus0.bytes) / notices;
      log(`  scale fan-out: ${fan3.pushMs.length} pushes, same ${fanSame.entities} / cross ${fanCross.entities} deliveries; ${notices} notices for ${commits} commits, ${round(bytesPerNotice)} bytes each`);

      // Repair: the bus is lost, a change is made, the bus comes back.
      const repairs: number[] = [];
      for (let round_ = 0; round_ < 3; round_ += 1) {
        const before = (await cross3.ask({ kind: 'stats' }, 'stats')).entities as number;
        await redis.kill();
        await waitBus(three.ports[1]!, 'lost');
        const wrote = await pushers.ask({ kind: 'write', url: three.urls[0], ...fan.fan3!, writers: 1, perWriterHz: 20, ms: 1000, prefix: `repair${round_}` }, 'written');
        const want = before + wrote.pushMs.length * SUBSCRIBERS;
        const back = performance.now();
        await redis.start();
        const deadline = Date.now() + 30_000;
        while ((await cross3.ask({ kind: 'stats' }, 'stats')).entities < want) {
          if (Date.now() > deadline) throw new Error('repair: the missed rows did not arrive within 30 s');
          await sleep(5);
        }
        repairs.push(performance.now() - back);
        for (const port of three.ports) await waitBus(port, 'connected');
      }
      log(`  scale repair after Redis returns: ${repairs.map((ms) => round(ms)).join(', ')} ms`);

      const detail = {
        loadMs, subscribersPerSide: SUBSCRIBERS, floodWriters: 6, floodBatch: 100, spreadWriters: 20, fanWriters: 10,
        pushErrors: { one: one.errors, three: three.errors, fan: fan3.errors.length }, notices, commits, bytesPerNotice: round(bytesPerNotice),
        deliveries: { same: fanSame.entities, cross: fanCross.entities, oneInstance: fanOne.entities }, repairsMs: repairs.map((ms) => round(ms)),
      };
      return [
        { benchmark: 'scale: apply throughput, 3 instances vs 1 (closed loop, 100-op batches)', unit: 'ops/s', ferry: three.opsPerSecond, baseline: one.opsPerSecond, detail },
        { benchmark: 'scale: push→ack p50, 3 instances vs 1 (400 pushes/s spread)', unit: 'ms', ferry: quantile(three.pushMs, 0.5), baseline: quantile(one.pushMs, 0.5) },
        { benchmark: 'scale: push→ack p99, 3 instances vs 1', unit: 'ms', ferry: quantile(three.pushMs, 0.99), baseline: quantile(one.pushMs, 0.99), target: { on: 'value', max: 250 } },
        { benchmark: `scale: fan-out p50, cross-instance vs same-instance (${SUBSCRIBERS} + ${SUBSCRIBERS})`, unit: 'ms', ferry: histQuantile([fanCross], 0.5), baseline: histQuantile([fanSame], 0.5) },
        { benchmark: 'scale: fan-out p99, cross-instance vs same-instance', unit: 'ms', ferry: histQuantile([fanCross], 0.99), baseline: histQuantile([fanSame], 0.99), target: { on: 'value', max: 250 } },
        { benchmark: 'scale: same-instance fan-out p50, 3 instances vs 1', unit: 'ms', ferry: histQuantile([fanSame], 0.5), baseline: histQuantile([fanOne], 0.5) },
        { benchmark: 'scale: bus bytes per notice (hint: no rows)', unit: 'B', ferry: bytesPerNotice, baseline: null },
        { benchmark: 'scale: lost bus repaired after Redis returns (median of 3) vs cross-instance fan-out p50', unit: 'ms', ferry: median(repairs), baseline: histQuantile([fanCross], 0.5) },
      ] satisfies Row[];
    } finally {
      for (const c of children) {
        if (c.proc.exitCode === null) c.proc.send({ kind: 'bye' });
        await Promise.race([c.proc.exited, sleep(3000)]);
        c.proc.kill();
      }
      await stopServers();
      await redis.stop();
      tmp.remove();
    }
  },
};
