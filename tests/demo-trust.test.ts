// Ferry Lists as a person who signs out, shares a browser or gets invited would test it, in Chromium with
// the real Service Worker and IndexedDB against a real server: sign-out (online or not) ends the session
// and every send under it; a second person on the same browser sees none of the first one's data; an
// invitation or a removal shows up live; the status says what is wrong in words, never "Synced" while an
// error stands, never "Failing" for a healthy reconnect, and recovers by itself; a refused edit is shown
// with the typed text kept; and the signed-in screens pass axe-core.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { launchDevice, reloadOffline, setOnline, type Device } from './support/browser.ts';
import { buildWeb, openApp, signIn, startAgain, startWebServer, until } from './support/ferry-page.ts';
import { removeDir, type TestServer } from './support/server.ts';

let server: TestServer;
const devices: Device[] = [];

beforeAll(async () => {
  await buildWeb();
  server = await startWebServer();
  for (const name of ['ann', 'ben', 'cat', 'dev']) await server.user(name);
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(devices.map((d) => d.close())); // a dozen browsers: closed together, not one by one
  await server.stop();
  removeDir(server.dir);
}, 60_000);

async function launch(): Promise<{ device: Device; page: Page; errors: string[] }> {
  const device = await launchDevice();
  devices.push(device);
  const page = await device.page();
  const errors: string[] = [];
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  page.on('pageerror', (error) => errors.push(String(error)));
  // Every state the status bar ever showed, so a test can prove a state never flashed by.
  await page.addInitScript(() => {
    const w = window as unknown as { states: string[] };
    w.states = [];
    new MutationObserver(() => {
      const state = document.getElementById('status')?.dataset.state;
      if (state && w.states.at(-1) !== state) w.states.push(state);
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  });
  return { device, page, errors };
}

async function signInAs(page: Page, name: string) {
  await page.goto(server.base);
  await page.waitForSelector('#signin-name');
  await page.fill('#signin-name', name);
  await page.fill('#signin-password', `${name}-password`);
  await page.click('.signin button[type=submit]');
  await page.waitForSelector('#new-list-name');
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 });
}

const text = (page: Page, selector: string) => page.textContent(selector).then((t) => t ?? '');
const statusText = (page: Page) => text(page, '#status-text');
const states = (page: Page) => page.evaluate(() => (window as unknown as { states: string[] }).states);
const titles = (page: Page) => page.$$eval('.item .title', (els) => els.map((e) => (e as HTMLInputElement).value));
const synced = (page: Page, ms = 20_000) => until('synced with nothing pending', async () =>
  (await statusText(page)) === 'Synced' && (await text(page, '#pending')) === '', ms);

async function addList(page: Page, name: string) {
  await page.fill('#new-list-name', name);
  await page.click('#add-list');
  await page.click(`button.pick:has-text("${name}")`);
}
async function addItem(page: Page, title: string) {
  await page.fill('#new-item', title);
  await page.press('#new-item', 'Enter');
  await until(`item ${title}`, async () => (await titles(page)).includes(title));
}
/** The device ids and names of the IndexedDB databases on this profile. */
const databases = (page: Page) => page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name ?? '').sort());
/** Every entity key of every Ferry device database on this profile, per database. */
const storedKeys = (page: Page) => page.evaluate(async () => {
  const out: Record<string, string[]> = {};
  for (const { name } of await indexedDB.databases()) {
    if (!name || name.endsWith('-profile')) continue;
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = indexedDB.open(name);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const rows = await new Promise<Array<{ key: string }>>((resolve) => {
      const request = db.transaction('entities').objectStore('entities').getAll();
      request.onsuccess = () => resolve(request.result as Array<{ key: string }>);
    });
    out[name] = rows.map((row) => row.key);
    db.close();
  }
  return out;
});
const userId = async (name: string) => (await server.database.client.execute({ sql: 'SELECT id FROM users WHERE name = ?', args: [name] })).rows[0]![0] as string;
const serverOpsOf = async (name: string) => Number((await server.database.client.execute({
  sql: 'SELECT count(*) FROM ops JOIN devices ON devices.id = ops.device WHERE devices.user_id = ?', args: [await userId(name)],
})).rows[0]![0]);

