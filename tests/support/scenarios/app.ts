// The page library in any engine's tab (tests/support/engines/): open /test/app.html and start Ferry,
// sign in, read the status and the rows. Waits inside a page are bounded loops, so a page that never
// gets there fails with what it last saw instead of hanging the driver.
import type { Tab } from '../engines/types.ts';
import { until } from '../ferry-page.ts';

export interface StartOptions {
  /** false: no Service Worker, this page drains itself. */
  swUrl?: false;
  /** Wait until the worker controls the page (default with a worker). */
  controlled?: boolean;
}

/** Waits in the page until `window[flag]` is true. */
const ready = (tab: Tab, flag: string) => tab.run(async (flag: string) => {
  for (let i = 0; i < 300 && (window as any)[flag] !== true; i++) await new Promise((r) => setTimeout(r, 50));
  if ((window as any)[flag] !== true) throw new Error(`the page never set window.${flag}`);
}, flag);

/** Starts `window.ferry` in a tab already on /test/app.html, recording every status it reports. */
export async function startFerry(tab: Tab, options: StartOptions = {}): Promise<void> {
  await ready(tab, 'ferryReady');
  await tab.run(async (swUrl: false | null) => {
    const w = window as any;
    w.statuses = [];
    w.ferry = await w.Ferry.createFerry(swUrl === false ? { swUrl: false } : {});
    w.ferry.onStatus((s: any) => w.statuses.push({ ...s, at: Date.now() }));
  }, options.swUrl ?? null);
  if (options.swUrl !== false && options.controlled !== false) {
    await until('the Service Worker to control the page', () => tab.run(() => navigator.serviceWorker.controller !== null), 20_000);
  }
}

/** Opens /test/app.html on `base` and starts Ferry there. */
export async function openFerry(tab: Tab, base: string, options: StartOptions = {}): Promise<void> {
  await tab.goto(`${base}/test/app.html`);
  await startFerry(tab, options);
}

/** Opens /test/raw.html (the store and the worker, none of the page library's wake-ups). */
export async function openRaw(tab: Tab, base: string): Promise<void> {
  await tab.goto(`${base}/test/raw.html`);
  await ready(tab, 'rawReady');
  await tab.run(() => (window as any).raw.register());
}

export interface Account {
  user: { id: string };
  spaces: [{ id: string }];
}

/** Signs in as the app does (the session cookie lands in the profile), then tells Ferry. */
export function signIn(tab: Tab, name: string): Promise<Account> {
  return tab.run(async (who: string) => {
    const w = window as any;
    const account = await w.Ferry.login(location.origin, who, `${who}-password`);
    await w.ferry.signedIn();
    return account;
  }, name);
}

/** POST /v1/auth/login with the page's own fetch (raw.html has no library). */
export function rawSignIn(tab: Tab, name: string): Promise<Account> {
  return tab.run(async (who: string) => {
    const res = await fetch('/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: who, password: `${who}-password` }),
    });
    if (!res.ok) throw new Error(`login ${res.status}: ${await res.text()}`);
    return res.json();
  }, name);
}

export const status = (tab: Tab): Promise<any> => tab.run(() => (window as any).ferry.status());
export const deviceId = (tab: Tab): Promise<string> => tab.run(() => (window as any).ferry.deviceId);

export interface Row {
  key: string;
  value: any;
  pending: boolean;
}

export const rows = (tab: Tab, space: string, collection = 'items'): Promise<Row[]> =>
  tab.run(({ space, collection }: { space: string; collection: string }) =>
    (window as any).ferry.collection(space, collection).all(), { space, collection });

/** Puts `count` items k<from>…, each its own write, all at once. */
export const putMany = (tab: Tab, space: string, from: number, count: number): Promise<void> =>
  tab.run(async ({ space, from, count }: { space: string; from: number; count: number }) => {
    const items = (window as any).ferry.collection(space, 'items');
    await Promise.all(Array.from({ length: count }, (_, i) => items.put(`k${from + i}`, { n: from + i })));
  }, { space, from, count });

/** Waits for the page's status to match `want` (every key equal); returns it. */
export function statusUntil(tab: Tab, what: string, want: (s: any) => boolean, ms = 30_000): Promise<any> {
  return until(what, async () => {
    const s = await status(tab);
    return want(s) ? s : null;
  }, ms);
}

/**
 * Starts recording, in the page, every drainer status broadcast on the device's channel (the worker's
 * and the pages', each with its `source`).
 */
export const recordDrains = (tab: Tab): Promise<void> => tab.run(() => {
  const w = window as any;
  w.drains = [];
  w.drainChannel?.close();
  w.drainChannel = new BroadcastChannel('ferry');
  w.drainChannel.onmessage = (event: MessageEvent) => {
    if (event.data?.type === 'status') w.drains.push(event.data.status);
  };
});

export const drains = (tab: Tab): Promise<any[]> => tab.run(() => (window as any).drains);
