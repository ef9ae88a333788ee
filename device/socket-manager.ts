// The page's one reconnecting socket to `/v1/sync` (PROTOCOL.md §5, §7, §8). It owns the socket's
// lifecycle only: what to say once it is open (hello, subscribe, pushes) belongs to the sync layer,
// which gets `onOpen(send)` and every valid `Down` frame. Time, randomness, timers and the WebSocket
// constructor are ports, so the whole lifecycle runs under a fake clock in the tests.
//
//              start()             open
//   idle ───────────────▶ connecting ──────▶ open    (its first valid frame resets the retry budget)
//                          ▲    │              │
//     timer fires, or      │    │ error, close,│ error, close, unparseable frame,
//     reconnectNow()       │    │ no open in   │ no frame at all for 2×heartbeat
//                          │    ▼ 2×heartbeat  ▼
//                          └─ waiting ◀────────┘    ONE reconnect timer, full-jitter backoff
//
//   no credentials at an attempt, close 4401 ─▶ auth-required ─ start() / reconnectNow() ─▶ connecting
//   close 4403 / 4400 ─▶ stopped + lastError    retrying cannot help; start() tries again
//   stop(), from any state ─▶ stopped           socket closed, every timer cleared
import * as v from 'valibot';
import { clearFailures, DEFAULT_BACKOFF, initialRetry, recordFailure, type BackoffPolicy, type RetryState } from '../core/backoff.ts';
import { clipRaw, dispositionOf, unreachable, type SyncErrorKind } from '../core/errors.ts';
import { CLOSE } from '../schema/protocol.ts';
import type { TimerPort } from './ports.ts';
import { Down, describeIssues, type Up } from '../schema/wire.ts';

export type SocketStatus =
  | { state: 'idle' }
  /** `attempt`: 1 for the first try of a streak; in `waiting`, the failures so far. */
  | { state: 'connecting'; attempt: number }
  | { state: 'open'; since: number }
  | { state: 'waiting'; attempt: number; nextAt: number; lastError: string }
  | { state: 'auth-required' }
  /** `lastError` is set when the server refused us for good (4403 forbidden, 4400 invalid). */
  | { state: 'stopped'; lastError?: string };

export type SocketState = SocketStatus['state'];

/** The part of a WebSocket this module uses; the browser's `WebSocket` satisfies it as is. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketConstructor = new (url: string, protocols: string[]) => SocketLike;


export interface SocketManagerOptions {
  /** `ws(s)://host/v1/sync`. Never carries a token (PROTOCOL §5). */
  url: string;
  /** Asked before every attempt, so a new sign-in is picked up. `['ferry.v1']` for the cookie,
   * `['ferry.v1', 'ferry.auth.<token>']` for a bearer token, null when there are no credentials. */
  protocols: () => string[] | null;
  WebSocket: SocketConstructor;
  timers: TimerPort;
  now: () => number;
  random: () => number;
  /** A ping goes out this often; 2× this with no frame at all means the socket is dead. */
  heartbeatMs?: number;
  policy?: BackoffPolicy;
  /** Once per open socket: send hello and subscribe here. */
  onOpen(send: (message: Up) => boolean): void;
  onFrame(frame: Down): void;
  onStatus(status: SocketStatus): void;
}

export interface SocketManager {
  start(): void;
  stop(): void;
  /** False unless a socket is open. True means handed to the socket, not delivered: wait for the ack. */
  send(message: Up): boolean;
  /** A hint that the network is back (`online`, a page message): skip the backoff wait. */
  reconnectNow(): void;
  status(): SocketStatus;
}

export const DEFAULT_HEARTBEAT_MS = 15_000;
// WebSocket.OPEN; a literal because the port's constructor need not carry the static constants.
const OPEN = 1;

/** At most one pending timer per slot: arming clears the previous one, so no path can stack two. */
function timerSlot(timers: TimerPort) {
  let pending: { handle: unknown } | null = null;
  const clear = () => {
    if (pending) timers.clearTimeout(pending.handle);
    pending = null;
  };
  const arm = (ms: number, fire: () => void) => {
    clear();
    const mine: { handle: unknown } = (pending = { handle: null });
    // A timer that fires anyway after being replaced or cleared finds itself no longer pending.
    mine.handle = timers.setTimeout(() => {
      if (pending !== mine) return;
      pending = null;
      fire();
    }, Math.max(0, ms));
  };
  return { arm, clear };
}

