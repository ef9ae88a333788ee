// HTTP helpers for the server suites: one `call` for JSON requests with a bearer token or a session
// cookie, a raw TCP request (to see the HTTP answer to a refused WebSocket handshake, which the
// WebSocket API hides), and a fingerprint of the database to prove a refused request changed nothing.
import type { Client } from '@libsql/client';
import type { SyncStore } from '../../server/storage/sync-store.ts';

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The JSON body, or undefined when the body is not JSON. */
  body: any;
}

export interface CallOptions {
  method?: string;
  token?: string;
  /** A whole `name=value` cookie pair. */
  cookie?: string;
  headers?: Record<string, string>;
  /** Sent as JSON unless it is already a string. */
  body?: unknown;
}

export async function call(base: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.cookie) headers.cookie = options.cookie;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${base}${path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** The `ferry_session=…` pair from a Set-Cookie header, or null. */
export function sessionPair(reply: Reply): string | null {
  const header = reply.headers.get('set-cookie');
  const match = header?.match(/(?:^|,\s*)(ferry_session=[^;]*)/);
  return match ? match[1]! : null;
}

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `request` verbatim over TCP to 127.0.0.1:port and parses the answer's head (and body, by
 * Content-Length). Bounded by `ms`.
 */
export function rawRequest(port: number, request: string, ms = 5000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    let data = '';
    let done = false;
    const finish = (socket?: { end(): void }) => {
      if (done) return;
      const head = data.indexOf('\r\n\r\n');
      if (head < 0) return;
      const lines = data.slice(0, head).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const body = data.slice(head + 4);
      const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
      if (Buffer.byteLength(body) < length) return;
      done = true;
      clearTimeout(timer);
      socket?.end();
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body });
    };
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`no complete answer in ${ms} ms; got ${JSON.stringify(data.slice(0, 300))}`));
    }, ms);
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open(socket) {
          socket.write(request);
        },
        data(socket, chunk) {
          data += new TextDecoder().decode(chunk);
          finish(socket);
        },
        close() {
          finish();
          if (!done) {
            done = true;
            clearTimeout(timer);
            reject(new Error(`connection closed before a complete answer: ${JSON.stringify(data.slice(0, 300))}`));
          }
        },
        error(_socket, error) {
          if (!done) {
            done = true;
            clearTimeout(timer);
            reject(error);
          }
        },
      },
    }).catch(reject);
  });
}

/** A WebSocket handshake for /v1/sync sent by hand, so the test sees the HTTP status of a refusal. */
export function handshake(base: string, options: { path?: string; protocols?: string[]; headers?: Record<string, string> } = {}): Promise<RawReply> {
  const port = Number(new URL(base).port);
  const lines = [
    `GET ${options.path ?? '/v1/sync'} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Protocol: ${(options.protocols ?? ['ferry.v1']).join(', ')}`,
    ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
  ];
  return rawRequest(port, `${lines.join('\r\n')}\r\n\r\n`);
}

export interface DbFingerprint {
  heads: { serverSeq: number; lamport: number };
  rows: Record<string, number>;
}

/** Heads plus the row count of every sync table: equal fingerprints mean nothing was written. Reads the
 * server's file through the test's own connection to it (targets.ts). */
export async function fingerprint(server: { client: Client; store: SyncStore }): Promise<DbFingerprint> {
  const rows: Record<string, number> = {};
  for (const table of ['ops', 'entities', 'devices', 'meta']) {
    const result = await server.client.execute(`SELECT count(*) AS n FROM ${table}`);
    rows[table] = Number(result.rows[0]!.n);
  }
  return { heads: await server.store.heads(), rows };
}

/** The value of one un-labelled Prometheus sample, or NaN when the metric is missing. */
export function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}
