// The /v1/sync socket's logic, free of any runtime: the handshake checks (Origin, credentials,
// subprotocol), then hello → welcome, pipelined pushes answered in order, subscribe with catch-up,
// ping/pong. Each runtime's adapter (socket-bun.ts; a Deno one) upgrades the request its own way, hands
// `open` a SocketPort and feeds the returned handlers its socket's events. Fan-out lives in hub.ts.
//
//   accept(request) ─ refused: throws FerryHttpError (an HTTP answer, before any upgrade)
//        │ ok: { protocol, principal | null }
//   upgrade ─▶ open(port, accepted) ─ no principal: close 4401 (a browser cannot read a refused handshake)
//                   │                 ─ the user's sockets at the limit: an error frame saying so, close 4429
//                   │ handlers
//   message ─▶ parse (Up) ─▶ handle, answers in the order frames came    drained ─▶ hub resumes
//   closed ─▶ hub forgets the connection                                 no hello in 10 s ─▶ close 4408
import type { AnyElysia } from 'elysia';
import * as v from 'valibot';
import { LIMITS, utf8Length } from '../core/limits.ts';
import { CLOSE, FROM_PROTOCOL, PROTOCOL_VERSION, SENT_PROTOCOL, SOCKET_PROTOCOL } from '../schema/protocol.ts';
import { describeIssues, Up, type Down, type ErrorBody } from '../schema/wire.ts';
import { originAllowed, refuseUrlTokens, type Principal } from './auth.ts';
import { DEFAULT_MAX_SOCKETS_PER_USER, type ServerContext } from './context.ts';
import { fail } from './errors.ts';
import { logFailure } from './log.ts';
import type { Connection, SocketPort } from './hub.ts';
import { createRateLimiter, DEFAULT_RATE_LIMITS } from './rate-limit.ts';

const HELLO_TIMEOUT_MS = 10_000;
/** How long a client refused for too many sockets should wait before it tries again. */
const TOO_MANY_SOCKETS_RETRY_MS = 30_000;
/** How often an open socket's credential is asked again (besides before every push). */
export const RECHECK_EVERY_MS = 60_000;

/** What a handshake that passed its checks opens the socket with. */
export interface Accepted {
  /** The subprotocol to answer with (the server echoes only this one). */
  protocol: string;
  /** Null: the credentials are missing or expired; the socket is opened and closed with 4401. */
  principal: Principal | null;
  /** The client also offered `ferry.from`: its `changes` frames say where they continue from. */
  from: boolean;
  /** The client also offered `ferry.sent`: its pongs say how far each live subscription was sent. */
  sent: boolean;
}

/** What the adapter calls for each event of an open socket. */
export interface SocketHandlers {
  /** A frame as the runtime delivers it (text, bytes, or already-parsed JSON). */
  message(raw: unknown): void;
  /** The socket's send buffer emptied below the runtime's mark. */
  drained(): void;
  closed(): void;
}

export interface SyncSockets {
  accept(request: Request): Promise<Accepted>;
  open(port: SocketPort, accepted: Accepted): SocketHandlers;
}

/**
 * How a runtime serves `/v1/sync`: an Elysia plugin over the sockets' logic, and the runtime's own socket
 * settings for the app (Bun reads them from the root Elysia instance; other runtimes have none).
 */
export interface SocketAdapter {
  plugin(sockets: SyncSockets): AnyElysia;
  settings?: Record<string, unknown>;
}

interface Session {
  conn: Connection;
  principal: Principal;
  /** Answers go out in the order frames came in, even when a later one is refused at once. */
  answered: Promise<void>;
  /**
   * Frames are taken in order: a push is checked and handed to the committer once the frames before it
   * were, without waiting for their commits, so a socket's pipelined pushes share the next group commit.
   * Any other frame waits until every earlier frame is answered.
   */
  taken: Promise<void>;
  helloTimer: ReturnType<typeof setTimeout> | null;
  recheck: ReturnType<typeof setInterval> | null;
}

