// A child process that holds benchmark sockets for bench/fanout.ts, driven over Bun IPC:
//
//   open  { url, token, space, count, hot, sample, prefix } → opened { count, ms }   hello + subscribe each
//   write { url, token, space, writers, perWriterHz, ms, prefix, urls? } → written { pushMs[], errors }
//   flood { urls, token, space, writers, batch, ms, prefix } → flooded { ops, pushMs[], errors }   closed loop
// (`urls`: writer i talks to urls[i % urls.length], e.g. spread over several server instances)
//   stats {} → stats { fanout: [bin, count][], entities, frames, … }          fan-out since the last `reset`
//   reset {} → reset {}
//   bye   {} → (closes every socket and exits)
//
// Writers are open-loop: each pushes one op every 1/perWriterHz s whether or not earlier acks arrived
// (pipelined on its socket, as PROTOCOL.md §6 allows), so a slow server shows up as latency instead of
// silently lowering the offered load. Each op carries its send time `t` (wallMs, comparable across
// processes); a sampled hot subscriber (every `sample`-th) records arrival − t for every entity it receives
// once live. The others receive every frame too but only count it: the client process, not the server,
// was the limit when all 1,000 parsed every frame (docs/benchmarks.md).
import { wallMs } from './lib.ts';
import { ferrySocket, type BenchSocket } from './ws-client.ts';

/** Fan-out latencies as a histogram of 0.1 ms bins: 1,000 subscribers × 10,000 ops is too many samples. */
const BIN_MS = 0.1;
const BINS = 600_000; // 60 s; anything slower lands in the last bin
let fanout = new Uint32Array(BINS);
let entities = 0;
let frames = 0;
let live = 0;
let sampledSockets = 0;
const closed = new Map<number, number>();
const sockets: BenchSocket[] = [];

const send = (message: unknown) => process.send!(message);

async function openOne(url: string, token: string, space: string, device: string, hot: boolean, sampled: boolean): Promise<void> {
  const socket = await ferrySocket(url, token, device);
  sockets.push(socket);
  void socket.closed.then((code) => closed.set(code, (closed.get(code) ?? 0) + 1));
  let isLive = false;
  if (hot && sampled) sampledSockets++;
  socket.onText = (text) => {
    if (!isLive || !text.startsWith('{"type":"changes"')) return false;
    frames++;
    return !(hot && sampled);
  };
  socket.onFrame = (frame, at) => {
    if (frame.type === 'caught_up') {
      isLive = true;
      live++;
      return;
    }
    if (!hot || !isLive || frame.type !== 'changes') return;
    for (const e of frame.entities) {
      const t = e.fields?.t;
      if (typeof t !== 'number') continue;
      entities++;
      fanout[Math.min(BINS - 1, Math.max(0, Math.floor((at - t) / BIN_MS)))]!++;
    }
  };
  const caughtUp = socket.next((f) => f.type === 'caught_up', 120_000);
  socket.send({ type: 'subscribe', spaces: [{ space, cursor: 0 }] });
  await caughtUp;
}

