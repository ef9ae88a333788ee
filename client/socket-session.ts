// What the page says and does on its sync socket (PROTOCOL.md §7), once the socket manager has it open.
// The manager owns the socket's life; this owns the conversation on each one:
//
//   open ─▶ hello ─ welcome ─▶ raise clock; subscribe wanted spaces with stored cursors; pushes may go
//             changes ─▶ merge into the replica (pending ops stay on top), cursor = max(cursor, msg)
//             caught_up ─▶ that space is current          pong ─▶ round trip (serverLag)
//             reset ─▶ forget the space (keep pending ops), read the paged snapshot, subscribe from the
//                      horizon (the rows above it, tombstones included, which the snapshot leaves out)
//             ack with a rid of ours ─▶ the socket transport's push resolves (the drainer applies it)
//             ack without ─▶ an ack of a push made elsewhere (the worker's HTTP, another tab): apply it
//             error with a rid ─▶ that push fails; with a space ─▶ that space is refused; else recorded
//   close ─▶ pushes in flight fail (their ops stay); the next open starts over from stored cursors
//
// Frames that touch the store are applied one at a time, in the order they came: a space's changes
// arrive in serverSeq order, and its reset must land before the snapshot that follows.
import type { Down, EntityWire, SnapshotBody, Up } from '../schema/wire.ts';
import type { AckApplied, ChangesApplied } from '../sw/records.ts';
import type { Ack } from '../core/outbox.ts';
import { ALL_COLLECTIONS } from '../sw/messages.ts';
import type { SocketTransport } from './socket-transport.ts';

/** What the session needs of the store (sw/store.ts). */
export interface SessionStore {
  observeLamport(lamport: number): Promise<number>;
  getCursors(): Promise<Record<string, number>>;
  applyChanges(space: string, entities: readonly EntityWire[], cursor: number, lamport?: number): Promise<ChangesApplied>;
  applyAck(ack: Ack, now: number): Promise<AckApplied>;
  resetSpace(space: string): Promise<void>;
}

export interface SessionDeps {
  store: SessionStore;
  device: string;
  transport: SocketTransport;
  /** One page of `GET /v1/snapshot` (`head` from the first page on). Rejects on any failure. */
  snapshot(space: string, after: number, head: number | undefined): Promise<SnapshotBody>;
  now(): number;
  /** The replica of (space, collection) changed; `*`: every collection of the space. */
  changed(space: string, collection: string): void;
  /** An ack of a push made elsewhere was applied here. */
  acked(applied: AckApplied, at: number): void;
  /** The server said welcome: `through` is its processed seq for this device (resend at or below). */
  welcomed(through: number): void;
  /** Something `info()` reports moved. */
  updated(): void;
}

export interface SessionInfo {
  welcomed: boolean;
  subscribed: number;
  caughtUp: number;
  serverLag: number | null;
  /** The last error frame or failure to apply a frame, for the status; cleared on welcome. */
  lastError: string | null;
}

export interface SocketSession {
  opened(send: (message: Up) => boolean): void;
  frame(frame: Down): void;
  closed(): void;
  /** The spaces to keep in sync; new ones are subscribed at once when the socket is ready. */
  setSpaces(spaces: readonly string[]): void;
  info(): SessionInfo;
  /** Resolves once every frame received so far is applied (tests, and a clean close). */
  settled(): Promise<void>;
}

/** The server takes at most 100 spaces per subscribe. */
const SUBSCRIBE_CHUNK = 100;

