// The browser suites' world: the web bundles built once, a real server that serves them plus the test
// pages under /test/, a page with the page library loaded, and bounded waits. Everything a test waits
// for is polled with a deadline, so a regression fails with what was last seen instead of hanging.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { staticAssets } from '../../server/assets.ts';
import type { AppDeps } from '../../server/app.ts';
import type { Device } from './browser.ts';
import { startServer, type TestServer } from './server.ts';

const ROOT = path.resolve(import.meta.dir, '../..');
const PAGES = path.join(ROOT, 'tests/pages');
const BUILT = path.join(ROOT, '.tmp/test-pages');

let built: Promise<void> | null = null;

/** `bun scripts/build-web.ts`, then the test pages' own script; once per test process. */
export function buildWeb(): Promise<void> {
  return (built ??= (async () => {
    const web = Bun.spawn(['bun', 'scripts/build-web.ts'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
    if ((await web.exited) !== 0) throw new Error(`build-web failed: ${await new Response(web.stderr).text()}`);
    mkdirSync(BUILT, { recursive: true });
    const result = await Bun.build({
      entrypoints: [path.join(PAGES, 'raw.ts')], outdir: BUILT, target: 'browser', format: 'esm', naming: 'raw.js',
    });
    if (!result.success) throw new Error(`bundling tests/pages/raw.ts failed: ${result.logs.join('\n')}`);
  })());
}

/** The PWA as `ferry serve` ships it, plus /test/<file> from tests/pages (and its built script). */
export async function testAssets(urlPath: string): Promise<Response | null> {
  if (urlPath.startsWith('/test/')) {
    const name = urlPath.slice('/test/'.length);
    if (!/^[a-z0-9-]+\.(html|js)$/.test(name)) return null;
    for (const dir of [BUILT, PAGES]) {
      const file = path.join(dir, name);
      if (existsSync(file)) return new Response(Bun.file(file));
    }
    return null;
  }
  return staticAssets(urlPath);
}

export function startWebServer(deps: Partial<AppDeps> = {}, dir?: string, port = 0): Promise<TestServer> {
  return startServer({ assets: testAssets, ...deps }, dir, port);
}

/** Starts a stopped server again on the same port and data (pages keep their origin and cookies). */
export function startAgain(stopped: TestServer, deps: Partial<AppDeps> = {}): Promise<TestServer> {
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
export async function openApp(device: Device, server: TestServer, options: AppOptions = {}, page?: Page): Promise<Page> {
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
export async function openRaw(device: Device, server: TestServer): Promise<Page> {
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
export async function metric(server: TestServer, name: string): Promise<number> {
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
