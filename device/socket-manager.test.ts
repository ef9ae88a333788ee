// The socket manager under a fake clock, a fake WebSocket and a fixed random: no real timer, no network.
// The fake socket never fires an event by itself; each test says what the network does, including
// nothing at all (a dead connection whose `onclose` never comes).
import { describe, expect, test } from 'bun:test';
import { backoffDelay, type BackoffPolicy } from '../core/backoff.ts';
import type { Down, Up } from '../schema/wire.ts';
import { CLOSE } from '../schema/protocol.ts';
import { createFakeClock } from '../tests/support/fake-clock.ts';
import { createSocketManager, type SocketLike, type SocketManagerOptions, type SocketStatus } from './socket-manager.ts';

const URL = 'wss://ferry.test/v1/sync';
const HEARTBEAT = 15_000;
const HOUR = 60 * 60_000;
const POLICY: BackoffPolicy = { baseMs: 500, capMs: 5 * 60_000 };
const WELCOME = JSON.stringify({ type: 'welcome', protocol: 1, user: 'u1', lamport: 0, through: 0 });
const HELLO: Up = { type: 'hello', protocol: 1, device: 'd1' };

class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  readonly sent: unknown[] = [];
  closeCalls = 0;

  constructor(readonly url: string, readonly protocols: string[]) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
    this.sent.push(JSON.parse(data));
  }
  // Like a real socket on a dead network: close() starts closing, but no close event is promised.
  close(): void {
    this.closeCalls++;
    if (this.readyState < 2) this.readyState = 2;
  }

  // What the network does, driven by the test.
  open(): void {
    this.readyState = 1;
    this.onopen?.({ type: 'open' } as Event);
  }
  receive(data: unknown): void {
    this.onmessage?.({ type: 'message', data } as MessageEvent);
  }
  error(): void {
    this.onerror?.({ type: 'error' } as Event);
  }
  closed(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ type: 'close', code, reason, wasClean: code !== 1006 } as CloseEvent);
  }
}

function setup(overrides: Partial<SocketManagerOptions> = {}) {
  const clock = createFakeClock(1_000_000);
  const sockets: FakeSocket[] = [];
  const statuses: SocketStatus[] = [];
  const frames: Down[] = [];
  const calls = { open: 0, frame: 0, status: 0 };
  const world = { credentials: ['ferry.v1'] as string[] | null, random: 0.5 };
  class Socket extends FakeSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  const manager = createSocketManager({
    url: URL,
    protocols: () => world.credentials,
    WebSocket: Socket,
    timers: clock,
    now: clock.now,
    random: () => world.random,
    heartbeatMs: HEARTBEAT,
    policy: POLICY,
    onOpen(send) {
      calls.open++;
      send(HELLO);
    },
    onFrame(frame) {
      calls.frame++;
      frames.push(frame);
    },
    onStatus(status) {
      calls.status++;
      statuses.push(status);
    },
    ...overrides,
  });
  const last = () => sockets.at(-1)!;
  const state = () => manager.status().state;
  /** Fails the current attempt with a dropped connection and waits out the backoff. */
  const failAndWait = () => {
    last().closed(1006);
    const status = manager.status();
    if (status.state !== 'waiting') throw new Error(`expected waiting, got ${status.state}`);
    clock.advance(status.nextAt - clock.now());
  };
  return { clock, sockets, statuses, frames, calls, world, manager, last, state, failAndWait };
}

// Checked by `tsc -p tests`: the platform's own WebSocket and timers fit the ports as they are.
type Assert<T extends true> = T;
export type PlatformFitsPorts = [
  Assert<typeof WebSocket extends SocketManagerOptions['WebSocket'] ? true : false>,
  Assert<typeof globalThis extends SocketManagerOptions['timers'] ? true : false>,
];

function waiting(status: SocketStatus): Extract<SocketStatus, { state: 'waiting' }> {
  if (status.state !== 'waiting') throw new Error(`expected waiting, got ${JSON.stringify(status)}`);
  return status;
}

