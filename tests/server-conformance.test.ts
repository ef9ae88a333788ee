// Conformance with PROTOCOL.md where a check written from the spec alone found the server disagreeing:
// both push paths enforce the same size limit and answer it with `too_large` (never a bare close), a value
// is a JSON object (never an array), hello's device id keeps the §3 limits, and an unknown space is
// answered like a space the user may not read. Real server, real sockets, real libSQL file, on every
// runtime the server runs on (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Op } from '../core/types.ts';
import { LIMITS } from '../core/limits.ts';
import { call } from './support/http.ts';
import { makeOps, removeDir, startServer } from './support/server.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';
import { helloSocket, openSocket, type TestSocket } from './support/socket.ts';

for (const runtime of targets()) describe(`conformance on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  const sockets: TestSocket[] = [];
  const track = (s: TestSocket) => (sockets.push(s), s);

  beforeAll(async () => {
    server = await startTarget(runtime);
    alice = await server.user('alice');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server.stop();
    removeDir(server.dir);
  });

  const ledgerCount = async (device: string) =>
    Number((await server.client.execute({ sql: 'SELECT count(*) FROM ops WHERE device = ?', args: [device] })).rows[0]![0]);

  /** `count` ops of ~`bytesEach` bytes of value: a batch whose serialized size the test controls. */
  function bigOps(device: string, count: number, bytesEach: number): Op[] {
    return makeOps(device, alice.space, 1, count).map((op) => ({ ...op, key: `${device}-${op.seq}`, value: { text: 'x'.repeat(bytesEach) } }));
  }

  describe('the batch size limit is the same on both paths', () => {
    // ~1.03 MiB of ops: under the old socket frame limit (1 MiB + 64 KiB), over the body limit.
    const overLimit = (device: string) => bigOps(device, 18, 60_000);

    test('over HTTP: 413 too_large, nothing applied', async () => {
      const device = 'big-http';
      const ops = overLimit(device);
      const body = JSON.stringify({ protocol: 1, device, ops });
      expect(body.length).toBeGreaterThan(LIMITS.batchBytes);
      const answer = await call(server.base, '/v1/push', { token: alice.token, body });
      expect(answer.status).toBe(413);
      expect(answer.body.code).toBe('too_large');
      expect(await ledgerCount(device)).toBe(0);
    });

    test('over the socket: an error frame too_large for that rid, nothing applied, the socket stays open', async () => {
      const device = 'big-socket';
      const s = track(await helloSocket(server.ws, alice.token, device));
      const frame = JSON.stringify({ type: 'push', rid: 7, device, ops: overLimit(device) });
      expect(frame.length).toBeGreaterThan(LIMITS.batchBytes);
      s.send(frame);
      const answer = await s.next((f) => f.rid === 7);
      expect(answer).toMatchObject({ type: 'error', code: 'too_large' });
      expect(await ledgerCount(device)).toBe(0);
      // The device halves its batch and goes on, on the same socket.
      s.send({ type: 'push', rid: 8, device, ops: bigOps(device, 9, 60_000) });
      expect(await s.next((f) => f.rid === 8)).toMatchObject({ type: 'ack', through: 9 });
    });

    test('a frame of several MiB is answered too_large too, not closed with 1009', async () => {
      const device = 'huge-socket';
      const s = track(await helloSocket(server.ws, alice.token, device));
      s.send(JSON.stringify({ type: 'push', rid: 1, device, ops: bigOps(device, 50, 60_000) })); // ~3 MiB
      expect(await s.next((f) => f.rid === 1)).toMatchObject({ type: 'error', code: 'too_large' });
      s.send({ type: 'ping', t: 1 });
      expect(await s.next((f) => f.type === 'pong')).toMatchObject({ t: 1 });
    });
  });

  test('a frame over 4 MiB is not processed: the socket is closed with 1009 and nothing is applied', async () => {
    const device = 'giant-socket';
    const s = track(await helloSocket(server.ws, alice.token, device));
    const frame = JSON.stringify({ type: 'push', rid: 1, device, ops: bigOps(device, 80, 60_000) }); // ~4.6 MiB
    expect(frame.length).toBeGreaterThan(LIMITS.socketFrameBytes);
    s.send(frame);
    expect((await s.closed).code).toBe(1009);
    expect(await ledgerCount(device)).toBe(0);
  });

  describe('a value is a JSON object (PROTOCOL §3)', () => {
    for (const kind of ['put', 'patch'] as const) {
      test(`a ${kind} whose value is an array is refused as invalid and changes nothing`, async () => {
        const device = `array-${kind}`;
        const [first] = makeOps(device, alice.space, 1, 1, { key: 'shared', value: { title: 'kept' } });
        expect((await call(server.base, '/v1/push', { token: alice.token, body: { protocol: 1, device, ops: [first] } })).status).toBe(200);
        const bad = { ...makeOps(device, alice.space, 2, 1, { key: 'shared' })[0]!, kind, value: [] };
        const answer = await call(server.base, '/v1/push', { token: alice.token, body: { protocol: 1, device, ops: [bad] } });
        expect(answer.status).toBe(400);
        expect(answer.body).toMatchObject({ code: 'invalid' });
        expect(answer.body.message).toContain('object');
        const snapshot = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(alice.space)}`, { token: alice.token });
        const entity = snapshot.body.entities.find((e: { key: string }) => e.key === 'shared');
        expect(entity.fields).toEqual({ title: 'kept' });
        expect(await ledgerCount(device)).toBe(1);
      });
    }
  });

  describe('hello keeps the device id limits', () => {
    for (const [what, device] of [['empty', ''], ['129 bytes long', 'd'.repeat(LIMITS.idBytes + 1)]] as const) {
      test(`a hello with a device id ${what} is refused as invalid; no push is taken on it`, async () => {
        const s = track(await openSocket(server.ws, alice.token));
        s.send({ type: 'hello', protocol: 1, device });
        expect(await s.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid' });
        s.send({ type: 'push', rid: 1, device, ops: [] });
        await s.next(() => s.frames.filter((f) => f.type === 'error').length === 2);
        expect(s.frames.map((f) => [f.type, f.code])).toEqual([['error', 'invalid'], ['error', 'invalid']]); // never welcomed
      });
    }

    test('a device id of exactly 128 bytes is welcome', async () => {
      const s = track(await openSocket(server.ws, alice.token));
      s.send({ type: 'hello', protocol: 1, device: 'd'.repeat(LIMITS.idBytes) });
      expect(await s.next((f) => f.type === 'welcome' || f.type === 'error')).toMatchObject({ type: 'welcome' });
    });
  });

  describe('an unknown space is answered like one the user may not read (PROTOCOL §8)', () => {
    test('snapshot and subscribe: forbidden for a space that does not exist and for someone else\'s', async () => {
      const bob = await server.user('bob');
      for (const space of ['s:does-not-exist', bob.space]) {
        const snapshot = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(space)}`, { token: alice.token });
        expect([snapshot.status, snapshot.body.code]).toEqual([403, 'forbidden']);
      }
      const s = track(await helloSocket(server.ws, alice.token, 'probe'));
      s.send({ type: 'subscribe', spaces: [{ space: 's:does-not-exist', cursor: 0 }, { space: bob.space, cursor: 0 }] });
      const refusals = await Promise.all([
        s.next((f) => f.type === 'error' && f.space === 's:does-not-exist'),
        s.next((f) => f.type === 'error' && f.space === bob.space),
      ]);
      expect(refusals.map((f) => f.code)).toEqual(['forbidden', 'forbidden']);
      expect(refusals[0].message.replace('s:does-not-exist', 'X')).toBe(refusals[1].message.replace(bob.space, 'X'));
    });
  });
});

describe('app files are cached and revalidated', () => {
  test('an ETag and Cache-Control: no-cache; the same ETag back is a 304 with no body', async () => {
    const files = await startServer({ assets: async (path) => (path === '/app.js' ? new Response('console.log(1)', { headers: { 'content-type': 'text/javascript' } }) : null) });
    try {
      const first = await fetch(`${files.base}/app.js`);
      expect(first.status).toBe(200);
      expect(first.headers.get('cache-control')).toBe('no-cache');
      const etag = first.headers.get('etag');
      expect(etag).toMatch(/^"[0-9a-f]{24}"$/);
      expect(await first.text()).toBe('console.log(1)');
      const again = await fetch(`${files.base}/app.js`, { headers: { 'if-none-match': etag! } });
      expect(again.status).toBe(304);
      expect(await again.text()).toBe('');
      expect((await fetch(`${files.base}/app.js`, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
    } finally {
      await files.stop();
      removeDir(files.dir);
    }
  });
});

test('app files keep their content type through revalidation (a Response made from a file)', async () => {
  const { staticAssets } = await import('../server/assets.ts');
  const files = await startServer({ assets: staticAssets });
  try {
    const page = await fetch(`${files.base}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('etag')).toBeTruthy();
  } finally {
    await files.stop();
    removeDir(files.dir);
  }
});