type Push = Extract<v.InferOutput<typeof Up>, { type: 'push' }>;

const IGNORE: SocketHandlers = { message() {}, drained() {}, closed() {} };

export function createSyncSockets(ctx: ServerContext): SyncSockets {
  // Frames of any kind, per socket: a flood is closed with 4429 rather than queued. Four times the push limit
  // (pings and subscribes come besides pushes; 200/s by default), so a fast writer is answered `rate_limited`
  // long before its socket is closed, also where an operator raised the push limit.
  const pushRate = (ctx.deps.rateLimits ?? DEFAULT_RATE_LIMITS).pushesPerSecond;
  const frames = createRateLimiter({ pushesPerSecond: Math.max(200, 4 * pushRate), opsPerSecond: 1 });

  const reply = (s: Session, message: Down) => ctx.hub.send(s.conn, message);
  const error = (s: Session, body: ErrorBody, extra: { rid?: number; space?: string } = {}) =>
    reply(s, { type: 'error', ...extra, ...body });

  /**
   * Takes a push: checks it and hands it to the committer; resolves to what answers it, run once every
   * earlier frame is answered. The credential is asked again before every push.
   */
  const takePush = async (s: Session, message: Push, at: number): Promise<() => Promise<unknown> | unknown> => {
    if (!s.conn.device) return () => error(s, { code: 'invalid', message: 'Send hello before anything else.' });
    if (!(await stillValid(s))) return () => undefined;
    if (message.device !== s.conn.device) {
      return () => error(s, { code: 'forbidden', message: 'A socket pushes only for the device it said hello as.' }, { rid: message.rid });
    }
    if (message.ops.length > LIMITS.batchOps) {
      return () => error(s, { code: 'too_large', message: `A batch holds at most ${LIMITS.batchOps} ops.` }, { rid: message.rid });
    }
    const outcome = ctx.push(s.principal, message.device, message.ops, s.conn, at);
    outcome.catch(() => undefined); // awaited below, maybe only after earlier answers: not unhandled meanwhile
    return async () => {
      const answer = await outcome;
      if (!answer.ok) return error(s, answer.error, { rid: message.rid });
      const { ok: _, ...ack } = answer;
      return reply(s, { type: 'ack', rid: message.rid, device: message.device, ...ack });
    };
  };

  const handle = async (s: Session, message: Exclude<v.InferOutput<typeof Up>, Push>) => {
    if (message.type === 'ping') {
      const sent = ctx.hub.sentCursors(s.conn);
      return reply(s, { type: 'pong', t: message.t, ...(sent === undefined ? {} : { sent }) });
    }
    if (message.type === 'hello') return hello(s, message.device);
    if (!s.conn.device) return error(s, { code: 'invalid', message: 'Send hello before anything else.' });
    for (const { space, cursor } of message.spaces) {
      if (!(await ctx.accounts.isMember(s.principal.user.id, space))) {
        error(s, { code: 'forbidden', message: `You are not a member of space "${space}".` }, { space });
        continue;
      }
      const horizon = await ctx.store.horizon(space);
      if (cursor > 0 && cursor < horizon) {
        reply(s, { type: 'reset', space, horizon });
        continue;
      }
      void ctx.hub.subscribe(s.conn, space, cursor);
    }
  };

  const hello = async (s: Session, device: string) => {
    if (s.helloTimer) clearTimeout(s.helloTimer);
    s.helloTimer = null;
    const [row, heads] = await Promise.all([ctx.store.device(device), ctx.store.heads()]);
    if (row && row.userId !== s.principal.user.id) {
      error(s, { code: 'forbidden', message: 'This device id belongs to another user; mint a new one.' });
      return ctx.hub.close(s.conn, CLOSE.forbidden, 'device belongs to another user');
    }
    ctx.hub.hello(s.conn, device);
    reply(s, { type: 'welcome', protocol: PROTOCOL_VERSION, user: s.principal.user.id, lamport: heads.lamport, through: row?.lastSeq ?? 0 });
  };

  /** Signed out, revoked or expired since the handshake: closed with 4401, as at the handshake. */
  const stillValid = async (s: Session): Promise<boolean> => {
    if (!s.principal.stillValid || (await s.principal.stillValid())) return true;
    ctx.hub.close(s.conn, CLOSE.authRequired, 'auth_required');
    return false;
  };

  const receive = (s: Session, raw: unknown) => {
    if (s.conn.closed) return;
    if (frames.take(`socket:${s.conn.id}`, 0, ctx.now()) > 0) return ctx.hub.close(s.conn, CLOSE.rateLimited, 'too many frames');
    const size = frameBytes(raw);
    if (size > LIMITS.batchBytes) {
      // The same limit as an HTTP body (PROTOCOL §8), answered so the device halves its batch.
      const rid = ridOf(raw);
      const body: ErrorBody = { code: 'too_large', message: `The frame is ${size} bytes; the limit is ${LIMITS.batchBytes}.` };
      s.answered = s.answered.then(() => { error(s, body, rid === undefined ? {} : { rid }); });
      return;
    }
    const parsed = v.safeParse(Up, parseFrame(raw));
    if (!parsed.success) {
      s.answered = s.answered.then(() => { error(s, { code: 'invalid', message: describeIssues(parsed.issues) }); });
      return;
    }
    const message = parsed.output;
    const failed = (err: unknown) => {
      logFailure('socket frame failed', err);
      error(s, { code: 'internal', message: 'The server failed to process that frame; nothing was acknowledged.' },
        message.type === 'push' ? { rid: message.rid } : {});
    };
    if (message.type === 'push') {
      const at = ctx.now();
      const taken = s.taken.then(() => takePush(s, message, at));
      s.taken = taken.then(() => undefined, () => undefined);
      s.answered = s.answered.then(() => taken).then((answer) => answer()).then(() => undefined, failed);
      return;
    }
    // Answered only after every earlier frame, so `answered` covers `taken` too.
    s.answered = s.answered.then(() => handle(s, message)).then(() => undefined, failed);
    s.taken = s.answered;
  };

  return {
    async accept(request) {
      refuseUrlTokens(new URL(request.url));
      if (!originAllowed(request, ctx.origins)) throw fail('forbidden', 'This Origin may not open a sync socket.');
      const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
      if (!offered.includes(SOCKET_PROTOCOL)) throw fail('invalid', `Offer the subprotocol "${SOCKET_PROTOCOL}".`);
      // Missing or expired credentials are answered after the upgrade, with close code 4401: a browser
      // sees only "1006" for a refused handshake and could not tell "sign in again" from "offline".
      return {
        protocol: SOCKET_PROTOCOL, principal: await ctx.authenticate(request),
        from: offered.includes(FROM_PROTOCOL), sent: offered.includes(SENT_PROTOCOL),
      };
    },

    open(port, accepted) {
      const principal = accepted.principal;
      if (!principal) {
        port.close(CLOSE.authRequired, 'auth_required');
        return IGNORE;
      }
      const limit = ctx.deps.maxSocketsPerUser ?? DEFAULT_MAX_SOCKETS_PER_USER;
      if (ctx.hub.socketsOf(principal.user.id) >= limit) {
        // After the upgrade, like 4401: a browser cannot read a refused handshake. The frame says why in words.
        ctx.metrics.count('ferry_sockets_refused_total');
        const refusal: Down = { type: 'error', code: 'rate_limited', retryAfterMs: TOO_MANY_SOCKETS_RETRY_MS,
          message: `You have ${limit} sync connections open to this server, the most it allows; close a tab or try again later.` };
        port.send(JSON.stringify(refusal));
        port.close(CLOSE.rateLimited, 'too many sockets');
        return IGNORE;
      }
      const conn = ctx.hub.open(port, principal.user.id, { from: accepted.from, sent: accepted.sent });
      const s: Session = { conn, principal, answered: Promise.resolve(), taken: Promise.resolve(), helloTimer: null, recheck: null };
      conn.recheck = () => stillValid(s);
      s.helloTimer = setTimeout(() => ctx.hub.close(conn, CLOSE.noHello, 'no hello in time'), HELLO_TIMEOUT_MS);
      if (principal.stillValid) {
        s.recheck = setInterval(() => void stillValid(s).catch(() => undefined), RECHECK_EVERY_MS);
        (s.recheck as { unref?: () => void }).unref?.();
      }
      return {
        message: (raw) => receive(s, raw),
        drained: () => ctx.hub.drained(conn),
        closed() {
          if (s.helloTimer) clearTimeout(s.helloTimer);
          if (s.recheck) clearInterval(s.recheck);
          ctx.hub.closed(conn);
        },
      };
    },
  };
}

