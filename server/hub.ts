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
  /** A `changes` frame carries rows up to about this many bytes (at least one row). */
  frameBytes?: number;
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
  // Well under pauseBytes: a socket that stops reading holds at most pauseBytes + one frame here. A frame
  // of a whole page (500 rows of up to 64 KiB) would put up to 32 MiB in each stalled socket's buffer.
  const frameBytes = options.frameBytes ?? 256 * 1024;
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
      for (const frame of changeFrames(space, rows.filter((r) => r.serverSeq > sub.sent), lamport(), frameBytes)) {
        sub.sent = frame.cursor;
        metrics.count('ferry_catchup_rows_total', frame.rows);
        if (!send(conn, frame.text)) return;
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
        // The frames of every subscriber that is up to date (the usual case), serialized once: serialized per
        // socket, 1,000 subscribers made JSON.stringify most of the server's thread (docs/benchmarks.md).
        let whole: Frame[] | null = null;
        for (const conn of bySpace.get(space) ?? []) {
          const sub = conn.spaces.get(space);
          if (!sub) continue;
          if (sub.mode === 'catching-up' || conn.pausedSince !== null) {
            sub.dirty = true; // catch-up will read these rows from the database
            continue;
          }
          const frames = rows[0]!.serverSeq > sub.sent
            ? (whole ??= changeFrames(space, rows, lamport, frameBytes))
            : changeFrames(space, rows.filter((r) => r.serverSeq > sub.sent), lamport, frameBytes);
          for (const frame of frames) {
            sub.sent = frame.cursor;
            if (!send(conn, frame.text)) {
              sub.mode = 'catching-up'; // resumes from `sent` on drain
              break;
            }
          }
        }
      }
    },

    connectionsOf(device: string): number {
      return byDevice.get(device)?.size ?? 0;
    },
  };
}

export type Hub = ReturnType<typeof createHub>;

interface Frame {
  text: string;
  /** serverSeq of the frame's last row: the cursor it carries. */
  cursor: number;
  rows: number;
}

/**
 * `changes` frames for rows in serverSeq order, each about `maxBytes` at most (one row may exceed it alone),
 * serialized once. Written by hand around each row's JSON: the same text as
 * `JSON.stringify({ type: 'changes', space, entities, cursor, lamport })`.
 */
export function changeFrames(space: string, rows: readonly EntityWire[], lamport: number, maxBytes: number): Frame[] {
  const frames: Frame[] = [];
  const head = `{"type":"changes","space":${JSON.stringify(space)},"entities":[`;
  let parts: string[] = [];
  let size = 0;
  const flush = (cursor: number) => {
    frames.push({ text: `${head}${parts.join(',')}],"cursor":${cursor},"lamport":${lamport}}`, cursor, rows: parts.length });
    parts = [];
    size = 0;
  };
  rows.forEach((row, i) => {
    const json = JSON.stringify(row);
    if (parts.length > 0 && size + json.length > maxBytes) flush(rows[i - 1]!.serverSeq);
    parts.push(json);
    size += json.length;
  });
  if (parts.length > 0) flush(rows.at(-1)!.serverSeq);
  return frames;
}