describe('credentials', () => {
  test('without credentials no socket is ever constructed and the status says auth-required', () => {
    const t = setup();
    t.world.credentials = null;
    t.manager.start();
    expect(t.manager.status()).toEqual({ state: 'auth-required' });
    t.clock.advance(HOUR);
    t.manager.reconnectNow();
    expect(t.sockets).toHaveLength(0);
    expect(t.clock.pending()).toBe(0);
  });

  test('offers the credentials as subprotocols, never in the URL, and re-reads them for every attempt', () => {
    const t = setup();
    t.manager.start();
    expect(t.last().url).toBe(URL);
    expect(t.last().protocols).toEqual(['ferry.v1']);
    t.world.credentials = ['ferry.v1', 'ferry.auth.tok1'];
    t.failAndWait();
    expect(t.sockets).toHaveLength(2);
    expect(t.last().protocols).toEqual(['ferry.v1', 'ferry.auth.tok1']);
    // Signed out while waiting: the next attempt stops instead of knocking without credentials.
    t.world.credentials = null;
    t.failAndWait();
    expect(t.sockets).toHaveLength(2);
    expect(t.state()).toBe('auth-required');
  });

  test('close 4401 stops retrying until reconnectNow() after a new sign-in', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().closed(CLOSE.authRequired, 'session expired');
    expect(t.manager.status()).toEqual({ state: 'auth-required' });
    t.clock.advance(HOUR);
    expect(t.sockets).toHaveLength(1);
    expect(t.clock.pending()).toBe(0);
    t.world.credentials = ['ferry.v1', 'ferry.auth.fresh'];
    t.manager.reconnectNow();
    expect(t.sockets).toHaveLength(2);
    expect(t.last().protocols).toEqual(['ferry.v1', 'ferry.auth.fresh']);
    expect(t.manager.status()).toEqual({ state: 'connecting', attempt: 1 });
  });
});

describe('rule 1: no second socket while one is CONNECTING', () => {
  test('start() and reconnectNow() during connecting are no-ops', () => {
    const t = setup();
    t.manager.start();
    t.manager.start();
    t.manager.reconnectNow();
    t.manager.start();
    expect(t.sockets).toHaveLength(1);
    expect(t.state()).toBe('connecting');
    t.last().open();
    t.manager.start();
    t.manager.reconnectNow();
    expect(t.sockets).toHaveLength(1);
    expect(t.calls.open).toBe(1);
  });
});

describe('rule 2: one reconnect timer shared by error and close', () => {
  test('error then close on one socket schedules one attempt', () => {
    const t = setup();
    t.manager.start();
    const socket = t.last();
    socket.error();
    socket.closed(1006);
    const status = waiting(t.manager.status());
    expect(status.attempt).toBe(1);
    expect(status.nextAt - t.clock.now()).toBe(250); // floor(0.5 × 500): the first delay, once
    expect(t.clock.pending()).toBe(1);
    t.clock.advance(250);
    expect(t.sockets).toHaveLength(2);
    expect(t.manager.status()).toEqual({ state: 'connecting', attempt: 2 });
  });

  test('a close that follows the heartbeat giving up on a socket changes nothing', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.clock.advance(2 * HEARTBEAT);
    const before = waiting(t.manager.status());
    t.sockets[0]!.closed(1006);
    expect(t.manager.status()).toEqual(before);
    expect(t.clock.pending()).toBe(1);
  });
});

