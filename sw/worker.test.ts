// installFerry's events against a stand-in for the worker's global scope (fake IndexedDB, a fetch that
// finds no network): what the browser waits for must not wait for the network. The same worker runs in
// real browsers in tests/browser-own-worker.test.ts and the engine scenarios.
import 'fake-indexeddb/auto';
import { expect, test } from 'bun:test';
import { createLocalLock } from '../device/locks.ts';
import { createStore, DB_NAME } from '../device/store.ts';
import { installFerry } from './worker.ts';

type Listener = (event: any) => void;

function fakeScope() {
  const listeners = new Map<string, Listener[]>();
  const lock = createLocalLock();
  let pushes = 0;
  let release: () => void = () => {};
  const outage = new Promise<never>((_, reject) => (release = () => reject(new TypeError('Failed to fetch'))));
  const scope = {
    location: { origin: 'http://127.0.0.1:1' },
    registration: {}, // no Background Sync, as in Firefox and Safari
    clients: { claim: async () => {} },
    navigator: { locks: { request: (name: string, fn: () => Promise<unknown>) => lock.run(name, fn) } },
    // The network is away: a request hangs until the test lets it fail.
    fetch: () => {
      pushes++;
      return outage;
    },
    addEventListener: (type: string, listener: Listener) => listeners.set(type, [...(listeners.get(type) ?? []), listener]),
  };
  /** Dispatches an extendable event; resolves with what the browser would wait for. */
  const dispatch = (type: string) => {
    const held: Promise<unknown>[] = [];
    for (const listener of listeners.get(type) ?? []) listener({ waitUntil: (p: Promise<unknown>) => held.push(p) });
    return Promise.allSettled(held);
  };
  return { scope: scope as unknown as ServiceWorkerGlobalScope, dispatch, pushes: () => pushes, release: () => release() };
}

test('activation ends at once while the drain it starts waits on the missing network', async () => {
  const store = await createStore({ name: DB_NAME });
  await store.enqueue([{ space: 's1', collection: 'items', key: 'milk', kind: 'put', value: { title: 'Milk' } }], Date.now());
  store.close();
  const { scope, dispatch, pushes, release } = fakeScope();
  // A short budget, so the drain also ends within this test: it gives up after its first backoff.
  installFerry(scope, { limits: { waitBudgetMs: 2000 } });

  // Activation holds every request of the pages the worker controls (a reload too), so it must not wait
  // for a drain, which may hang on the network and then back off for up to its budget (30 s by default).
  const activated = dispatch('activate').then(() => 'activated');
  expect(await Promise.race([activated, Bun.sleep(1000).then(() => 'still activating')])).toBe('activated');
  for (let i = 0; i < 100 && pushes() === 0; i++) await Bun.sleep(10);
  expect(pushes()).toBe(1); // the drain did start on activation, and is waiting on the network
  release();
});
