// A page with the device store and the Service Worker but none of the page library's wake-ups (no
// online listener, no timer, no socket): what reaches the server from here, the worker sent on its own.
// Bundled by tests/support/ferry-page.ts to /test/raw.js.
import { SYNC_TAG } from '../../schema/protocol.ts';
import { createStore, type Store } from '../../device/store.ts';

let store: Store | null = null;
const open = async () => (store ??= await createStore());

const raw = {
  /** Registers /sw.js and resolves once it controls this page. */
  async register(): Promise<void> {
    const container = navigator.serviceWorker;
    await container.register('/sw.js');
    await container.ready;
    if (container.controller === null) {
      await new Promise((resolve) => container.addEventListener('controllerchange', resolve, { once: true }));
    }
  },
  /**
   * Writes `count` puts in transactions of `perTransaction`: op i puts { n: i } at key k<i mod keys>
   * (every op its own key unless `keys` is given). Returns the ms taken.
   */
  async enqueue(count: number, perTransaction: number, space: string, from = 0, keys = Number.MAX_SAFE_INTEGER): Promise<number> {
    const db = await open();
    const started = performance.now();
    for (let i = 0; i < count; i += perTransaction) {
      const n = Math.min(perTransaction, count - i);
      await db.enqueue(Array.from({ length: n }, (_, j) => ({
        space, collection: 'items', key: `k${(from + i + j) % keys}`, kind: 'put' as const, value: { n: from + i + j },
      })), Date.now());
    }
    return performance.now() - started;
  },
  async pending(): Promise<number> {
    return (await (await open()).outboxStats()).count;
  },
  async deviceId(): Promise<string> {
    return (await open()).getDeviceId();
  },
  /** Asks the worker itself to drain, as the page library does where there is no Background Sync (the
   * answer is not awaited). */
  async messageWorker(): Promise<void> {
    await navigator.serviceWorker.ready;
    navigator.serviceWorker.controller!.postMessage({ type: 'drain' }, [new MessageChannel().port2]);
  },
  async registerSync(): Promise<void> {
    const registration = (await navigator.serviceWorker.ready) as ServiceWorkerRegistration & { sync: { register(tag: string): Promise<void> } };
    await registration.sync.register(SYNC_TAG);
  },
};

(window as unknown as { raw: typeof raw }).raw = raw;
(window as unknown as { rawReady: boolean }).rawReady = true;
