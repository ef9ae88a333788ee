// A seeded fault proxy on 127.0.0.1 in front of a real Ferry server, for reliability tests.
//
// HTTP, `POST /v1/push` only (every other request is passed through untouched):
//   drop          the request never reaches the server; the client gets 504 with an empty body
//   lose-ack      forwarded, the server commits, then the answer is replaced by 502 (or a cut connection)
//   duplicate     forwarded twice (one after the other, or both at once); the client sees one of the answers
//   delay         held 1–25 ms before it is forwarded (reorders concurrent pushes)
//   garbage       forwarded (server commits), the client gets 200 with unparseable text
//   cut           forwarded, the server commits, the answer is cut short (truncated body, or a reset: cuttingFetch)
//
// WebSocket `/v1/sync` (message level, both directions): drop, duplicate, delay, reorder within a
// window of a few frames, cut (both sides closed). The subprotocols and headers of the handshake are
// passed through, so bearer-token subprotocols work. `forceNextWs` aims a fault at the next frame(s),
// `cutWs` cuts connections now, and `observeWs` reports the fate of every frame (delivered, dropped by
// a fault, or lost because its connection closed first), so a test can tell what a client never got.
//
// Every decision comes from one seeded PRNG, so a run is replayable with its seed (scheduling of real
// I/O aside). `counts` says how many faults of each kind were injected.
import { rng } from './rng.ts';

export { rng };

export type HttpFault = 'drop' | 'lose-ack' | 'duplicate' | 'delay' | 'garbage' | 'cut';
export type WsFault = 'ws-drop' | 'ws-duplicate' | 'ws-delay' | 'ws-reorder' | 'ws-cut';

/** Probability of each fault per push request (checked in this order; at most one fault per request). */
export type HttpPlan = Partial<Record<HttpFault, number>>;
export type WsPlan = Partial<Record<WsFault, number>>;

/** One relayed frame's fate. `conn` numbers the relayed connections from 1, in the order they opened. */
export interface WsEvent {
  conn: number;
  to: 'up' | 'down';
  data: string;
  fate: 'delivered' | 'dropped' | 'lost';
}

export interface FaultProxy {
  base: string;
  ws: string;
  counts: Record<HttpFault | WsFault | 'forwarded' | 'frames', number>;
  /** Replace the fault probabilities (an empty plan = a transparent proxy). */
  setPlan(plan: HttpPlan, wsPlan?: WsPlan): void;
  /** Forces the next push request(s) to get this fault, whatever the plan says. */
  forceNext(fault: HttpFault, times?: number): void;
  /** Forces the next relayed WebSocket frame(s) (of direction `to`, and of message `type`, if given) to get this fault. */
  forceNextWs(fault: WsFault, times?: number, to?: 'up' | 'down', type?: string): void;
  /** Cuts every relayed socket now (or only connection `conn`), as `ws-cut` does; returns how many. */
  cutWs(conn?: number): number;
  /** WebSocket frames held (reorder) or delayed right now, not yet delivered or lost. */
  pendingWs(): number;
  /** Reports every relayed frame's fate to `listener` (null: stop reporting). */
  observeWs(listener: ((event: WsEvent) => void) | null): void;
  /** Points the proxy at another server (a restarted one). */
  setTarget(target: string): void;
  /** Reseeds the PRNG (and forgets WebSocket faults forced and not yet used). */
  reseed(seed: number): void;
  stop(): Promise<void>;
}

const HTTP_FAULTS: HttpFault[] = ['drop', 'lose-ack', 'duplicate', 'delay', 'garbage', 'cut'];
const WS_FAULTS: WsFault[] = ['ws-drop', 'ws-duplicate', 'ws-delay', 'ws-reorder', 'ws-cut'];
const GARBAGE = ['<html><body>502 Bad Gateway</body></html>', '{"through": 3, "results": [', 'OK', '\u0000\u0001\u0002', '{"through":"x"}'];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A connection cut mid-answer. Bun's server cannot reset a socket from a fetch handler without
 * logging the aborted stream, so half the time the answer is a truncated body (headers sent, body
 * cut short: unparseable), and half the time a 599 marked `x-fault: cut`, which `cuttingFetch` below
 * turns into the TypeError a real reset gives fetch.
 */
function cutResponse(random: ReturnType<typeof rng>): Response {
  if (random.chance(0.5)) return new Response('{"through":', { status: 200, headers: { 'content-type': 'application/json' } });
  return new Response('', { status: 599, headers: { 'x-fault': 'cut' } });
}

/** Wraps fetch so a proxy's `x-fault: cut` answer becomes the network error a reset connection gives. */
export function cuttingFetch(inner: typeof fetch = fetch): typeof fetch {
  const wrapped = async (input: RequestInfo | URL, init?: RequestInit) => {
    const response = await inner(input as any, init);
    if (response.headers.get('x-fault') === 'cut') {
      await response.arrayBuffer();
      throw new TypeError('fault-proxy: the connection was cut');
    }
    return response;
  };
  return wrapped as typeof fetch;
}

