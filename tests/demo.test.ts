// The demo PWA as a person meets it: the built binary serves it, Chromium installs it, and lists edited
// offline on two devices end up the same everywhere. Screenshots of the main states go to
// test-artifacts/ (phone and desktop width) for a person to look at. The offline round trip runs against
// the server on Deno too (`ferry serve --demo` through server/deno.ts), where there is no binary.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { launchDevice, reloadOffline, setOnline, type Device } from './support/browser.ts';
import { buildBinary, runBinary, serveBinary } from './support/binary.ts';
import { serveCli, type CliServer } from './support/cli-server.ts';
import { until } from './support/ferry-page.ts';
import { removeDir } from './support/server.ts';
import { targets } from './support/targets.ts';

const ARTIFACTS = resolve(import.meta.dir, '../test-artifacts');
const PHONE = { width: 412, height: 915 };
const DESKTOP = { width: 1280, height: 800 };

let binary: string;
let dir: string;
let server: Awaited<ReturnType<typeof serveBinary>>;
let token: string;
const devices: Device[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  binary = await buildBinary();
  dir = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
  server = await serveBinary(binary, join(dir, 'ferry.db'), dir, ['--demo']);
  token = await runBinary(binary, ['token', 'create', 'alice', '--db', `file:${join(dir, 'ferry.db')}`], dir);
}, 120_000);
afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  server?.proc.kill(9);
}, 30_000);

async function open(name: string, base = server.base): Promise<Page> {
  const device = await launchDevice();
  devices.push(device);
  const page = await device.page();
  await page.goto(base);
  await page.fill('#signin-name', name);
  await page.fill('#signin-password', 'ferry-demo');
  await page.click('.signin button[type=submit]');
  await page.waitForSelector('#new-list-name');
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 });
  return page;
}

const statusText = (page: Page) => page.textContent('#status-text');
const synced = (page: Page) => until('synced with nothing pending', async () =>
  (await statusText(page)) === 'Synced' && (await page.textContent('#pending')) === '', 20_000);
const titles = (page: Page) => page.$$eval('.item .title', (els) => els.map((e) => (e as HTMLInputElement).value));
const item = (page: Page, title: string) => page.locator(`.item[data-title="${title}"]`);

async function addItems(page: Page, ...names: string[]) {
  for (const name of names) {
    await page.waitForSelector('#new-item');
    await page.fill('#new-item', name);
    await page.press('#new-item', 'Enter');
    await until(`item ${name}`, async () => (await titles(page)).includes(name));
  }
}

async function rename(page: Page, from: string, to: string) {
  const input = item(page, from).locator('input.title');
  await input.fill(to);
  await input.press('Tab'); // change fires on blur, as when a person moves on
  await until(`renamed ${from}`, async () => (await titles(page)).includes(to));
}

async function shoot(page: Page, state: string, runtime = 'bun') {
  for (const [label, size] of [['phone', PHONE], ['desktop', DESKTOP]] as const) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(ARTIFACTS, `demo-${state}-${label}${runtime === 'bun' ? '' : `-${runtime}`}.png`), fullPage: true });
  }
  await page.setViewportSize(PHONE);
}

/** The server's view of a space, read with a bearer token as any other client would. */
async function serverItems(space: string, base = server.base, bearer = token): Promise<Array<{ title: string; done: boolean }>> {
  const res = await fetch(`${base}/v1/snapshot?space=${encodeURIComponent(space)}&limit=1000`, { headers: { authorization: `Bearer ${bearer}` } });
  const body = (await res.json()) as { entities: Array<{ collection: string; fields: any }> };
  return body.entities.filter((e) => e.collection === 'items').map((e) => ({ title: e.fields.title, done: e.fields.done }))
    .sort((a, b) => a.title.localeCompare(b.title));
}

