// The device side, in a real Chromium (Debian's, driven by playwright-core like tests/browser-*.test.ts):
//
//  1. Drain after reconnect. N ops queued offline in Ferry's outbox (the store, batched, from
//     /test/raw.html), then online: the time until the outbox is empty AND the server's ledger holds
//     all N. Baseline: workbox-background-sync's `Queue` (bench/pages/workbox-sw.ts) replaying the same
//     N writes with `queue.replayRequests()`, one request each, to POST /op on a small Bun.serve in this
//     process that upserts that one op into an identical libSQL file DB (bench/lib.ts benchDb: same
//     migrations, WAL + synchronous=FULL) in its own transaction. Also the worker's JS heap (CDP) during
//     Ferry's drain at three outbox sizes: it must not grow with the outbox.
//  2. Local writes. Ferry's page API `put`, awaited one at a time, against raw IndexedDB puts, one per
//     transaction with durability 'strict', in the same page; bursts of 500 page-API puts issued in one
//     turn (they share a transaction) and `ferry.batch` of 500, against 500 raw puts per 'strict'
//     transaction; and the store's `enqueue` with 500 drafts per transaction against the same. Ferry and
//     raw run interleaved in rounds; each row is the median of the rounds' rates. FERRY_BENCH_LOCAL=1 runs
//     only this part (for iterating on the store's write path).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchDevice, type Device } from '../tests/support/browser.ts';
import {
  buildWeb, ledgerCount, openApp, openRaw, rawSignIn, signIn, startWebServer, until, workerHeap,
} from '../tests/support/ferry-page.ts';
import { removeDir, type TestServer } from '../tests/support/server.ts';
import { benchDb, median, rawCommit, round, tempDir, type Row, type Suite } from './lib.ts';

const ROOT = path.resolve(import.meta.dir, '..');
const BUILT = path.join(ROOT, '.tmp/bench-pages');

async function buildBaselineWorker(): Promise<string> {
  mkdirSync(BUILT, { recursive: true });
  const result = await Bun.build({
    entrypoints: [path.join(import.meta.dir, 'pages/workbox-sw.ts')], outdir: BUILT, target: 'browser', format: 'esm',
    naming: 'workbox-sw.js', minify: true, define: { 'process.env.NODE_ENV': '"production"' },
  });
  if (!result.success) throw new Error(`bundling bench/pages/workbox-sw.ts failed: ${result.logs.join('\n')}`);
  return path.join(BUILT, 'workbox-sw.js');
}

const BASELINE_PAGE = `<!doctype html><meta charset="utf-8"><title>workbox baseline</title>
<script type="module">
  window.ask = (data) => new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data.result));
    navigator.serviceWorker.controller.postMessage(data, [channel.port2]);
  });
  window.register = async () => {
    await navigator.serviceWorker.register('/sw.js');
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
    }
  };
  window.baselineReady = true;
</script>`;

/** The baseline's server: the page, the worker, and POST /op → one upsert in one durable transaction. */
async function startBaselineServer(dir: string, workerFile: string) {
  const db = await benchDb(dir, 'workbox.db');
  let serverSeq = 0;
  let applied = 0;
  let commitMs = 0;
  let chain: Promise<unknown> = Promise.resolve(); // one writer, like Ferry's committer
  const server = Bun.serve({
    hostname: '127.0.0.1', port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === '/') return new Response(BASELINE_PAGE, { headers: { 'content-type': 'text/html' } });
      if (url.pathname === '/sw.js') return new Response(Bun.file(workerFile), { headers: { 'content-type': 'text/javascript' } });
      if (url.pathname === '/op' && req.method === 'POST') {
        const op = await req.json();
        const done = chain.then(async () => {
          const t = performance.now();
          await rawCommit(db.client, [op], ++serverSeq);
          commitMs += performance.now() - t;
        });
        chain = done.catch(() => {});
        await done;
        applied++;
        return Response.json({ ok: true });
      }
      return new Response('not found', { status: 404 });
    },
  });
  return {
    base: `http://127.0.0.1:${server.port}`, space: db.space,
    applied: () => applied,
    commitMs: () => commitMs,
    async stop() { server.stop(true); await chain; db.database.close(); },
  };
}

// ── raw IndexedDB in the page ──────────────────────────────────────────────────────────────────────────