describe('a first visit', () => {
  test('shows the sign-in form calmly: no "Needs sign-in" in red before anyone tried, no console error', async () => {
    const { page, errors } = await launch();
    await page.goto(server.base);
    await page.waitForSelector('#signin-name');
    expect(await statusText(page)).toBe('Signed out');
    expect(await states(page)).not.toContain('auth-required');
    expect(errors).toEqual([]);
  }, 60_000);
});

describe('signing out', () => {
  test('offline: asks first, ends sending at once, stays signed out after reload online, and the change goes when she returns', async () => {
    const { device, page } = await launch();
    await signInAs(page, 'ann');
    await addList(page, 'Errands');
    await addItem(page, 'Post office');
    await synced(page);
    const sentBefore = await serverOpsOf('ann');

    await device.context.setOffline(true);
    await addItem(page, 'Bank');
    await until('1 pending', async () => (await text(page, '#pending')) === '1');
    await page.click('#sign-out');
    await page.waitForSelector('dialog.confirm[open]');
    expect(await text(page, '#signout-title')).toBe('1 change is not on the server yet');
    await page.click('#signout-wait');
    expect(await page.$('#new-item')).not.toBeNull(); // waiting keeps her signed in
    await page.click('#sign-out');
    await page.click('#signout-anyway');
    await page.waitForSelector('#signin-name');

    await device.context.setOffline(false);
    await page.reload();
    await page.waitForSelector('#signin-name'); // not "Signed in as ann": the profile says she signed out
    expect(await page.textContent('body')).not.toContain('Signed in as ann');
    // Nothing left under her session, which the server has ended by now (the reload completed the logout).
    await until('the server session ended', async () => {
      const cookies = await device.context.cookies();
      return !cookies.some((c) => c.name === 'ferry_session');
    });
    expect(await serverOpsOf('ann')).toBe(sentBefore);

    await signInAs(page, 'ann');
    await page.click('button.pick:has-text("Errands")');
    await synced(page);
    expect(await serverOpsOf('ann')).toBe(sentBefore + 1); // her kept change, sent under her new session
  }, 120_000);

  test('a shared browser: the next person sees none of the first one\'s data, is not blocked by it, and wipe removes it', async () => {
    const { device, page } = await launch();
    await signInAs(page, 'ben');
    await addList(page, 'Bens secrets');
    await addItem(page, 'Diary');
    await synced(page);
    await page.click('#sign-out'); // nothing pending: no question
    await page.waitForSelector('#signin-name');

    await signInAs(page, 'cat');
    await synced(page);
    expect(await page.textContent('body')).not.toContain('Bens secrets');
    expect(await page.textContent('body')).not.toContain('Diary');
    expect(await text(page, '#status-detail-text')).toBe('');
    const keys = await storedKeys(page);
    const catId = await userId('cat');
    const catDb = Object.keys(keys).find((name) => name.endsWith(catId))!;
    expect(keys[catDb]).toEqual([]); // cat's own database holds nothing of ben's
    await addList(page, 'Cats list');
    await synced(page);

    // Ben comes back, queues a change offline, and signs out removing his data: his database is gone.
    await page.click('#sign-out');
    await page.waitForSelector('#signin-name');
    await signInAs(page, 'ben');
    await page.click('button.pick:has-text("Bens secrets")');
    await addItem(page, 'Sent');
    await synced(page);
    const benDb = `ferry:${await userId('ben')}`;
    expect(await databases(page)).toContain(benDb);
    await device.context.setOffline(true);
    await addItem(page, 'Unsent');
    await page.click('#sign-out');
    await page.check('#signout-wipe');
    await page.click('#signout-anyway');
    await page.waitForSelector('#signin-name');
    await until('ben\'s database deleted', async () => !(await databases(page)).includes(benDb));
    expect(Object.keys(await storedKeys(page))).toEqual([catDb]);
    await device.context.setOffline(false);
  }, 120_000);
});

