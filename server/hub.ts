// One instance's sync sockets: who listens to which space, catch-up from a cursor, live delivery of the
// change bus's notices, ack watermarks, and backpressure. Transport-free: a socket is a small port
// (sync-socket.ts adapts each runtime's), so tests and every runtime share this.
//
// Per (socket, space):
//   catching-up ──page < 500 rows and no notice meanwhile──▶ live
//        ▲                                                     │
//        └──── over its buffer limit (paused), or a gap ◀──────┘   resumes from `sent` on drain
// `sent` is the highest serverSeq delivered. A notice says where the space stood before its commit
// (`from`): a live subscriber at `sent ≥ from` takes the notice's rows above `sent`; one below `from`
// missed something (a lost notice, another instance's commit not yet heard of) and catches up from the
// database. Both paths only ever send rows above `sent`, so nothing goes out twice and nothing is skipped.
// Each `changes` frame says where it continues from (`from`: the `sent` before it), so a client that lost
// one sees the gap and subscribes again from its cursor; that replaces the subscription, whose catch-up
// then stops.
import { CLOSE } from '../schema/protocol.ts';
import type { Down, EntityWire } from '../schema/wire.ts';
import type { SpaceRef } from '../schema/accounts.ts';
import type { ChangeNotice, SpaceChange } from './change-bus.ts';
import type { Metrics } from './metrics.ts';
import type { EntityText, SyncStore } from './storage/sync-store.ts';

/** What the hub needs of a socket; each runtime's adapter provides it (sync-socket.ts). */
export interface SocketPort {
  send(text: string): void;
  /** Bytes handed to the socket and not yet written to the network. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

interface Subscription {
  mode: 'catching-up' | 'live';
  sent: number;
  dirty: boolean;
}

export interface Connection {
  /** Unique across instances: `<instance>:<n>`. */
  id: string;
  socket: SocketPort;
  user: string;
  device: string | null;
  /** The client offered `ferry.from`: its `changes` frames carry `from`. */
  from: boolean;
  /** The client offered `ferry.sent`: its pongs carry each live subscription's cursor. */
  pongCursors: boolean;
  spaces: Map<string, Subscription>;
  pausedSince: number | null;
  closed: boolean;
  /** Asks again whether the socket's credential holds, closing it if not (set by sync-socket.ts). */
  recheck?: () => Promise<unknown>;
}

export interface HubOptions {
  store: SyncStore;
  /** The spaces a user may sync now (for `spaces` frames when their memberships change). */
  spacesOf(user: string): Promise<SpaceRef[]>;
  metrics: Metrics;
  now: () => number;
  /** This instance's name, the prefix of its connection ids. */
  instance: string;
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
  const byUser = new Map<string, Set<Connection>>();
  const join = <K>(map: Map<K, Set<Connection>>, key: K, conn: Connection) => {
    const set = map.get(key) ?? new Set();
    set.add(conn);
    map.set(key, set);
  };
  let nextId = 1;

