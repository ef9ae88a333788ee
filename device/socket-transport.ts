// The drainer's transport over the page's sync socket: `push` frames with a `rid`, each answered by an
// `ack` or `error` frame with the same rid (PROTOCOL.md §6). The server answers a socket's pushes in
// the order received, so several may be in flight: the drainer's window.
//
//   push ─▶ rid n sent ─┬─ ack  rid n ──▶ resolve (the drainer applies it)
//                       ├─ error rid n ──▶ reject with the error's SyncError (seq_gap, 429, …)
//                       ├─ socket lost ──▶ reject 'network': the ops stay in the outbox, sent again
//                       └─ no answer in timeoutMs ─▶ reject 'network'; a late ack is no longer ours
//                                                    and goes to the store like any other (harmless)
import { errorFromBody, SyncError } from '../core/errors.ts';
import type { AckBody, Down, Up } from '../schema/wire.ts';
import type { PushRequest, TimerPort, Transport } from './ports.ts';

export type Answer = Extract<Down, { type: 'ack' | 'error' }>;

export interface SocketTransport extends Transport {
  /** Hands an answer to the push that waits for its rid. False when none does (stale, or not a reply). */
  answer(frame: Answer): boolean;
  /** The socket is ready for pushes (open, hello answered), or gone (null): every push in flight fails. */
  attach(send: ((message: Up) => boolean) | null): void;
  ready(): boolean;
  /** Pushes awaiting an answer. */
  waiting(): number;
}

export interface SocketTransportOptions {
  timers: TimerPort;
  /** Batches in flight at once while the socket is ready. */
  window?: number;
  timeoutMs?: number;
}

export const DEFAULT_SOCKET_WINDOW = 4;
export const DEFAULT_SOCKET_PUSH_TIMEOUT_MS = 30_000;

interface Waiter {
  device: string;
  resolve(ack: AckBody): void;
  reject(error: SyncError): void;
  timer: unknown;
}

export function createSocketTransport(options: SocketTransportOptions): SocketTransport {
  const { timers } = options;
  const window = Math.max(1, options.window ?? DEFAULT_SOCKET_WINDOW);
  const timeoutMs = options.timeoutMs ?? DEFAULT_SOCKET_PUSH_TIMEOUT_MS;
  const waiters = new Map<number, Waiter>();
  let send: ((message: Up) => boolean) | null = null;
  // Never reused, also across sockets: an answer meant for an abandoned push can never match a new one.
  let nextRid = 1;

  const settle = (rid: number): Waiter | undefined => {
    const waiter = waiters.get(rid);
    if (waiter === undefined) return undefined;
    waiters.delete(rid);
    timers.clearTimeout(waiter.timer);
    return waiter;
  };

  const lost = (message: string, timedOut = false) => new SyncError('network', message, timedOut ? { timedOut } : {});

  return {
    push(request: PushRequest): Promise<AckBody> {
      return new Promise<AckBody>((resolve, reject) => {
        if (send === null) return reject(lost('The sync socket is not open.'));
        const rid = nextRid++;
        const timer = timers.setTimeout(() => {
          settle(rid)?.reject(lost(`No answer to a push within ${timeoutMs / 1000} s.`, true));
        }, timeoutMs);
        waiters.set(rid, { device: request.device, resolve, reject, timer });
        if (!send({ type: 'push', rid, device: request.device, ops: request.ops })) {
          settle(rid)?.reject(lost('The sync socket closed before the push went out.'));
        }
      });
    },

    window: () => (send === null ? 1 : window),

    answer(frame: Answer): boolean {
      if (frame.rid === undefined) return false;
      const waiter = settle(frame.rid);
      if (waiter === undefined) return false;
      if (frame.type === 'error') {
        waiter.reject(errorFromBody(frame));
      } else if (frame.device !== waiter.device) {
        waiter.reject(new SyncError('protocol', `The server answered a push of device ${waiter.device} for ${frame.device}.`));
      } else {
        waiter.resolve({ through: frame.through, lamport: frame.lamport, results: frame.results });
      }
      return true;
    },

    attach(next: ((message: Up) => boolean) | null): void {
      send = next;
      if (next !== null) return;
      // The server may have committed some of these; resending gets `duplicate` with the first result.
      for (const rid of [...waiters.keys()]) settle(rid)?.reject(lost('The sync socket closed before the server answered.'));
    },

    ready: () => send !== null,
    waiting: () => waiters.size,
  };
}
