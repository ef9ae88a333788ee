// The /v1/sync socket: handshake checks (Origin, credentials, subprotocol), then hello → welcome,
// pipelined pushes answered in order, subscribe with catch-up, ping/pong. Fan-out lives in hub.ts.
import { Elysia } from 'elysia';
import * as v from 'valibot';
import { LIMITS } from '../core/limits.ts';
import { describeIssues, Up, type Down, type ErrorBody } from '../schema/wire.ts';
import { originAllowed, refuseUrlTokens, SOCKET_PROTOCOL, type Principal } from './auth.ts';
import type { Ferry } from './context.ts';
import { CLOSE, fail } from './errors.ts';
import type { Connection } from './hub.ts';
import { createRateLimiter } from './rate-limit.ts';

const HELLO_TIMEOUT_MS = 10_000;

interface Session {
  conn: Connection;
  principal: Principal;
  /** Answers go out in the order frames came in, even when a later one is refused at once. */
  answered: Promise<void>;
  helloTimer: ReturnType<typeof setTimeout> | null;
  id: number;
}

type Raw = { send(data: string): number; getBufferedAmount(): number; close(code?: number, reason?: string): void };

export function syncSocket(ferry: Ferry) {
  const sessions = new WeakMap<object, Session>();
  // Frames of any kind, per socket: a flood is closed with 4429 rather than queued.
  const frames = createRateLimiter({ pushesPerSecond: 200, opsPerSecond: 1 });
  let nextId = 1;

  const reply = (s: Session, message: Down) => ferry.hub.send(s.conn, message);
  const error = (s: Session, body: ErrorBody, extra: { rid?: number; space?: string } = {}) =>
    reply(s, { type: 'error', ...extra, ...body });

  const handle = async (s: Session, message: v.InferOutput<typeof Up>) => {
    if (message.type === 'ping') return reply(s, { type: 'pong', t: message.t });
    if (message.type === 'hello') return hello(s, message.device);
    if (!s.conn.device) return error(s, { code: 'invalid', message: 'Send hello before anything else.' });
    if (message.type === 'push') {
      if (message.device !== s.conn.device) {
        return error(s, { code: 'forbidden', message: 'A socket pushes only for the device it said hello as.' }, { rid: message.rid });
      }
      if (message.ops.length > LIMITS.batchOps) {
        return error(s, { code: 'too_large', message: `A batch holds at most ${LIMITS.batchOps} ops.` }, { rid: message.rid });
      }
      const outcome = await ferry.push(s.principal, message.device, message.ops, s.conn);
      if (!outcome.ok) return error(s, outcome.error, { rid: message.rid });
      const { ok: _, ...ack } = outcome;
      return reply(s, { type: 'ack', rid: message.rid, device: message.device, ...ack });
    }
    for (const { space, cursor } of message.spaces) {
      if (!(await ferry.accounts.isMember(s.principal.user.id, space))) {
        error(s, { code: 'forbidden', message: `You are not a member of space "${space}".` }, { space });
        continue;
      }
      const horizon = await ferry.store.horizon(space);
      if (cursor > 0 && cursor < horizon) {
        reply(s, { type: 'reset', space, horizon });
        continue;
      }
      void ferry.hub.subscribe(s.conn, space, cursor, () => ferry.lamport.value);
    }
  };

  const hello = async (s: Session, device: string) => {
    if (s.helloTimer) clearTimeout(s.helloTimer);
    s.helloTimer = null;
    const row = await ferry.store.device(device);
    if (row && row.userId !== s.principal.user.id) {
      error(s, { code: 'forbidden', message: 'This device id belongs to another user; mint a new one.' });
      return ferry.hub.close(s.conn, CLOSE.forbidden, 'device belongs to another user');
    }
    ferry.hub.hello(s.conn, device);
    reply(s, { type: 'welcome', protocol: 1, user: s.principal.user.id, lamport: ferry.lamport.value, through: row?.lastSeq ?? 0 });
  };

  return new Elysia({ name: 'ferry-sync' }).ws('/v1/sync', {
    // Runs once per handshake, before the upgrade: a throw here answers with an HTTP error instead.
    async upgrade(context) {
      const { request, set } = context;
      refuseUrlTokens(new URL(request.url));
      if (!originAllowed(request, ferry.origins)) throw fail('forbidden', 'This Origin may not open a sync socket.');
      const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
      if (!offered.includes(SOCKET_PROTOCOL)) throw fail('invalid', `Offer the subprotocol "${SOCKET_PROTOCOL}".`);
      // Missing or expired credentials are answered after the upgrade, with close code 4401: a browser
      // sees only "1006" for a refused handshake and could not tell "sign in again" from "offline".
      const principal = await ferry.authenticate(request);
      set.headers['sec-websocket-protocol'] = SOCKET_PROTOCOL;
      (context as unknown as { ferryPrincipal: Principal | null }).ferryPrincipal = principal;
    },
    open(ws) {
      const raw = ws.raw as unknown as Raw;
      const principal = (ws.data as unknown as { ferryPrincipal: Principal | null }).ferryPrincipal;
      if (!principal) return raw.close(CLOSE.authRequired, 'auth_required');
      const conn = ferry.hub.open({
        send: (text) => raw.send(text),
        bufferedAmount: () => raw.getBufferedAmount(),
        close: (code, reason) => raw.close(code, reason),
      }, principal.user.id);
      const s: Session = { conn, principal, answered: Promise.resolve(), helloTimer: null, id: nextId++ };
      s.helloTimer = setTimeout(() => ferry.hub.close(conn, CLOSE.noHello, 'no hello in time'), HELLO_TIMEOUT_MS);
      sessions.set(ws.raw, s);
    },
    message(ws, raw: unknown) {
      const s = sessions.get(ws.raw);
      if (!s || s.conn.closed) return;
      if (frames.take(`socket:${s.id}`, 0, ferry.now()) > 0) {
        return ferry.hub.close(s.conn, CLOSE.rateLimited, 'too many frames');
      }
      const parsed = v.safeParse(Up, parseFrame(raw));
      if (!parsed.success) {
        s.answered = s.answered.then(() => { error(s, { code: 'invalid', message: describeIssues(parsed.issues) }); });
        return;
      }
      s.answered = s.answered.then(() => handle(s, parsed.output)).then(() => undefined, (err) => {
        console.error('ferry: socket frame failed', err);
        error(s, { code: 'internal', message: 'The server failed to process that frame; nothing was acknowledged.' },
          parsed.output.type === 'push' ? { rid: parsed.output.rid } : {});
      });
    },
    drain(ws) {
      const s = sessions.get(ws.raw);
      if (s) ferry.hub.drained(s.conn, () => ferry.lamport.value);
    },
    close(ws) {
      const s = sessions.get(ws.raw);
      if (!s) return;
      if (s.helloTimer) clearTimeout(s.helloTimer);
      ferry.hub.closed(s.conn);
      sessions.delete(ws.raw);
    },
  });
}

/** Elysia may hand over a string, a parsed object or bytes; bad JSON becomes a value Up refuses. */
function parseFrame(raw: unknown): unknown {
  if (typeof raw === 'string') {
    try {
      return JSON.parse(raw);
    } catch {
      return { type: 'not json' };
    }
  }
  if (raw instanceof Uint8Array || raw instanceof ArrayBuffer || Buffer.isBuffer(raw)) {
    return parseFrame(new TextDecoder('utf-8', { fatal: false }).decode(raw as Uint8Array));
  }
  return raw;
}
