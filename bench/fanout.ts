// Connections and fan-out, against `ferry serve` in a child process (the shipped CLI on a temp file DB and
// a free port; users and tokens made with `ferry user add` / `ferry token create` first). Clients live in
// more child processes (bench/fanout-client.ts): one for the hot subscribers, and up to 7,000 idle sockets
// in each of the others (the first also runs the writers): one Bun process cannot drive thousands of
// sockets and also measure them.
//
//   unloaded  1 hot subscriber, 1 writer at 20 pushes/s           → the baselines (same server, same run)
//   loaded    20,000 sockets: 500 subscribed to the writers' space, 19,400 to a quiet one, 100 writers
//             pushing 20 single-op pushes/s each = 2,000 ops/s for ~10 s
//             (--quick: 4,000 sockets, 250 of them hot, 50 writers = 1,000 ops/s for ~5 s)
//             Fewer when the open-file limit is lower than the sockets need (the row's name says how many).
//
// Reported: push→ack p50/p99, fan-out p50/p99 (push sent → changes frame at a subscriber, every entity at
// every sampled hot subscriber; all hot ones receive every frame), server VmRSS (max while loaded; baseline: idle after start). Targets are absolute
// (p99 < 250 ms, RSS < 512 MiB); the ratio to the unloaded figure shows what the load costs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { freePort, quantile, rssMiB, round, sleep, tempDir, type Row, type Suite } from './lib.ts';

const ROOT = join(import.meta.dir, '..');
const CLI = join(ROOT, 'server', 'cli.ts');
/** Every SAMPLE-th hot subscriber parses frames and records latencies; all of them receive everything. */
const SAMPLE = 10;
/** Idle sockets per client process: each process's descriptors stay well under a 20,000 limit. */
const IDLE_PER_CLIENT = 7000;
/** Descriptors the server holds besides its sockets (stdio, the database files, epoll, its listener…). */
const SERVER_FDS = 64;

/** This process's hard limit on open files (children inherit it; only it can be raised to). */
function hardFdLimit(): number {
  const line = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  return line === undefined || line === 'unlimited' ? Infinity : Number(line);
}

/**
 * Runs `cmd` with its open-file limit raised to the hard limit: the server holds one descriptor per
 * socket (5,000+) and so does each client process, more than a default soft limit of 1,024 allows.
 * `exec` keeps the pid, so /proc/<pid> still reads the right process.
 */
