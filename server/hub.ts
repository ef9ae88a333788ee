// Sync sockets: who listens to which space, catch-up from a cursor, live fan-out, ack watermarks and
// backpressure. Transport-free: a socket is a small port, so tests and the Elysia plugin share this.
//
// Per (socket, space):
//   catching-up ──page < 500 rows and no commit meanwhile──▶ live
//        ▲                                                     │
//        └────────── socket over its buffer limit (paused) ◀───┘   resumes from `sent` on drain
// `sent` is the highest serverSeq delivered; both modes only ever send rows above it, so a row read by
// catch-up and also fanned out live goes out once, and nothing committed after `caught_up` is missed.
import type { Down, EntityWire } from '../schema/wire.ts';
import type { EntityState } from './apply.ts';
import { CLOSE } from './errors.ts';
import type { Metrics } from './metrics.ts';
import type { SyncStore } from './store.ts';

export interface SocketPort {
  /** Bun semantics: bytes sent, -1 when queued under backpressure, 0 when dropped. */
  send(text: string): number;
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

interface Subscription {
  mode: 'catching-up' | 'live';
  sent: number;
  dirty: boolean;
}

export interface Connection {
  socket: SocketPort;
  user: string;
  device: string | null;
  spaces: Map<string, Subscription>;
  pausedSince: number | null;
  closed: boolean;
}

export interface HubOptions {
  store: SyncStore;
  metrics: Metrics;
  now: () => number;
  pageSize?: number;
  /** Above this many buffered bytes a socket gets nothing more until it drains. */
  pauseBytes?: number;
  /** A socket paused longer than this is closed (4008); it resumes from its cursor on reconnect. */
  maxPausedMs?: number;
}

export function createHub(options: HubOptions) {
  const { store, metrics, now } = options;
  const pageSize = options.pageSize ?? 500;
  const pauseBytes = options.pauseBytes ?? 1024 * 1024;
  const maxPausedMs = options.maxPausedMs ?? 30_000;
  const byDevice = new Map<string, Set<Connection>>();
  const bySpace = new Map<string, Set<Connection>>();

  /** `message` may come serialized: fan-out serializes a frame once per space, not once per socket. */
  const send = (conn: Connection, message: Down | string): boolean => {
    if (conn.closed) return false;
    conn.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
    if (conn.socket.bufferedAmount() <= pauseBytes) return true;
    if (conn.pausedSince === null) {
      conn.pausedSince = now();
      // Paused sockets get nothing more, so only a timer can notice one that never drains.
      const since = conn.pausedSince;
      setTimeout(() => {
        if (conn.pausedSince === since) close(conn, CLOSE.slowConsumer, 'slow consumer');
      }, maxPausedMs).unref?.();
    }
    return false;
  };

  const close = (conn: Connection, code: number, reason: string) => {
    if (conn.closed) return;
    if (code === CLOSE.slowConsumer) metrics.count('ferry_sockets_closed_slow_total');
    conn.socket.close(code, reason);
    forget(conn);
  };

  const forget = (conn: Connection) => {
    conn.closed = true;
    if (conn.device) byDevice.get(conn.device)?.delete(conn);
    for (const space of conn.spaces.keys()) bySpace.get(space)?.delete(conn);
  };

  /** Sends every row above `sent`, page by page, then switches to live. Stops early when paused. */
  const catchUp = async (conn: Connection, space: string, sub: Subscription, lamport: () => number) => {
    while (!conn.closed && conn.pausedSince === null) {
      sub.dirty = false;
      const rows = await store.changesSince(space, sub.sent, pageSize);
      if (conn.closed || sub.mode === 'live') return;
      const fresh = rows.filter((r) => r.serverSeq > sub.sent);
      if (fresh.length > 0) {
        sub.sent = fresh.at(-1)!.serverSeq;
        metrics.count('ferry_catchup_rows_total', fresh.length);
        if (!send(conn, { type: 'changes', space, entities: fresh, cursor: sub.sent, lamport: lamport() })) return;
      }
      if (rows.length < pageSize && !sub.dirty) {
        sub.mode = 'live';
        send(conn, { type: 'caught_up', space, cursor: sub.sent });
        return;
      }
    }
  };

  return {
    open(socket: SocketPort, user: string): Connection {
      metrics.socketOpened();
      return { socket, user, device: null, spaces: new Map(), pausedSince: null, closed: false };
    },

    hello(conn: Connection, device: string) {
      conn.device = device;
      const set = byDevice.get(device) ?? new Set();
      set.add(conn);
      byDevice.set(device, set);
    },

    /** Subscribes from `cursor`; the caller has checked membership and the purge horizon. */
    subscribe(conn: Connection, space: string, cursor: number, lamport: () => number): Promise<void> {
      const sub: Subscription = { mode: 'catching-up', sent: cursor, dirty: false };
      conn.spaces.set(space, sub);
      const set = bySpace.get(space) ?? new Set();
      set.add(conn);
      bySpace.set(space, set);
      return catchUp(conn, space, sub, lamport);
    },

    send,
    close,

    closed(conn: Connection) {
      if (!conn.closed) forget(conn);
      metrics.socketClosed();
    },

    /** The socket's buffer emptied: resume every subscription from where it stopped. */
    drained(conn: Connection, lamport: () => number) {
      if (conn.pausedSince === null || conn.socket.bufferedAmount() > pauseBytes / 2) return;
      conn.pausedSince = null;
      for (const [space, sub] of conn.spaces) {
        sub.mode = 'catching-up';
        void catchUp(conn, space, sub, lamport);
      }
    },

    /**
     * After a commit: watermarks to the device's sockets, then changes to every live subscriber. Only
     * sockets of the device's owner (`user`) get the ack: a socket of another user may have said hello as
     * that id before the owner's first push bound it, and must not learn the owner's ops or results.
     */
    committed(device: string, ack: Down & { type: 'ack' }, skip: Connection | null, user: string) {
      for (const conn of byDevice.get(device) ?? []) if (conn !== skip && conn.user === user) send(conn, ack);
    },

    fanOut(changed: readonly EntityState[], lamport: number) {
      const perSpace = new Map<string, EntityWire[]>();
      for (const e of changed) {
        const list = perSpace.get(e.space) ?? [];
        list.push({
          collection: e.collection, key: e.key, fields: e.fields, stamps: e.stamps,
          base: e.base, live: e.live, deleted: e.deleted, serverSeq: e.serverSeq,
        });
        perSpace.set(e.space, list);
      }
      for (const [space, rows] of perSpace) {
        // The frame of every subscriber that is up to date (the usual case), serialized once: serialized per
        // socket, 1,000 subscribers made JSON.stringify most of the server's thread (docs/benchmarks.md).
        let whole: string | null = null;
        for (const conn of bySpace.get(space) ?? []) {
          const sub = conn.spaces.get(space);
          if (!sub) continue;
          if (sub.mode === 'catching-up' || conn.pausedSince !== null) {
            sub.dirty = true; // catch-up will read these rows from the database
            continue;
          }
          const fresh = rows[0]!.serverSeq > sub.sent ? rows : rows.filter((r) => r.serverSeq > sub.sent);
          if (fresh.length === 0) continue;
          sub.sent = fresh.at(-1)!.serverSeq;
          const frame: Down = { type: 'changes', space, entities: fresh, cursor: sub.sent, lamport };
          if (!send(conn, fresh === rows ? (whole ??= JSON.stringify(frame)) : frame)) sub.mode = 'catching-up';
        }
      }
    },

    connectionsOf(device: string): number {
      return byDevice.get(device)?.size ?? 0;
    },
  };
}

export type Hub = ReturnType<typeof createHub>;