/** `count` op-shaped records put in transactions of `per`, durability 'strict'; returns ms. */
function rawIdbPuts(page: Page, count: number, per: number, name: string, from = 0): Promise<number> {
  return page.evaluate(async ({ count, per, name, from }) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore('outbox', { keyPath: 'seq' });
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    const started = performance.now();
    for (let i = from; i < from + count; i += per) {
      const tx = db.transaction('outbox', 'readwrite', { durability: 'strict' });
      const store = tx.objectStore('outbox');
      for (let j = i; j < Math.min(from + count, i + per); j++) {
        store.put({ id: `raw:${j + 1}`, device: 'raw', seq: j + 1, lamport: j + 1, space: 's', collection: 'items', key: `k${j}`, kind: 'put', value: { n: j }, at: Date.now() });
      }
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = tx.onabort = () => reject(tx.error);
      });
    }
    const ms = performance.now() - started;
    db.close();
    return ms;
  }, { count, per, name, from });
}

// ── the suite ──────────────────────────────────────────────────────────────────────────────────────────

export const chromiumSuite: Suite = {
  name: 'chromium',
  async run({ quick, log }) {
    // FERRY_BENCH_DRAIN_ONLY=1: the drain row alone (no local writes, no heap runs), for iterating on it.
    const drainOnly = process.env.FERRY_BENCH_DRAIN_ONLY === '1';
    const DRAIN = quick ? 1_000 : 10_000;
    const HEAP_SIZES = drainOnly ? [] : quick ? [500, 1_000, 2_000] : [1_000, 10_000, 50_000];
    const SINGLE = quick ? 200 : 1_000;
    const BATCHED = quick ? 2_000 : 10_000;
    const BURST = 500;
    const LOCAL_ROUNDS = quick ? 5 : 7;
    const rows: Row[] = [];
    const devices: Device[] = [];
    const launch = async () => { const d = await launchDevice(); devices.push(d); return d; };
    await buildWeb();
    const workerFile = await buildBaselineWorker();
    const tmp = tempDir('chromium');
    const ferry: TestServer = await startWebServer();
    await ferry.user('bench');
    const baseline = await startBaselineServer(tmp.dir, workerFile);
    try {
      // ── 2. local writes: Ferry and raw IndexedDB interleaved, round by round; each row is the median
      // of the rounds' rates (this machine is shared, and one long block of each would compare moments). ──
      if (!drainOnly) {
        const device = await launch();
        const app = await openApp(device, ferry);
        const { spaces } = await signIn(app, 'bench');
        await device.context.setOffline(true);
        const rawDevice = await launch();
        const raw = await openRaw(rawDevice, ferry);
        const login = await rawSignIn(raw, 'bench');
        await rawDevice.context.setOffline(true);
        const space = spaces[0].id;
        const rates = new Map<string, number[]>();
        const ms = new Map<string, number>();
        const note = (name: string, ops: number, took: number) => {
          rates.set(name, [...(rates.get(name) ?? []), ops / (took / 1000)]);
          ms.set(name, (ms.get(name) ?? 0) + took);
        };
        const single = Math.ceil(SINGLE / LOCAL_ROUNDS);
        const batched = Math.ceil(BATCHED / LOCAL_ROUNDS / BURST) * BURST;
        for (let r = 0; r < LOCAL_ROUNDS; r++) {
          note('api', single, await app.evaluate(async ({ space, n, from }) => {
            const items = (window as any).ferry.collection(space, 'bench');
            const started = performance.now();
            for (let i = from; i < from + n; i++) await items.put(`k${i}`, { n: i });
            return performance.now() - started;
          }, { space, n: single, from: r * single }));
          note('rawSingle', single, await rawIdbPuts(app, single, 1, 'bench-raw-single', r * single));
          // How apps write a burst: BURST puts issued in one turn, each awaited only together.
          note('burst', batched, await app.evaluate(async ({ space, n, per, from }) => {
            const items = (window as any).ferry.collection(space, 'bench');
            const started = performance.now();
            for (let i = from; i < from + n; i += per) {
              await Promise.all(Array.from({ length: per }, (_, j) => items.put(`b${i + j}`, { n: i + j })));
            }
            return performance.now() - started;
          }, { space, n: batched, per: BURST, from: r * batched }));
          note('rawBurst', batched, await rawIdbPuts(app, batched, BURST, 'bench-raw-burst', r * batched));
          note('atomic', batched, await app.evaluate(async ({ space, n, per, from }) => {
            const ferry = (window as any).ferry;
            const items = ferry.collection(space, 'bench');
            const started = performance.now();
            for (let i = from; i < from + n; i += per) {
              await ferry.batch(() => { for (let j = i; j < i + per; j++) items.put(`a${j}`, { n: j }); });
            }
            return performance.now() - started;
          }, { space, n: batched, per: BURST, from: r * batched }));
          note('enqueue', batched, await raw.evaluate(({ space, n, from }) => (window as any).raw.enqueue(n, 500, space, from), { space: login.spaces[0].id, n: batched, from: r * batched }));
          note('rawBatched', batched, await rawIdbPuts(raw, batched, 500, 'bench-raw-batched', r * batched));
        }
        const rate = (name: string) => median(rates.get(name)!);
        const detail = (name: string, base: string, ops: number) => ({
          ops: ops * LOCAL_ROUNDS, rounds: LOCAL_ROUNDS, ferryMs: round(ms.get(name)!), rawMs: round(ms.get(base)!),
          ratios: rates.get(name)!.map((x, i) => round(x / rates.get(base)![i]!, 2)),
        });
        rows.push({
          benchmark: 'local put, 1 per transaction (page API vs raw IDB strict)', unit: 'ops/s',
          ferry: rate('api'), baseline: rate('rawSingle'), target: { on: 'ratio', min: 0.8 }, detail: detail('api', 'rawSingle', single),
        });
        rows.push({
          benchmark: `local put, ${BURST} issued in one turn (page API vs raw IDB strict, ${BURST} per transaction)`, unit: 'ops/s',
          ferry: rate('burst'), baseline: rate('rawBurst'), target: { on: 'ratio', min: 0.5 }, detail: detail('burst', 'rawBurst', batched),
        });
        rows.push({
          benchmark: `local put, ferry.batch of ${BURST} (page API vs raw IDB strict, ${BURST} per transaction)`, unit: 'ops/s',
          ferry: rate('atomic'), baseline: rate('rawBurst'), target: { on: 'ratio', min: 0.5 }, detail: detail('atomic', 'rawBurst', batched),
        });
        rows.push({
          benchmark: 'local put, 500 per transaction (store.enqueue vs raw IDB strict)', unit: 'ops/s',
          ferry: rate('enqueue'), baseline: rate('rawBatched'), detail: detail('enqueue', 'rawBatched', batched),
        });
        log(`  local writes, ${LOCAL_ROUNDS} rounds: api ${round(ms.get('api')!)} ms / raw ${round(ms.get('rawSingle')!)} ms for ${single * LOCAL_ROUNDS}; enqueue ${round(ms.get('enqueue')!)} / raw ${round(ms.get('rawBatched')!)} ms for ${batched * LOCAL_ROUNDS}`);
        log(`  bursts of ${BURST}: one turn ${round(ms.get('burst')!)} ms, ferry.batch ${round(ms.get('atomic')!)} ms, raw ${round(ms.get('rawBurst')!)} ms for ${batched * LOCAL_ROUNDS}`);
        await Promise.all([device.close(), rawDevice.close()]);
        devices.length = 0;
      }

      // FERRY_BENCH_LOCAL=1: only the local writes above (for iterating on the store's write path).
      if (process.env.FERRY_BENCH_LOCAL === '1') return rows;

      // ── 1. drain after reconnect: Ferry at several outbox sizes (heap), the DRAIN size timed ──
      const device = await launch();
      const page = await openRaw(device, ferry);
      const login = await rawSignIn(page, 'bench');
      const deviceId: string = await page.evaluate(() => (window as any).raw.deviceId());
      const heap = await workerHeap(page);
      type HeapRun = { before: number; peak: number; live: number; after: number; ms: number };
      const heapBySize = new Map<number, HeapRun>();
      let onServer = 0;
      /** Queues n offline, goes online, waits until the ledger has them all and the outbox is empty. */
      const drain = async (n: number, sampleHeap: boolean): Promise<HeapRun> => {
        await device.context.setOffline(true);
        await page.evaluate(({ space, n, from }) => (window as any).raw.enqueue(n, 500, space, from), { space: login.spaces[0].id, n, from: onServer });
        await page.evaluate(() => (window as any).raw.registerSync());
        await heap.collect();
        const before = await heap.used();
        let peak = before; // garbage included, every 100 ms
        let live = before; // after a forced GC, every 200 ms: what the worker actually holds mid-drain
        let ticks = 0;
        let busy = false;
        const sampler = sampleHeap ? setInterval(() => {
          if (busy) return;
          busy = true;
          const gc = ++ticks % 2 === 0;
          void (async () => {
            const used = await heap.used();
            peak = Math.max(peak, used);
            if (gc) { await heap.collect(); live = Math.max(live, await heap.used()); }
          })().catch(() => {}).finally(() => (busy = false));
        }, 100) : null;
        const started = performance.now();
        await device.context.setOffline(false); // Background Sync fires; the worker drains over HTTP
        try {
          await until('every op on the server', async () => (await ledgerCount(ferry, deviceId)) === onServer + n, 600_000, 50);
          await until('the outbox to empty', async () => (await page.evaluate(() => (window as any).raw.pending())) === 0, 60_000, 50);
        } finally {
          if (sampler) clearInterval(sampler);
        }
        const ms = performance.now() - started;
        onServer += n;
        await until('the heap sampler to stop', () => !busy, 10_000, 10);
        await heap.collect();
        const after = await heap.used();
        log(`  ferry drain ${n}${sampleHeap ? ' (heap sampled, GC forced)' : ''}: ${round(ms)} ms, heap ${round(before / 1e6)} → peak ${round(peak / 1e6)} (live ${round(live / 1e6)}) → ${round(after / 1e6)} MB`);
        return { before, peak, live, after, ms };
      };
      for (const n of HEAP_SIZES) heapBySize.set(n, await drain(n, true));
      const ferryDrain = await drain(DRAIN, false); // timed alone: no CDP calls, no forced GCs
      await device.close();
      devices.length = 0;

      // Baseline: workbox Queue, same N writes.
      const wbDevice = await launch();
      const wb = await wbDevice.page();
      await wb.goto(`${baseline.base}/`);
      await wb.waitForFunction(() => (window as any).baselineReady === true, undefined, { timeout: 10_000 });
      await wb.evaluate(() => (window as any).register());
      await wbDevice.context.setOffline(true);
      const pushStarted = performance.now();
      const queued = await wb.evaluate(({ n, space }) => (window as any).ask({ type: 'push', count: n, from: 0, space, device: 'workbox' }), { n: DRAIN, space: baseline.space });
      if (queued !== DRAIN) throw new Error(`workbox queued ${queued}, expected ${DRAIN}`);
      log(`  workbox queued ${DRAIN} in ${round(performance.now() - pushStarted)} ms`);
      const wbStarted = performance.now();
      await wbDevice.context.setOffline(false);
      const left = await wb.evaluate(() => (window as any).ask({ type: 'replay' }));
      await until('every workbox op on the server', () => baseline.applied() === DRAIN, 60_000, 20);
      const wbMs = performance.now() - wbStarted;
      if (left !== 0) throw new Error(`workbox queue still holds ${left}`);
      log(`  workbox replay ${DRAIN}: ${round(wbMs)} ms, of which ${round(baseline.commitMs())} ms in the server's upsert transactions`);

      rows.push({
        benchmark: `drain ${DRAIN.toLocaleString('en-US')} queued ops after reconnect (vs workbox Queue replay)`, unit: 'ops/s',
        ferry: DRAIN / (ferryDrain.ms / 1000), baseline: DRAIN / (wbMs / 1000), target: { on: 'ratio', min: 20 },
        detail: { ops: DRAIN, ferryMs: round(ferryDrain.ms), workboxMs: round(wbMs), workboxServerCommitMs: round(baseline.commitMs()) },
      });
      for (const n of HEAP_SIZES) {
        const h = heapBySize.get(n)!;
        rows.push({
          benchmark: `SW live heap during drain (max after forced GCs), ${n.toLocaleString('en-US')} queued`, unit: 'MB', ferry: h.live / 1e6, baseline: null,
          detail: { peakWithGarbageMB: round(h.peak / 1e6), beforeMB: round(h.before / 1e6), afterMB: round(h.after / 1e6), drainMs: round(h.ms) },
        });
      }
      if (drainOnly) return rows;
      const small = heapBySize.get(HEAP_SIZES[0]!)!;
      const large = heapBySize.get(HEAP_SIZES.at(-1)!)!;
      rows.push({
        // Not proportional to the outbox: 50,000 ops held in memory would be ~10 MB more.
        benchmark: `SW live heap growth, ${HEAP_SIZES.at(-1)!.toLocaleString('en-US')} minus ${HEAP_SIZES[0]!.toLocaleString('en-US')} queued`, unit: 'MB',
        ferry: (large.live - small.live) / 1e6, baseline: null, target: { on: 'value', max: 2 },
        detail: { liveRatio: round(large.live / small.live), peakWithGarbageRatio: round(large.peak / small.peak) },
      });
      rows.push({
        benchmark: `SW heap retained after draining ${HEAP_SIZES.at(-1)!.toLocaleString('en-US')} (after GC − before)`, unit: 'MB',
        ferry: (large.after - large.before) / 1e6, baseline: null, target: { on: 'value', max: 2 },
        detail: { beforeMB: round(large.before / 1e6), afterMB: round(large.after / 1e6) },
      });
      return rows;
    } finally {
      await Promise.allSettled(devices.map((d) => d.close()));
      await baseline.stop();
      await ferry.stop();
      removeDir(ferry.dir);
      tmp.remove();
    }
  },
};