const withFdLimit = (cmd: string[]) => ['sh', '-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...cmd];

export async function cli(db: string, ...args: string[]): Promise<string> {
  const proc = Bun.spawn([process.execPath, CLI, ...args, '--db', db], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`ferry ${args.join(' ')}: ${err}`);
  return out.trim();
}

/** `ferry serve` on `db` and `port` (`extra`: more flags, e.g. --redis), once it says it is listening. */
export async function serve(db: string, port: number, extra: string[] = []): Promise<Subprocess<'ignore', 'pipe', 'inherit'>> {
  // FERRY_BENCH_PROFILE=<dir>: the server writes a CPU profile there when it stops (see docs/benchmarks.md).
  const profile = process.env.FERRY_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.FERRY_BENCH_PROFILE}`] : [];
  // The clients stand for thousands of people but sign in as a few users: lift the per-user socket limit.
  const sockets = ['--max-sockets-per-user', '1000000'];
  const proc = Bun.spawn(withFdLimit([process.execPath, ...profile, CLI, 'serve', '--db', db, '--port', String(port), ...sockets, ...extra]), {
    cwd: ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'inherit',
  });
  const reader = proc.stdout.getReader();
  let seen = '';
  const deadline = Date.now() + 30_000;
  while (!seen.includes('ferry listening')) {
    if (Date.now() > deadline) throw new Error(`ferry serve did not start: ${seen}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`ferry serve exited: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  void proc.stdout.pipeTo(new WritableStream()); // keep draining its stdout
  return proc;
}

export interface Child {
  proc: Subprocess;
  ask(message: Record<string, unknown>, reply: string): Promise<any>;
}

export async function client(): Promise<Child> {
  const waiting: Array<{ kind: string; resolve: (m: any) => void; reject: (e: Error) => void }> = [];
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const proc = Bun.spawn(withFdLimit([process.execPath, join(import.meta.dir, 'fanout-client.ts')]), {
    cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'],
    ipc(message: any) {
      if (message.kind === 'ready') return ready();
      const i = message.kind === 'error' ? 0 : waiting.findIndex((w) => w.kind === message.kind);
      const w = waiting.splice(i, 1)[0];
      if (message.kind === 'error') w?.reject(new Error(`fan-out client: ${message.message}`));
      else w?.resolve(message);
    },
  });
  await started;
  return {
    proc,
    ask(message, reply) {
      return new Promise((resolve, reject) => {
        waiting.push({ kind: reply, resolve, reject });
        proc.send(message);
      });
    },
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** The server's own counters (GET /metrics): commits, batches and the time spent inside commitGroup. */
export async function serverMetrics(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { commits: pick('ferry_apply_latency_ms_count'), commitMs: pick('ferry_apply_latency_ms_sum'), batches: pick('ferry_batches_total') };
}

/** Quantile of merged sparse histograms ([bin, count] pairs). */
export function histQuantile(parts: Array<{ binMs: number; fanout: [number, number][] }>, q: number): number {
  const counts = new Map<number, number>();
  for (const p of parts) for (const [bin, n] of p.fanout) counts.set(bin, (counts.get(bin) ?? 0) + n);
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  let seen = 0;
  for (const [bin, n] of [...counts].sort((a, b) => a[0] - b[0])) {
    seen += n;
    if (seen >= Math.ceil(q * total)) return (bin + 1) * parts[0]!.binMs; // upper edge of the bin
  }
  return NaN;
}

export const fanoutSuite: Suite = {
  name: 'fanout',
  async run({ quick, log }) {
    const wanted = quick ? 4000 : 20_000;
    // One descriptor per socket: where the hard limit is lower than the sockets plus the server's own
    // (a container without CAP_SYS_RESOURCE cannot raise it), the load is as many as fit, and the row says so.
    const total = Math.min(wanted, hardFdLimit() - SERVER_FDS);
    // Every hot subscriber receives every op: 500 × 2,000 ops/s is ~200 MB/s of frames on loopback, as
    // much as the one subscriber process reads on this machine while the server also runs (1,000 hot at
    // 2,000 ops/s measured the client process, docs/benchmarks.md).
    const hot = quick ? 250 : 500;
    const writers = quick ? 50 : 100;
    const hz = 20;
    const loadMs = quick ? 5000 : 10_000;
    const tmp = tempDir('fanout');
    const db = `file:${join(tmp.dir, 'ferry.db')}`;
    const children: Child[] = [];
    let server: Subprocess | null = null;
    try {
      const hotSpace = /personal space (\S+)/.exec(await cli(db, 'user', 'add', 'hot', '--password', 'bench-password'))![1]!;
      const idleSpace = /personal space (\S+)/.exec(await cli(db, 'user', 'add', 'idle', '--password', 'bench-password'))![1]!;
      const hotToken = await cli(db, 'token', 'create', 'hot');
      const idleToken = await cli(db, 'token', 'create', 'idle');
      const port = freePort();
      server = await serve(db, port);
      const url = `ws://127.0.0.1:${port}/v1/sync`;
      await sleep(500);
      const rssIdle = rssMiB(server.pid);
      const idleClients = Math.ceil((total - hot - writers) / IDLE_PER_CLIENT);
      // One process for the hot subscribers; the idle sockets spread over the rest, the writers on the first.
      const holders = await Promise.all(Array.from({ length: idleClients }, () => client()));
      const subs = await client();
      const pushers = holders[0]!;
      children.push(subs, ...holders);

      // Unloaded: one subscriber, one writer.
      await subs.ask({ kind: 'open', url, token: hotToken, space: hotSpace, count: 1, hot: true, sample: 1, prefix: 'probe' }, 'opened');
      const probe = await pushers.ask({ kind: 'write', url, token: hotToken, space: hotSpace, writers: 1, perWriterHz: hz, ms: quick ? 3000 : 8000, prefix: 'probe-w' }, 'written');
      const probeFan = await subs.ask({ kind: 'stats' }, 'stats');
      await subs.ask({ kind: 'reset' }, 'reset');
      log(`  fan-out unloaded: push→ack p50 ${round(quantile(probe.pushMs, 0.5))} ms, fan-out p50 ${round(histQuantile([probeFan], 0.5))} ms, RSS ${round(rssIdle)} MiB`);

      // Loaded: open the sockets (hot on one child, idle on the others), then the writers.
      const opening = performance.now();
      const idle = total - hot - writers; // the writers' sockets count too
      await Promise.all([
        subs.ask({ kind: 'open', url, token: hotToken, space: hotSpace, count: hot - 1, hot: true, sample: SAMPLE, prefix: 'hot' }, 'opened'),
        ...holders.map((c, i) => {
          const count = Math.floor((idle * (i + 1)) / holders.length) - Math.floor((idle * i) / holders.length);
          return c.ask({ kind: 'open', url, token: idleToken, space: idleSpace, count, hot: false, sample: 1, prefix: `idle${i}` }, 'opened');
        }),
      ]);
      const openMs = performance.now() - opening;
      const rssOpen = rssMiB(server.pid);
      log(`  fan-out: ${total} sockets open in ${round(openMs / 1000)} s, server RSS ${round(rssOpen)} MiB`);
      let rssMax = rssOpen;
      const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(server!.pid))), 200);
      const m0 = await serverMetrics(port);
      const pids = [server.pid, subs.proc.pid, pushers.proc.pid];
      const cpu0 = pids.map(cpuSeconds);
      const loadStart = performance.now();
      const load = await pushers.ask({ kind: 'write', url, token: hotToken, space: hotSpace, writers, perWriterHz: hz, ms: loadMs, prefix: 'w' }, 'written');
      const wall = (performance.now() - loadStart) / 1000;
      await sleep(1000); // let the last changes frames land
      clearInterval(sampler);
      const cpuUsed = pids.map((pid, i) => cpuSeconds(pid) - cpu0[i]!);
      const cpu = cpuUsed.map((seconds) => round(seconds / wall, 2));
      const fan = [await subs.ask({ kind: 'stats' }, 'stats')];
      const m1 = await serverMetrics(port);
      const commits = m1.commits! - m0.commits!;
      const group = { commits, batchesPerCommit: round((m1.batches! - m0.batches!) / commits), commitMsMean: round((m1.commitMs! - m0.commitMs!) / commits) };
      // What the machine's load does not change much: the server's CPU time per push (commit, answer, and
      // its share of the fan-out to every hot subscriber).
      const serverCpuMsPerPush = round((cpuUsed[0]! * 1000) / Math.max(1, m1.batches! - m0.batches!));
      log(`  fan-out loaded: ${commits} commits, ${group.batchesPerCommit} pushes per commit, ${group.commitMsMean} ms per commitGroup, server CPU ${serverCpuMsPerPush} ms per push`);
      const offered = load.pushMs.length + load.errors.length;
      const expected = load.pushMs.length * fan[0].sampledSockets;
      log(`  fan-out loaded: ${load.pushMs.length} acks, ${load.errors.length} errors, ${fan[0].entities}/${expected} deliveries to ${fan[0].sampledSockets} sampled subscribers, ${fan[0].frames} frames to all; CPU (cores) server ${cpu[0]}, subscribers ${cpu[1]}, writers ${cpu[2]}`);
      if (load.errors.length > 0) log(`  fan-out errors (first 3): ${load.errors.slice(0, 3).join(' | ')}`);
      const detail = {
        sockets: total, socketsWanted: wanted, hotSubscribers: hot, writers, opsPerSecond: writers * hz, loadMs, offered, acked: load.pushMs.length,
        errors: load.errors.length, sampledSubscribers: fan[0].sampledSockets, deliveries: fan[0].entities, expectedDeliveries: expected, frames: fan[0].frames, openSeconds: round(openMs / 1000),
        closedCodes: fan[0].closed, groupCommit: group, serverCpuMsPerPush, cpuCores: { server: cpu[0], subscribers: cpu[1], writers: cpu[2] }, rssOpenMiB: round(rssOpen),
      };
      const name = `${round(total / 1000)}k sockets + ${writers * hz} ops/s`;
      return [
        { benchmark: `${name}: push→ack p50`, unit: 'ms', ferry: quantile(load.pushMs, 0.5), baseline: quantile(probe.pushMs, 0.5), detail },
        { benchmark: `${name}: push→ack p99`, unit: 'ms', ferry: quantile(load.pushMs, 0.99), baseline: quantile(probe.pushMs, 0.99), target: { on: 'value', max: 250 } },
        { benchmark: `${name}: fan-out to ${hot} p50`, unit: 'ms', ferry: histQuantile(fan, 0.5), baseline: histQuantile([probeFan], 0.5) },
        { benchmark: `${name}: fan-out to ${hot} p99`, unit: 'ms', ferry: histQuantile(fan, 0.99), baseline: histQuantile([probeFan], 0.99), target: { on: 'value', max: 250 } },
        { benchmark: `${name}: server RSS (max)`, unit: 'MiB', ferry: rssMax, baseline: rssIdle, target: { on: 'value', max: 512 } },
      ] satisfies Row[];
    } finally {
      for (const c of children) {
        c.proc.send({ kind: 'bye' });
        await Promise.race([c.proc.exited, sleep(3000)]);
        c.proc.kill();
      }
      if (server) {
        server.kill('SIGTERM');
        await Promise.race([server.exited, sleep(5000)]);
        server.kill('SIGKILL');
      }
      tmp.remove();
    }
  },
};
