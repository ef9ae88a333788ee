// The device engine's sync socket: the reconnecting manager, the conversation on each socket, and the
// transport the drainer pipelines over while the socket is ready (HTTP otherwise). device.ts composes it.
import type { SpaceRef } from '../schema/accounts.ts';
import { fetchSnapshot } from './snapshot.ts';
import { createHttpTransport } from './http-transport.ts';
import type { AckApplied } from './records.ts';
import type { Transport } from './ports.ts';
import { createSocketManager, type SocketManager } from './socket-manager.ts';
import { createSocketSession, type SocketSession } from './socket-session.ts';
import { createSocketTransport, DEFAULT_SOCKET_WINDOW } from './socket-transport.ts';
import type { StatusTracker } from './status.ts';
import type { Connection, DeviceOptions, DevicePorts } from './device.ts';

export interface DeviceSocket {
  /** The drainer's transport: the socket while it is ready, HTTP otherwise. */
  transport: Transport;
  session: SocketSession;
  /** Null when the context has no socket (a Service Worker). */
  manager: SocketManager | null;
  /** Connect now: start a stopped manager, or skip a backoff wait. */
  reconnect(): void;
  connection: Connection | null;
}

export interface SocketHooks {
  id: string;
  url: string;
  tracker: StatusTracker;
  changed(space: string, collection: string): void;
  acked(applied: AckApplied): void;
  /** The server said welcome on a fresh socket. */
  welcomed(): void;
  spaces(spaces: SpaceRef[]): void;
}

export function createDeviceSocket(ports: DevicePorts, options: DeviceOptions, hooks: SocketHooks): DeviceSocket {
  const { store, timers, now } = ports;
  const { tracker, url } = hooks;
  const window = options.socketWindow ?? DEFAULT_SOCKET_WINDOW;
  const timeout = options.pushTimeoutMs ? { timeoutMs: options.pushTimeoutMs } : {};
  const socketTransport = createSocketTransport({ timers, window, ...timeout });
  const session = createSocketSession({
    store, device: hooks.id, transport: socketTransport, now,
    snapshot: (space, after, head) => fetchSnapshot(ports.fetch, url, space, after, head),
    changed: hooks.changed, acked: hooks.acked, welcomed: hooks.welcomed, spaces: hooks.spaces,
    updated: () => {
      const info = session.info();
      tracker.update({
        welcomed: info.welcomed, subscribed: info.subscribed, caughtUp: info.caughtUp,
        serverLag: info.serverLag, socketError: info.lastError,
      });
    },
  });
  const manager = ports.socket
    ? createSocketManager({
      url: `${url.replace(/^http/, 'ws')}/v1/sync`,
      protocols: ports.socket.protocols, WebSocket: ports.socket.WebSocket,
      timers, now, random: ports.random,
      ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.reconnect ? { policy: options.reconnect } : {}),
      onOpen: (send) => session.opened(send),
      onFrame: (frame) => session.frame(frame),
      onStatus: (status) => {
        if (status.state !== 'open') session.closed();
        tracker.update({ socket: status });
      },
    })
    : null;
  const http = createHttpTransport({ url, fetch: ports.fetch, ...timeout });
  return {
    transport: {
      push: (request) => (socketTransport.ready() ? socketTransport : http).push(request),
      window: () => (socketTransport.ready() ? window : 1),
    },
    session,
    manager,
    reconnect() {
      if (manager === null) return;
      const state = manager.status().state;
      if (state === 'idle' || state === 'stopped') manager.start();
      else manager.reconnectNow();
    },
    connection: manager === null ? null : {
      start: () => manager.start(),
      stop: () => manager.stop(),
      reconnectNow: () => manager.reconnectNow(),
      state: () => manager.status().state,
      info: () => ({ ...session.info(), ready: socketTransport.ready() }),
    },
  };
}
