// Security/robustness matrix, "slow consumer" (PROTOCOL.md §9, DESIGN "The server"): sockets that stop
// reading are paused, then closed with 4008; the server's resident memory stays bounded while tens of MB
// are written under them; it keeps answering throughout; and a real client (socket manager + session +
// replica store, the page's own code) closed that way resumes from its cursor to exactly the server state.
//
// The server runs as its own process (`ferry serve` on Bun, and on Deno: production defaults: pause at
// 1 MiB buffered, close after 30 s paused; the CLI has no flag for them), so its RSS can be read honestly
// from /proc/<pid>/status. The 30 s pause is most of the ~36 s this takes per runtime; the wait for it is
// bounded at 45 s.
import 'fake-indexeddb/auto';
import { afterAll, describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import { createSocketManager, type SocketConstructor, type SocketLike, type SocketStatus } from '../device/socket-manager.ts';
import { createSocketSession } from '../device/socket-session.ts';
import { createSocketTransport } from '../device/socket-transport.ts';
import { LIMITS } from '../core/limits.ts';
import type { Fields, Op } from '../core/types.ts';
import type { Down, EntityWire, SnapshotBody, Up } from '../schema/wire.ts';
import { createStore } from '../device/store.ts';
import { metric, rssBytes, serveCli, type CliServer } from './support/cli-server.ts';
import { openRawSocket, RawWebSocket } from './support/raw-socket.ts';
import { removeDir } from './support/server.ts';
import { targets } from './support/targets.ts';

const MiB = 1024 * 1024;
/** Raw sockets that subscribe and never read again. */
const SLOW = 4;
/** One value: ~48 KB, well under LIMITS.valueBytes (64 KiB). */
const BIG = 'x'.repeat(48_000);
/** Ops per batch: 20 × ~48 KB ≈ 0.92 MiB, under LIMITS.batchBytes (1 MiB); checked below. */
const OPS_PER_BATCH = 20;
/** Batches the client reads normally before it stops reading (~7 MB). */
const WARM_BATCHES = 8;
/** Batches written while every subscriber is stalled (~52 MB). */
const FLOOD_BATCHES = 56;
/** Per stalled socket, what the server may keep: pauseBytes (1 MiB) + the frame that crossed it (one
 * batch's changes, < 1 MiB) + uWS's own bookkeeping, rounded up generously. */
const PER_SOCKET_ALLOWANCE = 8 * MiB;

for (const runtime of targets()) describe(`slow consumers on ${runtime}`, () => {
  let server: CliServer | null = null;
  afterAll(async () => {
    await server?.stop();
    if (server) removeDir(server.dir);
  });

  test('slow consumers: closed with 4008, server RSS bounded and answering; the client resumes from its cursor', async () => {
    const t0 = performance.now();
    const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    server = await serveCli([], undefined, runtime);
    const srv = server;
    const alice = await srv.user('alice');
    const auth = { authorization: `Bearer ${alice.token}` };
    const failures: string[] = [];

    // ── the writer: each op a put on its own key, so the space's serverSeqs are contiguous ──────────
    let writerSeq = 0;
    let bytesPushed = 0;
    const pushBatch = async (device: string, ops: Op[]) => {
      const body = JSON.stringify({ protocol: 1, device, ops });
      const res = await fetch(`${srv.base}/v1/push`, {
        method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000),
      });
      const answer = (await res.json()) as any;
      if (res.status !== 200 || answer.results.some((r: any) => r.result !== 'applied')) {
        throw new Error(`push by ${device} answered ${res.status} ${JSON.stringify(answer).slice(0, 300)}\nserver log:\n${srv.output()}`);
      }
      bytesPushed += body.length;
      return body.length;
    };
    const writeBatches = async (count: number) => {
      for (let b = 0; b < count; b++) {
        const ops = Array.from({ length: OPS_PER_BATCH }, (): Op => {
          writerSeq++;
          return {
            id: `writer:${writerSeq}`, device: 'writer', seq: writerSeq, lamport: writerSeq, space: alice.space,
            collection: 'items', key: `w${writerSeq}`, kind: 'put', value: { big: BIG, n: writerSeq }, at: 0,
          };
        });
        expect(await pushBatch('writer', ops)).toBeLessThan(LIMITS.batchBytes);
      }
    };
    const head = async () => ((await (await fetch(`${srv.base}/healthz`)).json()) as any).serverSeq as number;

    // ── the consumer: the page's own socket stack over an in-memory IndexedDB ─────────────────────────
    // Its first socket is a RawWebSocket (which a test can stop reading); its reconnects use Bun's
    // WebSocket, as a page's would. Frames are recorded per connection, as they arrive.
    const store = await createStore({ indexedDB: new IDBFactory(), name: 'slow-consumer' });
    const transport = createSocketTransport({ timers: globalThis as any });
    const session = createSocketSession({
      store, device: await store.getDeviceId(), transport, now: Date.now,
      snapshot: async (space, after, snapshotHead) => {
        const q = new URLSearchParams({ space, after: String(after), ...(snapshotHead ? { head: String(snapshotHead) } : {}) });
        return (await (await fetch(`${srv.base}/v1/snapshot?${q}`, { headers: auth })).json()) as SnapshotBody;
      },
      changed: () => {}, acked: () => {}, welcomed: () => {}, updated: () => {},
    });
    const received: Down[][] = []; // per connection
    const sentUp: Up[][] = [];
    const statuses: SocketStatus[] = [];
    const first: { ws: RawWebSocket | null } = { ws: null };
    const Sockets = function (this: unknown, url: string, protocols: string[]): SocketLike {
      const ws: SocketLike = received.length === 0
        ? (first.ws = new RawWebSocket({ host: '127.0.0.1', port: srv.port, protocols }))
        : (new WebSocket(url, protocols) as unknown as SocketLike);
      const mine: Up[] = [];
      sentUp.push(mine);
      received.push([]);
      const send = ws.send.bind(ws);
      ws.send = (data: string) => {
        mine.push(JSON.parse(data));
        send(data);
      };
      return ws;
    } as unknown as SocketConstructor;
    const manager = createSocketManager({
      url: srv.ws,
      protocols: () => ['ferry.v1', `ferry.auth.${alice.token}`],
      WebSocket: Sockets,
      timers: globalThis as any,
      now: Date.now,
      random: Math.random,
      // The client's dead-socket watchdog (2 × heartbeat) must not beat the server's 30 s pause timer.
      heartbeatMs: 120_000,
      onOpen: (send) => session.opened(send),
      onFrame: (frame) => {
        received.at(-1)!.push(frame);
        session.frame(frame);
      },
      onStatus: (status) => {
        statuses.push(status);
        if (status.state !== 'open') session.closed(); // as client/index.ts wires it
      },
    });
    const waitFor = async (what: string, ms: number, check: () => boolean | Promise<boolean>) => {
      const deadline = Date.now() + ms;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
        await Bun.sleep(20);
      }
    };
    const cursor = async () => (await store.getCursors())[alice.space] ?? 0;

    try {
      session.setSpaces([alice.space]);
      manager.start();
      await waitFor('the client caught up', 10_000, () => session.info().caughtUp === 1);

      // ── the slow sockets: subscribe (caught up on an empty space), then never read again ──────────
      const slow: RawWebSocket[] = [];
      for (let i = 0; i < SLOW; i++) {
        const s = await openRawSocket({ host: '127.0.0.1', port: srv.port, protocols: ['ferry.v1', `ferry.auth.${alice.token}`] });
        s.send(JSON.stringify({ type: 'hello', protocol: 1, device: `slow-${i}` }));
        s.send(JSON.stringify({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] }));
        await waitFor(`slow socket ${i} caught up`, 5000, () => s.texts.some((t) => t.includes('"caught_up"')));
        s.pause();
        slow.push(s);
      }

      // ── RSS sampling, from before the first big write to after the closes ─────────────────────────
      await Bun.sleep(300);
      const baseline = rssBytes(srv.pid);
      let sampledPeak = baseline;
      const sampler = setInterval(() => {
        try {
          sampledPeak = Math.max(sampledPeak, rssBytes(srv.pid));
        } catch {}
      }, 25);

      // Warm-up: the client reads everything, then stops reading, having processed cursor C0.
      await writeBatches(WARM_BATCHES);
      const warmHead = await head();
      await waitFor('the client read the warm-up', 15_000, async () => (await cursor()) === warmHead);
      first.ws!.pause();
      const warmBytes = bytesPushed;
      const slowSocketsTotal = SLOW + 1;

      // The flood: ~52 MB more while all five subscribers are stalled.
      const floodStarted = performance.now();
      await writeBatches(FLOOD_BATCHES);
      const floodMs = performance.now() - floodStarted;
      const rssAfterFlood = rssBytes(srv.pid);

      // Until the server has closed every stalled socket (30 s after each was paused): keep writing
      // small ops and asking /healthz, and time every answer.
      let probeSeq = 0;
      let slowestProbeMs = 0;
      let probes = 0;
      const probeOnce = async () => {
        const t = performance.now();
        const health = await fetch(`${srv.base}/healthz`, { signal: AbortSignal.timeout(5000) });
        if (health.status !== 200) failures.push(`/healthz answered ${health.status}`);
        await health.arrayBuffer();
        probeSeq++;
        await pushBatch('prober', [{
          id: `prober:${probeSeq}`, device: 'prober', seq: probeSeq, lamport: probeSeq, space: alice.space,
          collection: 'items', key: `p${probeSeq}`, kind: 'put', value: { n: probeSeq }, at: 0,
        }]);
        slowestProbeMs = Math.max(slowestProbeMs, performance.now() - t);
        probes++;
      };
      await waitFor('every stalled socket closed as a slow consumer', 45_000, async () => {
        await probeOnce();
        await Bun.sleep(200);
        return (await metric(srv.base, 'ferry_sockets_closed_slow_total')) >= slowSocketsTotal;
      });
      const closedAt = elapsed();
      expect(await metric(srv.base, 'ferry_sockets_closed_slow_total')).toBe(slowSocketsTotal);
      // Bun drops a closed connection at once. Deno cannot: its close frame waits behind the bytes still
      // queued for a reader that does not read, so the connection (and at most those bytes) stays until
      // the reader reads again or goes away (docs/edge.md); the count is checked once they did, below.
      if (runtime === 'bun') expect(await metric(srv.base, 'ferry_sockets_open')).toBe(0);
      const peak = Math.max(sampledPeak, rssBytes(srv.pid, 'VmHWM'));
      const rssAtClose = rssBytes(srv.pid);
      // After the closes: still answering, and memory not climbing.
      const settleUntil = Date.now() + 2000;
      while (Date.now() < settleUntil) {
        await probeOnce();
        await Bun.sleep(200);
      }
      const rssSettled = rssBytes(srv.pid);
      clearInterval(sampler);

      // The bound. Buffering everything for each stalled socket would cost each of them what it was sent
      // and the kernel did not absorb (~6 MB on a loopback connection that never read): 5 × ~53 MB here.
      // What we allow on top of the baseline: `bytesPushed` for the server's own transient garbage of
      // parsing, committing and fanning out that much JSON (measured: ~55 MB for 64 MB pushed with no
      // subscriber at all; the GC gives it back lazily), plus PER_SOCKET_ALLOWANCE per stalled socket.
      // Checked against a copy of the server with the hub's pause disabled: with Bun's last-resort cap
      // (16 MiB per socket, closed without 4008) the peak was ~197 MiB, with no cap at all ~505 MiB, both
      // above this bound (~162 MiB); with the hub as shipped it is ~124 MiB. Deno's V8 lets garbage pile
      // up further before it collects (peaks of 70–105 MiB over the baseline here), and when it collects
      // is its own affair: 20–27 MiB over the baseline were left at the close in local runs, 66 MiB in a CI
      // run where nothing had been collected since the peak. So on Deno the peak is held to half of what
      // buffering everything costs, which a server that buffered would reach during the flood already;
      // what is left at the close is bounded on Bun only, to PER_SOCKET_ALLOWANCE per stalled socket.
      const bound = baseline + bytesPushed + slowSocketsTotal * PER_SOCKET_ALLOWANCE;
      const buffersEverything = baseline + slowSocketsTotal * (bytesPushed - 6 * MiB);
      const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
      console.log(
        `slow consumer (${runtime}): ${mb(bytesPushed)} pushed (${mb(bytesPushed - warmBytes)} of it in ${(floodMs / 1000).toFixed(1)} s), ` +
          `${slowSocketsTotal} stalled sockets closed by ${closedAt}; server RSS baseline ${mb(baseline)}, after flood ${mb(rssAfterFlood)}, ` +
          `peak ${mb(peak)} (bound ${mb(bound)}; buffering everything ≈ ${mb(buffersEverything)}), at close ${mb(rssAtClose)}, ` +
          `2 s later ${mb(rssSettled)}; ${probes} probes, slowest ${slowestProbeMs.toFixed(0)} ms`,
      );
      expect(failures).toEqual([]);
      expect(bytesPushed).toBeGreaterThan(50 * MiB);
      if (runtime === 'bun') {
        expect(peak).toBeLessThan(bound);
        expect(bound - baseline).toBeLessThan((buffersEverything - baseline) / 2);
        expect(rssAtClose - baseline).toBeLessThan(slowSocketsTotal * PER_SOCKET_ALLOWANCE);
      }
      expect(peak - baseline).toBeLessThan((buffersEverything - baseline) / 2);
      expect(rssSettled).toBeLessThan(rssAtClose + 8 * MiB);
      expect(slowestProbeMs).toBeLessThan(2000);

      // ── the close, as the slow sockets see it once they read again: a 4008 frame ──────────────────
      for (const s of slow) s.resume();
      const ends = await Promise.all(slow.map((s) => Promise.race([s.ended, Bun.sleep(10_000).then(() => null)])));
      expect(ends).toEqual(Array.from({ length: SLOW }, () => ({ code: 4008, reason: 'slow consumer' })));

      // ── the client reads again: what it had, then the 4008, then it reconnects from its cursor ────
      first.ws!.resume();
      await waitFor('the client reconnected and caught up', 60_000, () => received[1]?.some((f) => f.type === 'caught_up') ?? false);
      await session.settled();
      expect(session.info()).toMatchObject({ welcomed: true, subscribed: 1, caughtUp: 1 });
      expect(received.length).toBe(2);
      expect(first.ws!.closeFrame).toEqual({ code: 4008, reason: 'slow consumer' });
      expect(statuses.some((s) => s.state === 'waiting' && s.lastError.includes('4008'))).toBe(true);

      const seqsOf = (frames: Down[]) => frames.flatMap((f) => (f.type === 'changes' ? f.entities.map((e: EntityWire) => e.serverSeq) : []));
      const before = seqsOf(received[0]!);
      const after = seqsOf(received[1]!);
      const c = Math.max(...received[0]!.map((f) => (f.type === 'changes' ? f.cursor : 0)));
      // The client had processed everything up to the warm-up and a bit beyond; the rest waited on the server.
      expect(c).toBeGreaterThanOrEqual(warmHead);
      const finalHead = await head();
      expect(c).toBeLessThan(finalHead);
      // It subscribed again with exactly the cursor it had processed…
      expect(sentUp[1]!.find((m) => m.type === 'subscribe')).toEqual({ type: 'subscribe', spaces: [{ space: alice.space, cursor: c }] });
      // …and got every change after it once, in order, with no gap: every write was a new key of this
      // space, so its serverSeqs run 1..head without a hole.
      const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
      expect(before).toEqual(range(1, c));
      expect(after).toEqual(range(c + 1, finalHead));
      expect(received[1]!.find((f) => f.type === 'caught_up')).toEqual({ type: 'caught_up', space: alice.space, cursor: finalHead });
      expect(await cursor()).toBe(finalHead);
      // Every stalled connection is gone; only the client's new socket is open.
      expect(await metric(srv.base, 'ferry_sockets_open')).toBe(1);

      // The replica holds exactly the server's state (GET /v1/snapshot, paged).
      const serverState: Record<string, Fields> = {};
      let from = 0;
      let snapshotHead: number | undefined;
      for (let page = 0; page < 100; page++) {
        const q = new URLSearchParams({ space: alice.space, after: String(from), limit: '1000', ...(snapshotHead ? { head: String(snapshotHead) } : {}) });
        const body = (await (await fetch(`${srv.base}/v1/snapshot?${q}`, { headers: auth })).json()) as SnapshotBody;
        snapshotHead ??= body.head;
        for (const e of body.entities) serverState[e.key] = e.fields;
        if (body.next === null) break;
        from = body.next;
      }
      const replica = Object.fromEntries((await store.all(alice.space, 'items')).map((e) => [e.key, e.fields]));
      expect(Object.keys(replica).length).toBe(finalHead);
      expect(replica).toEqual(serverState);
      console.log(`slow consumer: client processed cursor ${c} before its 4008, resumed with ${after.length} changes to ${finalHead}; done at ${elapsed()}`);
      expect(srv.output()).not.toMatch(/ferry: .*failed/);
    } finally {
      manager.stop();
    }
  }, 180_000);
});
