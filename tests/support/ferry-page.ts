// The browser suites' world: the web bundles built once, a real server that serves them plus the test
// pages under /test/, a page with the page library loaded, and bounded waits. Everything a test waits
// for is polled with a deadline, so a regression fails with what was last seen instead of hanging.
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { DRAIN_LOCK } from '../../schema/protocol.ts';
import type { Device } from './browser.ts';
import { startServer, type ServerDeps, type TestServer } from './server.ts';
import { BUILT, PAGES, testAssets } from './test-assets.ts';

export { testAssets };

const ROOT = path.resolve(import.meta.dir, '../..');

let built: Promise<void> | null = null;

/** `bun scripts/build-web.ts`, then the test pages' own script; once per test process. */
export function buildWeb(): Promise<void> {
  return (built ??= (async () => {
    const web = Bun.spawn(['bun', 'scripts/build-web.ts'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
    if ((await web.exited) !== 0) throw new Error(`build-web failed: ${await new Response(web.stderr).text()}`);
    mkdirSync(BUILT, { recursive: true });
    for (const page of ['raw', 'react', 'own-sw']) {
      const define: Record<string, string> = { 'process.env.NODE_ENV': '"production"' };
      if (page === 'own-sw') define['self.__WB_MANIFEST'] = JSON.stringify(ownShell());
      const result = await Bun.build({
        entrypoints: [path.join(PAGES, `${page}.ts`)], outdir: BUILT, target: 'browser', format: 'esm', naming: `${page}.js`,
        define,
      });
      if (!result.success) throw new Error(`bundling tests/pages/${page}.ts failed: ${result.logs.join('\n')}`);
    }
  })());
}

/**
 * The precache manifest an app's build injects into its own worker (`self.__WB_MANIFEST`), for the test app
 * that loads `/ferry.js`: its page, the library and every chunk the library may fetch (client/dist/chunks/).
 */
function ownShell(): Array<{ url: string; revision: string | null }> {
  const chunks = readdirSync(path.join(ROOT, 'client/dist/chunks')).filter((file) => file.endsWith('.js'));
  const revision = String(Date.now()); // this build's: a new build is a new worker with a fresh cache
  return [
    { url: '/test/own-app.html', revision }, { url: '/ferry.js', revision },
    ...chunks.map((file) => ({ url: `/chunks/${file}`, revision: null })), // the name holds the content's hash
  ];
}

export function startWebServer(deps: ServerDeps = {}, dir?: string, port = 0): Promise<TestServer> {
  return startServer((database) => ({ assets: testAssets, ...(typeof deps === 'function' ? deps(database) : deps) }), dir, port);
}

/** Starts a stopped server again on the same port and data (pages keep their origin and cookies). */
export function startAgain(stopped: TestServer, deps: ServerDeps = {}): Promise<TestServer> {
  return startWebServer(deps, stopped.dir, Number(new URL(stopped.base).port));
}

/** Polls `probe` until it returns something truthy; fails after `ms` with the last value seen. */
export async function until<T>(what: string, probe: () => Promise<T> | T, ms = 15_000, every = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await Bun.sleep(every);
  }
}

export interface AppOptions {
  swUrl?: false;
  /** Wait until the Service Worker controls the page (default when a worker is used). */
  controlled?: boolean;
}

/** Opens /test/app.html on `device` and starts the page library as `window.ferry`. */
export async function openApp(device: Device, server: { base: string }, options: AppOptions = {}, page?: Page): Promise<Page> {
  const target = page ?? (await device.page());
  await target.goto(`${server.base}/test/app.html`);
  await target.waitForFunction(() => (window as any).ferryReady === true, undefined, { timeout: 10_000 });
  await target.evaluate(async (swUrl) => {
    const w = window as any;
    w.statuses = [];
    w.ferry = await w.Ferry.createFerry(swUrl === false ? { swUrl: false } : {});
    w.ferry.onStatus((s: any) => w.statuses.push({ ...s, at: Date.now() }));
  }, options.swUrl ?? null);
  if (options.swUrl !== false && options.controlled !== false) {
    await target.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 });
  }
  return target;
}

/** Opens /test/raw.html (the store and the worker, no page library), with the worker in control. */
export async function openRaw(device: Device, server: { base: string }): Promise<Page> {
  const page = await device.page();
  await page.goto(`${server.base}/test/raw.html`);
  await page.waitForFunction(() => (window as any).rawReady === true, undefined, { timeout: 10_000 });
  await page.evaluate(() => (window as any).raw.register());
  return page;
}

/** Signs in from the page as the app does (the session cookie lands in the profile), then tells Ferry. */
export async function signIn(page: Page, name: string): Promise<{ user: { id: string }; spaces: [{ id: string }] }> {
  return page.evaluate(async (who) => {
    const w = window as any;
    const account = await w.Ferry.login(location.origin, who, `${who}-password`);
    await w.ferry.signedIn();
    return account;
  }, name);
}

