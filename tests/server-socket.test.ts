// The sync socket on every runtime the server runs on (tests/support/targets.ts): the handshake, acks in
// order and watermarks to the device's other sockets, catch-up then live fan-out, credentials, bad frames.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { makeOps, push, removeDir } from './support/server.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';
import { helloSocket, openSocket } from './support/socket.ts';

for (const runtime of targets()) describe(`/v1/sync on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  beforeAll(async () => {
    server = await startTarget(runtime);
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

    test('pipelined pushes share a commit and are answered in frame order, refusals in their place', async () => {
      const commits = async () => Number(/^ferry_apply_latency_ms_count (\S+)$/m.exec(await (await fetch(`${server.base}/metrics`)).text())?.[1]);
      const socket = await helloSocket(server.ws, alice.token, 'sock-pipe');
      const before = await commits();
      const ops = makeOps('sock-pipe', alice.space, 1, 30);
      // Ten pushes at once, a refused one and a ping among them: taken without waiting for each other's
      // commits, yet every answer goes out in the order its frame came.
      for (let i = 0; i < 10; i++) socket.send({ type: 'push', rid: i, device: 'sock-pipe', ops: ops.slice(i * 3, i * 3 + 3) });
      socket.send({ type: 'push', rid: 10, device: 'sock-other', ops: makeOps('sock-other', alice.space, 1, 1) });
      socket.send({ type: 'ping', t: 1 });
      socket.send({ type: 'push', rid: 11, device: 'sock-pipe', ops: makeOps('sock-pipe', alice.space, 40, 1) });
      const last = await socket.next((f) => f.rid === 11);
      expect(last).toMatchObject({ type: 'error', code: 'seq_gap', expected: 31 });
      const answers = socket.frames.filter((f) => f.type === 'ack' || f.type === 'error' || f.type === 'pong');
      expect(answers.map((f) => f.rid ?? f.type)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 'pong', 11]);
      expect(answers.slice(0, 10).map((f) => f.through)).toEqual([3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
      expect(answers[10]).toMatchObject({ type: 'error', code: 'forbidden' });
      // Answered one at a time, ten pushes were ten commits.
      expect((await commits()) - before).toBeLessThan(10);
      socket.close();
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

    test('with ferry.from, every changes frame says where it continues from, through catch-up, live, and a subscribe again; with ferry.sent a pong how far each was sent', async () => {
      const writer = 'sock-from-w';
      for (let seq = 1; seq <= 1200; seq += 400) {
        const r = await push(server.base, alice.token, writer, makeOps(writer, alice.space, seq, 400, { collection: 'chain' }).map((op, i) => ({ ...op, key: `c${seq + i}` })));
        expect(r.status).toBe(200);
      }
      const reader = await helloSocket(server.ws, alice.token, 'sock-from-r', ['ferry.from']);
      expect(reader.ws.protocol).toBe('ferry.v1');
      /** The frames of one subscription: each continues from the one before, the first from `cursor`. */
      const chain = (frames: any[], cursor: number) => {
        let at = cursor;
        for (const f of frames) {
          expect(f.from).toBe(at);
          expect(f.entities.every((e: any) => e.serverSeq > f.from && e.serverSeq <= f.cursor)).toBe(true);
          at = f.cursor;
        }
        return at;
      };
      reader.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
      const caughtUp = await reader.next((f) => f.type === 'caught_up');
      const pages = reader.frames.filter((f) => f.type === 'changes');
      expect(pages.length).toBeGreaterThan(2);
      expect(chain(pages, 0)).toBe(caughtUp.cursor);
      await push(server.base, alice.token, writer, makeOps(writer, alice.space, 1201, 1, { collection: 'live', key: 'from' }));
      const live = await reader.next((f) => f.type === 'changes' && f.from === caughtUp.cursor);
      expect(live.entities.map((e: any) => e.key)).toEqual(['from']);
      // A client that saw a gap subscribes again from its cursor: a new chain from there replaces the old one.
      const mid = pages[1]!.cursor;
      const before = reader.frames.length;
      reader.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: mid }] });
      const again = await reader.next((f) => f.type === 'caught_up' && reader.frames.indexOf(f) >= before);
      expect(chain(reader.frames.slice(before).filter((f) => f.type === 'changes'), mid)).toBe(again.cursor);
      expect(again.cursor).toBe(live.cursor);
      // With ferry.sent, a pong says how far each live subscription was sent: a lost last frame is seen.
      reader.send({ type: 'ping', t: 3 });
      expect(await reader.next((f) => f.type === 'pong' && f.t === 3)).toEqual({ type: 'pong', t: 3 });
      const pinger = await helloSocket(server.ws, alice.token, 'sock-from-s', ['ferry.from', 'ferry.sent']);
      pinger.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: mid }] });
      await pinger.next((f) => f.type === 'caught_up');
      pinger.send({ type: 'ping', t: 5 });
      expect(await pinger.next((f) => f.type === 'pong')).toEqual({ type: 'pong', t: 5, sent: { [alice.space]: live.cursor } });
      pinger.close();
      // Without them, the frames and the pong are as they always were.
      const plain = await helloSocket(server.ws, alice.token, 'sock-from-p');
      plain.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: mid }] });
      await plain.next((f) => f.type === 'caught_up');
      const frames = plain.frames.filter((f) => f.type === 'changes');
      expect(frames.length).toBeGreaterThan(0);
      for (const f of frames) expect('from' in f).toBe(false);
      plain.send({ type: 'ping', t: 4 });
      expect(await plain.next((f) => f.type === 'pong')).toEqual({ type: 'pong', t: 4 });
      reader.close();
      plain.close();
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
});
