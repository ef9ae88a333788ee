// Which requests the app-shell cache may answer. Pure, so the rule that matters most — the sync API is
// never cached, an old answer there would be a lie about the person's data — is tested without a worker.

export type ShellRoute =
  /** A page load: network first (fresh app when online), the cached page when not. */
  | 'navigate'
  /** A precached file (script, style, icon, manifest): network first, cache when offline. */
  | 'asset'
  /** Everything else goes to the network untouched, the API above all. */
  | 'pass';

export interface RequestLike {
  method: string;
  mode: string;
  url: string;
}

export interface ShellScope {
  /** The worker's origin; other origins are never cached. */
  origin: string;
  /** The server's API prefix, e.g. `/v1/` (or `/base/v1/` when mounted under a path). */
  apiPrefix: string;
  /** Pathnames of the precached files. */
  assets: ReadonlySet<string>;
}

/** Paths the server answers live that are not under the API prefix. */
const LIVE_PATHS = new Set(['/healthz', '/metrics']);

export function routeOf(request: RequestLike, scope: ShellScope): ShellRoute {
  if (request.method !== 'GET') return 'pass';
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return 'pass';
  }
  if (url.origin !== scope.origin) return 'pass';
  if (url.pathname.startsWith(scope.apiPrefix) || LIVE_PATHS.has(url.pathname)) return 'pass';
  if (request.mode === 'navigate') return 'navigate';
  return scope.assets.has(url.pathname) ? 'asset' : 'pass';
}

/** The API prefix of a server URL: `https://x.example` → `/v1/`, `https://x.example/sync` → `/sync/v1/`. */
export function apiPrefixOf(serverUrl: string): string {
  const path = new URL(serverUrl).pathname.replace(/\/+$/, '');
  return `${path}/v1/`;
}

/** The cache key of a navigation: its path without the query, so `/?utm=…` does not grow the cache. */
export function navigationKey(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

export const SHELL_CACHE_PREFIX = 'ferry-shell-';

export function shellCacheName(version: string): string {
  return `${SHELL_CACHE_PREFIX}${version}`;
}

/** Caches left by earlier builds, to delete once this one is active. */
export function staleCaches(names: readonly string[], version: string): string[] {
  const current = shellCacheName(version);
  return names.filter((name) => name.startsWith(SHELL_CACHE_PREFIX) && name !== current);
}
