// Lighthouse 13 (which needs Node ≥ 22: fetched from npm as `node@22` beside it) audits the demo's
// signed-in screen in the Chromium the test signed in with (same profile: cookie, IndexedDB, Service
// Worker), at phone size: no failing accessibility or best-practices audit. axe-core's checks of more
// screens are in tests/demo-trust.test.ts.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM } from './support/browser.ts';
import { buildWeb, startWebServer, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
let context: BrowserContext;
const profile = mkdtempSync(join(tmpdir(), 'ferry-lighthouse-'));

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  await server.user('lena');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 412, height: 915 },
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-dev-shm-usage', '--remote-debugging-port=0'],
  });
}, 60_000);
afterAll(async () => {
  await context?.close();
  await server.stop();
  removeDir(server.dir);
  removeDir(profile);
});

test('the signed-in screen: no failing accessibility or best-practices audit', async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(server.base);
  await page.fill('#signin-name', 'lena');
  await page.fill('#signin-password', 'lena-password');
  await page.click('.signin button[type=submit]');
  await page.fill('#new-list-name', 'Books');
  await page.click('#add-list');
  for (const title of ['Dune', 'Emma']) {
    await page.fill('#new-item', title);
    await page.press('#new-item', 'Enter');
  }
  await until('items shown', async () => (await page.$$('.item')).length === 2);
  const port = readFileSync(join(profile, 'DevToolsActivePort'), 'utf8').split('\n')[0]!;
  const proc = Bun.spawn(['npx', '-y', '-p', 'node@22', '-p', 'lighthouse@13.5.0', 'lighthouse', server.base, `--port=${port}`,
    '--only-categories=accessibility,best-practices', '--form-factor=mobile', '--output=json', '--output-path=stdout', '--quiet'],
  { stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 150_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`lighthouse exited ${code}: ${err.slice(-1000)}`);
  const report = JSON.parse(out) as {
    categories: Record<string, { score: number; auditRefs: Array<{ id: string }> }>;
    audits: Record<string, { score: number | null; scoreDisplayMode: string; title: string }>;
  };
  const failing = Object.entries(report.categories).flatMap(([category, { auditRefs }]) => auditRefs
    .map((ref) => ({ category, id: ref.id, audit: report.audits[ref.id]! }))
    .filter(({ audit }) => audit.score !== null && audit.score < 1 && ['binary', 'numeric'].includes(audit.scoreDisplayMode))
    .map(({ category: c, id, audit }) => `${c}: ${id} (${audit.title})`));
  console.log(`lighthouse: ${Object.entries(report.categories).map(([c, v]) => `${c} ${Math.round(v.score * 100)}`).join(', ')}`);
  expect(failing).toEqual([]);
}, 240_000);