  // Catch-up pages by space and cursor, shared by every subscriber that reads from the same cursor (a
  // restarted instance's clients, or hundreds paused by one burst, resume together): one read and one
  // serialization, not one per socket. A page read earlier than now is still a correct catch-up step
  // (rows arrive in serverSeq order and a row written since has a higher serverSeq), but going live on
  // it relies on every later commit's notice, so a space's pages are dropped on each of its notices.
  // Kept up to PAGE_BYTES of frames in all; a larger page is shared only while it is being read.
  const pages = new Map<string, Map<number, { page: Promise<Page>; bytes: number }>>();
  let pageBytes = 0;
  const dropPages = (space: string) => {
    for (const entry of pages.get(space)?.values() ?? []) pageBytes -= entry.bytes;
    pages.delete(space);
  };
  const pageOf = (space: string, after: number): Promise<Page> => {
    const kept = pages.get(space)?.get(after);
    if (kept) return kept.page;
    const entry = { page: readPage(space, after), bytes: 0 };
    const bySpace = pages.get(space) ?? new Map();
    pages.set(space, bySpace.set(after, entry));
    const forget = () => {
      if (pages.get(space)?.get(after) !== entry) return;
      bySpace.delete(after);
      pageBytes -= entry.bytes;
      if (bySpace.size === 0) pages.delete(space);
    };
    entry.page.then((page) => {
      if (pages.get(space)?.get(after) !== entry) return;
      if (page.bytes > PAGE_BYTES) return forget();
      entry.bytes = page.bytes;
      pageBytes += page.bytes;
      while (pageBytes > PAGE_BYTES) dropPages(pages.keys().next().value!); // the space least recently read anew
    }, forget);
    return entry.page;
  };
  const readPage = async (space: string, after: number): Promise<Page> => {
    const { rows, lamport } = await store.changeTexts(space, after, pageSize);
    const frames = changeFrames(space, rows, lamport, frameBytes, after);
    return { frames, full: rows.length >= pageSize, bytes: frames.reduce((sum, f) => sum + f.bytes, 0) };
  };

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
    byUser.get(conn.user)?.delete(conn);
    for (const space of conn.spaces.keys()) bySpace.get(space)?.delete(conn);
  };

  /** The user's memberships changed: each of their sockets gets the new list and stops hearing a space
   * they left (what they queued for it comes back rejected `forbidden`). */
  const membershipChanged = async (user: string) => {
    const conns = [...(byUser.get(user) ?? [])];
    if (conns.length === 0) return;
    const spaces = await options.spacesOf(user);
    const allowed = new Set(spaces.map((space) => space.id));
    for (const conn of conns) {
      for (const space of [...conn.spaces.keys()]) {
        if (allowed.has(space)) continue;
        conn.spaces.delete(space);
        bySpace.get(space)?.delete(conn);
      }
      send(conn, { type: 'spaces', spaces });
    }
  };

  /** Sends every row above `sent`, page by page, then switches to live. Stops early when paused. */
  const catchUp = async (conn: Connection, space: string, sub: Subscription) => {
    // A subscribe again for the space (the client saw a gap) replaces `sub`: this one stops.
    const current = () => !conn.closed && conn.spaces.get(space) === sub;
    while (current() && conn.pausedSince === null) {
      sub.dirty = false;
      const after = sub.sent;
      const page = await pageOf(space, after);
      if (!current() || sub.mode === 'live') return;
      // Another catch-up of this subscription (a drain while this one awaited) sent from here already.
      if (sub.sent !== after) continue;
      for (const frame of page.frames) {
        sub.sent = frame.cursor;
        metrics.count('ferry_catchup_rows_total', frame.rows);
        if (!send(conn, frame.text(conn.from))) return;
      }
      if (!page.full && !sub.dirty) {
        sub.mode = 'live';
        send(conn, { type: 'caught_up', space, cursor: sub.sent });
        return;
      }
    }
  };

  /** A subscriber that fell behind (a gap, a pause): back to the database from its `sent`. */
  const behind = (conn: Connection, space: string, sub: Subscription) => {
    if (sub.mode === 'catching-up') {
      sub.dirty = true; // the running catch-up reads again before it goes live
      return;
    }
    sub.mode = 'catching-up';
    if (conn.pausedSince === null) void catchUp(conn, space, sub);
  };

  /** Delivers one space's part of a notice to every subscriber there. */
  const deliver = async (change: SpaceChange, rows: readonly EntityWire[] | null, lamport: number) => {
    dropPages(change.space);
    const subscribers = [...(bySpace.get(change.space) ?? [])];
    // The rows only when some live subscriber is exactly where the notice starts or inside it.
    const needRows = subscribers.some((conn) => {
      const sub = conn.spaces.get(change.space);
      return sub?.mode === 'live' && conn.pausedSince === null && sub.sent >= change.from && sub.sent < change.to;
    });
    const page: readonly (EntityWire | EntityText)[] = rows ?? (needRows ? (await store.changeTexts(change.space, change.from, pageSize)).rows : []);
    // Serialized once for every subscriber that is up to date (the usual case): serialized per socket,
    // 1,000 subscribers made JSON.stringify most of the server's thread (docs/benchmarks.md).
    let whole: Frame[] | null = null;
    for (const conn of subscribers) {
      const sub = conn.spaces.get(change.space);
      if (!sub || conn.closed || sub.sent >= change.to) continue;
      if (sub.mode === 'catching-up' || conn.pausedSince !== null || sub.sent < change.from) {
        behind(conn, change.space, sub);
        continue;
      }
      const last = page.at(-1)?.serverSeq ?? 0;
      if (last < change.to) {
        // More rows than one page (or read too early to see them): the database has the rest.
        behind(conn, change.space, sub);
        continue;
      }
      const frames = sub.sent === change.from
        ? (whole ??= changeFrames(change.space, page, lamport, frameBytes, change.from))
        : changeFrames(change.space, page.filter((r) => r.serverSeq > sub.sent), lamport, frameBytes, sub.sent);
      for (const frame of frames) {
        sub.sent = frame.cursor;
        if (!send(conn, frame.text(conn.from))) {
          sub.mode = 'catching-up'; // resumes from `sent` on drain
          break;
        }
      }
    }
  };

  return {
    /** What the client offered besides `ferry.v1`: `ferry.from`, `ferry.sent` (PROTOCOL.md §7). */
    open(socket: SocketPort, user: string, offered: { from?: boolean; sent?: boolean } = {}): Connection {
      metrics.socketOpened();
      const conn: Connection = {
        id: `${options.instance}:${nextId++}`, socket, user, device: null, from: offered.from ?? false,
        pongCursors: offered.sent ?? false, spaces: new Map(), pausedSince: null, closed: false,
      };
      join(byUser, user, conn);
      return conn;
    },

    hello(conn: Connection, device: string) {
      conn.device = device;
      join(byDevice, device, conn);
    },

    /** Subscribes from `cursor`; the caller has checked membership and the purge horizon. */
    subscribe(conn: Connection, space: string, cursor: number): Promise<void> {
      const sub: Subscription = { mode: 'catching-up', sent: cursor, dirty: false };
      conn.spaces.set(space, sub);
      join(bySpace, space, conn);
      return catchUp(conn, space, sub);
    },

    /**
     * PROTOCOL.md §7: per live subscription of a `ferry.sent` socket, the cursor of the last frame sent, for
     * its pong; nothing while paused (frames wait) or when the client did not ask.
     */
    sentCursors(conn: Connection): Record<string, number> | undefined {
      if (!conn.pongCursors || conn.pausedSince !== null) return undefined;
      const sent: Record<string, number> = {};
      for (const [space, sub] of conn.spaces) if (sub.mode === 'live') sent[space] = sub.sent;
      return sent;
    },

    send,
    close,

    closed(conn: Connection) {
      if (!conn.closed) forget(conn);
      metrics.socketClosed();
    },

    /** The socket's buffer emptied: resume every subscription from where it stopped. */
    drained(conn: Connection) {
      if (conn.pausedSince === null || conn.socket.bufferedAmount() > pauseBytes / 2) return;
      conn.pausedSince = null;
      for (const [space, sub] of conn.spaces) {
        sub.mode = 'catching-up';
        void catchUp(conn, space, sub);
      }
    },

    /**
     * A commit, from this instance or another: watermarks to the device's sockets (only its owner's, and
     * not the socket that pushed, which got the ack itself), then changes to every subscriber.
     */
    async notice(notice: ChangeNotice): Promise<void> {
      for (const { device, user, ack, skip } of notice.acks) {
        for (const conn of byDevice.get(device) ?? []) if (conn.id !== skip && conn.user === user) send(conn, ack);
      }
      const bySpaceRows = notice.entities === undefined ? null : groupRows(notice.entities);
      await Promise.all([
        ...notice.spaces.map((change) => deliver(change, bySpaceRows?.get(change.space) ?? null, notice.lamport)),
        ...(notice.members ?? []).map(membershipChanged),
        ...(notice.recheck ?? []).flatMap((user) => [...(byUser.get(user) ?? [])].map((conn) => conn.recheck?.())),
      ]);
    },

    /**
     * The bus was down: any subscriber may have missed notices, so every one checks the database; and any
     * user may have missed a membership change or a revoked credential, so each gets their list again and
     * each socket checks its credential.
     */
    resync() {
      for (const space of [...pages.keys()]) dropPages(space);
      for (const [space, set] of bySpace) for (const conn of set) behind(conn, space, conn.spaces.get(space)!);
      for (const [user, conns] of byUser) {
        if (conns.size === 0) continue;
        void membershipChanged(user).catch(() => {}); // a failed read leaves the last list; the next notice repairs it
        for (const conn of conns) void conn.recheck?.().catch(() => {});
      }
    },

    connectionsOf(device: string): number {
      return byDevice.get(device)?.size ?? 0;
    },

    /** The user's open sockets on this instance (before and after hello). */
    socketsOf(user: string): number {
      return byUser.get(user)?.size ?? 0;
    },
  };
}