describe('membership is live', () => {
  test('an invitation shows up on the invitee\'s open app; a removal takes the list away and turns their queued edit into a dead letter', async () => {
    const owner = await launch();
    const guest = await launch();
    await signInAs(owner.page, 'ann');
    await signInAs(guest.page, 'dev');
    await owner.page.fill('#new-list-name', 'Party');
    await owner.page.click('#add-shared-list');
    await owner.page.click('button.pick:has-text("Party")');
    await owner.page.click('#list-settings summary');
    await owner.page.fill('#invite-name', 'dev');
    await owner.page.click('#invite');
    await until('invited', async () => (await text(owner.page, '#members-note')).includes('dev can now see'));

    // No reload: the guest's list appears by itself.
    await guest.page.waitForSelector('button.pick:has-text("Party")', { timeout: 10_000 });
    await guest.page.click('button.pick:has-text("Party")');
    await addItem(owner.page, 'Cake');
    await until('the guest sees Cake', async () => (await titles(guest.page)).includes('Cake'));

    // The guest goes offline and edits; meanwhile the owner removes them.
    await guest.device.context.setOffline(true);
    await guest.page.locator('.item[data-title="Cake"] input[type=checkbox]').check();
    await until('the guest has a pending edit', async () => (await text(guest.page, '#pending')) === '1');
    await owner.page.click(`#remove-${await userId('dev')}`);
    await until('removed', async () => !(await text(owner.page, '#members')).includes('dev'));
    await guest.device.context.setOffline(false);
    await until('the list is gone from the guest', async () => (await guest.page.$('button.pick:has-text("Party")')) === null, 20_000);
    const failed = await until('a dead letter with the reason', async () => {
      const panel = await guest.page.$('.failed');
      return panel ? panel.textContent() : null;
    }, 20_000);
    expect(failed).toContain('forbidden');
  }, 120_000);
});

describe('the status is honest and calm', () => {
  test('a server that stops: reason in words at once, failing only after the grace, times that move, and recovery by itself', async () => {
    const { page } = await launch();
    await signInAs(page, 'cat');
    await synced(page);
    await server.stop();
    try {
      const stopped = Date.now();
      // Read in one go: the bar repaints every second, so three separate reads could each see another paint.
      await until('connecting with the reason shown and Retry now offered', () => page.evaluate(() =>
        (document.getElementById('status-text')?.textContent ?? '').startsWith('Connecting…')
        && (document.getElementById('status-detail-text')?.textContent ?? '') !== ''
        && document.getElementById('retry-now') !== null));
      expect(await states(page)).not.toContain('failing'); // not red within the grace
      await until('failing once the grace is over', async () => (await statusText(page)).startsWith('Failing: the server can'), 30_000);
      expect(Date.now() - stopped).toBeGreaterThanOrEqual(7_000);
      const first = await text(page, '#status-detail-text');
      await until('the detail line moves on its own', async () => (await text(page, '#status-detail-text')) !== first, 5_000);
    } finally {
      server = await startAgain(server); // also when a check above failed: the next tests need it
    }
    const back = Date.now();
    await synced(page, 30_000); // no click: the socket's reconnect brings it back
    console.log(`recovered ${((Date.now() - back) / 1000).toFixed(1)} s after the server came back`);
  }, 120_000);

  test('a healthy reconnect never flashes failing: coming online after an offline reload, and a 60-change backlog', async () => {
    const { device, page } = await launch();
    await signInAs(page, 'dev');
    await addList(page, 'Backlog');
    await synced(page);
    await device.context.setOffline(true);
    for (let i = 0; i < 60; i++) {
      await page.fill('#new-item', `thing ${i}`);
      await page.press('#new-item', 'Enter');
    }
    await until('60 pending', async () => (await text(page, '#pending')) === '60');
    await reloadOffline(page);
    await page.waitForSelector('.item');
    await page.evaluate(() => { (window as unknown as { states: string[] }).states = []; });
    await setOnline(device.context);
    await synced(page, 30_000);
    expect(await states(page)).not.toContain('failing');
  }, 120_000);

  test('refusals reach the person with the reason, and the typed text stays: a 100,000-character item, a huge rename, an empty one', async () => {
    const { page, errors } = await launch();
    await signInAs(page, 'ann');
    await page.click('button.pick:has-text("Errands")');
    await synced(page);
    const huge = 'x'.repeat(100_000);
    await page.fill('#new-item', huge);
    await page.press('#new-item', 'Enter');
    await until('the reason shown', async () => (await text(page, '#new-item-note')).includes('limit'));
    expect(await page.inputValue('#new-item')).toBe(huge);
    expect(await text(page, '#pending')).toBe('');
    const row = page.locator('.item').first();
    const key = await row.getAttribute('data-key');
    const before = await row.locator('input.title').inputValue();
    await row.locator('input.title').fill(huge);
    await row.locator('input.title').press('Tab');
    await until('the rename refused in words', async () => (await text(page, `#note-${key}`)).includes('limit'));
    await page.locator(`#title-${key}`).fill('');
    await page.locator(`#title-${key}`).press('Tab');
    await until('an empty name refused', async () => (await text(page, `#note-${key}`)).includes('needs a name'));
    expect(await page.inputValue(`#title-${key}`)).toBe(before);
    expect(errors.filter((e) => /FerryError|Uncaught/.test(e))).toEqual([]);
  }, 120_000);
});

