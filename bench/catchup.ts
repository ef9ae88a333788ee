// Catch-up: a device N changes behind (100,000; 20,000 with --quick). The DB is seeded through the real
// apply path (store.commitGroup, batches of 500). Ferry: time from sending `subscribe` with cursor 0 to
// `caught_up`, the client JSON.parsing every frame. Baseline: a raw Bun WebSocket server streaming a raw
// paged SELECT (500 rows a page, keyset on server_seq, the same index) of the same rows from the same file,
// one JSON page per frame with the same 1 MiB backpressure pause as the hub, to the same client.
// Reported as rows/s, so the target reads like throughput (≥ 0.9×).
import type { ServerWebSocket } from 'bun';
import { putOps, median, round, sleep, type Row, type Suite } from './lib.ts';
import { push, removeDir, startServer, type TestServer } from '../tests/support/server.ts';
import { connect, ferrySocket, type BenchSocket } from './ws-client.ts';

const PAGE = 500;
/** The hub pauses a socket above 1 MiB buffered (server/hub.ts); the baseline pauses alike. */
const PAUSE_BYTES = 1024 * 1024;

async function seed(server: TestServer, userId: string, space: string, total: number): Promise<void> {
  const device = 'seeder';
  for (let seq = 1; seq <= total; seq += PAGE) {
    const keys = Array.from({ length: Math.min(PAGE, total - seq + 1) }, (_, i) => `c${seq + i}`);
    const ops = putOps(device, space, seq, keys);
    const { outcomes } = await server.app.decorator.ferry.store.commitGroup([{ userId, device, ops }], Date.now());
    if (!outcomes[0]!.ok) throw new Error(`catch-up seed refused: ${JSON.stringify(outcomes[0])}`);
  }
}

/** Counts the entities of every `changes` frame until `caught_up`; returns the elapsed ms. */
async function drain(socket: BenchSocket, start: () => void, expected: number): Promise<number> {
  let rows = 0;
  socket.onFrame = (frame) => {
    if (frame.type === 'changes') rows += frame.entities.length;
  };
  const done = socket.next((f) => f.type === 'caught_up' || f.type === 'error' || f.type === 'reset', 300_000);
  const started = performance.now();
  start();
  const end = await done;
  const ms = performance.now() - started;
  socket.onFrame = () => {};
  if (end.type !== 'caught_up' || rows !== expected) throw new Error(`catch-up: got ${rows} rows and ${JSON.stringify(end)}`);
  return ms;
}

/** The raw baseline: page with SELECT … WHERE space = ? AND server_seq > ? ORDER BY server_seq LIMIT 500. */
function rawServer(server: TestServer, space: string) {
  const client = server.database.client;
  const waiting = new Map<ServerWebSocket<undefined>, () => void>();
  const stream = async (ws: ServerWebSocket<undefined>) => {
    let cursor = 0;
    for (;;) {
      const page = await client.execute({
        sql: 'SELECT * FROM entities WHERE space = ? AND server_seq > ? ORDER BY server_seq LIMIT ?',
        args: [space, cursor, PAGE],
      });
      if (page.rows.length > 0) {
        cursor = Number(page.rows.at(-1)!.server_seq);
        ws.send(JSON.stringify({ type: 'changes', space, entities: page.rows, cursor }));
        if (ws.getBufferedAmount() > PAUSE_BYTES) await new Promise<void>((resolve) => waiting.set(ws, resolve));
      }
      if (page.rows.length < PAGE) break;
    }
    ws.send(JSON.stringify({ type: 'caught_up', space, cursor }));
  };
  const raw = Bun.serve({
    hostname: '127.0.0.1', port: 0,
    fetch: (request, srv) => (srv.upgrade(request) ? undefined : new Response('upgrade', { status: 400 })),
    websocket: {
      message: (ws) => void stream(ws),
      drain(ws) {
        const resume = waiting.get(ws);
        if (resume && ws.getBufferedAmount() <= PAUSE_BYTES / 2) {
          waiting.delete(ws);
          resume();
        }
      },
    },
  });
  return { url: `ws://127.0.0.1:${raw.port}/`, stop: () => raw.stop(true) };
}

export const catchupSuite: Suite = {
  name: 'catchup',
  async run({ quick, log }) {
    const total = quick ? 20_000 : 100_000;
    const rounds = quick ? 2 : 5;
    const server = await startServer();
    try {
      const user = await server.user('bench');
      const seeded = performance.now();
      await seed(server, user.id, user.space, total);
      log(`  catch-up: seeded ${total} changes in ${round((performance.now() - seeded) / 1000)} s`);
      const baseline = rawServer(server, user.space);
      const times: Record<'ferry' | 'raw', number[]> = { ferry: [], raw: [] };
      for (let r = 0; r < rounds; r++) {
        const run = {
          ferry: async () => {
            // One rewrite of a seeded key through the real push path first: its notice drops the pages the hub
            // keeps for subscribers reading from the same cursor, so every round reads the database like a
            // lone device catching up (the entity count stays `total`).
            const answer = await push(server.base, user.token, 'rewriter', putOps('rewriter', user.space, r + 1, [`c${r + 1}`]));
            if (answer.status !== 200) throw new Error(`catch-up: the rewrite was answered ${answer.status}`);
            const socket = await ferrySocket(server.ws, user.token, `reader-${r}`);
            times.ferry.push(await drain(socket, () => socket.send({ type: 'subscribe', spaces: [{ space: user.space, cursor: 0 }] }), total));
            socket.close();
          },
          raw: async () => {
            const socket = await connect(baseline.url);
            times.raw.push(await drain(socket, () => socket.send({ type: 'go' }), total));
            socket.close();
          },
        };
        for (const name of r % 2 === 0 ? (['ferry', 'raw'] as const) : (['raw', 'ferry'] as const)) {
          await run[name]();
          await sleep(100);
        }
        log(`  catch-up round ${r + 1}/${rounds}: ferry ${round(times.ferry.at(-1)!)} ms, raw ${round(times.raw.at(-1)!)} ms`);
      }
      baseline.stop();
      const rate = (ms: number) => total / (ms / 1000);
      return [{
        benchmark: `catch-up ${total / 1000}k changes, cursor 0`,
        unit: 'rows/s',
        ferry: rate(median(times.ferry)),
        baseline: rate(median(times.raw)),
        target: { on: 'ratio', min: 0.9 },
        detail: { total, rounds, ferryMs: times.ferry.map((x) => round(x)), rawMs: times.raw.map((x) => round(x)) },
      } satisfies Row];
    } finally {
      await server.stop();
      removeDir(server.dir);
    }
  },
};
