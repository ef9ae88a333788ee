// The socket before its chunk arrives (late-socket.ts): what the engine asked meanwhile is carried out when it
// does, a push waits for it, and a part that failed to load is asked for again.
import { describe, expect, test } from 'bun:test';
import type { SocketPart } from './device.ts';
import type { DeviceSocket } from './device-socket.ts';
import { lateSocket } from './late-socket.ts';

/** The part itself is not called here: `make` stands for what device.ts does with it. */
const PART = {} as SocketPart;

/** A socket that records what it is asked; its push answers an empty ack. */
function fakeSocket(log: string[]): DeviceSocket {
  return {
    transport: {
      push: async (request) => (log.push(`push ${request.ops.length}`), { through: 0, lamport: 0, results: [] }),
      window: () => 4,
    },
    session: { setSpaces: (spaces: readonly string[]) => log.push(`spaces ${spaces.join(',')}`), settled: async () => undefined } as never,
    manager: { start: () => log.push('start'), stop: () => log.push('stop') } as never,
    reconnect: () => log.push('reconnect'),
    connection: null,
  };
}

/** A part whose load the test settles: `arrive` or `fail`. */
function pending() {
  const loads: Array<{ resolve: (part: SocketPart) => void; reject: (error: unknown) => void }> = [];
  const load = () => new Promise<SocketPart>((resolve, reject) => loads.push({ resolve, reject }));
  return { load, loads };
}

const made = (log: string[]) => () => fakeSocket(log);
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('the socket before its part arrives', () => {
  test('the spaces and the start asked meanwhile are carried out when it arrives; a push waits for it', async () => {
    const log: string[] = [];
    const part = pending();
    const socket = lateSocket(part.load, made(log), true, (error) => log.push(`report ${String(error)}`));
    socket.setSpaces(['s1', 's2']);
    socket.start();
    expect(socket.transport.window?.()).toBe(1);
    expect(socket.connection?.state()).toBe('connecting');
    const pushed = socket.transport.push({ device: 'd', ops: [] });
    await turn();
    expect(log).toEqual([]);
    expect(part.loads.length).toBe(1); // asked for once, however much waits on it

    part.loads[0]!.resolve(PART);
    await pushed;
    expect(log).toEqual(['spaces s1,s2', 'start', 'push 0']);
    expect(socket.transport.window?.()).toBe(4);
  });

  test('stopped before it arrives (signed out, closed), it never starts', async () => {
    const log: string[] = [];
    const part = pending();
    const socket = lateSocket(part.load, made(log), true, () => undefined);
    socket.start();
    socket.stop();
    part.loads[0]!.resolve(PART);
    await turn();
    expect(log).toEqual([]);
    await socket.settled();
  });

  test('a part that fails to load fails the push (the drainer backs off), and the next push loads it again', async () => {
    const log: string[] = [];
    const part = pending();
    const reports: unknown[] = [];
    const socket = lateSocket(part.load, made(log), true, (error) => reports.push(error));
    const first = socket.transport.push({ device: 'd', ops: [] }).catch((error: unknown) => error);
    const failure = new TypeError('Failed to fetch dynamically imported module');
    part.loads[0]!.reject(failure);
    expect(await first).toBe(failure);
    expect(reports.length).toBe(1);

    const second = socket.transport.push({ device: 'd', ops: [] });
    await turn();
    expect(part.loads.length).toBe(2);
    part.loads[1]!.resolve(PART);
    await second;
    expect(log).toEqual(['push 0']);
  });

  test('a part there at once (a worker) makes the socket at once', () => {
    const log: string[] = [];
    const socket = lateSocket(() => PART, made(log), false, () => undefined);
    socket.setSpaces(['s1']);
    socket.start();
    expect(log).toEqual(['spaces s1', 'start']);
    expect(socket.connection).toBeNull();
  });
});
