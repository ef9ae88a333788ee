// The socket transport under a fake clock: each push is answered by the frame with its rid and by no
// other, whatever order the answers come in; a lost socket or a silent server fails the pushes in
// flight as network errors (their ops stay in the outbox), and a late answer is no longer taken.
import { describe, expect, test } from 'bun:test';
import type { SyncError } from '../core/errors.ts';
import type { Op } from '../core/types.ts';
import type { Up } from '../schema/wire.ts';
import { createFakeClock } from '../tests/support/fake-clock.ts';
import { createSocketTransport } from './socket-transport.ts';

const op = (seq: number): Op => ({
  id: `d1:${seq}`, device: 'd1', seq, lamport: seq, space: 's', collection: 'items', key: `k${seq}`, kind: 'put', value: { n: seq }, at: 0,
});
const ack = (rid: number, through: number, device = 'd1') => ({
  type: 'ack' as const, rid, device, through, lamport: through,
  results: [{ seq: through, id: `d1:${through}`, result: 'applied' as const }],
});

function setup(window = 4) {
  const clock = createFakeClock();
  const sent: Up[] = [];
  let open = true;
  const transport = createSocketTransport({ timers: clock, window, timeoutMs: 10_000 });
  transport.attach((message) => {
    if (!open) return false;
    sent.push(message);
    return true;
  });
  const settled = <T>(promise: Promise<T>) => {
    const state: { value?: T; error?: SyncError; done: boolean } = { done: false };
    promise.then((value) => Object.assign(state, { value, done: true }), (error) => Object.assign(state, { error, done: true }));
    return state;
  };
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { clock, sent, transport, settled, flush, close: () => (open = false) };
}

describe('socket transport', () => {
  test('sends push frames with fresh rids and resolves each push with the ack of its rid, in any order', async () => {
    const { sent, transport, settled, flush } = setup();
    const first = settled(transport.push({ device: 'd1', ops: [op(1)] }));
    const second = settled(transport.push({ device: 'd1', ops: [op(2)] }));
    expect(sent).toEqual([
      { type: 'push', rid: 1, device: 'd1', ops: [op(1)] },
      { type: 'push', rid: 2, device: 'd1', ops: [op(2)] },
    ]);
    expect(transport.waiting()).toBe(2);
    expect(transport.answer(ack(2, 2))).toBe(true);
    await flush();
    expect(second.value).toEqual({ through: 2, lamport: 2, results: [{ seq: 2, id: 'd1:2', result: 'applied' }] });
    expect(first.done).toBe(false);
    expect(transport.answer(ack(1, 1))).toBe(true);
    await flush();
    expect(first.value?.through).toBe(1);
    expect(transport.waiting()).toBe(0);
  });

  test('an answer with an unknown rid, or none, is not taken (the session applies it as a plain ack)', () => {
    const { transport } = setup();
    void transport.push({ device: 'd1', ops: [op(1)] });
    expect(transport.answer(ack(99, 1))).toBe(false);
    expect(transport.answer({ ...ack(1, 1), rid: undefined })).toBe(false);
    expect(transport.waiting()).toBe(1);
  });

  test('an error frame with the rid fails that push with the mapped SyncError', async () => {
    const { transport, settled, flush } = setup();
    const gap = settled(transport.push({ device: 'd1', ops: [op(5)] }));
    const limited = settled(transport.push({ device: 'd1', ops: [op(6)] }));
    transport.answer({ type: 'error', rid: 1, code: 'seq_gap', message: 'Missing changes.', expected: 3 });
    transport.answer({ type: 'error', rid: 2, code: 'rate_limited', message: 'Slow down.', retryAfterMs: 700 });
    await flush();
    expect(gap.error).toMatchObject({ kind: 'seq_gap', expected: 3 });
    expect(limited.error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 700 });
  });

  test('an ack for another device is a protocol break, not an ack', async () => {
    const { transport, settled, flush } = setup();
    const push = settled(transport.push({ device: 'd1', ops: [op(1)] }));
    transport.answer(ack(1, 1, 'd2'));
    await flush();
    expect(push.error).toMatchObject({ kind: 'protocol' });
  });

  test('the socket going away fails every push in flight as a network error; new pushes fail at once', async () => {
    const { transport, settled, flush } = setup();
    const pushes = [1, 2, 3].map((seq) => settled(transport.push({ device: 'd1', ops: [op(seq)] })));
    transport.attach(null);
    await flush();
    expect(pushes.map((p) => p.error?.kind)).toEqual(['network', 'network', 'network']);
    expect(transport.ready()).toBe(false);
    expect(transport.window!()).toBe(1);
    const later = settled(transport.push({ device: 'd1', ops: [op(4)] }));
    await flush();
    expect(later.error?.kind).toBe('network');
    // An answer that straggles in after the socket was given up is no longer anyone's.
    expect(transport.answer(ack(1, 1))).toBe(false);
  });

  test('a push the socket refuses to send fails at once', async () => {
    const { transport, settled, flush, close } = setup();
    close();
    const push = settled(transport.push({ device: 'd1', ops: [op(1)] }));
    await flush();
    expect(push.error?.kind).toBe('network');
    expect(transport.waiting()).toBe(0);
  });

  test('a push with no answer within the timeout fails; its late answer is not taken', async () => {
    const { clock, transport, settled, flush } = setup();
    const push = settled(transport.push({ device: 'd1', ops: [op(1)] }));
    clock.advance(9_999);
    await flush();
    expect(push.done).toBe(false);
    clock.advance(1);
    await flush();
    expect(push.error?.kind).toBe('network');
    expect(clock.pending()).toBe(0);
    expect(transport.answer(ack(1, 1))).toBe(false);
  });

  test('rids are never reused across sockets, so an old socket\'s answer cannot match a new push', async () => {
    const { transport, settled, flush } = setup();
    void transport.push({ device: 'd1', ops: [op(1)] }).catch(() => {});
    transport.attach(null);
    const sent: Up[] = [];
    transport.attach((message) => (sent.push(message), true));
    const fresh = settled(transport.push({ device: 'd1', ops: [op(1)] }));
    expect(sent[0]).toMatchObject({ rid: 2 });
    expect(transport.answer(ack(1, 1))).toBe(false);
    transport.answer(ack(2, 1));
    await flush();
    expect(fresh.value?.through).toBe(1);
  });

  test('the window is the configured pipeline while attached', () => {
    expect(setup(3).transport.window!()).toBe(3);
  });
});
