import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { makeOps, push, removeDir, startServer, type TestServer } from './support/server.ts';
import { helloSocket, openSocket } from './support/socket.ts';

let server: TestServer;
let alice: { id: string; token: string; space: string };
beforeAll(async () => {
  server = await startServer();
  alice = await server.user('alice');
});
afterAll(async () => {
  await server.stop();
  removeDir(server.dir);
});

describe('/v1/sync', () => {
  test('echoes only ferry.v1 and welcomes with the device watermark', async () => {
    await push(server.base, alice.token, 'sock-a', makeOps('sock-a', alice.space, 1, 3));
    const socket = await helloSocket(server.ws, alice.token, 'sock-a');
    expect(socket.ws.protocol).toBe('ferry.v1');
    expect(socket.frames[0]).toMatchObject({ type: 'welcome', user: alice.id, through: 3 });
    socket.close();
  });

  test('pipelined pushes are acked in order; other sockets of the device get the watermark', async () => {
    const a = await helloSocket(server.ws, alice.token, 'sock-b');
    const b = await helloSocket(server.ws, alice.token, 'sock-b');
    const ops = makeOps('sock-b', alice.space, 1, 30);
    for (let i = 0; i < 3; i++) a.send({ type: 'push', rid: i, device: 'sock-b', ops: ops.slice(i * 10, i * 10 + 10) });
    const last = await a.next((f) => f.type === 'ack' && f.rid === 2);
    expect(last.through).toBe(30);
    expect(a.frames.filter((f) => f.type === 'ack').map((f) => f.rid)).toEqual([0, 1, 2]);
    const watermark = await b.next((f) => f.type === 'ack' && f.through === 30);
    expect(watermark.rid).toBeUndefined();
    a.close();
    b.close();
  });

  test('a subscriber catches up in pages, then receives live changes from other devices', async () => {
    const writer = 'sock-c';
    const total = 1200;
    for (let seq = 1; seq <= total; seq += 400) {
      const r = await push(server.base, alice.token, writer, makeOps(writer, alice.space, seq, 400, { collection: 'bulk' }).map((op, i) => ({ ...op, key: `k${seq + i}` })));
      expect(r.status).toBe(200);
    }
    const reader = await helloSocket(server.ws, alice.token, 'sock-reader');
    reader.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
    const caughtUp = await reader.next((f) => f.type === 'caught_up');
    const rows = reader.frames.filter((f) => f.type === 'changes').flatMap((f) => f.entities);
    expect(rows.filter((e: any) => e.collection === 'bulk')).toHaveLength(total);
    const seqs = rows.map((e: any) => e.serverSeq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(caughtUp.cursor).toBe(seqs.at(-1));
    await push(server.base, alice.token, writer, makeOps(writer, alice.space, total + 1, 1, { collection: 'live', key: 'x' }));
    const live = await reader.next((f) => f.type === 'changes' && f.entities.some((e: any) => e.collection === 'live'));
    expect(live.cursor).toBeGreaterThan(caughtUp.cursor);
    reader.close();
  });

  test('closes a socket without credentials with 4401; refuses a token in the URL or a foreign Origin', async () => {
    const anonymous = await openSocket(server.ws, null);
    expect((await anonymous.closed).code).toBe(4401);
    const expired = await openSocket(server.ws, 'fy_not-a-token');
    expect((await expired.closed).code).toBe(4401);
    await expect(openSocket(`${server.ws}?token=${alice.token}`, null)).rejects.toThrow();
    await expect(openSocket(server.ws, alice.token, { origin: 'https://evil.example' })).rejects.toThrow();
  });

  test('a malformed frame gets invalid and the socket keeps working', async () => {
    const s = await helloSocket(server.ws, alice.token, 'sock-d');
    s.send('{not json');
    s.send({ type: 'push', rid: 1, device: 'sock-d', ops: [{ seq: 'x' }] });
    const errors = await s.next((f) => f.type === 'error' && f.rid === undefined);
    expect(errors.code).toBe('invalid');
    s.send({ type: 'ping', t: 7 });
    expect((await s.next((f) => f.type === 'pong')).t).toBe(7);
    s.close();
  });
});
