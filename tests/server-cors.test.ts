// CORS for an app on another origin (PROTOCOL.md §5): the origins the operator allows get their preflight
// answered and every answer readable (with credentials), errors included; any other origin gets none of it.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { makeOps, removeDir, startServer, type TestServer } from './support/server.ts';

const APP = 'http://127.0.0.1:18090';
let server: TestServer;
let user: { id: string; token: string; space: string };

beforeAll(async () => {
  server = await startServer({ origins: [APP], assets: async (path) => (path === '/ferry.js' ? new Response('export {}', { headers: { 'content-type': 'text/javascript' } }) : null) });
  user = await server.user('cory');
});
afterAll(async () => {
  await server.stop();
  removeDir(server.dir);
});

const preflight = (origin: string, method = 'POST') => fetch(`${server.base}/v1/push`, {
  method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type, x-ferry, authorization' },
});

test('an allowed origin: preflight answered with the methods, headers and credentials it needs', async () => {
  const answer = await preflight(APP);
  expect(answer.status).toBe(204);
  expect(answer.headers.get('access-control-allow-origin')).toBe(APP);
  expect(answer.headers.get('access-control-allow-credentials')).toBe('true');
  expect(answer.headers.get('access-control-allow-headers')).toContain('x-ferry');
  expect(answer.headers.get('access-control-allow-headers')).toContain('authorization');
  expect(answer.headers.get('access-control-allow-methods')).toContain('POST');
});

test('an allowed origin reads every answer: a push, an error, the page library', async () => {
  const push = await fetch(`${server.base}/v1/push`, {
    method: 'POST', headers: { origin: APP, authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 1, device: 'cors-dev', ops: makeOps('cors-dev', user.space, 1, 1) }),
  });
  expect(push.status).toBe(200);
  expect(push.headers.get('access-control-allow-origin')).toBe(APP);
  const refused = await fetch(`${server.base}/v1/push`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: '{}' });
  expect(refused.status).toBe(401);
  expect(refused.headers.get('access-control-allow-origin')).toBe(APP);
  const me = await fetch(`${server.base}/v1/me`, { headers: { origin: APP } });
  expect(me.headers.get('access-control-allow-credentials')).toBe('true');
  const library = await fetch(`${server.base}/ferry.js`, { headers: { origin: APP } });
  expect(library.headers.get('access-control-allow-origin')).toBe(APP);
});

test('any other origin: the preflight is refused and no answer carries CORS headers', async () => {
  const answer = await preflight('https://evil.example');
  expect(answer.status).toBe(403);
  expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  const me = await fetch(`${server.base}/v1/me`, { headers: { origin: 'https://evil.example' } });
  expect(me.headers.get('access-control-allow-origin')).toBeNull();
  const same = await fetch(`${server.base}/v1/me`);
  expect(same.headers.get('access-control-allow-origin')).toBeNull(); // same-origin needs none
});
