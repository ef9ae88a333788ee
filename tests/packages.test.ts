// Proof that Ferry installs as packages (issue: "Ferry as a library any web app can install"). The packages are
// built and packed (`npm pack`), then examples/vite-app/ is copied to a temp dir outside the repo's tree and
// `npm install`s the tarballs and the npm registry's packages only: no path back into this checkout. There it
// type-checks (tsc: its collections are typed by their valibot schemas, so a wrong value must not compile),
// builds with Vite (the page, and its own Service Worker with Workbox precaching and installFerry), and runs
// in Chromium against the built `ferry` binary on another origin (CORS for --origin, bearer tokens handed
// out by the app's own backend): a write made offline survives a reload offline, is sent once the network is
// back and acknowledged, and a second device sees it. The installed `ferry` bin (Node → Bun) makes the user
// and the token, on the same database file. The example's own backend (server/embed.ts) embeds the installed
// server with tokens of its own and the page's schemas, checked over HTTP.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { buildBinary, freePort, serveBinary } from './support/binary.ts';
import { launchDevice, reloadOffline, setOnline, type Device } from './support/browser.ts';
import { until } from './support/ferry-page.ts';

const ROOT = resolve(import.meta.dir, '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TARBALLS = { client: join(ROOT, `dist/packages/ferry-client-${VERSION}.tgz`), server: join(ROOT, `dist/packages/ferry-server-${VERSION}.tgz`) };

let app: string; // the example app's temp dir
let dbDir: string;
let ferry: Awaited<ReturnType<typeof serveBinary>> | undefined;
let backend: ReturnType<typeof Bun.serve> | undefined;
const devices: Device[] = [];

/** Runs a command in `cwd` to completion; throws with its output when it fails. */
async function sh(cmd: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...env } });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited ${code}:\n${out}\n${err}`);
  return out.trim();
}

const timings: Record<string, number> = {};
async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[what] = Math.round(performance.now() - started);
  }
}

/** The example app in a fresh dir outside the repo, its @ferry/* dependencies pointed at the tarballs. */
function copyExample(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-vite-app-'));
  if (!relative(ROOT, dir).startsWith('..')) throw new Error(`${dir} is inside the repo`);
  cpSync(join(ROOT, 'examples/vite-app'), dir, { recursive: true, filter: (p) => !/node_modules|dist$/.test(p) });
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  if (manifest.dependencies['@ferry/client'] !== VERSION) throw new Error(`examples/vite-app wants @ferry/client ${manifest.dependencies['@ferry/client']}, the repo is ${VERSION}`);
  if (manifest.dependencies['@ferry/server'] !== VERSION) throw new Error(`examples/vite-app wants @ferry/server ${manifest.dependencies['@ferry/server']}, the repo is ${VERSION}`);
  manifest.dependencies['@ferry/client'] = `file:${TARBALLS.client}`;
  manifest.dependencies['@ferry/server'] = `file:${TARBALLS.server}`;
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}

beforeAll(async () => {
  await timed('packages build + pack', () => sh([process.execPath, 'scripts/build-packages.ts', '--pack'], ROOT));
  for (const tarball of Object.values(TARBALLS)) expect(existsSync(tarball)).toBe(true);
  app = copyExample();
  // The binary's build after the packages' (both write the demo PWA into client/dist), beside the install.
  const binary = timed('binary build', () => buildBinary());
  // --prefer-offline: what npm's cache already holds is not asked for again (CI's second run is quick).
  await timed('npm install', () => sh(['npm', 'install', '--no-fund', '--no-audit', '--prefer-offline', '--loglevel=error'], app));
  await binary;
  dbDir = mkdtempSync(join(tmpdir(), 'ferry-vite-db-'));
}, 420_000);

afterAll(async () => {
  for (const device of devices) await device.close().catch(() => undefined);
  await backend?.stop(true);
  ferry?.proc.kill();
  await ferry?.proc.exited;
  for (const dir of [app, dbDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  console.log('packages suite timings (ms):', JSON.stringify(timings));
});

test('the installed packages type-check the app (its collections typed by their valibot schemas) and Vite builds it', async () => {
  const tsc = join(app, 'node_modules/.bin/tsc');
  // The page (with src/type-checks.ts, whose @ts-expect-error lines tsc reports as unused if the types were
  // lost), the Service Worker and the embedding backend, each against the packages' .d.ts (no skipLibCheck).
  await timed('tsc', async () => {
    for (const config of ['tsconfig.json', 'tsconfig.sw.json', 'tsconfig.server.json']) await sh([tsc, '-p', config], app);
  });
  // That passing is the check: src/type-checks.ts writes right values (which must compile) and wrong ones
  // under @ts-expect-error (which tsc reports as unused, failing the run, if the schemas' types were lost).
  expect(readFileSync(join(app, 'src/type-checks.ts'), 'utf8').match(/@ts-expect-error/g)?.length).toBe(2);

  await timed('vite build', () => sh([join(app, 'node_modules/.bin/vite'), 'build'], app));
  const sw = readFileSync(join(app, 'dist/sw.js'), 'utf8');
  expect(sw).not.toContain('__WB_MANIFEST'); // the page's files were injected as the precache manifest
  expect(sw).toContain('/index.html');
}, 300_000);

test('the installed server embeds in the app\'s backend: its own tokens through authenticate, the page\'s schemas enforced', async () => {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'ferry-embed-app-'));
  const proc = Bun.spawn([process.execPath, 'server/embed.ts'], { cwd: app, env: { ...process.env, PORT: String(port), DATA: data, APP_SECRET: 'test-secret' }, stdout: 'pipe', stderr: 'pipe' });
  try {
    const base = `http://127.0.0.1:${port}`;
    await until('the embedding backend listens', () => fetch(`${base}/healthz`).then((r) => r.ok, () => false), 60_000);
    const session = (await (await fetch(`${base}/api/session?user=ben`)).json()) as { token: string; space: string };
    const op = (seq: number, value: Record<string, unknown>) => ({
      id: `d1:${seq}`, device: 'd1', seq, lamport: seq, space: session.space, collection: 'items', key: `k${seq}`, kind: 'put', value, at: 0,
    });
    const pushed = await fetch(`${base}/v1/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ protocol: 1, device: 'd1', ops: [op(1, { title: 'Tea', done: false }), op(2, { title: 'Tea', done: 'no' })] }),
    });
    const results = ((await pushed.json()) as { results: { result: string }[] }).results.map((r) => r.result);
    expect(results).toEqual(['applied', 'rejected']); // the second breaks src/schema.ts, on the server too
    const forged = await fetch(`${base}/v1/snapshot?space=${encodeURIComponent(session.space)}`, { headers: { authorization: `Bearer ${session.token}x` } });
    expect(forged.status).toBe(401);
    const snapshot = (await (await fetch(`${base}/v1/snapshot?space=${encodeURIComponent(session.space)}`, {
      headers: { authorization: `Bearer ${session.token}` },
    })).json()) as { entities: { fields: unknown }[] };
    expect(snapshot.entities.map((e) => e.fields)).toEqual([{ title: 'Tea', done: false }]);
    // One origin for both: the built app comes from the same process.
    expect(await (await fetch(`${base}/`)).text()).toContain('<div id="root">');
    expect((await fetch(`${base}/sw.js`)).ok).toBe(true);
  } finally {
    proc.kill();
    await proc.exited;
    rmSync(data, { recursive: true, force: true });
  }
}, 60_000);

test('the installed ferry bin, started by Node without a Bun, says in one sentence what to install', async () => {
  const proc = Bun.spawn([join(app, 'node_modules/.bin/ferry'), 'user', 'list'], {
    cwd: app, env: { ...process.env, FERRY_BUN: '/nonexistent/bun' }, stdout: 'pipe', stderr: 'pipe',
  });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  expect(code).toBe(1);
  expect(err.trim()).toBe('ferry: the server runs on Bun, not Node.js, and "/nonexistent/bun" was not found: install Bun 1.4.4 or later (npm install -g bun), or set FERRY_BUN to its path.');
}, 30_000);

test('the app built with Vite writes offline, reloads offline, syncs across origins once online, and a second device sees it', async () => {
  const dist = join(app, 'dist');

  // Ferry on one origin, the app on another: the binary allows the app's origin (CORS) and nothing else.
  const appPort = await freePort();
  const appOrigin = `http://127.0.0.1:${appPort}`;
  const db = join(dbDir, 'ferry.db');
  const bin = join(app, 'node_modules/.bin/ferry'); // the installed bin, under Node: it re-runs itself with Bun
  const env = { FERRY_BUN: process.execPath };
  const created = await sh([bin, 'user', 'add', 'ada', '--password', 'ada-password-1', '--db', `file:${db}`], app, env);
  const user = /created user ada \(([^)]+)\)/.exec(created)?.[1];
  expect(user).toBeTruthy();
  const token = await sh([bin, 'token', 'create', 'ada', '--name', 'vite-app', '--db', `file:${db}`], app, env);
  ferry = await serveBinary(await buildBinary(), db, dbDir, ['--origin', appOrigin]);

  // The app's own backend: its built files, and the session it hands a signed-in person (src/session.ts).
  const session = { ferryUrl: ferry.base, token, user: user!, space: `u:${user}` };
  backend = Bun.serve({
    hostname: '127.0.0.1',
    port: appPort,
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === '/api/session') return Response.json(session);
      const file = Bun.file(join(dist, pathname === '/' ? 'index.html' : pathname.slice(1)));
      return file.exists().then((found) => (found ? new Response(file) : new Response('not found', { status: 404 })));
    },
  });

  const a = await launchDevice();
  devices.push(a);
  const page = await a.page();
  const state = () => page.getAttribute('#status', 'data-state', { timeout: 1_000 }).catch(() => null);
  const items = () => page.$$eval('#items li', (els) => els.map((e) => `${e.textContent}|${e.getAttribute('data-pending')}`)).catch(() => []);
  await page.goto(appOrigin);
  await until('the app synced with Ferry', async () => (await state()) === 'synced', 60_000);
  // Its own worker controls the page once Workbox precached the build (install) and Ferry claimed it (activate).
  await page.waitForFunction(() => navigator.serviceWorker.controller?.scriptURL.endsWith('/sw.js'), undefined, { timeout: 60_000 });

  await a.context.setOffline(true);
  await page.fill('#title', 'Oat milk');
  await page.click('button[type=submit]');
  await until('the offline write shown, not yet on the server', async () => (await items()).join() === 'Oat milk (not yet on the server)|true');
  await reloadOffline(page); // offline: Workbox serves the shell, IndexedDB the write, the backend's last session the token
  await until('the write still there after an offline reload', async () => (await items()).join() === 'Oat milk (not yet on the server)|true', 60_000);
  expect(await state()).toBe('offline');

  await setOnline(a.context);
  await until('the write acknowledged', async () => (await items()).join() === 'Oat milk|false', 60_000);
  await until('synced with nothing unsent', async () => (await state()) === 'synced' && (await page.textContent('#status'))?.includes('0 unsent'));
  const snapshot = await (await fetch(`${ferry.base}/v1/snapshot?space=${encodeURIComponent(session.space)}`, {
    headers: { authorization: `Bearer ${token}` },
  })).json() as { entities: { collection: string; fields: Record<string, unknown> }[] };
  expect(snapshot.entities.filter((e) => e.collection === 'items').map((e) => e.fields)).toEqual([{ title: 'Oat milk', done: false }]);

  // A second device of the same person: a new browser profile opens the app and sees it.
  const b = await launchDevice();
  devices.push(b);
  const other = await b.page();
  await other.goto(appOrigin);
  await until('the second device shows the write', async () =>
    (await other.$$eval('#items li', (els) => els.map((e) => `${e.textContent}|${e.getAttribute('data-pending')}`)).catch(() => [])).join() === 'Oat milk|false', 60_000);
}, 240_000);
