// What a runtime hands Ferry: how it serves the sync socket and how it listens. Everything else, every
// route, the apply path, auth, limits and the hub, is the same code on every runtime. Each runtime's
// adapter is a page long: socket-bun.ts (Bun), socket-deno.ts (Deno).
import type { AnyElysia } from 'elysia';
import type { SocketAdapter } from './sync-socket.ts';

export interface Listening {
  /** The port the OS gave (listen on port 0 to let it pick). */
  port: number;
  /** Stops accepting, closes open sockets, and resolves once the listener is gone. */
  stop(): Promise<void>;
}

export interface Runtime {
  name: 'bun' | 'deno';
  socket: SocketAdapter;
  listen(app: AnyElysia, at: { hostname: string; port: number }): Promise<Listening>;
}

/** The runtime this process runs on. */
export async function currentRuntime(): Promise<Runtime> {
  if ('Deno' in globalThis) return (await import('./socket-deno.ts')).denoRuntime;
  return (await import('./socket-bun.ts')).bunRuntime;
}