/**
 * A frame's size in UTF-8 bytes as it came over the wire. Elysia hands a JSON frame over already parsed,
 * so for an object it is the size of its JSON, summed without recursion (frames nest up to thousands of
 * levels) and without building the text, stopping once past `LIMITS.batchBytes`. String escapes count as
 * one byte, so a frame full of them may read a little smaller than it was: still bounded by the runtime's
 * own cap (LIMITS.socketFrameBytes).
 */
function frameBytes(raw: unknown): number {
  if (typeof raw === 'string') return utf8Length(raw);
  if (raw instanceof Uint8Array || raw instanceof ArrayBuffer) return raw.byteLength;
  let bytes = 0;
  const stack: unknown[] = [raw];
  while (stack.length > 0 && bytes <= LIMITS.batchBytes) {
    const value = stack.pop();
    if (typeof value === 'string') bytes += utf8Length(value) + 2;
    else if (value === null || typeof value !== 'object') bytes += String(value).length;
    else if (Array.isArray(value)) {
      bytes += 1 + Math.max(1, value.length);
      for (const item of value) stack.push(item);
    } else {
      const entries = Object.entries(value);
      bytes += 1 + Math.max(1, entries.length);
      for (const [key, item] of entries) {
        bytes += utf8Length(key) + 3;
        stack.push(item);
      }
    }
  }
  return bytes;
}

