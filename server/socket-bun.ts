// The sync socket on Bun: a plain GET route that runs the handshake checks and upgrades with Bun's own
// `server.upgrade`, wired to the runtime-free logic in sync-socket.ts; and Elysia's own listen (Bun.serve).
// All this adapter knows is how Bun upgrades, sends, reports its buffer and says when it drained.
//
// Not Elysia's `.ws()`: it keeps each socket's whole request context (the Request, its headers, half a
// dozen closures) for the socket's life, and wraps every message and drain in a new ElysiaWS (nine bound
// methods), which at 20,000 sockets was a large part of the server's memory and of its time per frame
// (docs/benchmarks.md, row 4). Elysia's Bun.serve still dispatches each socket's events to `ws.data`
// (`ws.data.message(ws, message)`), so the socket's data is a small object whose methods are those events.
import { Elysia, type AnyElysia } from 'elysia';
import type { Server, ServerWebSocket } from 'bun';
import { LIMITS } from '../core/limits.ts';
import { fail } from './errors.ts';
import type { SocketPort } from './hub.ts';
import type { Listening, Runtime } from './runtime.ts';
import type { Accepted, SocketAdapter, SocketHandlers, SyncSockets } from './sync-socket.ts';

/** Bun's own settings for every socket of the app (Elysia applies them to `Bun.serve`). */
const BUN_WEBSOCKET = {
  // Frames up to this are read and, over one batch, answered too_large; bigger ones Bun closes (1009).
  maxPayloadLength: LIMITS.socketFrameBytes,
  idleTimeout: 60,
  // Bun's own hard stop; the hub pauses far earlier (1 MiB) and closes slow sockets with 4008.
  backpressureLimit: 16 * 1024 * 1024,
  closeOnBackpressureLimit: true,
};

/** What the hub sends through: the socket itself. */
class Port implements SocketPort {
  constructor(private readonly ws: ServerWebSocket<Events>) {}

  send(text: string): void {
    this.ws.send(text);
  }

  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }
}

/** One socket's `ws.data`: Elysia's Bun.serve calls these for its events (`ws.data.message(ws, message)`). */
class Events {
  private handlers: SocketHandlers | null = null;

  constructor(private readonly sockets: SyncSockets, private accepted: Accepted | null) {}

  open(ws: ServerWebSocket<Events>): void {
    if (!this.accepted) return;
    this.handlers = this.sockets.open(new Port(ws), this.accepted);
    this.accepted = null; // the principal lives on in the session; nothing else of the handshake is kept
  }

  message(_ws: ServerWebSocket<Events>, message: string | Uint8Array): void {
    this.handlers?.message(message);
  }

  drain(): void {
    this.handlers?.drained();
  }

  close(): void {
    this.handlers?.closed();
    this.handlers = null;
  }
}

function plugin(sockets: SyncSockets) {
  return new Elysia({ name: 'ferry-sync' }).get('/v1/sync', async ({ request, server }) => {
    const accepted = await sockets.accept(request);
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') throw fail('invalid', 'Open /v1/sync as a WebSocket.');
    const upgraded = (server as Server<Events> | null)?.upgrade(request, {
      headers: { 'sec-websocket-protocol': accepted.protocol },
      data: new Events(sockets, accepted),
    });
    if (!upgraded) throw fail('invalid', 'Open /v1/sync as a WebSocket.');
    return undefined; // upgraded: Bun answers the handshake itself
  });
}

export const bunSocket: SocketAdapter = { plugin, settings: BUN_WEBSOCKET };

async function listen(app: AnyElysia, at: { hostname: string; port: number }): Promise<Listening> {
  app.listen(at);
  return { port: app.server!.port!, stop: () => app.stop().then(() => undefined) };
}

/** Ferry on Bun: Bun's WebSocket server for the sync socket, and `listen(app, { hostname, port })`. */
export const bunRuntime: Runtime = { name: 'bun', socket: bunSocket, listen };