export function createSocketManager(options: SocketManagerOptions): SocketManager {
  const { timers, now } = options;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const deadAfterMs = 2 * heartbeatMs;
  const policy = options.policy ?? DEFAULT_BACKOFF;

  let status: SocketStatus = { state: 'idle' };
  // The only socket we listen to. Non-null exactly while connecting or open, which is what keeps a
  // second socket from being created while one is still CONNECTING.
  let socket: SocketLike | null = null;
  let retry: RetryState = initialRetry();
  // Whether the current socket has shown a live Ferry server behind it (see `received`).
  let proven = false;
  /** The server said it refuses this socket (too many for the user) and will close it: why, and how long to wait. */
  let refusal: { message: string; retryAfterMs: number | undefined } | null = null;
  let lastFrameAt = 0;
  let nextPingAt = 0;
  // The one reconnect timer, whoever (error, close, watchdog) reported the failure.
  const reconnectTimer = timerSlot(timers);
  // Connect timeout while connecting; ping and dead-socket deadline while open.
  const watchdog = timerSlot(timers);

  const setStatus = (next: SocketStatus) => {
    status = next;
    options.onStatus(next);
  };

  const send = (message: Up): boolean => {
    if (socket === null || status.state !== 'open' || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  };

  function connect(): void {
    if (socket !== null) return;
    let protocols: string[] | null;
    try {
      protocols = options.protocols();
    } catch (cause) {
      // Reading credentials may fail transiently (storage); a throw in a timer would strand us in 'waiting'.
      return backOff(`Could not read the credentials: ${messageOf(cause)}`);
    }
    // Without credentials the server can only refuse us: no handshake, no retry loop.
    if (protocols === null) return halt({ state: 'auth-required' });
    let ws: SocketLike;
    try {
      ws = new options.WebSocket(options.url, protocols);
    } catch (cause) {
      // A bad URL or a token with characters a subprotocol may not hold fails the same way every time.
      return halt({ state: 'stopped', lastError: `Could not open the sync socket: ${messageOf(cause)}` });
    }
    socket = ws;
    proven = false;
    refusal = null;
    ws.onopen = () => opened(ws);
    ws.onmessage = (event) => received(ws, event.data);
    ws.onerror = () => lost(ws, 'network', 'The sync server could not be reached.');
    ws.onclose = (event) => (event.code === CLOSE.rateLimited && refusal !== null
      ? lost(ws, 'rate_limited', refusal.message, refusal.retryAfterMs)
      : lost(ws, CLOSE_KINDS[event.code] ?? 'network', closeMessage(event.code, event.reason)));
    // A handshake can hang in CONNECTING for minutes (a black-holed network), and rule 1 forbids a
    // second socket meanwhile, so the connect attempt gets the same deadline as a silent open socket.
    const late = `No connection to the sync server within ${deadAfterMs / 1000} s.`;
    watchdog.arm(deadAfterMs, () => lost(ws, 'network', late));
    setStatus({ state: 'connecting', attempt: retry.attempt + 1 });
  }

  function opened(ws: SocketLike): void {
    if (ws !== socket) return;
    const at = now();
    lastFrameAt = at;
    nextPingAt = at + heartbeatMs;
    armHeartbeat(ws);
    setStatus({ state: 'open', since: at });
    // onStatus may have stopped us; the sync layer must not talk into a socket we dropped.
    if (ws === socket) options.onOpen(send);
  }

  function received(ws: SocketLike, data: unknown): void {
    if (ws !== socket) return;
    lastFrameAt = now();
    const frame = parseFrame(data);
    if (!frame.ok) return lost(ws, 'unparseable', frame.error);
    const value = frame.value;
    if (value.type === 'error' && value.code === 'rate_limited' && value.rid === undefined && value.space === undefined) {
      // PROTOCOL §5: the server refuses this socket (the user holds too many) and closes it next. Its words
      // become the status, its wait the floor of the backoff, and it proves nothing: the budget goes on.
      refusal = { message: value.message, retryAfterMs: value.retryAfterMs };
    } else if (!proven) {
      // The budget resets on the first valid frame rather than on the bare `open` event: a proxy that
      // accepts the upgrade while the server behind it is down would otherwise have every device
      // redial within base (500 ms) forever.
      proven = true;
      retry = clearFailures(retry);
    }
    options.onFrame(value);
  }

  function armHeartbeat(ws: SocketLike): void {
    const dueAt = Math.min(nextPingAt, lastFrameAt + deadAfterMs);
    watchdog.arm(dueAt - now(), () => beat(ws));
  }

  // Frames only move `lastFrameAt`; the timer re-reads it when it fires, so busy sockets cost no timer churn.
  function beat(ws: SocketLike): void {
    if (ws !== socket) return;
    const at = now();
    // We do not wait for `onclose`: on a dead network it may come minutes later or never.
    if (at - lastFrameAt >= deadAfterMs) {
      return lost(ws, 'network', `No frame from the sync server for ${deadAfterMs / 1000} s.`);
    }
    if (at >= nextPingAt) {
      send({ type: 'ping', t: at });
      nextPingAt = at + heartbeatMs;
    }
    armHeartbeat(ws);
  }

  /** The socket failed. `error` then `close` on one socket reach here twice: the first wins. */
  function lost(ws: SocketLike, kind: SyncErrorKind, message: string, retryAfterMs?: number): void {
    if (ws !== socket) return;
    release();
    const disposition = dispositionOf(kind);
    switch (disposition) {
      case 'retry':
        return backOff(message, retryAfterMs);
      case 'needs-auth':
        return halt({ state: 'auth-required' });
      case 'reject': // resending the frames that were refused would only be refused again
      case 'fatal':
        return halt({ state: 'stopped', lastError: message });
      default:
        return unreachable(disposition);
    }
  }

  /** Stops listening to the socket and closes it without waiting for its events, which are now ignored. */
  function release(): void {
    const ws = socket;
    socket = null;
    watchdog.clear();
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    ws.close();
  }

  function backOff(lastError: string, retryAfterMs?: number): void {
    const at = now();
    retry = recordFailure(retry, { now: at, random: options.random, error: lastError, policy, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
    const nextAt = retry.nextAt ?? at;
    reconnectTimer.arm(nextAt - at, connect);
    setStatus({ state: 'waiting', attempt: retry.attempt, nextAt, lastError });
  }

  /** No more attempts until a person acts (start / reconnectNow). The next streak starts afresh. */
  function halt(next: SocketStatus & { state: 'auth-required' | 'stopped' }): void {
    reconnectTimer.clear();
    retry = initialRetry();
    setStatus(next);
  }

  return {
    start() {
      // While connecting, open or waiting it is already running: rule 1 forbids a second socket, and
      // skipping a wait is reconnectNow()'s job.
      if (status.state === 'idle' || status.state === 'stopped' || status.state === 'auth-required') {
        retry = initialRetry();
        connect();
      }
    },
    reconnectNow() {
      // Not while connecting (rule 1) or open (the watchdog finds a socket a network change killed);
      // and a network hint neither starts a manager nobody started nor revives a stopped or refused one.
      if (status.state === 'waiting' || status.state === 'auth-required') {
        reconnectTimer.clear();
        connect();
      }
    },
    stop() {
      reconnectTimer.clear();
      release();
      if (status.state !== 'stopped') setStatus({ state: 'stopped' });
    },
    send,
    status: () => status,
  };
}

/** Close codes from PROTOCOL §8 on the one error family, so `dispositionOf` decides what follows. Any
 * other code (1006 dropped, 1001 going away, 4008 slow consumer, 4408 hello too late…) is a `network`
 * failure: the server expects us back, resuming from our cursors. */
const CLOSE_KINDS: Partial<Record<number, SyncErrorKind>> = {
  [CLOSE.invalid]: 'invalid',
  [CLOSE.authRequired]: 'auth_required',
  [CLOSE.forbidden]: 'forbidden',
  [CLOSE.rateLimited]: 'rate_limited',
};

function closeMessage(code: number, reason: string): string {
  if (code === 1006) return 'The connection to the sync server was lost.';
  return `The sync server closed the connection (${code}${reason ? `: ${reason}` : ''}).`;
}

type Parsed = { ok: true; value: Down } | { ok: false; error: string };

function parseFrame(data: unknown): Parsed {
  if (typeof data !== 'string') return { ok: false, error: 'The sync server sent a binary frame.' };
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { ok: false, error: `The sync server sent a frame that is not JSON: ${clipRaw(data)}` };
  }
  const parsed = v.safeParse(Down, json);
  if (parsed.success) return { ok: true, value: parsed.output };
  const why = describeIssues(parsed.issues);
  return { ok: false, error: `The sync server sent an unknown frame (${why}): ${clipRaw(data)}` };
}

function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
