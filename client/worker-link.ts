// The page's side of the Service Worker: registration with workbox-window (and its update flow),
// Background Sync registration, and requests the worker answers once the drain they asked for is done.
//
// Update flow: a new build installs beside the running worker and waits. By default the page tells it
// to take over at once and reloads when it does — safe because nothing lives in the page's memory
// that is not in IndexedDB. An app that would rather ask the person passes `onUpdate`.
import { Workbox } from 'workbox-window';
import { SYNC_TAG, type WorkerReply, type WorkerRequest } from '../sw/messages.ts';

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
  close(): void;
}

export interface WorkerLinkOptions {
  swUrl: string | false;
  /** A new worker is waiting; call `apply` to switch to it (the page reloads). Default: apply at once. */
  onUpdate?: (apply: () => void) => void;
  /** A worker took control of this page (first install, or an update). */
  onControlled(): void;
}

/** A drain of thousands of ops takes seconds; a worker killed mid-drain never answers at all. */
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export function connectWorker(options: WorkerLinkOptions): WorkerLink {
  const container = typeof navigator !== 'undefined' ? navigator.serviceWorker : undefined;
  if (options.swUrl === false || container === undefined) return noWorker();
  const onControllerChange = () => options.onControlled();
  container.addEventListener('controllerchange', onControllerChange);

  const workbox = new Workbox(options.swUrl);
  workbox.addEventListener('waiting', () => {
    const apply = () => workbox.messageSkipWaiting();
    if (options.onUpdate) options.onUpdate(apply);
    else apply();
  });
  // Only an update reloads: on a first install the page simply becomes controlled.
  workbox.addEventListener('controlling', (event) => {
    if (event.isUpdate) location.reload();
  });
  // Without a worker the page drains itself, so a failed registration costs Background Sync and the
  // offline start, not data; it is reported, not thrown.
  workbox.register({ immediate: true }).catch((error: unknown) => console.warn('ferry: service worker registration failed', error));

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
    close() {},
  };
}