describe('a promise keeps its word', () => {
  test('when syncNow() resolves, the status it promises is already true (the worker drained)', async () => {
    const { device } = await launch();
    const page = await openApp(device, server);
    const { spaces } = await signIn(page, 'cat');
    await device.context.setOffline(true);
    await page.evaluate((space) => (window as any).ferry.collection(space, 'items').put('stamp', { n: 1 }), spaces[0].id);
    await device.context.setOffline(false);
    const after = await page.evaluate(async () => {
      const ferry = (window as any).ferry;
      await ferry.syncNow();
      return ferry.status();
    });
    expect(after).toMatchObject({ pending: 0, inFlight: 0, lastError: null });
    expect(after.state).not.toBe('failing');
  }, 60_000);
});

describe('a person using the keyboard, quickly', () => {
  test('30 items added as fast as the keys allow keep their order; focus stays on the control used', async () => {
    const { page } = await launch();
    await signInAs(page, 'ben');
    await addList(page, 'Fast');
    const names = Array.from({ length: 30 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    for (const name of names) {
      await page.fill('#new-item', name);
      await page.press('#new-item', 'Enter');
    }
    await until('30 items', async () => (await titles(page)).length === 30);
    expect(await titles(page)).toEqual(names);

    const key = await page.locator('.item').nth(5).getAttribute('data-key');
    await page.focus(`#done-${key}`);
    await page.keyboard.press('Space');
    await until('checked', async () => page.isChecked(`#done-${key}`));
    expect(await page.evaluate(() => document.activeElement?.id)).toBe(`done-${key}`);
    await page.focus(`#up-${key}`);
    await page.keyboard.press('Enter');
    await until('moved up', async () => (await titles(page))[4] === names[5]);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe(`up-${key}`);
  }, 120_000);
});

describe('accessibility', () => {
  test('axe-core finds no violations on the signed-in screens (lists, settings and members, the sign-out question)', async () => {
    const { device, page } = await launch();
    await signInAs(page, 'ann');
    await page.click('button.pick:has-text("Party")').catch(() => page.click('button.pick'));
    const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const check = async (what: string) => {
      await page.addScriptTag({ content: axe });
      const result = await page.evaluate(async () => {
        const run = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: Array<{ id: string; nodes: unknown[] }> }> } }).axe.run;
        return run(document, { resultTypes: ['violations'] });
      });
      expect({ what, violations: result.violations.map((v) => `${v.id} (${v.nodes.length})`) }).toEqual({ what, violations: [] });
    };
    await check('lists');
    await page.click('#list-settings summary');
    await page.waitForSelector('#members h3').catch(() => undefined);
    await check('settings and members');
    await device.context.setOffline(true);
    await addItem(page, 'Balloons');
    await page.click('#sign-out');
    await page.waitForSelector('dialog.confirm[open]');
    await check('the sign-out question');
    await page.click('#signout-wait');
  }, 120_000);
});