/** Signs in from a page without the library (POST /v1/auth/login with the page's own fetch). */
export async function rawSignIn(page: Page, name: string): Promise<{ user: { id: string }; spaces: [{ id: string }] }> {
  return page.evaluate(async (who) => {
    const res = await fetch('/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: who, password: `${who}-password` }),
    });
    if (!res.ok) throw new Error(`login ${res.status}: ${await res.text()}`);
    return res.json();
  }, name);
}

export async function status(page: Page): Promise<any> {
  return page.evaluate(() => (window as any).ferry.status());
}

/**
 * Starts recording, in the page, every drainer status broadcast on the device's channel (the worker's
 * and the pages', each with its `source`): what a drain saw and decided, even when it sent nothing.
 */
export async function recordDrains(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as any;
    w.drains = [];
    w.drainChannel = new BroadcastChannel('ferry');
    w.drainChannel.onmessage = (event: MessageEvent) => {
      if (event.data?.type === 'status') w.drains.push(event.data.status);
    };
  });
}

/** The broadcasts recorded since recordDrains. */
export async function drains(page: Page): Promise<any[]> {
  return page.evaluate(() => (window as any).drains);
}

export interface WorkerState {
  /** navigator.onLine in the worker. */
  online: boolean;
  /** Background Sync registrations the browser holds for it, not yet fired to completion. */
  tags: string[];
  /** Some context of the origin holds the drain lock, or waits for it: a drain runs or is about to. */
  draining: boolean;
}

/** Asks the device's Service Worker for `server`'s origin itself, with or without a page open. */
export async function workerState(device: Device, server: { base: string }): Promise<WorkerState> {
  const worker = device.context.serviceWorkers().find((sw) => sw.url().startsWith(`${server.base}/`));
  if (!worker) throw new Error(`no service worker for ${server.base}`);
  return worker.evaluate(async (lock) => {
    const scope = self as unknown as { registration: { sync: { getTags(): Promise<string[]> } } };
    const locks = await navigator.locks.query();
    return {
      online: navigator.onLine,
      tags: await scope.registration.sync.getTags(),
      draining: [...(locks.held ?? []), ...(locks.pending ?? [])].some((held) => held.name === lock),
    };
  }, DRAIN_LOCK);
}

/** The server's ledger for one device: every processed seq with its result, in seq order. */
export async function ledger(server: TestServer, device: string): Promise<Array<{ seq: number; result: string; code: string | null }>> {
  const rows = await server.database.client.execute({
    sql: 'SELECT seq, result, code FROM ops WHERE device = ? ORDER BY seq', args: [device],
  });
  return rows.rows.map((row) => ({ seq: Number(row.seq), result: String(row.result), code: row.code === null ? null : String(row.code) }));
}

export async function ledgerCount(server: TestServer, device: string): Promise<number> {
  const rows = await server.database.client.execute({ sql: 'SELECT count(*) AS n FROM ops WHERE device = ?', args: [device] });
  return Number(rows.rows[0]!.n);
}

/** A counter from GET /metrics. */
export async function metric(server: { base: string }, name: string): Promise<number> {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(' ')[1]);
}

/**
 * The Service Worker's JS heap, through CDP: the page's session attaches to the worker's target
 * (Playwright has no session for workers) and asks Runtime.getHeapUsage; `collect` forces a GC first,
 * to tell what is retained from garbage not yet collected.
 */
export async function workerHeap(page: Page): Promise<{ used(): Promise<number>; collect(): Promise<void> }> {
  const cdp = await page.context().newCDPSession(page);
  const { targetInfos } = (await cdp.send('Target.getTargets')) as { targetInfos: Array<{ type: string; targetId: string }> };
  const worker = targetInfos.find((target) => target.type === 'service_worker');
  if (!worker) throw new Error('no service worker target');
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false })) as { sessionId: string };
  let id = 0;
  const call = (method: string) => new Promise<any>((resolve, reject) => {
    const mine = ++id;
    const timer = setTimeout(() => reject(new Error(`no answer to ${method} from the worker`)), 5000);
    const onMessage = (event: { sessionId: string; message: string }) => {
      if (event.sessionId !== sessionId) return;
      const message = JSON.parse(event.message) as { id?: number; result?: unknown };
      if (message.id !== mine) return;
      clearTimeout(timer);
      cdp.off('Target.receivedMessageFromTarget', onMessage);
      resolve(message.result);
    };
    cdp.on('Target.receivedMessageFromTarget', onMessage);
    void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: mine, method }) });
  });
  return {
    used: async () => ((await call('Runtime.getHeapUsage')) as { usedSize: number }).usedSize,
    collect: async () => void (await call('HeapProfiler.collectGarbage')),
  };
}

/** Seqs 1..n, each exactly once (the ledger's primary key forbids twice; this checks none is missing). */
export function expectGapless(rows: Array<{ seq: number }>, n: number): void {
  const seqs = rows.map((row) => row.seq);
  const expected = Array.from({ length: n }, (_, i) => i + 1);
  if (JSON.stringify(seqs) !== JSON.stringify(expected)) {
    const missing = expected.filter((seq) => !seqs.includes(seq));
    throw new Error(`ledger is not 1..${n}: ${seqs.length} rows, missing ${JSON.stringify(missing.slice(0, 20))}`);
  }
}