async function open(m: { url: string; token: string; space: string; count: number; hot: boolean; sample: number; prefix: string }) {
  const started = performance.now();
  let next = 0;
  // A bounded number of handshakes in flight: thousands at once only measure the accept queue.
  const worker = async () => {
    while (next < m.count) {
      const i = next++;
      await openOne(m.url, m.token, m.space, `${m.prefix}-${i}`, m.hot, i % m.sample === 0);
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  send({ kind: 'opened', count: m.count, ms: performance.now() - started });
}

async function write(m: { url: string; urls?: string[]; token: string; space: string; writers: number; perWriterHz: number; ms: number; prefix: string }) {
  const pushMs: number[] = [];
  const errors: string[] = [];
  const urls = m.urls ?? [m.url];
  const writers = await Promise.all(Array.from({ length: m.writers }, (_, i) => ferrySocket(urls[i % urls.length]!, m.token, `${m.prefix}-${i}`)));
  const period = 1000 / m.perWriterHz;
  const deadline = performance.now() + m.ms;
  await Promise.all(writers.map(async (socket, i) => {
    const device = `${m.prefix}-${i}`;
    const pending = new Map<number, number>();
    let seq = 1;
    socket.onFrame = (frame) => {
      if (frame.rid === undefined) return;
      const sent = pending.get(frame.rid);
      if (sent === undefined) return;
      pending.delete(frame.rid);
      if (frame.type === 'ack') pushMs.push(performance.now() - sent);
      else errors.push(`${frame.code}: ${frame.message}`);
    };
    await new Promise((resolve) => setTimeout(resolve, Math.random() * period)); // spread the writers
    let due = performance.now();
    while (due < deadline) {
      const rid = seq;
      pending.set(rid, performance.now());
      socket.send({ type: 'push', rid, device, ops: [{
        id: `${device}:${seq}`, device, seq, lamport: seq, space: m.space, collection: 'items', key: `${device}-${seq % 100}`,
        kind: 'put', value: { t: wallMs(), n: seq }, at: Date.now(),
      }] });
      seq++;
      due += period;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
    }
    // Give outstanding acks a bounded time to arrive; a missing one is an error, not a silent drop.
    const until = performance.now() + 30_000;
    while (pending.size > 0 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    if (pending.size > 0) errors.push(`${device}: ${pending.size} pushes never answered`);
    socket.close();
  }));
  send({ kind: 'written', pushMs, errors });
}

/** Closed loop: each writer pushes a batch of `batch` fresh-key ops, waits for its ack, and pushes the next. */
async function flood(m: { urls: string[]; token: string; space: string; writers: number; batch: number; ms: number; prefix: string }) {
  const pushMs: number[] = [];
  const errors: string[] = [];
  let ops = 0;
  const deadline = performance.now() + m.ms;
  await Promise.all(Array.from({ length: m.writers }, async (_, i) => {
    const device = `${m.prefix}-${i}`;
    const socket = await ferrySocket(m.urls[i % m.urls.length]!, m.token, device);
    let seq = 1;
    for (let rid = 1; performance.now() < deadline; rid += 1) {
      const batch = Array.from({ length: m.batch }, (_, k) => ({
        id: `${device}:${seq + k}`, device, seq: seq + k, lamport: seq + k, space: m.space, collection: 'items', key: `${device}-${seq + k}`,
        kind: 'put', value: { t: wallMs(), n: seq + k }, at: Date.now(),
      }));
      const sent = performance.now();
      socket.send({ type: 'push', rid, device, ops: batch });
      const answer = await socket.next((f) => f.rid === rid, 60_000);
      if (answer.type !== 'ack' && answer.code === 'rate_limited') {
        await new Promise((resolve) => setTimeout(resolve, answer.retryAfterMs ?? 10)); // resent as the next push
        continue;
      }
      if (answer.type !== 'ack') {
        errors.push(`${answer.code}: ${answer.message}`);
        break;
      }
      pushMs.push(performance.now() - sent);
      ops += m.batch;
      seq += m.batch;
    }
    socket.close();
  }));
  send({ kind: 'flooded', ops, pushMs, errors });
}

process.on('message', (m: any) => {
  const fail = (error: unknown) => send({ kind: 'error', message: String(error instanceof Error ? error.stack : error) });
  if (m.kind === 'open') void open(m).catch(fail);
  else if (m.kind === 'write') void write(m).catch(fail);
  else if (m.kind === 'flood') void flood(m).catch(fail);
  else if (m.kind === 'stats') {
    const bins: [number, number][] = [];
    for (let i = 0; i < BINS; i++) if (fanout[i]) bins.push([i, fanout[i]!]);
    send({ kind: 'stats', binMs: BIN_MS, fanout: bins, entities, frames, sampledSockets, live, sockets: sockets.length, closed: Object.fromEntries(closed) });
  } else if (m.kind === 'reset') {
    fanout = new Uint32Array(BINS);
    entities = 0;
    frames = 0;
    send({ kind: 'reset' });
  } else if (m.kind === 'bye') {
    for (const s of sockets) s.close();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ kind: 'ready' });
