// What the page says and does on its sync socket (PROTOCOL.md §7), once the socket manager has it open.
// The manager owns the socket's life; this owns the conversation on each one:
//
//   open ─▶ hello ─ welcome ─▶ raise clock; subscribe wanted spaces with stored cursors; pushes may go
//             changes ─▶ merge into the replica (pending ops stay on top), cursor = max(cursor, msg)
//                        `from` above the stored cursor: a frame was lost; the cursor stays, and the
//                        space is subscribed again from it (once until its caught_up)
//             caught_up ─▶ that space is current (its cursor above ours: the last frame was lost; again)
//             pong ─▶ round trip (serverLag); a live space's `sent` above the stored cursor: its last
//                     frame was lost, subscribed again (as for a gap)
//             reset ─▶ forget the space (keep pending ops), read the paged snapshot, subscribe from the
//                      horizon (the rows above it, tombstones included, which the snapshot leaves out)
//             ack with a rid of ours ─▶ the socket transport's push resolves (the drainer applies it)
//             ack without ─▶ an ack of a push made elsewhere (the worker's HTTP, another tab): apply it
//             spaces ─▶ the user's memberships now: a space no longer among them stops syncing and its
//                       replica is dropped (its queued ops stay, and come back rejected `forbidden`)
//             error with a rid ─▶ that push fails; with a space ─▶ that space is refused; else recorded
//   close ─▶ pushes in flight fail (their ops stay); the next open starts over from stored cursors
//
// Frames that touch the store are applied one at a time, in the order they came: a space's changes
// arrive in serverSeq order, and its reset must land before the snapshot that follows.
import { PROTOCOL_VERSION } from '../schema/protocol.ts';
import type { SpaceRef } from '../schema/accounts.ts';
import type { Down, EntityWire, SnapshotBody, Up } from '../schema/wire.ts';
import type { AckApplied, ChangesApplied } from './records.ts';
import type { Ack } from '../core/outbox.ts';
import { ALL_COLLECTIONS } from './messages.ts';
import type { SocketTransport } from './socket-transport.ts';

/** What the session needs of the store (device/store.ts). */
export interface SessionStore {
  observeLamport(lamport: number): Promise<number>;
  getCursors(): Promise<Record<string, number>>;
  applyChanges(space: string, entities: readonly EntityWire[], cursor: number, lamport?: number, from?: number): Promise<ChangesApplied>;
  applyAck(ack: Ack, now: number): Promise<AckApplied>;
  resetSpace(space: string, when?: 'always' | 'if-unsynced'): Promise<boolean>;
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
  /** The server sent the user's spaces (a membership changed). */
  spaces?(spaces: SpaceRef[]): void;
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
  /** Spaces subscribed again after a gap, until their caught_up: one more gap meanwhile asks nothing more. */
  const resubscribing = new Set<string>();
  let serverLag: number | null = null;
  let lastError: string | null = null;
  /** The space the last error frame was about, if any: leaving it makes the error moot. */
  let errorSpace: string | null = null;
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
    // PROTOCOL.md §7: a replica subscribing from cursor 0 has received nothing of the space, so any server
    // state it holds came from acks of its own ops. If a delete has since superseded one of those and been
    // purged, no catch-up will ever say so: forget that state first (pending ops stay); the full catch-up
    // brings back whatever still exists.
    for (const space of fresh) if ((known[space] ?? 0) === 0) await store.resetSpace(space, 'if-unsynced');
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

  const onChanges = async (frame: Extract<Down, { type: 'changes' }>, gen: number) => {
    const applied = await store.applyChanges(frame.space, frame.entities, frame.cursor, frame.lamport, frame.from);
    for (const collection of new Set(applied.changed.map((change) => change.collection))) deps.changed(frame.space, collection);
    if (applied.gap) await resubscribe(frame.space, gen);
  };

  const onCaughtUp = async (frame: Extract<Down, { type: 'caught_up' }>, gen: number) => {
    if (gen !== generation) return;
    resubscribing.delete(frame.space);
    // Every frame before it is applied, so a cursor still below the server's means the last one was lost.
    if (((await store.getCursors())[frame.space] ?? 0) < frame.cursor) return resubscribe(frame.space, gen);
    caughtUp.add(frame.space);
    deps.updated();
  };

  /**
   * PROTOCOL.md §7: how far the server sent each live subscription, as of the pong. Every frame before it is
   * applied, so a stored cursor below that (or a space the server has live that never got its caught_up)
   * lost its last frame, which no later frame's `from` would show until the space's next change.
   */
  const onSent = async (sent: Record<string, number>, gen: number) => {
    if (gen !== generation) return;
    const cursors = await store.getCursors();
    for (const [space, cursor] of Object.entries(sent)) {
      // A pong that crossed our subscribe again speaks of the subscription it replaced.
      if (!subscribed.has(space) || resubscribing.has(space)) continue;
      if (!caughtUp.has(space) || (cursors[space] ?? 0) < cursor) await resubscribe(space, gen);
    }
  };

  /**
   * PROTOCOL.md §7: a frame of the space was lost on the way (its successor's `from`, or the caught_up's
   * cursor, is above the stored cursor). Subscribing again from the stored cursor replaces the
   * subscription on the server; its catch-up sends what was lost (and what came after, again: merging is
   * idempotent). Frames of the old subscription still on their way are merged as they come.
   */
  const resubscribe = async (space: string, gen: number) => {
    if (gen !== generation || !subscribed.has(space) || resubscribing.has(space)) return;
    resubscribing.add(space);
    subscribed.delete(space);
    caughtUp.delete(space);
    deps.updated();
    await subscribe([space], gen);
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
    resubscribing.delete(space);
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

  const onSpaces = async (spaces: SpaceRef[]) => {
    const allowed = new Set(spaces.map((space) => space.id));
    for (const space of wanted.filter((id) => !allowed.has(id))) {
      wanted = wanted.filter((id) => id !== space);
      subscribed.delete(space);
      caughtUp.delete(space);
      resubscribing.delete(space);
      await store.resetSpace(space);
      deps.changed(space, ALL_COLLECTIONS);
    }
    // An error the server sent about a space we are no longer in is moot now.
    if (errorSpace !== null && !allowed.has(errorSpace)) {
      lastError = null;
      errorSpace = null;
    }
    deps.spaces?.(spaces);
    deps.updated();
  };

  const onError = (frame: Extract<Down, { type: 'error' }>) => {
    if (frame.rid !== undefined && transport.answer(frame)) return;
    if (frame.space !== undefined) {
      // A space we may not read: not subscribed, so it never counts as waiting to catch up.
      subscribed.delete(frame.space);
      caughtUp.delete(frame.space);
      resubscribing.delete(frame.space);
    }
    lastError = frame.message;
    errorSpace = frame.space ?? null;
    deps.updated();
  };

  return {
    opened(socketSend) {
      generation += 1;
      send = socketSend;
      welcomed = false;
      subscribed.clear();
      caughtUp.clear();
      resubscribing.clear();
      serverLag = null;
      socketSend({ type: 'hello', protocol: PROTOCOL_VERSION, device: deps.device });
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
          return enqueue(() => onChanges(frame, gen));
        case 'caught_up':
          return enqueue(() => onCaughtUp(frame, gen));
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
          deps.updated();
          if (frame.sent !== undefined) enqueue(() => onSent(frame.sent!, gen));
          return;
        case 'spaces':
          return enqueue(() => onSpaces(frame.spaces));
      }
    },

    closed() {
      generation += 1;
      send = null;
      welcomed = false;
      transport.attach(null);
      subscribed.clear();
      caughtUp.clear();
      resubscribing.clear();
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
