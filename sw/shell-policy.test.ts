// The app-shell cache's rules: the API and other origins are never answered from the cache; page
// loads and the build's files are; old builds' caches are found for deletion.
import { describe, expect, test } from 'bun:test';
import { apiPrefixOf, navigationKey, routeOf, type ShellScope, staleCaches } from './shell-policy.ts';

const scope: ShellScope = { origin: 'https://app.test', apiPrefix: '/v1/', assets: new Set(['/', '/app.js', '/icons/icon-192.png']) };
const get = (url: string, mode = 'no-cors') => ({ method: 'GET', mode, url });

describe('shell policy', () => {
  test('never the sync API, health or metrics, nor another origin, nor a write', () => {
    expect(routeOf(get('https://app.test/v1/snapshot?space=s'), scope)).toBe('pass');
    expect(routeOf(get('https://app.test/v1/me', 'navigate'), scope)).toBe('pass');
    expect(routeOf(get('https://app.test/healthz'), scope)).toBe('pass');
    expect(routeOf(get('https://app.test/metrics', 'navigate'), scope)).toBe('pass');
    expect(routeOf({ method: 'POST', mode: 'cors', url: 'https://app.test/app.js' }, scope)).toBe('pass');
    expect(routeOf(get('https://cdn.test/app.js'), scope)).toBe('pass');
  });

  test('page loads and the precached files are the shell; anything else passes', () => {
    expect(routeOf(get('https://app.test/lists/42?x=1', 'navigate'), scope)).toBe('navigate');
    expect(routeOf(get('https://app.test/app.js'), scope)).toBe('asset');
    expect(routeOf(get('https://app.test/icons/icon-192.png'), scope)).toBe('asset');
    expect(routeOf(get('https://app.test/other.js'), scope)).toBe('pass');
  });

  test('a server mounted under a path keeps its API prefix uncached', () => {
    expect(apiPrefixOf('https://app.test')).toBe('/v1/');
    expect(apiPrefixOf('https://app.test/sync/')).toBe('/sync/v1/');
    const mounted = { ...scope, apiPrefix: apiPrefixOf('https://app.test/sync') };
    expect(routeOf(get('https://app.test/sync/v1/push'), mounted)).toBe('pass');
  });

  test('navigations are cached by path; caches of other builds are stale', () => {
    expect(navigationKey('https://app.test/?utm=x#top')).toBe('https://app.test/');
    expect(staleCaches(['ferry-shell-a', 'ferry-shell-b', 'other-app'], 'b')).toEqual(['ferry-shell-a']);
  });
});
