// Membership is live, and a credential ends where it is used: the spaces API (create, members, invite as an
// editor or a viewer, change a role, remove, leave, rename) tells every socket of the affected users at once with a `spaces` frame; a removed
// member's socket stops hearing the space and their queued ops for it are rejected `forbidden`; a sign-out
// or a revoked token closes the sockets that were opened with it (4401). Roles: only the owner manages
// members; a viewer reads everything and every op of theirs is rejected `read_only`, answered the same on
// every resend. Real server, sockets and file.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { call } from './support/http.ts';
import { makeOps, push, removeDir, startServer, type TestServer } from './support/server.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';

let server: TestServer;
let alice: { id: string; token: string; space: string };
let bob: { id: string; token: string; space: string };
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => (sockets.push(s), s);

beforeAll(async () => {
  server = await startServer();
  alice = await server.user('alice');
  bob = await server.user('bob');
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await server.stop();
  removeDir(server.dir);
});

const api = (token: string, path: string, method: string, body?: unknown) =>
  call(server.base, path, { token, method, ...(body === undefined ? {} : { body }) });

/** The next `spaces` frame after `after` frames. */
const nextSpaces = (s: TestSocket, after: number) =>
  s.next((f) => f.type === 'spaces' && s.frames.indexOf(f) >= after, 3000);

describe('the spaces API, told live to every socket of the people it concerns', () => {
  let shared: string;

  test('a new shared space reaches the owner\'s sockets; an invitation reaches the invitee\'s at once', async () => {
    const aliceSocket = track(await helloSocket(server.ws, alice.token, 'alice-phone'));
    const bobSocket = track(await helloSocket(server.ws, bob.token, 'bob-phone'));
    const created = await api(alice.token, '/v1/spaces', 'POST', { name: 'Groceries' });
    expect(created.status).toBe(200);
    shared = created.body.id;
    expect((await nextSpaces(aliceSocket, 0)).spaces.map((s: { name: string }) => s.name)).toContain('Groceries');

    const invited = await api(alice.token, `/v1/spaces/${shared}/members`, 'POST', { name: 'bob' });
    expect(invited.body).toMatchObject({ added: true, user: { name: 'bob' } });
    const frame = await nextSpaces(bobSocket, 0);
    expect(frame.spaces).toContainEqual({ id: shared, name: 'Groceries', personal: false, role: 'editor' });
    const members = await api(bob.token, `/v1/spaces/${shared}/members`, 'GET');
    expect(members.body.members.map((m: { name: string; role: string }) => [m.name, m.role])).toEqual([['alice', 'owner'], ['bob', 'editor']]);
  });

  test('only the owner invites, removes and renames; the owner cannot leave; a stranger is forbidden, existing or not', async () => {
    expect((await api(bob.token, `/v1/spaces/${shared}/members`, 'POST', { name: 'alice' })).status).toBe(403);
    expect((await api(bob.token, `/v1/spaces/${shared}`, 'PATCH', { name: 'Mine now' })).status).toBe(403);
    expect((await api(bob.token, `/v1/spaces/${shared}/members/${alice.id}`, 'DELETE')).status).toBe(403);
    expect((await api(alice.token, `/v1/spaces/${shared}/members/${alice.id}`, 'DELETE')).body.message).toContain('cannot leave');
    expect((await api(alice.token, `/v1/spaces/${shared}/members`, 'POST', { name: 'nobody' })).status).toBe(404);
    const eve = await server.user('eve');
    for (const space of [shared, 's:no-such-space']) {
      const answer = await api(eve.token, `/v1/spaces/${space}/members`, 'GET');
      expect([answer.status, answer.body.code]).toEqual([403, 'forbidden']);
    }
    expect((await api(alice.token, `/v1/spaces/${shared}`, 'PATCH', { name: '   ' })).status).toBe(400);
  });

  test('a rename reaches every member', async () => {
    const bobSocket = track(await helloSocket(server.ws, bob.token, 'bob-tablet'));
    expect((await api(alice.token, `/v1/spaces/${shared}`, 'PATCH', { name: 'Weekly shop' })).status).toBe(200);
    const frame = await nextSpaces(bobSocket, 0);
    expect(frame.spaces.find((s: { id: string }) => s.id === shared).name).toBe('Weekly shop');
  });

  test('removal: the member\'s socket stops hearing the space at once; what they push there is rejected forbidden', async () => {
    const bobSocket = track(await helloSocket(server.ws, bob.token, 'bob-laptop'));
    bobSocket.send({ type: 'subscribe', spaces: [{ space: shared, cursor: 0 }] });
    await bobSocket.next((f) => f.type === 'caught_up' && f.space === shared);
    expect((await push(server.base, alice.token, 'alice-1', makeOps('alice-1', shared, 1, 1))).status).toBe(200);
    await bobSocket.next((f) => f.type === 'changes' && f.space === shared);

    const before = bobSocket.frames.length;
    expect((await api(alice.token, `/v1/spaces/${shared}/members/${bob.id}`, 'DELETE')).status).toBe(200);
    const frame = await nextSpaces(bobSocket, before);
    expect(frame.spaces.map((s: { id: string }) => s.id)).not.toContain(shared);
    // Alice writes again: bob's socket, still open, gets nothing of it (the ping's pong proves the socket
    // has processed everything sent before it).
    expect((await push(server.base, alice.token, 'alice-1', makeOps('alice-1', shared, 2, 1))).status).toBe(200);
    bobSocket.send({ type: 'ping', t: 42 });
    await bobSocket.next((f) => f.type === 'pong' && f.t === 42);
    expect(bobSocket.frames.slice(before).filter((f) => f.type === 'changes')).toEqual([]);
    // His device's queued op for the space comes back rejected, with the reason: a dead letter, not a loss.
    const late = await push(server.base, bob.token, 'bob-laptop', makeOps('bob-laptop', shared, 1, 1));
    expect(late.body.results[0]).toMatchObject({ result: 'rejected', code: 'forbidden' });
  });

  test('leaving: a member removes themselves', async () => {
    const trip = (await api(alice.token, '/v1/spaces', 'POST', { name: 'Trip' })).body.id;
    await api(alice.token, `/v1/spaces/${trip}/members`, 'POST', { name: 'bob' });
    expect((await api(bob.token, `/v1/spaces/${trip}/members/${bob.id}`, 'DELETE')).status).toBe(200);
    expect((await api(alice.token, `/v1/spaces/${trip}/members`, 'GET')).body.members.map((m: { name: string }) => m.name)).toEqual(['alice']);
  });
});

