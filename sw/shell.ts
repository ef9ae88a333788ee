// The app-shell cache, so the app opens with no network at all: the files of this build are cached
// on install, and page loads and those files go network-first (a person online always gets the
// newest app; a build's files are not content-hashed, so cache-first would pin an old one) with the
// cache as the fallback. shell-policy.ts decides what is ever cached: never the API.
import { apiPrefixOf, navigationKey, routeOf, type ShellScope, shellCacheName, staleCaches } from './shell-policy.ts';

export interface ShellOptions {
  /** Same-origin URLs to cache on install, e.g. `/`, `/app.js`. */
  precache: readonly string[];
  /** Changes whenever a precached file does: names the cache, so two builds never mix. */
  version: string;
  /** The server URL (for its API prefix, which is never cached). */
  serverUrl: string;
  /** How long a page load waits for the network before the cached page is shown. */
  navigationTimeoutMs?: number;
}

export interface Shell {
  /** Deletes the caches of earlier builds; call once this worker is active. */
  cleanup(): Promise<void>;
}

const DEFAULT_NAVIGATION_TIMEOUT_MS = 4000;

export function installShell(scope: ServiceWorkerGlobalScope, options: ShellOptions): Shell {
  const origin = scope.location.origin;
  const cacheName = shellCacheName(options.version);
  const shellScope: ShellScope = {
    origin,
    apiPrefix: apiPrefixOf(options.serverUrl),
    assets: new Set(options.precache.map((url) => new URL(url, origin).pathname)),
  };
  const timeoutMs = options.navigationTimeoutMs ?? DEFAULT_NAVIGATION_TIMEOUT_MS;

  scope.addEventListener('install', (event) => event.waitUntil(precache(options.precache, cacheName)));

  scope.addEventListener('fetch', (event) => {
    const route = routeOf(event.request, shellScope);
    if (route === 'pass') return;
    const key = route === 'navigate' ? navigationKey(event.request.url) : event.request.url;
    event.respondWith(networkFirst(event, cacheName, key, route === 'navigate' ? timeoutMs : null, origin));
  });

  return {
    async cleanup() {
      for (const name of staleCaches(await scope.caches.keys(), options.version)) await scope.caches.delete(name);
    },
  };
}

/**
 * One file missing (an icon the app dropped) must not fail the install: without an installed worker
 * there is no Background Sync either, which costs far more than one uncached icon.
 */
async function precache(urls: readonly string[], cacheName: string): Promise<void> {
  const cache = await caches.open(cacheName);
  const results = await Promise.allSettled(urls.map(async (url) => {
    // `reload`: the HTTP cache may hold the previous build's file.
    const response = await fetch(new Request(url, { cache: 'reload' }));
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    await cache.put(url, response);
  }));
  for (const result of results) {
    if (result.status === 'rejected') console.warn('ferry: not precached', result.reason);
  }
}

async function networkFirst(event: FetchEvent, cacheName: string, key: string, timeoutMs: number | null, origin: string): Promise<Response> {
  const cache = await caches.open(cacheName);
  const network = fetch(event.request).then(async (response) => {
    // Only a good same-origin answer replaces what the person would see offline.
    if (response.ok && response.type === 'basic') await cache.put(key, response.clone());
    return response;
  });
  // The cache is refreshed even when the timeout below lets the cached page win the race.
  event.waitUntil(network.then(() => undefined, () => undefined));
  try {
    return await (timeoutMs === null ? network : Promise.race([network, rejectAfter(timeoutMs)]));
  } catch (error) {
    const cached = (await cache.match(key)) ?? (event.request.mode === 'navigate' ? await cache.match(`${origin}/`) : undefined);
    if (cached) return cached;
    // Nothing cached: let the page see the network's own failure (or the slow answer, once it comes).
    return timeoutMs === null ? Promise.reject(error) : network;
  }
}

function rejectAfter(ms: number): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms));
}
