// The engine's sync socket before its code is there. A page fetches the socket's part (device-socket.ts, a
// chunk of its own) as Ferry starts and does not wait for it: the first render and the first write need only
// the store. What the engine asks of the socket meanwhile is kept and carried out when the part arrives: the
// spaces to sync, whether to run or stay stopped; a push waits for it. A worker's part is there at once.
import type { Connection, DeviceParts, SocketPart } from './device.ts';
import type { DeviceSocket } from './device-socket.ts';
import type { Transport } from './ports.ts';

/** What the engine asks of its socket (device-socket.ts's DeviceSocket, usable before it exists). */
export interface EngineSocket {
  /** The drainer's transport: the socket while it is ready, HTTP otherwise. */
  transport: Transport;
  setSpaces(spaces: readonly string[]): void;
  start(): void;
  stop(): void;
  /** Connect now: start a stopped socket, or skip a backoff wait. */
  reconnect(): void;
  /** Resolves once every frame received so far is applied (none before the part arrives). */
  settled(): Promise<void>;
  /** Null when the context has no socket (a Service Worker). */
  connection: Connection | null;
}

type Make = (part: SocketPart) => DeviceSocket;

/**
 * Loads the socket's part now and makes the socket with `make` once it is there; `hasSocket` says whether
 * this context connects at all. A part that fails to load is asked for again by the next push or reconnect.
 */
export function lateSocket(load: DeviceParts['socket'], make: Make, hasSocket: boolean, report: (error: unknown) => void): EngineSocket {
  let socket: DeviceSocket | null = null;
  let loading: Promise<DeviceSocket> | null = null;
  let spaces: readonly string[] | null = null;
  let running = false;

  const arrived = (loaded: SocketPart): DeviceSocket => {
    socket = make(loaded);
    if (spaces !== null) socket.session.setSpaces(spaces);
    if (running) socket.manager?.start();
    return socket;
  };
  const part = (): DeviceSocket | Promise<DeviceSocket> => {
    if (socket !== null) return socket;
    if (loading !== null) return loading;
    const loaded = load();
    if (!(loaded instanceof Promise)) return arrived(loaded); // there at once (a worker, the model suites)
    return (loading = loaded.then(arrived, (error: unknown) => {
      loading = null;
      throw error;
    }));
  };
  /** Asks for the part (the load under way, or a new one after a failure); a failure is reported. */
  const ask = () => {
    const now = part();
    if (now instanceof Promise) now.catch(report);
  };
  ask();

  const start = () => {
    running = true;
    if (socket !== null) socket.manager?.start();
    else ask(); // it starts as it arrives, unless stopped by then
  };
  const stop = () => {
    running = false;
    socket?.manager?.stop();
  };
  return {
    transport: {
      // A part that failed to load fails the push; the drainer takes that as the network's failure, backs off
      // and tries again, which asks for the part again.
      push: async (request) => (await part()).transport.push(request),
      window: () => socket?.transport.window?.() ?? 1,
    },
    setSpaces(wanted) {
      spaces = wanted;
      socket?.session.setSpaces(wanted);
    },
    start,
    stop,
    reconnect() {
      if (socket === null) return start();
      socket.reconnect();
    },
    settled: () => socket?.session.settled() ?? Promise.resolve(),
    connection: !hasSocket ? null : {
      start,
      stop,
      reconnectNow: () => socket?.connection?.reconnectNow(),
      state: () => socket?.connection?.state() ?? (running ? 'connecting' : 'idle'),
      info: () => socket?.connection?.info() ?? { welcomed: false, subscribed: 0, caughtUp: 0, serverLag: null, lastError: null, ready: false },
    },
  };
}