describe('roles: the owner decides, an editor writes, a viewer only reads', () => {
  let space: string;
  let carol: { id: string; token: string; space: string };
  const snapshot = (token: string) => api(token, `/v1/snapshot?space=${encodeURIComponent(space)}`, 'GET');

  test('an invitation as a viewer: the role is in the answer, the invitee\'s spaces frame, /v1/me and the members list', async () => {
    carol = await server.user('carol');
    space = (await api(alice.token, '/v1/spaces', 'POST', { name: 'Menu' })).body.id;
    const carolSocket = track(await helloSocket(server.ws, carol.token, 'carol-phone'));
    const invited = await api(alice.token, `/v1/spaces/${space}/members`, 'POST', { name: 'carol', role: 'viewer' });
    expect(invited.body).toEqual({ added: true, user: { id: carol.id, name: 'carol' }, role: 'viewer' });
    expect((await nextSpaces(carolSocket, 0)).spaces).toContainEqual({ id: space, name: 'Menu', personal: false, role: 'viewer' });
    expect((await api(carol.token, '/v1/me', 'GET')).body.spaces).toContainEqual({ id: space, name: 'Menu', personal: false, role: 'viewer' });
    expect((await api(alice.token, `/v1/spaces/${space}/members`, 'POST', { name: 'bob' })).body.role).toBe('editor');
    // Inviting again changes nothing and says what they are.
    expect((await api(alice.token, `/v1/spaces/${space}/members`, 'POST', { name: 'carol' })).body).toMatchObject({ added: false, role: 'viewer' });
    const listed = (await api(carol.token, `/v1/spaces/${space}/members`, 'GET')).body.members;
    expect(listed.map((m: { name: string; role: string }) => [m.name, m.role])).toEqual([['alice', 'owner'], ['bob', 'editor'], ['carol', 'viewer']]);
  });

  test('a viewer reads (subscribe, catch-up, live changes, snapshot); their op is rejected read_only and changes nothing', async () => {
    expect((await push(server.base, alice.token, 'alice-menu', makeOps('alice-menu', space, 1, 1, { key: 'soup', value: { title: 'soup' } }))).status).toBe(200);
    const carolSocket = track(await helloSocket(server.ws, carol.token, 'carol-laptop'));
    carolSocket.send({ type: 'subscribe', spaces: [{ space, cursor: 0 }] });
    const caught = await carolSocket.next((f) => f.type === 'caught_up' && f.space === space);
    expect(carolSocket.frames.filter((f) => f.type === 'changes').flatMap((f) => f.entities).map((e: { key: string }) => e.key)).toEqual(['soup']);
    expect((await snapshot(carol.token)).body.entities.map((e: { key: string }) => e.key)).toEqual(['soup']);

    const before = carolSocket.frames.length;
    const ops = makeOps('carol-laptop', space, 1, 1, { key: 'soup', value: { title: 'viewer was here' } });
    const refused = await push(server.base, carol.token, 'carol-laptop', ops);
    expect(refused.status).toBe(200);
    expect(refused.body.through).toBe(1); // it consumed its seq: the device moves it to its dead letters
    expect(refused.body.results).toEqual([{ seq: 1, id: ops[0]!.id, result: 'rejected', code: 'read_only', message: expect.stringContaining('only read') }]);
    carolSocket.send({ type: 'ping', t: 7 });
    await carolSocket.next((f) => f.type === 'pong' && f.t === 7);
    expect(carolSocket.frames.slice(before).filter((f) => f.type === 'changes')).toEqual([]);
    const after = (await snapshot(carol.token)).body;
    expect(after.entities.map((e: { fields: unknown }) => e.fields)).toEqual([{ title: 'soup' }]);
    expect(after.head).toBe(caught.cursor);

    // A live change from the owner still reaches the viewer.
    expect((await push(server.base, alice.token, 'alice-menu', makeOps('alice-menu', space, 2, 1, { key: 'bread' }))).status).toBe(200);
    await carolSocket.next((f) => f.type === 'changes' && f.space === space && carolSocket.frames.indexOf(f) >= before);
  });

  test('a resend of the rejected op answers its first result, even after the viewer became an editor', async () => {
    const ops = makeOps('carol-laptop', space, 1, 1, { key: 'soup', value: { title: 'viewer was here' } });
    const carolSocket = track(await helloSocket(server.ws, carol.token, 'carol-tablet'));
    expect((await api(alice.token, `/v1/spaces/${space}/members/${carol.id}`, 'PATCH', { role: 'editor' })).body).toEqual({ user: carol.id, role: 'editor' });
    expect((await nextSpaces(carolSocket, 0)).spaces).toContainEqual({ id: space, name: 'Menu', personal: false, role: 'editor' });
    const again = await push(server.base, carol.token, 'carol-laptop', ops);
    expect(again.body.results).toEqual([{ seq: 1, id: ops[0]!.id, result: 'duplicate', first: 'rejected', code: 'read_only', message: expect.stringContaining('only read') }]);
    expect((await snapshot(carol.token)).body.entities.find((e: { key: string }) => e.key === 'soup').fields).toEqual({ title: 'soup' });
    // Her next op, as an editor, is applied.
    const next = makeOps('carol-laptop', space, 2, 1, { key: 'k9' });
    expect((await push(server.base, carol.token, 'carol-laptop', next)).body.results[0].result).toBe('applied');
    // And made a viewer again, she is refused again.
    await api(alice.token, `/v1/spaces/${space}/members/${carol.id}`, 'PATCH', { role: 'viewer' });
    const third = await push(server.base, carol.token, 'carol-laptop', makeOps('carol-laptop', space, 3, 1, { key: 'k9' }));
    expect(third.body.results[0]).toMatchObject({ result: 'rejected', code: 'read_only' });
  });

  test('only the owner invites, changes roles and removes; a role is editor or viewer; the owner keeps theirs', async () => {
    const dave = await server.user('dave');
    const asBob = (path: string, method: string, body?: unknown) => api(bob.token, `/v1/spaces/${space}${path}`, method, body);
    for (const answer of [
      await asBob('/members', 'POST', { name: 'dave' }),
      await asBob(`/members/${carol.id}`, 'PATCH', { role: 'editor' }),
      await asBob(`/members/${carol.id}`, 'DELETE'),
      await api(carol.token, `/v1/spaces/${space}/members/${bob.id}`, 'DELETE'),
    ]) expect([answer.status, answer.body.code]).toEqual([403, 'forbidden']);
    expect((await api(alice.token, `/v1/spaces/${space}/members`, 'GET')).body.members.map((m: { name: string }) => m.name)).toEqual(['alice', 'bob', 'carol']);
    expect((await api(alice.token, `/v1/spaces/${space}/members/${alice.id}`, 'PATCH', { role: 'viewer' })).status).toBe(403);
    for (const role of ['owner', 'admin', 7]) {
      const answer = await api(alice.token, `/v1/spaces/${space}/members/${bob.id}`, 'PATCH', { role });
      expect([answer.status, answer.body.code]).toEqual([400, 'invalid']);
      expect((await api(alice.token, `/v1/spaces/${space}/members`, 'POST', { name: 'dave', role })).status).toBe(400);
    }
    expect((await api(alice.token, `/v1/spaces/${space}/members/${dave.id}`, 'PATCH', { role: 'editor' })).status).toBe(404);
    const roles = (await api(alice.token, `/v1/spaces/${space}/members`, 'GET')).body.members.map((m: { name: string; role: string }) => [m.name, m.role]);
    expect(roles).toEqual([['alice', 'owner'], ['bob', 'editor'], ['carol', 'viewer']]);
  });

  test('a removed viewer can read no more: subscribe and snapshot are forbidden', async () => {
    expect((await api(alice.token, `/v1/spaces/${space}/members/${carol.id}`, 'DELETE')).status).toBe(200);
    expect([(await snapshot(carol.token)).status, (await snapshot(carol.token)).body.code]).toEqual([403, 'forbidden']);
    const s = track(await helloSocket(server.ws, carol.token, 'carol-desk'));
    s.send({ type: 'subscribe', spaces: [{ space, cursor: 0 }] });
    expect(await s.next((f) => f.type === 'error' && f.space === space)).toMatchObject({ code: 'forbidden' });
  });
});