export type Hub = ReturnType<typeof createHub>;

function groupRows(entities: NonNullable<ChangeNotice['entities']>): Map<string, EntityWire[]> {
  const perSpace = new Map<string, EntityWire[]>();
  for (const e of entities) {
    const list = perSpace.get(e.space) ?? [];
    list.push({
      collection: e.collection, key: e.key, fields: e.fields, stamps: e.stamps,
      base: e.base, live: e.live, deleted: e.deleted, serverSeq: e.serverSeq,
    });
    perSpace.set(e.space, list);
  }
  return perSpace;
}

/** Catch-up frames kept for subscribers that read from the same cursor next (see pageOf). */
const PAGE_BYTES = 8 * 1024 * 1024;

interface Page {
  /** The page's rows as frames from its own cursor. */
  frames: Frame[];
  /** The page is as long as a page gets: more rows may follow. */
  full: boolean;
  bytes: number;
}

interface Frame {
  /** The frame serialized, with `from` or without (clients that did not offer `ferry.from`); each made once. */
  text(withFrom: boolean): string;
  /** serverSeq of the frame's last row: the cursor it carries. */
  cursor: number;
  /** The cursor the frame continues from: the previous frame's, the first one's is `from`. */
  from: number;
  rows: number;
  /** About the frame's length, for bounding what is kept. */
  bytes: number;
}