/** The rid of a push frame too large to parse whole: read from its first bytes, where clients put it. */
function ridOf(raw: unknown): number | undefined {
  if (raw !== null && typeof raw === 'object' && !(raw instanceof Uint8Array) && !(raw instanceof ArrayBuffer)) {
    const rid = (raw as { rid?: unknown }).rid; // the runtime parsed the JSON already
    return Number.isSafeInteger(rid) && (rid as number) >= 0 ? (rid as number) : undefined;
  }
  const head = typeof raw === 'string' ? raw.slice(0, 256)
    : raw instanceof Uint8Array || raw instanceof ArrayBuffer ? new TextDecoder().decode(new Uint8Array(raw instanceof ArrayBuffer ? raw : raw.buffer, 0, 256))
    : '';
  const match = /"rid"\s*:\s*(\d{1,15})[,}]/.exec(head);
  return match ? Number(match[1]) : undefined;
}

/** A runtime may hand over a string, a parsed object or bytes; bad JSON becomes a value Up refuses. */
function parseFrame(raw: unknown): unknown {
  if (typeof raw === 'string') {
    try {
      return JSON.parse(raw);
    } catch {
      return { type: 'not json' };
    }
  }
  if (raw instanceof Uint8Array || raw instanceof ArrayBuffer) {
    return parseFrame(new TextDecoder('utf-8', { fatal: false }).decode(raw));
  }
  return raw;
}
