// The server on Deno beside the server on Bun, in the same run: two `target-server.ts` processes (the
// same createApp, each runtime's own adapter: Elysia's Bun adapter, Deno.serve + Deno.upgradeWebSocket),
// each over its own file DB with the same pragmas. Rows are Deno's figure with Bun's as the baseline:
//
//   apply throughput: 500-op batches of fresh keys, POST /v1/push one after another (parse, auth, group
//                     commit of one durable transaction, answer): ops/s.
//   push→ack latency: 1-op `push` frames over a socket that said hello, one at a time: p50 and p99.
//
// Rounds alternate which runtime goes first; latency is measured before the apply rounds grow the files.
// The push limiter is lifted (policy, not cost), as in latency.ts.
import { createAccounts } from '../server/accounts.ts';
import { openDatabase } from '../server/storage/db.ts';
import { spawnServer, type ServerProcess } from '../tests/support/cli-server.ts';
import { command, type RuntimeName } from '../tests/support/runtimes.ts';
import type { TargetConfig } from '../tests/support/target-server.ts';
import { median, putOps, quantile, round, tempDir, type Row, type Suite } from './lib.ts';
import { ferrySocket, roundTrip, type BenchSocket } from './ws-client.ts';

const BATCH = 500;

interface Side {
  runtime: RuntimeName;
  server: ServerProcess;
  token: string;
  space: string;
  socket: BenchSocket;
  httpSeq: number;
  wsSeq: number;
  stop(): Promise<void>;
}

async function side(runtime: RuntimeName): Promise<Side> {
  const tmp = tempDir(`deno-${runtime}`);
  const db = `file:${tmp.dir}/ferry.db`;
  const config: TargetConfig = { db, rateLimits: { pushesPerSecond: 1_000_000, opsPerSecond: 1_000_000_000 } };
  const server = await spawnServer(command(runtime, 'tests/support/target-server.ts', [JSON.stringify(config)], tmp.dir));
  const database = await openDatabase(db);
  const accounts = createAccounts(database.db);
  const user = await accounts.addUser(`bench-${runtime}`, 'bench-password', Date.now());
  const token = await accounts.createToken(user.id, 'bench', Date.now(), null);
  database.close();
  const socket = await ferrySocket(server.ws, token, `ws-${runtime}`);
  return {
    runtime, server, token, space: `u:${user.id}`, socket, httpSeq: 1, wsSeq: 1,
    async stop() {
      socket.close();
      await server.stop();
      tmp.remove();
    },
  };
}

/** `batches` 500-op pushes over HTTP, one after another; ops/s. */
async function apply(s: Side, batches: number): Promise<number> {
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    const keys = Array.from({ length: BATCH }, (_, i) => `a${s.httpSeq + i}`);
    const ops = putOps('http', s.space, s.httpSeq, keys);
    const res = await fetch(`${s.server.base}/v1/push`, {
      method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ protocol: 1, device: 'http', ops }),
    });
    const body = (await res.json()) as { through?: number };
    if (res.status !== 200 || body.through !== ops.at(-1)!.seq) throw new Error(`deno bench: ${s.runtime} answered ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    s.httpSeq += BATCH;
  }
  return (batches * BATCH) / ((performance.now() - started) / 1000);
}

let rid = 0;
/** `count` 1-op push frames, each awaited; their round trips in ms go into `into`. */
async function pushes(s: Side, count: number, into: number[]): Promise<void> {
  for (let n = 0; n < count; n++) {
    const ops = putOps(`ws-${s.runtime}`, s.space, s.wsSeq, [`l${s.wsSeq}`]);
    const { answer, ms } = await roundTrip(s.socket, { type: 'push', rid: ++rid, device: `ws-${s.runtime}`, ops });
    if (answer.type !== 'ack' || answer.through !== s.wsSeq) throw new Error(`deno bench: ${s.runtime} answered ${JSON.stringify(answer).slice(0, 200)}`);
    s.wsSeq++;
    into.push(ms);
  }
}

export const denoSuite: Suite = {
  name: 'deno',
  async run({ quick, log }) {
    const sides = [await side('bun'), await side('deno')];
    try {
      const rounds = quick ? 3 : 7;
      const batches = quick ? 6 : 16;
      const perRound = quick ? 60 : 300;
      for (const s of sides) {
        await apply(s, 2); // warm-up: JIT, statement caches, the first pages
        await pushes(s, 20, []);
      }
      // Latency first, while the files are small (the apply rounds grow the WAL, and checkpoints would
      // then land in the single-op samples), then throughput.
      const latency: Record<RuntimeName, number[]> = { bun: [], deno: [] };
      for (let r = 0; r < rounds; r++) {
        for (const s of r % 2 === 0 ? sides : [...sides].reverse()) await pushes(s, perRound, latency[s.runtime]);
      }
      log(`  deno push→ack p50: deno ${round(quantile(latency.deno, 0.5))} ms, bun ${round(quantile(latency.bun, 0.5))} ms`);
      const rates: Record<RuntimeName, number[]> = { bun: [], deno: [] };
      for (let r = 0; r < rounds; r++) {
        for (const s of r % 2 === 0 ? sides : [...sides].reverse()) rates[s.runtime].push(await apply(s, batches));
        log(`  deno round ${r + 1}/${rounds}: apply deno ${round(rates.deno.at(-1)!)} ops/s, bun ${round(rates.bun.at(-1)!)} ops/s`);
      }
      const rows: Row[] = [{
        benchmark: 'Deno server: apply 500-op batches over HTTP (baseline: Bun server)',
        unit: 'ops/s', ferry: median(rates.deno), baseline: median(rates.bun), target: { on: 'ratio', min: 0.5 },
        detail: { rounds, batches, batch: BATCH, deno: rates.deno.map((x) => round(x)), bun: rates.bun.map((x) => round(x)) },
      }];
      for (const [label, q] of [['p50', 0.5], ['p99', 0.99]] as const) {
        rows.push({
          benchmark: `Deno server: push→ack 1 op ${label} (baseline: Bun server)`,
          unit: 'ms', ferry: quantile(latency.deno, q), baseline: quantile(latency.bun, q), target: { on: 'ratio', max: 2 },
          detail: { samples: latency.deno.length, denoMax: round(quantile(latency.deno, 1)), bunMax: round(quantile(latency.bun, 1)) },
        });
      }
      return rows;
    } finally {
      for (const s of sides) await s.stop();
    }
  },
};