describe('rule 3: full-jitter backoff from core/backoff.ts, budget reset after a successful open', () => {
  test('delays follow backoffDelay(attempt, random) and the UI always sees waiting with lastError', () => {
    const t = setup();
    t.manager.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      t.last().closed(1006);
      const status = waiting(t.manager.status());
      expect(status.lastError).toBe('The connection to the sync server was lost.');
      expect(status.attempt).toBe(i + 1);
      delays.push(status.nextAt - t.clock.now());
      t.clock.advance(status.nextAt - t.clock.now() - 1);
      expect(t.sockets).toHaveLength(i + 1); // not a millisecond early
      t.clock.advance(1);
      expect(t.manager.status()).toEqual({ state: 'connecting', attempt: i + 2 });
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000]);
    expect(delays).toEqual(delays.map((_, i) => backoffDelay(i, () => 0.5, POLICY)));
  });

  test('the jitter is full: random() = 0 retries at once, random() near 1 waits nearly the whole bound', () => {
    const t = setup();
    t.world.random = 0;
    t.manager.start();
    t.last().closed(1006);
    expect(waiting(t.manager.status()).nextAt).toBe(t.clock.now());
    t.clock.advance(0);
    t.world.random = 0.999;
    t.last().closed(1006);
    expect(waiting(t.manager.status()).nextAt - t.clock.now()).toBe(999); // attempt 1: bound 1000
  });

  test('after an open that the server answered, the next failure starts from the first delay again', () => {
    const t = setup();
    t.manager.start();
    for (let i = 0; i < 5; i++) t.failAndWait();
    expect(t.manager.status()).toEqual({ state: 'connecting', attempt: 6 });
    t.last().open();
    t.last().receive(WELCOME);
    t.last().closed(CLOSE.slowConsumer, 'slow consumer');
    const status = waiting(t.manager.status());
    expect(status.attempt).toBe(1);
    expect(status.nextAt - t.clock.now()).toBe(250); // not floor(0.5 × 16 000)
  });

  test('an open that dies before any frame does not reset the budget (a proxy accepting for a dead server)', () => {
    const t = setup();
    t.manager.start();
    for (let i = 0; i < 3; i++) t.failAndWait();
    t.last().open();
    t.last().closed(1006);
    expect(waiting(t.manager.status()).attempt).toBe(4);
  });
});

describe('rule 4: heartbeat watchdog', () => {
  test('pings every heartbeat while the server answers, and stays open for an hour', () => {
    const t = setup();
    t.manager.start();
    const socket = t.last();
    socket.open();
    const opened = t.clock.now();
    for (let i = 1; i <= HOUR / HEARTBEAT; i++) {
      t.clock.advance(HEARTBEAT);
      const ping = socket.sent.at(-1) as { type: string; t: number };
      expect(ping).toEqual({ type: 'ping', t: opened + i * HEARTBEAT });
      socket.receive(JSON.stringify({ type: 'pong', t: ping.t }));
    }
    expect(socket.sent).toHaveLength(1 + HOUR / HEARTBEAT); // hello + one ping per beat
    expect(t.manager.status()).toEqual({ state: 'open', since: opened });
    expect(t.sockets).toHaveLength(1);
  });

  test('a socket silent for 2× heartbeat is closed and replaced although onclose never fires', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().receive(WELCOME);
    t.clock.advance(2 * HEARTBEAT - 1);
    expect(t.state()).toBe('open');
    t.clock.advance(1);
    expect(t.sockets[0]!.closeCalls).toBe(1);
    expect(waiting(t.manager.status()).lastError).toBe('No frame from the sync server for 30 s.');
    t.clock.advance(HEARTBEAT);
    expect(t.sockets).toHaveLength(2);
    t.last().open();
    expect(t.calls.open).toBe(2);
  });

  test('the deadline counts from the last frame of any kind', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.clock.advance(HEARTBEAT + 5_000);
    t.last().receive(WELCOME);
    t.clock.advance(2 * HEARTBEAT - 1);
    expect(t.state()).toBe('open');
    t.clock.advance(1);
    expect(t.state()).toBe('waiting');
  });

  test('a handshake stuck in CONNECTING gives up after 2× heartbeat instead of showing connecting forever', () => {
    const t = setup();
    t.manager.start();
    t.clock.advance(2 * HEARTBEAT);
    expect(t.sockets[0]!.closeCalls).toBe(1);
    expect(waiting(t.manager.status()).lastError).toBe('No connection to the sync server within 30 s.');
    t.sockets[0]!.open(); // too late: ignored
    expect(t.calls.open).toBe(0);
  });
});