export function createSocketSession(deps: SessionDeps): SocketSession {
  const { store, transport } = deps;
  let wanted: string[] = [];
  // Per socket: bumped on open and close, so work begun for an old socket never speaks on a new one.
  let generation = 0;
  let send: ((message: Up) => boolean) | null = null;
  let welcomed = false;
  const subscribed = new Set<string>();
  const caughtUp = new Set<string>();
  let serverLag: number | null = null;
  let lastError: string | null = null;
  let queue: Promise<void> = Promise.resolve();

  const info = (): SessionInfo => ({ welcomed, subscribed: subscribed.size, caughtUp: caughtUp.size, serverLag, lastError });

  /** Runs `work` after every frame before it; a failure is recorded and the queue goes on. */
  const enqueue = (work: () => Promise<void>) => {
    queue = queue.then(work).catch((error: unknown) => {
      lastError = `Could not apply what the server sent: ${error instanceof Error ? error.message : String(error)}`;
      deps.updated();
    });
  };

  const subscribe = async (spaces: readonly string[], gen: number, cursors?: Record<string, number>) => {
    const fresh = spaces.filter((space) => !subscribed.has(space));
    if (fresh.length === 0) return;
    const known = cursors ?? (await store.getCursors());
    if (gen !== generation || send === null) return;
    for (let i = 0; i < fresh.length; i += SUBSCRIBE_CHUNK) {
      const chunk = fresh.slice(i, i + SUBSCRIBE_CHUNK);
      if (!send({ type: 'subscribe', spaces: chunk.map((space) => ({ space, cursor: known[space] ?? 0 })) })) return;
      for (const space of chunk) subscribed.add(space);
    }
    deps.updated();
  };

  const onWelcome = async (frame: Extract<Down, { type: 'welcome' }>, gen: number) => {
    await store.observeLamport(frame.lamport);
    if (gen !== generation || send === null) return;
    welcomed = true;
    lastError = null;
    transport.attach(send);
    deps.welcomed(frame.through);
    await subscribe(wanted, gen);
    deps.updated();
  };

  const onChanges = async (frame: Extract<Down, { type: 'changes' }>) => {
    const applied = await store.applyChanges(frame.space, frame.entities, frame.cursor, frame.lamport);
    for (const collection of new Set(applied.changed.map((change) => change.collection))) deps.changed(frame.space, collection);
  };

  /**
   * PROTOCOL.md §7.1. The snapshot holds live entities only, so the tombstones written after the horizon
   * are not in it; yet the replica needs them: without one, our own op that a delete superseded, once
   * acked, is folded into the replica's server state and brings the entity back on this device alone
   * (no change message follows a superseded op). So the cursor becomes the horizon, not the snapshot's
   * head: the catch-up from there sends every row above the horizon, tombstones included (live rows the
   * snapshot already gave come again; merging them is idempotent). If the snapshot cannot be read, a
   * subscribe from cursor 0 (full catch-up, tombstones included, never reset) gets the same state.
   */
  const onReset = async (space: string, horizon: number, gen: number) => {
    await store.resetSpace(space);
    caughtUp.delete(space);
    subscribed.delete(space);
    deps.changed(space, ALL_COLLECTIONS);
    let cursor = 0;
    try {
      cursor = await readSnapshot(space, horizon);
    } catch (error) {
      lastError = `Could not read the snapshot of ${space}: ${error instanceof Error ? error.message : String(error)}`;
    }
    deps.changed(space, ALL_COLLECTIONS);
    if (gen === generation && wanted.includes(space)) await subscribe([space], gen, { [space]: cursor });
  };

  /** Reads every page of the snapshot into the replica; returns the cursor to catch up from. */
  const readSnapshot = async (space: string, horizon: number): Promise<number> => {
    let after = 0;
    let head: number | undefined;
    for (;;) {
      const page = await deps.snapshot(space, after, head);
      head ??= page.head;
      // The cursor moves only with the last page, so a snapshot cut short is read again, not skipped.
      const last = page.next === null;
      await store.applyChanges(space, page.entities, last ? horizon : 0);
      if (last) return horizon;
      after = page.next!;
    }
  };

  const onError = (frame: Extract<Down, { type: 'error' }>) => {
    if (frame.rid !== undefined && transport.answer(frame)) return;
    if (frame.space !== undefined) {
      // A space we may not read: not subscribed, so it never counts as waiting to catch up.
      subscribed.delete(frame.space);
      caughtUp.delete(frame.space);
    }
    lastError = frame.message;
    deps.updated();
  };

  return {
    opened(socketSend) {
      generation += 1;
      send = socketSend;
      welcomed = false;
      subscribed.clear();
      caughtUp.clear();
      serverLag = null;
      socketSend({ type: 'hello', protocol: 1, device: deps.device });
      // A first round trip now, rather than at the manager's first heartbeat 15 s later.
      socketSend({ type: 'ping', t: deps.now() });
      deps.updated();
    },

    frame(frame) {
      const gen = generation;
      switch (frame.type) {
        case 'welcome':
          return enqueue(() => onWelcome(frame, gen));
        case 'changes':
          return enqueue(() => onChanges(frame));
        case 'caught_up':
          return enqueue(async () => {
            if (gen !== generation) return;
            caughtUp.add(frame.space);
            deps.updated();
          });
        case 'reset':
          return enqueue(() => onReset(frame.space, frame.horizon, gen));
        case 'ack':
          if (transport.answer(frame)) return;
          return enqueue(async () => {
            const at = deps.now();
            deps.acked(await store.applyAck(frame, at), at);
          });
        case 'error':
          return onError(frame);
        case 'pong':
          serverLag = Math.max(0, deps.now() - frame.t);
          return deps.updated();
      }
    },

    closed() {
      generation += 1;
      send = null;
      welcomed = false;
      transport.attach(null);
      subscribed.clear();
      caughtUp.clear();
      serverLag = null;
      deps.updated();
    },

    setSpaces(spaces) {
      wanted = [...new Set(spaces)];
      if (welcomed && send !== null) {
        const gen = generation;
        enqueue(() => subscribe(wanted, gen));
      }
    },

    info,
    settled: () => queue,
  };
}
