// One contract, every implementation of the drainer's Transport port (device/drain-ports.ts): the fast
// suites' fake (tests/support/fake-server.ts), HTTP `POST /v1/push` and the sync socket, the last two
// against a real listening server on a real libSQL file. What the drainer relies on (PROTOCOL.md §6, §8):
// fresh ops are acked with their results and the server's lamport; a resend is `duplicate` with the first
// result; a schema break is `rejected` (and stays rejected when resent); a gap is `seq_gap` with the seq
// expected; a clock behind the floor is `lamport_regression` with the floor; a foreign space is rejected
// `forbidden` per op; and every refusal arrives as a SyncError of the right kind.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { IDBFactory } from 'fake-indexeddb';
import * as v from 'valibot';
import type { Op } from '../core/types.ts';
import type { Transport } from '../device/ports.ts';
import { authFetch } from '../device/http.ts';
import { fetchSnapshot } from '../device/snapshot.ts';
import { createHttpTransport } from '../device/http-transport.ts';
import { createSocketManager, type SocketConstructor, type SocketManager } from '../device/socket-manager.ts';
import { createSocketSession } from '../device/socket-session.ts';
import { createSocketTransport } from '../device/socket-transport.ts';
import { createStore } from '../device/store.ts';
import { socketProtocols } from '../schema/protocol.ts';
import { FakeServer } from './support/fake-server.ts';
import { removeDir, startServer, type TestServer } from './support/server.ts';

/** The app's schema on every target: a `strict` item must have a string title. */
const COLLECTIONS = { strict: v.object({ title: v.string() }) };
const OTHERS_SPACE = 's:not-yours';

interface Target {
  transport: Transport;
  device: string;
  space: string;
  close(): Promise<void>;
}

let server: TestServer;
let user: { id: string; token: string; space: string };

beforeAll(async () => {
  server = await startServer({ collections: COLLECTIONS });
  user = await server.user('contract');
});
afterAll(async () => {
  await server.stop();
  removeDir(server.dir);
});

const timers = {
  setTimeout: (callback: () => void, ms: number) => setTimeout(callback, ms),
  clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

const targets: Record<string, () => Promise<Target>> = {
  fake: async () => ({
    transport: new FakeServer({ collections: COLLECTIONS, member: (space) => space !== OTHERS_SPACE }),
    device: crypto.randomUUID(), space: 'u:fake', close: async () => {},
  }),
  http: async () => ({
    transport: createHttpTransport({ url: server.base, fetch: authFetch(() => user.token) }),
    device: crypto.randomUUID(), space: user.space, close: async () => {},
  }),
  socket: async () => {
    const store = await createStore({ indexedDB: new IDBFactory() });
    const device = await store.getDeviceId();
    const transport = createSocketTransport({ timers });
    const session = createSocketSession({
      store, device, transport, now: Date.now,
      snapshot: (space, after, head) => fetchSnapshot(authFetch(() => user.token), server.base, space, after, head),
      changed: () => {}, acked: () => {}, welcomed: () => {}, updated: () => {},
    });
    const manager: SocketManager = createSocketManager({
      url: server.ws, protocols: () => socketProtocols(user.token), WebSocket: WebSocket as unknown as SocketConstructor,
      timers, now: Date.now, random: Math.random,
      onOpen: (send) => session.opened(send), onFrame: (frame) => session.frame(frame),
      onStatus: (status) => status.state !== 'open' && session.closed(),
    });
    manager.start();
    const deadline = Date.now() + 5000;
    while (!transport.ready() && Date.now() < deadline) await Bun.sleep(5);
    if (!transport.ready()) throw new Error('the socket never became ready');
    return {
      transport, device, space: user.space,
      close: async () => {
        manager.stop();
        await session.settled();
        store.close();
      },
    };
  },
};

let counter = 0;
function op(target: Target, seq: number, lamport: number, patch: Partial<Op> = {}): Op {
  return {
    id: `${target.device}:${seq}`, device: target.device, seq, lamport, space: target.space,
    collection: 'items', key: `k${counter++}`, kind: 'put', value: { title: `t${seq}` }, at: 0, ...patch,
  };
}

const push = (target: Target, ops: Op[]) => target.transport.push({ device: target.device, ops });

for (const [name, make] of Object.entries(targets)) {
  describe(`transport contract: ${name}`, () => {
    let target: Target;
    beforeAll(async () => {
      target = await make();
    });
    afterAll(() => target.close());

    test('fresh ops are applied and acked through their last seq, with the server lamport', async () => {
      const ops = [op(target, 1, 1), op(target, 2, 2), op(target, 3, 3)];
      const ack = await push(target, ops);
      expect(ack.through).toBe(3);
      expect(ack.lamport).toBeGreaterThanOrEqual(3);
      expect(ack.results).toEqual(ops.map((o) => ({ seq: o.seq, id: o.id, result: 'applied' })));
    });

    test('a resend, whole or overlapping new ops, is answered duplicate with the first result', async () => {
      const again = await push(target, [op(target, 2, 2), op(target, 3, 3), op(target, 4, 4)]);
      expect(again.through).toBe(4);
      expect(again.results.map((r) => [r.seq, r.result, r.first])).toEqual([
        [2, 'duplicate', 'applied'], [3, 'duplicate', 'applied'], [4, 'applied', undefined],
      ]);
    });

    test('an op that breaks its schema is rejected with a code and consumes its seq; its resend stays rejected', async () => {
      const bad = op(target, 5, 5, { collection: 'strict', value: { title: 42 } });
      const ack = await push(target, [bad, op(target, 6, 6)]);
      expect(ack.through).toBe(6);
      expect(ack.results[0]).toMatchObject({ seq: 5, result: 'rejected', code: 'invalid' });
      expect(ack.results[0]!.message).toContain('title');
      expect(ack.results[1]).toMatchObject({ seq: 6, result: 'applied' });
      const resent = await push(target, [bad]);
      expect(resent.results[0]).toMatchObject({ seq: 5, result: 'duplicate', first: 'rejected', code: 'invalid' });
    });

    test('an op aimed at a space the user is not a member of is rejected forbidden, alone', async () => {
      const ack = await push(target, [op(target, 7, 7, { space: OTHERS_SPACE }), op(target, 8, 8)]);
      expect(ack.results.map((r) => [r.seq, r.result, r.code])).toEqual([[7, 'rejected', 'forbidden'], [8, 'applied', undefined]]);
    });

    test('a gap is refused whole as seq_gap with the seq expected', async () => {
      await expect(push(target, [op(target, 12, 12)])).rejects.toMatchObject({ kind: 'seq_gap', expected: 9 });
      const ack = await push(target, [op(target, 9, 9)]);
      expect(ack.through).toBe(9);
    });

    test('a lamport at or below the device floor is refused whole as lamport_regression with the floor', async () => {
      await expect(push(target, [op(target, 10, 9)])).rejects.toMatchObject({ kind: 'lamport_regression', floor: 9 });
      const ack = await push(target, [op(target, 10, 10)]);
      expect(ack.results[0]).toMatchObject({ seq: 10, result: 'applied' });
    });
  });
}