/** A list made online, edited offline across a reload, synced, and seen on a second device of the same person. */
async function offlineRoundTrip(base: string, bearer: string, runtime: string) {
  const page = await open('alice', base);
  await page.fill('#new-list-name', 'Trip');
  await page.click('text=Add list');
  await page.click('button.pick:has-text("Trip")');
  await addItems(page, 'Tent', 'Map', 'Torch');
  await synced(page);
  await shoot(page, 'synced', runtime);

  await page.context().setOffline(true);
  await reloadOffline(page); // the open socket goes with the page; the shell comes from the Service Worker
  await page.waitForSelector('#new-item');
  await until('offline status', async () => (await statusText(page))?.startsWith('Offline'));
  await addItems(page, 'Stove');
  await rename(page, 'Tent', 'Big tent');
  await item(page, 'Torch').locator('input[type=checkbox]').check();
  await item(page, 'Map').getByRole('button', { name: 'Delete Map' }).click();
  await until('edits shown', async () => !(await titles(page)).includes('Map'));
  await reloadOffline(page); // still offline: items come from IndexedDB
  await page.waitForSelector('.item');
  expect((await titles(page)).sort()).toEqual(['Big tent', 'Stove', 'Torch']);
  expect(Number(await page.textContent('#pending'))).toBeGreaterThan(0);
  expect(await page.locator('.item .unsynced').count()).toBeGreaterThan(0);
  await shoot(page, 'offline-pending', runtime);

  await setOnline(page.context());
  await synced(page);
  expect(await page.locator('.item .unsynced').count()).toBe(0);
  const me = (await (await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${bearer}` } })).json()) as any;
  const personal = me.spaces.find((s: any) => s.personal).id;
  const expected = [{ title: 'Big tent', done: false }, { title: 'Stove', done: false }, { title: 'Torch', done: true }];
  expect(await serverItems(personal, base, bearer)).toEqual(expected);

  const other = await open('alice', base); // a second device of the same person
  await other.click('button.pick:has-text("Trip")');
  await until('the other device shows the list', async () => (await titles(other)).sort().join() === 'Big tent,Stove,Torch');
  expect(await item(other, 'Torch').locator('input[type=checkbox]').isChecked()).toBe(true);
}

describe('Ferry Lists', () => {
  test('is installable: Chromium reports no installability errors', async () => {
    const page = await open('alice');
    const cdp = await page.context().newCDPSession(page);
    const { installabilityErrors } = (await cdp.send('Page.getInstallabilityErrors')) as { installabilityErrors: unknown[] };
    expect(installabilityErrors).toEqual([]);
  }, 60_000);

  test('offline round trip: edits made offline, across an offline reload, reach the server and another device', () =>
    offlineRoundTrip(server.base, token, 'bun'), 120_000);

  test('two devices offline edit the same item: one renames, one checks, both end renamed and checked', async () => {
    const alice = await open('alice');
    await alice.fill('#new-list-name', 'Groceries');
    await alice.click('text=Add shared list');
    await alice.click('button.pick:has-text("Groceries")');
    await alice.click('#list-settings summary');
    await alice.fill('#invite-name', 'bob');
    await alice.click('form[aria-label="Invite a member"] button[type=submit]');
    await until('invited', async () => (await alice.textContent('#members-note'))?.includes('bob'));
    await addItems(alice, 'Milk');
    await synced(alice);

    const bob = await open('bob');
    await bob.click('button.pick:has-text("Groceries")');
    await until('bob sees Milk', async () => (await titles(bob)).includes('Milk'));

    for (const page of [alice, bob]) {
      await page.context().setOffline(true);
      await reloadOffline(page);
      await page.waitForSelector('.item');
    }
    await rename(alice, 'Milk', 'Oat milk');
    await item(bob, 'Milk').locator('input[type=checkbox]').check();
    await until('both edits queued', async () => Number(await alice.textContent('#pending')) > 0 && Number(await bob.textContent('#pending')) > 0);

    for (const page of [alice, bob]) await setOnline(page.context());
    for (const page of [alice, bob]) {
      await until('renamed and checked', async () => {
        const row = item(page, 'Oat milk');
        return (await row.count()) === 1 && (await row.locator('input[type=checkbox]').isChecked());
      }, 30_000);
    }
  }, 120_000);

  test('a list shared to read only: the viewer sees it and a note; a change of theirs is refused and shown, not lost', async () => {
    const alice = await open('alice');
    await alice.fill('#new-list-name', 'Recipes');
    await alice.click('text=Add shared list');
    await alice.click('button.pick:has-text("Recipes")');
    await addItems(alice, 'Soup');
    await alice.click('#list-settings summary');
    await alice.fill('#invite-name', 'bob');
    await alice.selectOption('#invite-role', 'viewer');
    await alice.click('form[aria-label="Invite a member"] button[type=submit]');
    await until('invited to read', async () => (await alice.textContent('#members-note'))?.includes('can now see "Recipes"'));
    await until('listed as viewer', async () => (await alice.textContent('#members'))?.includes('bob (viewer)'));
    await synced(alice);

    const bob = await open('bob');
    await bob.click('button.pick:has-text("Recipes")');
    await until('bob reads Soup', async () => (await titles(bob)).includes('Soup'));
    expect(await bob.textContent('#read-only-note')).toContain('You can only read this list');
    // Written at once on the device (it may be refused and gone before a look at the list would find it).
    await bob.fill('#new-item', 'Cake');
    await bob.press('#new-item', 'Enter');
    await until('refused and shown', async () => (await bob.textContent('#failed-title'))?.includes('the server refused'), 30_000);
    expect(await bob.textContent('.failed')).toContain('read_only');
    await until('gone from the list', async () => !(await titles(bob)).includes('Cake'));
    // Alice, the owner, never sees it.
    await addItems(alice, 'Bread');
    await until('alice has Bread', async () => (await titles(alice)).includes('Bread'));
    expect(await titles(alice)).not.toContain('Cake');
  }, 120_000);

  test('a server that is down shows as failing, keeps the change, and recovers', async () => {
    const page = await open('alice');
    await page.click('button.pick:has-text("Trip")');
    server.proc.kill(9);
    await addItems(page, 'Compass');
    await until('failing or connecting', async () => /Failing|Connecting/.test((await statusText(page)) ?? ''), 30_000);
    await until('failing', async () => (await statusText(page))?.startsWith('Failing'), 60_000);
    await shoot(page, 'failing');
    server = await serveBinary(binary, join(dir, 'ferry.db'), dir, [], server.port); // same origin for the page
    await page.click('text=Sync now');
    await until('synced again', async () => (await statusText(page)) === 'Synced' && (await page.textContent('#pending')) === '', 60_000);
  }, 150_000);
});

for (const runtime of targets().filter((r) => r !== 'bun')) describe(`Ferry Lists served on ${runtime}`, () => {
  let served: CliServer;
  let bearer: string;
  beforeAll(async () => {
    served = await serveCli(['--demo'], mkdtempSync(join(tmpdir(), 'ferry-demo-')), runtime);
    bearer = await served.cli(['token', 'create', 'alice']);
  }, 60_000);
  afterAll(async () => {
    await served?.stop();
    if (served) removeDir(served.dir);
  });

  test('offline round trip: edits made offline, across an offline reload, reach the server and another device', () =>
    offlineRoundTrip(served.base, bearer, runtime), 120_000);
});