/**
 * `changes` frames for rows in serverSeq order above `from`, each about `maxBytes` at most (one row may exceed
 * it alone), serialized once per variant. Written by hand around each row's JSON (a row read as text is
 * used as it is): the same frame as `JSON.stringify({ type: 'changes', space, entities, cursor, lamport, from? })`.
 */
export function changeFrames(space: string, rows: readonly (EntityWire | EntityText)[], lamport: number, maxBytes: number, from: number): Frame[] {
  const frames: Frame[] = [];
  const head = `{"type":"changes","space":${JSON.stringify(space)},"entities":[`;
  let parts: string[] = [];
  let size = 0;
  let start = from;
  const flush = (cursor: number) => {
    const body = `${head}${parts.join(',')}],"cursor":${cursor},"lamport":${lamport}`;
    const tail = `,"from":${start}}`;
    let plain: string | null = null;
    let withFrom: string | null = null;
    frames.push({
      text: (want) => (want ? (withFrom ??= body + tail) : (plain ??= `${body}}`)),
      cursor, from: start, rows: parts.length, bytes: body.length,
    });
    start = cursor;
    parts = [];
    size = 0;
  };
  rows.forEach((row, i) => {
    const json = 'json' in row ? row.json : JSON.stringify(row);
    if (parts.length > 0 && size + json.length > maxBytes) flush(rows[i - 1]!.serverSeq);
    parts.push(json);
    size += json.length;
  });
  if (parts.length > 0) flush(rows.at(-1)!.serverSeq);
  return frames;
}
