// Catch-up and reset against a real server: a replica far behind converges to exactly the server's
// state in bounded pages; one below the purge horizon gets `reset` and converges from a snapshot. On every
// runtime the server runs on (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { mergeDocs } from '../core/merge.ts';
import type { Doc, Op } from '../core/types.ts';
import { push, removeDir } from './support/server.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';

for (const runtime of targets()) describe(`catch-up and reset on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  beforeAll(async () => {
    server = await startTarget(runtime, { pauseBytes: 64 * 1024, maxPausedMs: 500 });
    alice = await server.user('alice');
  });
  afterAll(async () => {
    await server.stop();
    removeDir(server.dir);
  });

  type Replica = Map<string, Doc>;
  const keyOf = (e: any) => `${e.collection}/${e.key}`;
  const docOf = (e: any): Doc => ({ fields: e.fields, stamps: e.stamps, base: e.base, live: e.live, deleted: e.deleted });
  const mergeInto = (replica: Replica, entities: any[]) => {
    for (const e of entities) replica.set(keyOf(e), mergeDocs(replica.get(keyOf(e)) ?? null, docOf(e)));
  };
  const visible = (replica: Replica) => new Map([...replica].filter(([, d]) => !d.deleted));

  async function serverState(space: string): Promise<{ state: Replica; head: number }> {
    const state: Replica = new Map();
    let after = 0;
    let head: number | undefined;
    for (let page = 0; page < 1000; page++) {
      const q = new URLSearchParams({ space, after: String(after), limit: '1000', ...(head ? { head: String(head) } : {}) });
      const res = await fetch(`${server.base}/v1/snapshot?${q}`, { headers: { authorization: `Bearer ${alice.token}` } });
      const body = (await res.json()) as any;
      head ??= body.head;
      mergeInto(state, body.entities);
      if (body.next === null) return { state, head: head! };
      after = body.next;
    }
    throw new Error('snapshot did not end');
  }

  const op = (device: string, seq: number, key: string, kind: Op['kind'], value?: Record<string, unknown>): Op => ({
    id: `${device}:${seq}`, device, seq, lamport: seq, space: alice.space, collection: 'items', key, kind,
    ...(value ? { value: value as any } : {}), at: 0,
  });

  async function subscribe(socket: TestSocket, cursor: number, replica: Replica) {
    socket.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor }] });
    const end = await socket.next((f) => f.type === 'caught_up' || f.type === 'reset', 30_000);
    for (const f of socket.frames) if (f.type === 'changes') mergeInto(replica, f.entities);
    return end;
  }

  describe('catch-up', () => {
    test('a subscriber 10,000 changes behind catches up in pages to exactly the server state', async () => {
      const device = 'writer';
      let seq = 0;
      for (let batch = 0; batch < 20; batch++) {
        const ops = Array.from({ length: 500 }, (_, i) => {
          seq++;
          const key = `k${(batch * 500 + i) % 7000}`; // some keys written twice
          return op(device, seq, key, seq % 50 === 0 ? 'delete' : 'patch', seq % 50 === 0 ? undefined : { n: seq, [`f${seq % 3}`]: true });
        });
        expect((await push(server.base, alice.token, device, ops)).status).toBe(200);
      }
      const socket = await helloSocket(server.ws, alice.token, 'reader');
      const replica: Replica = new Map();
      const end = await subscribe(socket, 0, replica);
      expect(end.type).toBe('caught_up');
      const pages = socket.frames.filter((f) => f.type === 'changes');
      expect(pages.length).toBeGreaterThanOrEqual(14);
      expect(Math.max(...pages.map((p) => p.entities.length))).toBeLessThanOrEqual(500);
      expect(replica.size).toBe(7000);
      const { state } = await serverState(alice.space);
      expect(visible(replica)).toEqual(state);
      socket.close();
    }, 60_000);

    // Catch-up frames are spliced from the stored JSON in SQL (sync-store.ts CHANGE_TEXTS), not parsed and
    // serialized again: every kind of text must come out as the same entity the store reads.
    test('catch-up rows carry exactly the stored entities, whatever their keys and values hold', async () => {
      const odd = ['quote " and \\ backslash', 'tab\tnew\nline\u0001\u001f', 'ünïcødé ✓ 😀', '</script>', '{"not":"json"}', ' '];
      const device = 'odd-writer';
      const ops: Op[] = odd.map((key, i) => op(device, i + 1, key, 'put', { text: key, nested: { list: [1, 2.5, -0, 1e21, null, true], '1': key }, empty: {} }));
      ops.push(op(device, odd.length + 1, odd[2]!, 'delete')); // a tombstone: base and live, no fields
      ops.push(op(device, odd.length + 2, 'patched', 'patch', { only: 'patch' })); // base null
      const other = await server.user(`odd-${runtime}`);
      const mine = ops.map((o) => ({ ...o, space: other.space }));
      expect((await push(server.base, other.token, device, mine)).status).toBe(200);
      const socket = await helloSocket(server.ws, other.token, 'odd-reader');
      socket.send({ type: 'subscribe', spaces: [{ space: other.space, cursor: 0 }] });
      expect((await socket.next((f) => f.type === 'caught_up', 30_000)).type).toBe('caught_up');
      const received = socket.frames.filter((f) => f.type === 'changes').flatMap((f) => f.entities);
      expect(received).toEqual(await server.store.changesSince(other.space, 0, 100));
      expect(received.map((e: any) => e.key).sort()).toEqual([...odd, 'patched'].sort());
      expect(received.find((e: any) => e.key === 'patched').base).toBeNull();
      expect(received.find((e: any) => e.key === odd[2]).deleted).toBe(true);
      socket.close();
    });

    test('a cursor below the purge horizon gets reset, and the snapshot converges', async () => {
      const device = 'purger';
      const ops = [op(device, 1, 'p1', 'put', { a: 1 }), op(device, 2, 'p2', 'put', { a: 2 })];
      await push(server.base, alice.token, device, ops);
      const early = (await server.store.heads()).serverSeq;
      await push(server.base, alice.token, device, [op(device, 3, 'p1', 'delete'), op(device, 4, 'p3', 'put', { a: 3 })]);
      const purged = await server.store.purgeTombstones(Date.now() + 1);
      expect(purged).toBeGreaterThan(0);

      const socket = await helloSocket(server.ws, alice.token, 'late-reader');
      const end = await subscribe(socket, early, new Map());
      expect(end).toMatchObject({ type: 'reset', space: alice.space });
      // The client's reset path: snapshot pages, then subscribe from the snapshot's head.
      const { state, head } = await serverState(alice.space);
      const replica = new Map(state);
      await push(server.base, alice.token, device, [op(device, 5, 'p4', 'put', { a: 4 })]);
      socket.frames.length = 0;
      expect((await subscribe(socket, head, replica)).type).toBe('caught_up');
      expect(visible(replica)).toEqual((await serverState(alice.space)).state);
      expect(replica.has('items/p1')).toBe(false);
      expect(replica.get('items/p4')?.fields).toEqual({ a: 4 });
      socket.close();
    }, 30_000);

    test('a socket that stops reading is paused, then closed, and the server stays up', async () => {
      const port = new URL(server.base).port;
      const raw = connect({ host: '127.0.0.1', port: Number(port) });
      await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
      raw.write(`GET /v1/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: ferry.v1, ferry.auth.${alice.token}\r\n\r\n`);
      const frame = (text: string) => {
        const payload = Buffer.from(text);
        const mask = Buffer.from([1, 2, 3, 4]);
        const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
        return Buffer.concat([header, mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
      };
      raw.write(frame(JSON.stringify({ type: 'hello', protocol: 1, device: 'slow' })));
      raw.write(frame(JSON.stringify({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] })));
      raw.pause(); // never read again: the kernel buffers fill, then the runtime's, then the hub pauses
      const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
      const metrics = async () => (await (await fetch(`${server.base}/metrics`)).text());
      const slowClosed = async () => /ferry_sockets_closed_slow_total [1-9]/.test(await metrics());
      // ~1 MB of live changes a batch, each on keys of its own (so a catch-up after a pause cannot fold
      // them together), until loopback's socket buffers are full and the server's own buffer stays over
      // the mark: Bun's fill after about one batch; Deno lets the kernel take several MB first. At most
      // 48 MB, more than this machine's loopback buffers can hold (tcp_wmem 4 MiB + a receiver that
      // does not read).
      const big = 'x'.repeat(50_000);
      let closedSlow = false;
      for (let b = 0; b < 48 && !closedSlow; b++) {
        const ops = Array.from({ length: 20 }, (_, i) => op('bulk-writer', b * 20 + i + 1, `big${b}-${i}`, 'put', { big, n: b }));
        expect((await push(server.base, alice.token, 'bulk-writer', ops)).status).toBe(200);
        closedSlow = await slowClosed();
      }
      for (let i = 0; i < 100 && !closedSlow; i++) {
        await Bun.sleep(100);
        closedSlow = await slowClosed();
      }
      expect(closedSlow).toBe(true);
      raw.destroy();
      await closed;
      expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    }, 30_000);
  });
});