describe('rule 5: stop() clears every timer', () => {
  const stopIn: Record<string, (t: ReturnType<typeof setup>) => void> = {
    connecting: () => {},
    open: (t) => {
      t.last().open();
      t.last().receive(WELCOME);
    },
    waiting: (t) => t.last().closed(1006),
  };
  for (const [name, reach] of Object.entries(stopIn)) {
    test(`stopped while ${name}: an hour later no socket was made and no callback ran`, () => {
      const t = setup();
      t.manager.start();
      reach(t);
      expect(t.state()).toBe(name as SocketStatus['state']);
      const socketsBefore = t.sockets.length;
      t.manager.stop();
      expect(t.manager.status()).toEqual({ state: 'stopped' });
      expect(t.clock.pending()).toBe(0);
      const callsBefore = { ...t.calls };
      const sentBefore = t.sockets.map((s) => s.sent.length);
      // The old socket's late events, if any come, must not bring anything back.
      t.sockets[0]!.receive(WELCOME);
      t.sockets[0]!.error();
      t.sockets[0]!.closed(1006);
      t.clock.advance(HOUR);
      t.manager.reconnectNow();
      expect(t.sockets).toHaveLength(socketsBefore);
      expect(t.calls).toEqual(callsBefore);
      expect(t.sockets.map((s) => s.sent.length)).toEqual(sentBefore);
      expect(t.sockets.every((s) => s.readyState >= 2)).toBe(true);
    });
  }

  test('start() after stop() connects again', () => {
    const t = setup();
    t.manager.start();
    t.manager.stop();
    t.manager.start();
    expect(t.sockets).toHaveLength(2);
    expect(t.manager.status()).toEqual({ state: 'connecting', attempt: 1 });
  });
});

describe('close codes', () => {
  test('4403 forbidden is fatal: stopped with lastError, no retry, the network hint does not revive it', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().closed(CLOSE.forbidden, 'device belongs to another user');
    expect(t.manager.status()).toEqual({
      state: 'stopped',
      lastError: 'The sync server closed the connection (4403: device belongs to another user).',
    });
    t.manager.reconnectNow();
    t.clock.advance(HOUR);
    expect(t.sockets).toHaveLength(1);
    t.manager.start(); // a person's explicit retry
    expect(t.sockets).toHaveLength(2);
  });

  test('4400 invalid stops too: resending the same frames would only be refused again', () => {
    const t = setup();
    t.manager.start();
    t.last().closed(CLOSE.invalid, 'bad frame');
    expect(t.state()).toBe('stopped');
    t.clock.advance(HOUR);
    expect(t.sockets).toHaveLength(1);
  });

  for (const code of [CLOSE.slowConsumer, CLOSE.rateLimited, CLOSE.noHello, 1006, 1001]) {
    test(`${code} backs off and retries, resuming through onOpen`, () => {
      const t = setup();
      t.manager.start();
      t.last().open();
      t.last().closed(code, 'bye');
      expect(waiting(t.manager.status()).lastError).toContain(code === 1006 ? 'lost' : `(${code}: bye)`);
      t.clock.advance(POLICY.baseMs);
      expect(t.sockets).toHaveLength(2);
      t.last().open();
      expect(t.calls.open).toBe(2);
      expect(t.last().sent).toEqual([HELLO]);
    });
  }
});

describe('a socket the server refuses for too many (PROTOCOL §5)', () => {
  const MESSAGE = 'You have 3 sync connections open to this server, the most it allows; close a tab or try again later.';
  const REFUSAL = JSON.stringify({ type: 'error', code: 'rate_limited', retryAfterMs: 30_000, message: MESSAGE });

  test('says why, waits at least retryAfterMs, and the refusal frame does not reset the backoff budget', () => {
    const t = setup();
    t.manager.start();
    for (let attempt = 1; attempt <= 3; attempt++) {
      t.last().open();
      t.last().receive(REFUSAL);
      t.last().closed(CLOSE.rateLimited, 'too many sockets');
      const status = waiting(t.manager.status());
      expect(status).toMatchObject({ attempt, lastError: MESSAGE });
      expect(status.nextAt - t.clock.now()).toBeGreaterThanOrEqual(30_000);
      t.clock.advance(status.nextAt - t.clock.now());
    }
    expect(t.sockets).toHaveLength(4);
  });

  test('a 4429 for a frame flood, with no refusal before it, backs off as before', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().receive(WELCOME);
    t.last().closed(CLOSE.rateLimited, 'too many frames');
    expect(waiting(t.manager.status())).toMatchObject({ attempt: 1, lastError: expect.stringContaining('(4429: too many frames)') });
  });
});