interface WsData {
  conn: number;
  url: string;
  protocols: string[];
  headers: Record<string, string>;
  upstream?: WebSocket;
  /** Frames from the client waiting for the upstream socket to open. */
  early: string[];
  held: { to: 'up' | 'down'; data: string }[];
  closed: boolean;
}

export function startFaultProxy(options: { target: string; seed: number; plan?: HttpPlan; wsPlan?: WsPlan }): FaultProxy {
  let target = options.target.replace(/\/+$/, '');
  let random = rng(options.seed);
  let plan: HttpPlan = options.plan ?? {};
  let wsPlan: WsPlan = options.wsPlan ?? {};
  const forced: HttpFault[] = [];
  const forcedWs: { fault: WsFault; to?: 'up' | 'down'; type?: string }[] = [];
  const open = new Set<Bun.ServerWebSocket<WsData>>();
  let observer: ((event: WsEvent) => void) | null = null;
  let nextConn = 1;
  let pending = 0;
  const counts = Object.fromEntries([...HTTP_FAULTS, ...WS_FAULTS, 'forwarded', 'frames'].map((k) => [k, 0])) as FaultProxy['counts'];

  const choose = (): HttpFault | null => {
    const f = forced.shift();
    if (f !== undefined) return f;
    for (const fault of HTTP_FAULTS) if (random.chance(plan[fault] ?? 0)) return fault;
    return null;
  };

  async function forward(request: Request, body: ArrayBuffer | null): Promise<Response> {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete('host');
    counts.forwarded += 1;
    try {
      return await fetch(`${target}${url.pathname}${url.search}`, {
        method: request.method, headers, body: body ?? undefined, redirect: 'manual',
      });
    } catch {
      // The server is down (being restarted): what a real gateway says.
      return new Response('', { status: 502 });
    }
  }

  /** Reads a forwarded answer whole (so the server's commit is complete) and rebuilds it. */
  async function settle(response: Promise<Response>): Promise<Response> {
    const r = await response;
    const text = await r.text();
    const headers = new Headers(r.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    return new Response(text, { status: r.status, headers });
  }

  async function push(request: Request): Promise<Response> {
    const body = await request.arrayBuffer();
    const fault = choose();
    if (fault !== null) counts[fault] += 1;
    switch (fault) {
      case null:
        return settle(forward(request, body));
      case 'drop':
        return new Response('', { status: 504 });
      case 'delay':
        await sleep(random.int(1, 25));
        return settle(forward(request, body));
      case 'lose-ack':
        await settle(forward(request, body));
        return random.chance(0.5) ? new Response('', { status: 502 }) : cutResponse(random);
      case 'cut':
        await settle(forward(request, body));
        return cutResponse(random);
      case 'garbage':
        await settle(forward(request, body));
        return new Response(random.pick(GARBAGE), { status: 200, headers: { 'content-type': 'text/html' } });
      case 'duplicate': {
        if (random.chance(0.5)) {
          const [a, b] = await Promise.all([settle(forward(request, body)), settle(forward(request, body))]);
          return random.chance(0.5) ? a : b;
        }
        const first = await settle(forward(request, body));
        const second = await settle(forward(request, body));
        return random.chance(0.5) ? first : second;
      }
    }
  }

  // ── WebSocket relay ──────────────────────────────────────────────────────────────────────────
  const chooseWs = (to: 'up' | 'down', data: string): WsFault | null => {
    const aimed = forcedWs.findIndex((f) => (f.to === undefined || f.to === to)
      && (f.type === undefined || data.startsWith(`{"type":${JSON.stringify(f.type)}`)));
    if (aimed >= 0) return forcedWs.splice(aimed, 1)[0]!.fault;
    for (const fault of WS_FAULTS) if (random.chance(wsPlan[fault] ?? 0)) return fault;
    return null;
  };

  const report = (d: WsData, to: 'up' | 'down', data: string, fate: WsEvent['fate']) => observer?.({ conn: d.conn, to, data, fate });

  const cut = (ws: Bun.ServerWebSocket<WsData>) => {
    ws.data.closed = true;
    open.delete(ws);
    ws.data.upstream?.close();
    ws.close(4000, 'fault-proxy cut');
  };

  function deliver(ws: Bun.ServerWebSocket<WsData>, to: 'up' | 'down', text: string): void {
    const d = ws.data;
    if (d.closed) return report(d, to, text, 'lost');
    report(d, to, text, 'delivered');
    if (to === 'down') ws.send(text);
    else if (d.upstream?.readyState === WebSocket.OPEN) d.upstream.send(text);
    else d.early.push(text);
  }

  /** Sends the frames held for reordering in direction `to`, each in its own direction and order. */
  function flush(ws: Bun.ServerWebSocket<WsData>, to: 'up' | 'down'): void {
    const d = ws.data;
    const out = d.held.filter((h) => h.to === to);
    d.held = d.held.filter((h) => h.to !== to);
    pending -= out.length;
    for (const held of out) deliver(ws, to, held.data);
  }

  function relay(ws: Bun.ServerWebSocket<WsData>, to: 'up' | 'down', data: string): void {
    const d = ws.data;
    if (d.closed) return report(d, to, data, 'lost');
    counts.frames += 1;
    const fault = chooseWs(to, data);
    if (fault !== null) counts[fault] += 1;
    switch (fault) {
      case null:
        // Frames held for reordering (this direction's) go out after this one.
        deliver(ws, to, data);
        return flush(ws, to);
      case 'ws-drop':
        return report(d, to, data, 'dropped');
      case 'ws-duplicate':
        deliver(ws, to, data);
        deliver(ws, to, data);
        return;
      case 'ws-delay':
        pending += 1;
        setTimeout(() => { pending -= 1; deliver(ws, to, data); }, random.int(1, 30));
        return;
      case 'ws-reorder':
        d.held.push({ to, data });
        pending += 1;
        // Bounded window: never more than 3 frames held per direction, each flushed within 50 ms.
        if (d.held.filter((h) => h.to === to).length > 3) flush(ws, to);
        else setTimeout(() => flush(ws, to), 50);
        return;
      case 'ws-cut':
        report(d, to, data, 'lost');
        return cut(ws);
    }
  }

  const server = Bun.serve<WsData, never>({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request, srv) {
      const url = new URL(request.url);
      if (url.pathname === '/v1/sync' && request.headers.get('upgrade')?.toLowerCase() === 'websocket') {
        const protocols = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim()).filter(Boolean);
        const headers: Record<string, string> = {};
        for (const name of ['origin', 'cookie', 'authorization']) {
          const value = request.headers.get(name);
          if (value !== null) headers[name] = value;
        }
        const ok = srv.upgrade(request, {
          headers: protocols.includes('ferry.v1') ? { 'sec-websocket-protocol': 'ferry.v1' } : {},
          data: { conn: nextConn++, url: `${target.replace(/^http/, 'ws')}${url.pathname}${url.search}`, protocols, headers, early: [], held: [], closed: false },
        });
        return ok ? undefined : new Response('upgrade failed', { status: 400 });
      }
      if (request.method === 'POST' && url.pathname === '/v1/push') return push(request);
      const body = request.method === 'GET' || request.method === 'HEAD' ? null : await request.arrayBuffer();
      return settle(forward(request, body));
    },
    websocket: {
      open(ws) {
        const d = ws.data;
        open.add(ws);
        const upstream = new WebSocket(d.url, { protocols: d.protocols, headers: d.headers } as any);
        d.upstream = upstream;
        upstream.addEventListener('open', () => {
          for (const text of d.early.splice(0)) upstream.send(text);
        });
        upstream.addEventListener('message', (event) => relay(ws, 'down', String(event.data)));
        upstream.addEventListener('close', (event) => {
          if (d.closed) return;
          d.closed = true;
          open.delete(ws);
          // 1005/1006 cannot be sent in a close frame.
          const code = event.code === 1005 || event.code === 1006 ? 1000 : event.code;
          ws.close(code, event.reason);
        });
      },
      message(ws, message) {
        relay(ws, 'up', typeof message === 'string' ? message : new TextDecoder().decode(message));
      },
      close(ws) {
        ws.data.closed = true;
        open.delete(ws);
        ws.data.upstream?.close();
      },
    },
  });

  const base = `http://127.0.0.1:${server.port}`;
  return {
    base,
    ws: `ws://127.0.0.1:${server.port}/v1/sync`,
    counts,
    setPlan(next, nextWs) {
      plan = next;
      if (nextWs !== undefined) wsPlan = nextWs;
    },
    forceNext(fault, times = 1) {
      for (let i = 0; i < times; i += 1) forced.push(fault);
    },
    forceNextWs(fault, times = 1, to, type) {
      for (let i = 0; i < times; i += 1) forcedWs.push({ fault, ...(to === undefined ? {} : { to }), ...(type === undefined ? {} : { type }) });
    },
    cutWs(conn) {
      const victims = [...open].filter((ws) => conn === undefined || ws.data.conn === conn);
      for (const ws of victims) {
        counts['ws-cut'] += 1;
        cut(ws);
      }
      return victims.length;
    },
    pendingWs: () => pending,
    observeWs(listener) {
      observer = listener;
    },
    setTarget(next) {
      target = next.replace(/\/+$/, '');
    },
    reseed(seed) {
      random = rng(seed);
      forcedWs.length = 0;
    },
    async stop() {
      await server.stop(true);
    },
  };
}
