// An app's own Service Worker, as most PWAs have one: Workbox precaching its shell, with Ferry installed
// beside it (`installFerry(self)`), which drains the outbox on Background Sync and its fallbacks. Bundled by
// tests/support/ferry-page.ts to /test/own-sw.js for tests/browser-own-worker.test.ts, which injects the
// precache manifest as an app's build would: the page, /ferry.js and the chunks it fetches later.
import { precacheAndRoute, type PrecacheEntry } from 'workbox-precaching';
import { installFerry } from '../../sw/worker.ts';

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: PrecacheEntry[] };

precacheAndRoute(self.__WB_MANIFEST);
installFerry(self);
// The app's own update flow: take over at once (the page reloads nothing: it is the first install here).
self.addEventListener('install', () => void self.skipWaiting());
