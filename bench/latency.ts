// Push→ack latency over a local socket: a real listening Ferry server (tests/support/server.ts: Elysia on
// 127.0.0.1, a real libSQL file), real WebSockets that said hello, `push` frames awaited one at a time;
// single ops and 100-op batches. Baseline: a raw Bun WebSocket server that parses the frame, commits the
// same rows in ONE libSQL write transaction (one multi-row statement; identical file DB and pragmas) and
// answers with an ack of the same shape. Rounds alternate Ferry and baseline; p50 and p99 over all samples.
import type { Server } from 'bun';
import type { Op } from '../core/types.ts';
import { removeDir, startServer } from '../tests/support/server.ts';
import { benchDb, putOps, quantile, rawCommit, round, tempDir, type BenchDb, type Row, type Suite } from './lib.ts';
import { connect, ferrySocket, roundTrip, type BenchSocket } from './ws-client.ts';

/** The socket frame limiter allows 200 frames/s per socket; spreading pushes keeps every socket under it. */
const SOCKETS = 4;

interface Target {
  name: 'ferry' | 'raw';
  sockets: BenchSocket[];
  seqs: number[];
  space: string;
  /** Commits so far and ms spent inside commitGroup (Ferry's own metrics); zeros for the baseline. */
  commits(): { count: number; ms: number };
  stop(): Promise<void>;
}

async function ferryTarget(): Promise<Target> {
  // The push limiter (50 pushes/s per device by default) is policy, not cost: lift it for a one-at-a-time
  // latency probe. Everything else is the server as shipped.
  const server = await startServer({ rateLimits: { pushesPerSecond: 1_000_000, opsPerSecond: 1_000_000_000 } });
  const user = await server.user('bench');
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, (_, i) => ferrySocket(server.ws, user.token, `lat-${i}`)));
  return {
    name: 'ferry', sockets, seqs: sockets.map(() => 1), space: user.space,
    commits() {
      const text = server.app.decorator.ferry.metrics.render();
      const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { count: pick('ferry_apply_latency_ms_count'), ms: pick('ferry_apply_latency_ms_sum') };
    },
    async stop() {
      for (const s of sockets) s.close();
      await server.stop();
      removeDir(server.dir);
    },
  };
}

/** A raw Bun WebSocket server: JSON.parse, one durable commit of the same rows, ack. */
async function rawTarget(): Promise<Target> {
  const tmp = tempDir('latency-raw');
  const db: BenchDb = await benchDb(tmp.dir, 'raw.db');
  let serverSeq = 1;
  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1', port: 0,
    fetch: (request, srv) => (srv.upgrade(request) ? undefined : new Response('upgrade', { status: 400 })),
    websocket: {
      async message(ws, data) {
        const frame = JSON.parse(String(data)) as { rid: number; device: string; ops: Op[] };
        const first = serverSeq;
        serverSeq += frame.ops.length;
        await rawCommit(db.client, frame.ops, first);
        ws.send(JSON.stringify({
          type: 'ack', rid: frame.rid, device: frame.device, through: frame.ops.at(-1)!.seq, lamport: frame.ops.at(-1)!.lamport,
          results: frame.ops.map((op) => ({ seq: op.seq, id: op.id, result: 'applied' })),
        }));
      },
    },
  });
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => connect(`ws://127.0.0.1:${server.port}/`)));
  return {
    name: 'raw', sockets, seqs: sockets.map(() => 1), space: db.space,
    commits: () => ({ count: 0, ms: 0 }),
    async stop() {
      for (const s of sockets) s.close();
      server.stop(true);
      db.database.close();
      tmp.remove();
    },
  };
}

let rid = 0;
async function pushes(target: Target, size: number, count: number, into: number[]): Promise<void> {
  for (let n = 0; n < count; n++) {
    const i = n % SOCKETS;
    const device = target.name === 'ferry' ? `lat-${i}` : `raw-${i}`;
    const keys = Array.from({ length: size }, (_, k) => `l${i}-${target.seqs[i]! + k}`);
    const ops = putOps(device, target.space, target.seqs[i]!, keys);
    const { answer, ms } = await roundTrip(target.sockets[i]!, { type: 'push', rid: ++rid, device, ops });
    if (answer.type !== 'ack' || answer.through !== ops.at(-1)!.seq) {
      throw new Error(`latency bench: ${target.name} answered ${JSON.stringify(answer).slice(0, 300)}`);
    }
    target.seqs[i]! += size;
    into.push(ms);
  }
}

export const latencySuite: Suite = {
  name: 'latency',
  async run({ quick, log }) {
    const targets = [await ferryTarget(), await rawTarget()];
    const rows: Row[] = [];
    try {
      for (const [size, perRound] of [[1, quick ? 60 : 300], [100, quick ? 20 : 80]] as const) {
        const rounds = quick ? 3 : 5;
        const samples: Record<'ferry' | 'raw', number[]> = { ferry: [], raw: [] };
        for (const t of targets) await pushes(t, size, 10, []); // warm-up
        const before = targets[0]!.commits();
        for (let r = 0; r < rounds; r++) {
          for (const t of r % 2 === 0 ? targets : [...targets].reverse()) await pushes(t, size, perRound, samples[t.name]);
        }
        const after = targets[0]!.commits();
        const commitMs = (after.ms - before.ms) / (after.count - before.count);
        log(`  push→ack ${size}: Ferry spent ${round(commitMs)} ms per push inside commitGroup (mean)`);
        for (const [label, q] of [['p50', 0.5], ['p99', 0.99]] as const) {
          const ferry = quantile(samples.ferry, q);
          const raw = quantile(samples.raw, q);
          log(`  push→ack ${size} op${size > 1 ? 's' : ''} ${label}: ferry ${round(ferry)} ms, raw ${round(raw)} ms`);
          rows.push({
            benchmark: `push→ack ${size === 1 ? '1 op' : `${size} ops`} ${label}`,
            // Issue 17: the 100-op p50 should come within 1.5× of a raw echo plus one commit.
            unit: 'ms', ferry, baseline: raw, target: { on: 'ratio', max: size === 100 && label === 'p50' ? 1.5 : 2 },
            detail: { samples: samples.ferry.length, rounds, ferryCommitGroupMsMean: round(commitMs), ferryMax: round(quantile(samples.ferry, 1)), rawMax: round(quantile(samples.raw, 1)) },
          });
        }
      }
    } finally {
      for (const t of targets) await t.stop();
    }
    return rows;
  },
};
