// The sync socket on Deno: a plain GET route that runs the handshake checks, upgrades with
// `Deno.upgradeWebSocket` and wires the socket's events to the runtime-free logic in sync-socket.ts;
// and `Deno.serve` over the app's fetch handler. Deno's WebSocket reports bufferedAmount but has no
// drain event, so the adapter watches the buffer itself while anything is queued.
import { Elysia, type AnyElysia } from 'elysia';
import { LIMITS } from '../core/limits.ts';
import { fail } from './errors.ts';
import type { SocketPort } from './hub.ts';
import type { Listening, Runtime } from './runtime.ts';
import type { SocketAdapter, SocketHandlers, SyncSockets } from './sync-socket.ts';

/** The little of Deno's API this file uses (the server's types are Bun's; Deno's are not loaded). */
interface DenoSocket {
  readonly bufferedAmount: number;
  readonly readyState: number;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: (() => void) | null;
  onerror: (() => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
interface DenoServer {
  addr: { port: number };
  shutdown(): Promise<void>;
}
declare const Deno: {
  upgradeWebSocket(request: Request, options: { protocol?: string; idleTimeout?: number }): { socket: DenoSocket; response: Response };
  serve(options: { hostname: string; port: number; onListen?: () => void }, handler: (request: Request) => Response | Promise<Response>): DenoServer;
};

type Timer = ReturnType<typeof setTimeout>;

/** How often a socket with bytes queued looks whether they left (Bun says so with its drain event). */
const DRAIN_POLL_MS = 25;
/** Seconds between the server's pings; a socket that does not answer one in time is closed (as Bun's 60). */
const IDLE_TIMEOUT_S = 60;
/**
 * Deno drops the connection, its close frame unread by the client, when a frame arrives after it sent
 * that close: a client still sending (a flood closed with 4429, a hello racing a 4401) would see 1006 and
 * not the reason. So a close is sent once the client has been quiet this long, or this long at most.
 */
const CLOSE_QUIET_MS = 50;
const CLOSE_WAIT_MS = 1000;

/** WebSocket's own "message too big" (RFC 6455), which Bun sends for a frame over its cap. */
const CLOSE_TOO_BIG = 1009;

/** This process's open sync sockets, closed when it stops listening (Deno's shutdown waits for them). */
const open = new Set<DenoSocket>();

function plugin(sockets: SyncSockets) {
  return new Elysia({ name: 'ferry-sync' }).get('/v1/sync', async ({ request }) => {
    const accepted = await sockets.accept(request);
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') throw fail('invalid', 'Open /v1/sync as a WebSocket.');
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: accepted.protocol, idleTimeout: IDLE_TIMEOUT_S });
    let handlers: SocketHandlers | null = null;
    const drain = drainWatch(socket, () => handlers?.drained());
    const closer = quietCloser(socket);
    const port: SocketPort = {
      send(text) {
        if (socket.readyState !== 1 || closer.closing()) return;
        socket.send(text);
        if (socket.bufferedAmount > 0) drain.watch();
      },
      bufferedAmount: () => socket.bufferedAmount,
      close: closer.close,
    };
    socket.onopen = () => {
      open.add(socket);
      handlers = sockets.open(port, accepted);
    };
    socket.onmessage = (event) => {
      if (closer.heard()) return; // closing: frames in flight are dropped
      // Bun closes a frame over this with 1009 before Ferry sees it; Deno's cap is far higher.
      const size = typeof event.data === 'string' ? event.data.length : (event.data as ArrayBuffer).byteLength;
      if (size > LIMITS.socketFrameBytes) return closer.close(CLOSE_TOO_BIG, 'frame too large');
      handlers?.message(event.data);
    };
    socket.onclose = () => {
      open.delete(socket);
      drain.stop();
      closer.stop();
      handlers?.closed();
      handlers = null;
    };
    socket.onerror = () => {}; // a close follows
    return response;
  });
}

/**
 * Drained as Bun means it: everything handed to the socket has gone to the network. (Resuming while
 * frames are still queued would let a reader that stalled keep the server's buffer just under the hub's
 * mark forever, never paused long enough to be closed.)
 */
function drainWatch(socket: DenoSocket, drained: () => void) {
  let timer: ReturnType<typeof setInterval> | null = null;
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  return {
    stop,
    watch() {
      timer ??= setInterval(() => {
        if (socket.bufferedAmount > 0) return;
        stop();
        drained();
      }, DRAIN_POLL_MS);
    },
  };
}

/** A close sent once the client has been quiet for CLOSE_QUIET_MS (see there), CLOSE_WAIT_MS at most. */
function quietCloser(socket: DenoSocket) {
  let closing: { code: number; reason: string; quiet: Timer; latest: Timer } | null = null;
  const stop = () => {
    if (!closing) return;
    clearTimeout(closing.quiet);
    clearTimeout(closing.latest);
  };
  const now = () => {
    stop();
    if (closing) socket.close(closing.code, closing.reason);
  };
  return {
    stop,
    closing: () => closing !== null,
    close(code: number, reason: string) {
      closing ??= { code, reason, quiet: setTimeout(now, CLOSE_QUIET_MS), latest: setTimeout(now, CLOSE_WAIT_MS) };
    },
    /** A frame arrived: true while closing (the quiet period starts again). */
    heard(): boolean {
      if (!closing) return false;
      clearTimeout(closing.quiet);
      closing.quiet = setTimeout(now, CLOSE_QUIET_MS);
      return true;
    },
  };
}

export const denoSocket: SocketAdapter = { plugin };

async function listen(app: AnyElysia, at: { hostname: string; port: number }): Promise<Listening> {
  const server = Deno.serve({ hostname: at.hostname, port: at.port, onListen() {} }, (request) => app.fetch(request));
  // Elysia's onStart/onStop hooks fire from its own listen only (Bun's); Deno.serve is not it.
  const ctx = (app.decorator as { ferry?: { startBackground(): void; stopBackground(): void } }).ferry;
  ctx?.startBackground();
  return {
    port: server.addr.port,
    async stop() {
      // shutdown() waits for open connections, and an upgraded socket stays open until closed.
      for (const socket of open) socket.close(1001, 'server stopping');
      ctx?.stopBackground();
      await server.shutdown();
    },
  };
}

/** Ferry on Deno: `Deno.upgradeWebSocket` for the sync socket, and `listen(app, { hostname, port })` with `Deno.serve`. */
export const denoRuntime: Runtime = { name: 'deno', socket: denoSocket, listen };
