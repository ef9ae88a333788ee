// The app's own Service Worker: Workbox precaches the built app (the manifest is injected by vite.config.ts)
// so it starts offline, and Ferry is installed beside it. This app signs into Ferry with a bearer token,
// which a worker cannot read, so its pages send the outbox; an app on the session cookie gets Background
// Sync from the same line (the worker sends with no page open).
import { installFerry } from '@ferry/client/worker';
import { precacheAndRoute, type PrecacheEntry } from 'workbox-precaching';

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: PrecacheEntry[] };

precacheAndRoute(self.__WB_MANIFEST);
installFerry(self);
self.addEventListener('install', () => void self.skipWaiting());