describe('frames', () => {
  test('valid frames reach onFrame parsed', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().receive(WELCOME);
    t.last().receive(JSON.stringify({ type: 'caught_up', space: 'u:u1', cursor: 7 }));
    expect(t.frames).toEqual([JSON.parse(WELCOME), { type: 'caught_up', space: 'u:u1', cursor: 7 }]);
  });

  const bad: Record<string, [unknown, string]> = {
    'not JSON': ['<html>502 Bad Gateway</html>', 'is not JSON: <html>502 Bad Gateway</html>'],
    'not a Down frame': ['{"type":"welcome","protocol":2}', 'unknown frame'],
    binary: [new ArrayBuffer(4), 'binary frame'],
  };
  for (const [name, [data, said]] of Object.entries(bad)) {
    test(`a frame that is ${name} is recorded in lastError, and the socket closed and replaced`, () => {
      const t = setup();
      t.manager.start();
      t.last().open();
      t.last().receive(data);
      expect(t.calls.frame).toBe(0);
      expect(t.sockets[0]!.closeCalls).toBe(1);
      expect(waiting(t.manager.status()).lastError).toContain(said);
      t.clock.advance(POLICY.baseMs);
      expect(t.sockets).toHaveLength(2);
    });
  }
});

describe('send, onOpen, reconnectNow', () => {
  test('send is false unless open, and onOpen runs once per open socket', () => {
    const t = setup();
    const ping: Up = { type: 'ping', t: 1 };
    expect(t.manager.send(ping)).toBe(false);
    t.manager.start();
    expect(t.manager.send(ping)).toBe(false);
    t.last().open();
    expect(t.calls.open).toBe(1);
    expect(t.manager.send(ping)).toBe(true);
    expect(t.last().sent).toEqual([HELLO, ping]);
    t.last().closed(1006);
    expect(t.manager.send(ping)).toBe(false);
  });

  test('reconnectNow() skips the wait, and the cancelled timer does not fire a second attempt', () => {
    const t = setup();
    t.manager.start();
    for (let i = 0; i < 4; i++) t.failAndWait();
    t.last().closed(1006);
    const { nextAt } = waiting(t.manager.status());
    t.manager.reconnectNow();
    expect(t.sockets).toHaveLength(6);
    expect(t.manager.status()).toEqual({ state: 'connecting', attempt: 6 });
    t.clock.advance(nextAt - t.clock.now() + 1);
    expect(t.sockets).toHaveLength(6);
  });

  test('reconnectNow() does not start a manager nobody started', () => {
    const t = setup();
    t.manager.reconnectNow();
    expect(t.sockets).toHaveLength(0);
    expect(t.manager.status()).toEqual({ state: 'idle' });
  });

  test('a constructor that throws (bad URL or token) stops with the reason instead of retrying', () => {
    const t = setup({
      WebSocket: class {
        constructor() {
          throw new SyntaxError('invalid subprotocol');
        }
      } as unknown as SocketManagerOptions['WebSocket'],
    });
    t.manager.start();
    expect(t.manager.status()).toEqual({ state: 'stopped', lastError: 'Could not open the sync socket: invalid subprotocol' });
    expect(t.clock.pending()).toBe(0);
  });

  test('credentials that cannot be read are a transient failure, not a silent stop', () => {
    let calls = 0;
    const t = setup({
      protocols: () => {
        if (++calls === 1) throw new Error('storage busy');
        return ['ferry.v1'];
      },
    });
    t.manager.start();
    expect(waiting(t.manager.status()).lastError).toBe('Could not read the credentials: storage busy');
    t.clock.advance(POLICY.baseMs);
    expect(t.sockets).toHaveLength(1);
  });

  test('status changes are reported in order', () => {
    const t = setup();
    t.manager.start();
    t.last().open();
    t.last().closed(1006);
    t.manager.stop();
    expect(t.statuses.map((s) => s.state)).toEqual(['connecting', 'open', 'waiting', 'stopped']);
  });
});
