// The page's side of the Service Worker: registration with workbox-window (and its update flow),
// Background Sync registration, and requests the worker answers once the drain they asked for is done.
//
// Update flow: a new build installs beside the running worker and waits. By default the page tells it
// to take over at once and reloads when it does — safe because nothing lives in the page's memory
// that is not in IndexedDB. An app that would rather ask the person passes `onUpdate`.
//
// workbox-window is a chunk of its own (`import()`): registering is never on the way to the first render.
import { SYNC_TAG } from '../schema/protocol.ts';
import type { WorkerReply, WorkerRequest } from '../device/messages.ts';

/** Background Sync's part of the registration, missing from the DOM lib (see sw/sw-types.d.ts). */
interface SyncRegistration {
  sync?: { register(tag: string): Promise<void> };
}

export type DrainRequest = Exclude<WorkerRequest['type'], 'SKIP_WAITING'>;

export interface WorkerLink {
  /** A Service Worker controls this page: it drains, the page only wakes it. */
  controlled(): boolean;
  /** Asks the controlling worker to drain (or resume, or leave auth-required); resolves with its answer. */
  request(kind: DrainRequest, timeoutMs?: number): Promise<WorkerReply>;
  /** Asks the browser for a `sync` event (now if online, else once it is). False where unsupported. */
  registerSync(): Promise<boolean>;
  /** A worker controls this page and the browser has Background Sync (Chromium; not Firefox, Safari). */
  backgroundSync(): Promise<boolean>;
  close(): void;
}

export interface WorkerLinkOptions {
  swUrl: string | false;
  /** A new worker is waiting; call `apply` to switch to it (the page reloads). Default: apply at once. */
  onUpdate?: (apply: () => void) => void;
  /** A worker took control of this page (first install, or an update). */
  onControlled(): void;
}

/** One Workbox per worker URL for the page's lifetime, however often Ferry is opened and closed. */
const registered = new Map<string, { onUpdate?: (apply: () => void) => void }>();

/**
 * Registers the app's Service Worker (once per URL) with the update flow above, so its shell is cached
 * on the first visit, before anyone signs in. `createFerry` calls it too; the latest `onUpdate` is used.
 */
export function registerWorker(swUrl = '/sw.js', onUpdate?: (apply: () => void) => void): void {
  if (typeof navigator === 'undefined' || navigator.serviceWorker === undefined) return;
  const known = registered.get(swUrl);
  if (known) {
    known.onUpdate = onUpdate ?? known.onUpdate;
    return;
  }
  const entry: { onUpdate?: (apply: () => void) => void } = { onUpdate };
  registered.set(swUrl, entry);
  // Without a worker the page drains itself, so a failed registration costs Background Sync and the
  // offline start, not data; it is reported, not thrown (and tried again by the next call).
  void (async () => {
    const { Workbox } = await import('workbox-window');
    const workbox = new Workbox(swUrl);
    workbox.addEventListener('waiting', () => {
      const apply = () => workbox.messageSkipWaiting();
      if (entry.onUpdate) entry.onUpdate(apply);
      else apply();
    });
    // Only an update reloads: on a first install the page simply becomes controlled.
    workbox.addEventListener('controlling', (event) => {
      if (event.isUpdate) location.reload();
    });
    await workbox.register({ immediate: true });
  })().catch((error: unknown) => {
    registered.delete(swUrl);
    console.warn('ferry: service worker registration failed', error);
  });
}

/** A drain of thousands of ops takes seconds; a worker killed mid-drain never answers at all. */
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export function connectWorker(options: WorkerLinkOptions): WorkerLink {
  const container = typeof navigator !== 'undefined' ? navigator.serviceWorker : undefined;
  if (options.swUrl === false || container === undefined) return noWorker();
  const onControllerChange = () => options.onControlled();
  container.addEventListener('controllerchange', onControllerChange);

  registerWorker(options.swUrl, options.onUpdate);

  return {
    controlled: () => container.controller !== null,

    request(kind, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS) {
      const controller = container.controller;
      if (controller === null) return Promise.reject(new Error('No service worker controls this page.'));
      const channel = new MessageChannel();
      return new Promise<WorkerReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          channel.port1.close();
          reject(new Error(`The service worker did not answer within ${timeoutMs / 1000} s.`));
        }, timeoutMs);
        channel.port1.onmessage = (event: MessageEvent<WorkerReply>) => {
          clearTimeout(timer);
          channel.port1.close();
          resolve(event.data);
        };
        const message: WorkerRequest = { type: kind };
        controller.postMessage(message, [channel.port2]);
      });
    },

    async registerSync() {
      if (container.controller === null) return false;
      const registration = (await container.ready) as ServiceWorkerRegistration & SyncRegistration;
      if (registration.sync === undefined) return false;
      try {
        await registration.sync.register(SYNC_TAG);
        return true;
      } catch {
        return false; // e.g. the permission is off: the caller falls back to messaging the worker
      }
    },

    async backgroundSync() {
      if (container.controller === null) return false;
      const registration = (await container.ready) as ServiceWorkerRegistration & SyncRegistration;
      return registration.sync !== undefined;
    },

    close() {
      container.removeEventListener('controllerchange', onControllerChange);
    },
  };
}

function noWorker(): WorkerLink {
  return {
    controlled: () => false,
    request: () => Promise.reject(new Error('No service worker.')),
    registerSync: async () => false,
    backgroundSync: async () => false,
    close() {},
  };
}
