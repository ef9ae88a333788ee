// DESIGN invariant 6 against a real listening server: who may push, subscribe and read where; device
// binding; no credentials in URLs; Origin and CSRF checks; the browser session flow; shared spaces. On
// every runtime the server runs on (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { call, fingerprint, handshake, sessionPair } from './support/http.ts';
import { makeOps, push, removeDir } from './support/server.ts';
import { helloSocket, openSocket, type TestSocket } from './support/socket.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

for (const runtime of targets()) describe(`the auth matrix on ${runtime}`, () => {
  const APP_ORIGIN = 'https://app.example';
  let server: Target;
  let alice: User;
  let bob: User;
  let carol: User;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    server = await startTarget(runtime, { origins: [APP_ORIGIN] });
    alice = await server.user('alice');
    bob = await server.user('bob');
    carol = await server.user('carol');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server.stop();
    removeDir(server.dir);
  });

  /** makeOps with a key of its own per op, so every op is `applied` whatever else the space holds. */
  const opsOf = (device: string, space: string, seq: number, count: number, patch: Parameters<typeof makeOps>[4] = {}) =>
    makeOps(device, space, seq, count).map((op) => ({ ...op, key: `${device}/${op.seq}`, ...patch }));
  const track = (s: TestSocket) => (sockets.push(s), s);
  const results = (body: any) => body.results.map((r: any) => [r.seq, r.result, r.code ?? r.first ?? null]);
  /** A round trip on the socket: every frame the server sent before the pong has arrived. */
  async function settle(s: TestSocket) {
    const t = Math.random();
    s.send({ type: 'ping', t });
    await s.next((f) => f.type === 'pong' && f.t === t);
  }

  /**
   * A socket without valid credentials is upgraded and then closed at once with 4401 (PROTOCOL §5: a
   * browser cannot read a refused handshake's status). It tries hello, push and subscribe straight away;
   * none may be answered or have any effect.
   */
  async function refusedSocket(token: string | null, headers: Record<string, string> = {}) {
    const before = await fingerprint(server);
    const s = await openSocket(server.ws, token, headers);
    const dev = `anon-${Math.random().toString(36).slice(2)}`;
    try {
      s.send({ type: 'hello', protocol: 1, device: dev });
      s.send({ type: 'push', rid: 1, device: dev, ops: opsOf(dev, alice.space, 1, 1) });
      s.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
    } catch {
      // already closed: nothing was sent, which is just as good
    }
    const closed = await Promise.race([s.closed, Bun.sleep(5000).then(() => ({ code: -1 }))]);
    expect(await fingerprint(server)).toEqual(before);
    expect(await server.store.device(dev)).toBeNull();
    return { code: closed.code, frames: s.frames };
  }

  async function login(name: string, password = `${name}-password`, headers: Record<string, string> = {}) {
    return call(server.base, '/v1/auth/login', { body: { name, password }, headers });
  }
  async function cookieOf(name: string): Promise<string> {
    const reply = await login(name);
    expect(reply.status).toBe(200);
    return sessionPair(reply)!;
  }
  /** A push authenticated by the session cookie, as the Service Worker sends it. */
  function cookiePush(cookie: string, device: string, ops: unknown[], headers: Record<string, string> = { 'x-ferry': '1' }) {
    return call(server.base, '/v1/push', { cookie, headers, body: { protocol: 1, device, ops } });
  }

  describe('authorization matrix', () => {
    test("B's op into A's personal space is rejected forbidden and consumes its seq", async () => {
      const dev = 'bob-laptop';
      const into = await push(server.base, bob.token, dev, opsOf(dev, alice.space, 1, 1));
      expect(into.status).toBe(200);
      expect(into.body.through).toBe(1);
      expect(into.body.results[0]).toMatchObject({ seq: 1, result: 'rejected', code: 'forbidden' });
      expect(into.body.results[0].message).toContain(alice.space);

      // seq 1 is consumed: the next op is seq 2, and a mixed batch is decided op by op.
      const mixed = [
        ...opsOf(dev, bob.space, 2, 1),
        ...opsOf(dev, alice.space, 3, 1),
        ...opsOf(dev, bob.space, 4, 1),
      ];
      const next = await push(server.base, bob.token, dev, mixed);
      expect(next.status).toBe(200);
      expect(next.body.through).toBe(4);
      expect(results(next.body)).toEqual([[2, 'applied', null], [3, 'rejected', 'forbidden'], [4, 'applied', null]]);

      // A resend is answered with the first (rejected) result, and nothing reached A's space.
      const again = await push(server.base, bob.token, dev, opsOf(dev, alice.space, 1, 1));
      expect(again.body.results[0]).toMatchObject({ result: 'duplicate', first: 'rejected', code: 'forbidden' });
      expect(await server.store.changesSince(alice.space, 0, 10)).toEqual([]);
    });

    test("B cannot subscribe to A's space: an error frame names it, and no change of it ever arrives", async () => {
      const writer = 'alice-sub-writer';
      expect((await push(server.base, alice.token, writer, opsOf(writer, alice.space, 1, 3))).status).toBe(200);
      const s = track(await helloSocket(server.ws, bob.token, 'bob-sub'));
      s.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }, { space: bob.space, cursor: 0 }] });
      const refused = await s.next((f) => f.type === 'error');
      expect(refused).toMatchObject({ type: 'error', code: 'forbidden', space: alice.space });
      await s.next((f) => f.type === 'caught_up' && f.space === bob.space);
      // A live write to A's space after B's subscribe attempt does not reach B either.
      expect((await push(server.base, alice.token, writer, opsOf(writer, alice.space, 4, 1))).status).toBe(200);
      await settle(s);
      expect(s.frames.filter((f) => f.space === alice.space && f.type !== 'error')).toEqual([]);
      expect(s.frames.some((f) => JSON.stringify(f).includes(writer))).toBe(false);
    });

    test("B cannot snapshot A's space (403), A can", async () => {
      const denied = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(alice.space)}`, { token: bob.token });
      expect(denied.status).toBe(403);
      expect(denied.body).toMatchObject({ code: 'forbidden' });
      expect(typeof denied.body.message).toBe('string');
      const missing = await call(server.base, '/v1/snapshot?space=u%3Anobody', { token: bob.token });
      expect(missing.status).toBe(403);
      const own = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(alice.space)}`, { token: alice.token });
      expect(own.status).toBe(200);
      expect(own.body.space).toBe(alice.space);
    });

    test("B cannot reuse A's device id: push gets 403 forbidden and writes nothing", async () => {
      const dev = 'alice-phone';
      expect((await push(server.base, alice.token, dev, opsOf(dev, alice.space, 1, 2))).body.through).toBe(2);
      const before = await fingerprint(server);
      // The next seq, an old seq (which would otherwise reveal A's results) and a mixed batch.
      for (const ops of [opsOf(dev, bob.space, 3, 1), opsOf(dev, alice.space, 1, 1), opsOf(dev, bob.space, 2, 3)]) {
        const r = await push(server.base, bob.token, dev, ops);
        expect(r.status).toBe(403);
        expect(r.body).toMatchObject({ code: 'forbidden' });
        expect(r.body.results).toBeUndefined();
      }
      expect(await fingerprint(server)).toEqual(before);
      expect(await server.store.device(dev)).toMatchObject({ userId: alice.id, lastSeq: 2 });
      // A's device still works for A.
      expect((await push(server.base, alice.token, dev, opsOf(dev, alice.space, 3, 1))).body.through).toBe(3);
    });

    test("B saying hello as A's device gets error forbidden and close 4403; B's push on it never lands", async () => {
      const dev = 'alice-tablet';
      await push(server.base, alice.token, dev, opsOf(dev, alice.space, 1, 1));
      const s = track(await openSocket(server.ws, bob.token));
      s.send({ type: 'hello', protocol: 1, device: dev });
      const refused = await s.next((f) => f.type === 'error');
      expect(refused).toMatchObject({ code: 'forbidden' });
      expect(await s.closed).toMatchObject({ code: 4403 });
      expect(s.frames.some((f) => f.type === 'welcome')).toBe(false);
      expect(await server.store.device(dev)).toMatchObject({ userId: alice.id, lastSeq: 1 });
    });

    test("a socket that said hello as a not-yet-bound device id hears nothing of it once another user binds it", async () => {
      // Bob says hello as a fresh id first; Alice's first push then binds the id to Alice. Bob's socket
      // must not receive Alice's acks (op ids, results, messages) for a device that is not his.
      const dev = 'contested-id';
      const bobSocket = track(await helloSocket(server.ws, bob.token, dev));
      const aliceSocket = track(await helloSocket(server.ws, alice.token, dev));
      const r = await push(server.base, alice.token, dev, opsOf(dev, alice.space, 1, 2));
      expect(r.status).toBe(200);
      await aliceSocket.next((f) => f.type === 'ack' && f.through === 2);
      await settle(bobSocket);
      expect(bobSocket.frames.filter((f) => f.type === 'ack')).toEqual([]);
      // And Bob's push on that socket is refused without touching Alice's device.
      bobSocket.send({ type: 'push', rid: 1, device: dev, ops: opsOf(dev, bob.space, 3, 1) });
      expect(await bobSocket.next((f) => f.rid === 1)).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(await server.store.device(dev)).toMatchObject({ userId: alice.id, lastSeq: 2 });
    });

    test('an unknown or missing credential is 401 auth_required on HTTP and closes the socket with 4401', async () => {
      const before = await fingerprint(server);
      const bad = await push(server.base, 'fy_not-a-token', 'nobody-dev', opsOf('nobody-dev', alice.space, 1, 1));
      expect(bad.status).toBe(401);
      expect(bad.body).toMatchObject({ code: 'auth_required' });
      // `GET /v1/me` answers "nobody" rather than an error: an app asks it at every start (PROTOCOL §5).
      expect(await call(server.base, '/v1/me')).toMatchObject({ status: 200, body: { user: null, spaces: [] } });
      expect(await refusedSocket('fy_not-a-token')).toEqual({ code: 4401, frames: [] });
      expect(await refusedSocket(null)).toEqual({ code: 4401, frames: [] });
      // Garbage session cookies (unknown, badly percent-encoded, empty) are "not signed in", not a crash.
      for (const cookie of ['ferry_session=nope', 'ferry_session=%E0%A4%A', 'ferry_session=', 'ferry_session']) {
        const me = await call(server.base, '/v1/me', { cookie });
        expect({ cookie, status: me.status, body: me.body }).toEqual({ cookie, status: 200, body: { user: null, spaces: [] } });
        expect(await refusedSocket(null, { cookie })).toEqual({ code: 4401, frames: [] });
      }
      expect(await fingerprint(server)).toEqual(before);
    });
  });

  describe('no credentials in URLs', () => {
    test('HTTP: ?token= on push and ?access_token= on snapshot are 400 invalid, even with a valid header', async () => {
      const before = await fingerprint(server);
      const dev = 'url-dev';
      const res = await fetch(`${server.base}/v1/push?token=${alice.token}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ protocol: 1, device: dev, ops: opsOf(dev, alice.space, 1, 1) }),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid' });
      const bare = await call(server.base, `/v1/push?token=${alice.token}`, { body: { protocol: 1, device: dev, ops: opsOf(dev, alice.space, 1, 1) } });
      expect(bare.status).toBe(400); // refused as a URL credential, not merely "no credentials"
      const snap = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(alice.space)}&access_token=${alice.token}`, { token: alice.token });
      expect(snap.status).toBe(400);
      expect(snap.body).toMatchObject({ code: 'invalid' });
      expect((await call(server.base, `/v1/me?auth=${alice.token}`, { token: alice.token })).status).toBe(400);
      expect(await fingerprint(server)).toEqual(before);
      expect(await server.store.device(dev)).toBeNull();
    });

    test('socket: a token in the URL refuses the handshake with 400 invalid', async () => {
      const reply = await handshake(server.base, { path: `/v1/sync?token=${alice.token}`, protocols: ['ferry.v1', `ferry.auth.${alice.token}`] });
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body)).toMatchObject({ code: 'invalid' });
      const access = await handshake(server.base, { path: `/v1/sync?access_token=${alice.token}` });
      expect(access.status).toBe(400);
      // The same handshake without the URL token is accepted, echoing only ferry.v1.
      const ok = await handshake(server.base, { protocols: ['ferry.v1', `ferry.auth.${alice.token}`] });
      expect(ok.status).toBe(101);
      expect(ok.headers['sec-websocket-protocol']).toBe('ferry.v1');
    });
  });

  describe('Origin', () => {
    test('a foreign Origin is refused on the socket handshake with 403, an allowed one is not', async () => {
      const protocols = ['ferry.v1', `ferry.auth.${alice.token}`];
      const foreign = await handshake(server.base, { protocols, headers: { Origin: 'https://evil.example' } });
      expect(foreign.status).toBe(403);
      expect(JSON.parse(foreign.body)).toMatchObject({ code: 'forbidden' });
      // Look-alikes of the allowlisted origin are foreign too: the match is exact.
      for (const origin of ['https://app.example.evil.example', 'http://app.example', 'https://app.example:444', 'null']) {
        expect((await handshake(server.base, { protocols, headers: { Origin: origin } })).status).toBe(403);
      }
      expect((await handshake(server.base, { protocols, headers: { Origin: APP_ORIGIN } })).status).toBe(101);
      expect((await handshake(server.base, { protocols, headers: { Origin: server.base } })).status).toBe(101);
    });

    test('a cookie write from a foreign Origin is 403 forbidden and writes nothing', async () => {
      const cookie = await cookieOf('alice');
      const dev = 'origin-dev';
      const before = await fingerprint(server);
      const foreign = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), { 'x-ferry': '1', origin: 'https://evil.example' });
      expect(foreign.status).toBe(403);
      expect(foreign.body).toMatchObject({ code: 'forbidden' });
      expect(await fingerprint(server)).toEqual(before);
      const allowed = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), { 'x-ferry': '1', origin: APP_ORIGIN });
      expect(allowed.status).toBe(200);
      expect(allowed.body.results[0].result).toBe('applied');
    });

    test('login from a foreign Origin is refused and sets no cookie', async () => {
      const reply = await login('alice', 'alice-password', { origin: 'https://evil.example' });
      expect(reply.status).toBe(403);
      expect(reply.headers.get('set-cookie')).toBeNull();
    });
  });

  describe('browser sessions', () => {
    test('login sets an HttpOnly, SameSite=Strict ferry_session cookie and answers user and spaces', async () => {
      const reply = await login('alice');
      expect(reply.status).toBe(200);
      const header = reply.headers.get('set-cookie')!;
      expect(header).toMatch(/^ferry_session=[A-Za-z0-9_-]{20,};/);
      const attributes = header.split(';').map((p) => p.trim().toLowerCase());
      expect(attributes).toContain('httponly');
      expect(attributes).toContain('samesite=strict');
      expect(attributes).toContain('path=/');
      expect(attributes).not.toContain('secure'); // plain http on 127.0.0.1
      expect(reply.body.user).toEqual({ id: alice.id, name: 'alice' });
      expect(reply.body.spaces).toContainEqual({ id: alice.space, name: "alice's space", personal: true, role: 'owner' });
      // The secret never appears in the body.
      expect(reply.text).not.toContain(sessionPair(reply)!.split('=')[1]!);
      const me = await call(server.base, '/v1/me', { cookie: sessionPair(reply)! });
      expect(me.status).toBe(200);
      expect(me.body.user.id).toBe(alice.id);
    });

    test('a wrong password and an unknown user get the same 401 auth_required, with no cookie', async () => {
      const wrong = await login('alice', 'not-her-password');
      const unknown = await login('mallory', 'whatever');
      for (const r of [wrong, unknown]) {
        expect(r.status).toBe(401);
        expect(r.body).toMatchObject({ code: 'auth_required' });
        expect(r.headers.get('set-cookie')).toBeNull();
      }
      expect(unknown.body).toEqual(wrong.body);
      const malformed = await call(server.base, '/v1/auth/login', { body: { name: 'alice' } });
      expect(malformed.status).toBe(400);
      expect(malformed.headers.get('set-cookie')).toBeNull();
    });

    test('a cookie push needs X-Ferry: 1 and must not be cross-site', async () => {
      const cookie = await cookieOf('alice');
      const dev = 'cookie-dev';
      const before = await fingerprint(server);
      const noHeader = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), {});
      expect(noHeader.status).toBe(403);
      expect(noHeader.body).toMatchObject({ code: 'forbidden' });
      const wrongValue = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), { 'x-ferry': 'yes' });
      expect(wrongValue.status).toBe(403);
      const crossSite = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), { 'x-ferry': '1', 'sec-fetch-site': 'cross-site' });
      expect(crossSite.status).toBe(403);
      expect(crossSite.body).toMatchObject({ code: 'forbidden' });
      expect(await fingerprint(server)).toEqual(before);

      const ok = await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1), { 'x-ferry': '1', 'sec-fetch-site': 'same-origin', origin: server.base });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ through: 1, results: [{ seq: 1, result: 'applied' }] });
      const plain = await cookiePush(cookie, dev, opsOf(dev, alice.space, 2, 1));
      expect(plain.status).toBe(200);
      expect(await server.store.device(dev)).toMatchObject({ userId: alice.id, lastSeq: 2 });
      // Other cookie writes get the same CSRF checks.
      expect((await call(server.base, '/v1/spaces', { cookie, body: { name: 'csrf' } })).status).toBe(403);
      expect((await call(server.base, '/v1/auth/logout', { cookie, method: 'POST' })).status).toBe(403);
    });

    test('a bearer-token push needs no X-Ferry (no ambient credential to forge)', async () => {
      const dev = 'token-dev';
      const r = await push(server.base, alice.token, dev, opsOf(dev, alice.space, 1, 1));
      expect(r.status).toBe(200);
    });

    test('logout ends the session: the same cookie then pushes 401 and /v1/me says nobody', async () => {
      const cookie = await cookieOf('alice');
      expect((await call(server.base, '/v1/me', { cookie })).status).toBe(200);
      const out = await call(server.base, '/v1/auth/logout', { cookie, method: 'POST', headers: { 'x-ferry': '1' } });
      expect(out.status).toBe(200);
      expect(out.headers.get('set-cookie')).toMatch(/^ferry_session=;.*Max-Age=0/);
      const me = await call(server.base, '/v1/me', { cookie });
      expect(me).toMatchObject({ status: 200, body: { user: null, spaces: [] } });
      const dev = 'logged-out-dev';
      expect((await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1))).status).toBe(401);
      expect(await refusedSocket(null, { cookie })).toEqual({ code: 4401, frames: [] });
      // Another session of the same user is untouched.
      expect((await call(server.base, '/v1/me', { cookie: await cookieOf('alice') })).status).toBe(200);
    });

    test('an expired session pushes 401 auth_required and /v1/me says nobody (ttl 1 ms)', async () => {
      const secret = await server.accounts.createSession(alice.id, Date.now(), 1);
      await Bun.sleep(5);
      const cookie = `ferry_session=${secret}`;
      const me = await call(server.base, '/v1/me', { cookie });
      expect(me).toMatchObject({ status: 200, body: { user: null, spaces: [] } });
      const dev = 'expired-dev';
      expect((await cookiePush(cookie, dev, opsOf(dev, alice.space, 1, 1))).status).toBe(401);
      expect(await refusedSocket(null, { cookie })).toEqual({ code: 4401, frames: [] });
      expect(await server.store.device(dev)).toBeNull();
    });

    test('a session expires by the server clock (deps.now)', async () => {
      let clock = Date.now();
      const timed = await startTarget(runtime, { clock, sessionTtlMs: 60_000 });
      try {
        await timed.user('dave');
        const reply = await call(timed.base, '/v1/auth/login', { body: { name: 'dave', password: 'dave-password' } });
        expect(reply.headers.get('set-cookie')).toContain('Max-Age=60');
        const cookie = sessionPair(reply)!;
        await timed.setClock((clock += 59_999));
        expect((await call(timed.base, '/v1/me', { cookie })).body.user).toMatchObject({ name: 'dave' });
        await timed.setClock((clock += 1));
        const expired = await call(timed.base, '/v1/me', { cookie });
        expect(expired).toMatchObject({ status: 200, body: { user: null, spaces: [] } });
        const push = await call(timed.base, '/v1/push', { cookie, headers: { 'x-ferry': '1' }, body: { protocol: 1, device: 'dave-dev', ops: [] } });
        expect([push.status, push.body.code]).toEqual([401, 'auth_required']);
      } finally {
        await timed.stop();
        removeDir(timed.dir);
      }
    });

    test('a socket opened with the cookie from the same origin works end to end', async () => {
      const cookie = await cookieOf('alice');
      const dev = 'cookie-socket';
      const s = track(await openSocket(server.ws, null, { cookie, origin: server.base }));
      expect(s.ws.protocol).toBe('ferry.v1');
      s.send({ type: 'hello', protocol: 1, device: dev });
      expect(await s.next((f) => f.type === 'welcome')).toMatchObject({ user: alice.id, through: 0 });
      s.send({ type: 'push', rid: 7, device: dev, ops: opsOf(dev, alice.space, 1, 2) });
      expect(await s.next((f) => f.rid === 7)).toMatchObject({ type: 'ack', through: 2 });
      s.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
      await s.next((f) => f.type === 'caught_up' && f.space === alice.space);
      // The same cookie from a foreign origin cannot open one (cross-site WebSocket hijacking).
      const hijack = await handshake(server.base, { headers: { cookie, Origin: 'https://evil.example' } });
      expect(hijack.status).toBe(403);
    });
  });

  describe('shared spaces', () => {
    test('the owner creates a space and invites B; B can then push and subscribe; non-owners cannot invite', async () => {
      const created = await call(server.base, '/v1/spaces', { token: alice.token, body: { name: 'groceries' } });
      expect(created.status).toBe(200);
      expect(created.body).toMatchObject({ name: 'groceries', personal: false, role: 'owner' });
      const space: string = created.body.id;
      const members = `/v1/spaces/${encodeURIComponent(space)}/members`;

      // Before the invite B is a stranger to it.
      const dev = 'bob-shared';
      const early = await push(server.base, bob.token, dev, opsOf(dev, space, 1, 1));
      expect(early.body.results[0]).toMatchObject({ result: 'rejected', code: 'forbidden' });
      expect((await call(server.base, `/v1/snapshot?space=${encodeURIComponent(space)}`, { token: bob.token })).status).toBe(403);

      // Non-members and unknown spaces cannot invite.
      const strangerInvite = await call(server.base, members, { token: carol.token, body: { name: 'carol' } });
      expect(strangerInvite.status).toBe(403);
      expect(strangerInvite.body).toMatchObject({ code: 'forbidden' });
      expect((await call(server.base, '/v1/spaces/s%3Anope/members', { token: carol.token, body: { name: 'carol' } })).status).toBe(403);

      const invite = await call(server.base, members, { token: alice.token, body: { name: 'bob' } });
      expect(invite.status).toBe(200);
      expect(invite.body).toEqual({ added: true, user: { id: bob.id, name: 'bob' }, role: 'editor' });
      expect((await call(server.base, members, { token: alice.token, body: { name: 'bob' } })).body.added).toBe(false);
      expect((await call(server.base, members, { token: alice.token, body: { name: 'nobody-here' } })).status).toBe(404);

      // A member who is not the owner cannot invite either.
      const memberInvite = await call(server.base, members, { token: bob.token, body: { name: 'carol' } });
      expect(memberInvite.status).toBe(403);
      expect(await server.accounts.isMember(carol.id, space)).toBe(false);

      const me = await call(server.base, '/v1/me', { token: bob.token });
      expect(me.body.spaces).toContainEqual({ id: space, name: 'groceries', personal: false, role: 'editor' });

      // B pushes (seq 2: seq 1 was consumed by the early rejection) and subscribes.
      const ok = await push(server.base, bob.token, dev, opsOf(dev, space, 2, 1, { key: 'milk', value: { qty: 2 } }));
      expect(ok.status).toBe(200);
      expect(results(ok.body)).toEqual([[2, 'applied', null]]);
      const s = track(await helloSocket(server.ws, bob.token, 'bob-shared-reader'));
      s.send({ type: 'subscribe', spaces: [{ space, cursor: 0 }] });
      await s.next((f) => f.type === 'caught_up' && f.space === space);
      const seen = s.frames.filter((f) => f.type === 'changes' && f.space === space).flatMap((f) => f.entities);
      expect(seen).toEqual([expect.objectContaining({ key: 'milk', fields: { qty: 2 } })]);
      expect(s.frames.some((f) => f.type === 'error')).toBe(false);
      // A's writes to the shared space reach B live.
      const adev = 'alice-shared';
      await push(server.base, alice.token, adev, opsOf(adev, space, 1, 1, { key: 'bread', value: { qty: 1 } }));
      const live = await s.next((f) => f.type === 'changes' && f.entities.some((e: any) => e.key === 'bread'));
      expect(live.space).toBe(space);
      // C, not invited, still cannot.
      const c = await push(server.base, carol.token, 'carol-shared', opsOf('carol-shared', space, 1, 1));
      expect(c.body.results[0]).toMatchObject({ result: 'rejected', code: 'forbidden' });
      // Invited as a viewer, C reads the space but her op is rejected read_only (a dead letter, seq consumed).
      expect((await call(server.base, members, { token: alice.token, body: { name: 'carol', role: 'viewer' } })).body.role).toBe('viewer');
      const read = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(space)}`, { token: carol.token });
      expect(read.body.entities.map((e: any) => e.key).sort()).toEqual(['bread', 'milk']);
      const viewer = await push(server.base, carol.token, 'carol-shared', opsOf('carol-shared', space, 2, 1, { key: 'milk', value: { qty: 99 } }));
      expect([viewer.body.through, results(viewer.body)]).toEqual([2, [[2, 'rejected', 'read_only']]]);
      const after = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(space)}`, { token: carol.token });
      expect(after.body.entities.find((e: any) => e.key === 'milk').fields).toEqual({ qty: 2 });
    });
  });
});