describe('a credential ends where it is used', () => {
  test('signing out closes the sockets opened with that session (4401); another session of the user stays', async () => {
    const login = async () => {
      const answer = await call(server.base, '/v1/auth/login', { body: { name: 'alice', password: 'alice-password' } });
      return /ferry_session=[^;]+/.exec(answer.headers.get('set-cookie') ?? '')![0];
    };
    const first = await login();
    const second = await login();
    const open = async (cookie: string) => {
      const ws = new WebSocket(server.ws, { protocols: ['ferry.v1'], headers: { cookie } } as never);
      const closed = new Promise<number>((resolve) => ws.addEventListener('close', (e) => resolve(e.code)));
      await new Promise((resolve) => ws.addEventListener('open', resolve, { once: true }));
      return { ws, closed };
    };
    const a = await open(first);
    const b = await open(second);
    const out = await call(server.base, '/v1/auth/logout', { method: 'POST', cookie: first, headers: { 'x-ferry': '1' } });
    expect(out.status).toBe(200);
    expect(await Promise.race([a.closed, Bun.sleep(3000).then(() => 'still open')])).toBe(4401);
    b.ws.send(JSON.stringify({ type: 'ping', t: 1 }));
    const pong = await new Promise((resolve) => b.ws.addEventListener('message', (e) => resolve(JSON.parse(String(e.data))), { once: true }));
    expect(pong).toMatchObject({ type: 'pong' });
    b.ws.close();
  });

  test('a token revoked while its socket is open: the next push is refused with 4401 and nothing is applied', async () => {
    const ferry = server.app.decorator.ferry;
    const token = await ferry.accounts.createToken(bob.id, 'doomed', Date.now(), null);
    const s = await helloSocket(server.ws, token, 'bob-doomed');
    expect(await ferry.accounts.revokeTokens(bob.id, 'doomed')).toBe(1);
    s.send({ type: 'push', rid: 1, device: 'bob-doomed', ops: makeOps('bob-doomed', bob.space, 1, 1) });
    expect((await s.closed).code).toBe(4401);
    expect(await ferry.store.device('bob-doomed')).toBeNull();
  });
});
