// The change bus between server instances over Redis pub/sub (server/change-bus.ts is the port). The one
// module that talks to Redis, through ioredis: plain JavaScript over node:net, so it runs under Bun and
// under Deno's npm compatibility alike (Bun's built-in Redis client would tie the server to Bun).
//
// What goes over Redis is a HINT: the notice without its rows (`entities`). A notice names each space's
// head before and after the commit and carries the acks; a subscriber whose socket sits at `from` reads
// the rows from the database by cursor (server/hub.ts). Rows stay out because a commit can hold 500 rows of
// up to 64 KiB each: 32 MiB through Redis to every instance, most of it for spaces nobody there watches.
// The publishing instance's own sockets get the rows in memory, as with the in-process bus.
//
// Pub/sub is not durable, so this module only has to notice when something MAY have been lost and say so:
//   subscriber connection (re)ready  → SUBSCRIBE again, then `onRecovered`: every local subscriber checks
//                                      the database (hub.resync). Also on the first connect.
//   publisher connection (re)ready   → publish `resync`: every other instance checks. Sent on the first
//                                      connect too: a restarted instance's predecessor may have died between
//                                      a commit and its notice.
//   a publish that fails             → unhealthy until the publisher is back (then `resync`, as above).
// Nothing polls: ioredis reconnects with a backoff (RECONNECT below), and the database is read only when a
// notice, a recovery or a resync says to.
import { Redis } from 'ioredis';
import * as v from 'valibot';
import { DEFAULT_CHANNEL, redacted } from './redis-config.ts';
import type { ChangeBus, ChangeNotice } from './change-bus.ts';


export interface RedisBusOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS. */
  url: string;
  /** This instance's name: its own notices coming back over Redis are skipped (its hub had them). */
  instance: string;
  /** The pub/sub channel. Channels are global to a Redis server (not per db): one per deployment. */
  channel?: string;
}

/** What crosses Redis: a hint (a notice without rows), or a request that every instance check. */
const Message = v.variant('kind', [
  v.object({
    kind: v.literal('notice'),
    notice: v.object({
      spaces: v.array(v.object({ space: v.string(), from: v.number(), to: v.number() })),
      lamport: v.number(),
      acks: v.array(v.object({
        device: v.string(), user: v.string(), skip: v.nullable(v.string()),
        ack: v.looseObject({ type: v.literal('ack'), device: v.string(), through: v.number(), lamport: v.number(), results: v.array(v.unknown()) }),
      })),
      members: v.optional(v.array(v.string())),
      recheck: v.optional(v.array(v.string())),
      origin: v.string(),
    }),
  }),
  v.object({ kind: v.literal('resync'), origin: v.string() }),
]);

/** Reconnect backoff: 20 ms, 40 ms … capped at 250 ms, forever (a bus that is down is retried, not given up). */
const RECONNECT = (attempt: number) => Math.min(20 * 2 ** Math.min(attempt, 4), 250);

export interface RedisBus extends ChangeBus {
  /** Resolves once both connections are up and subscribed (or rejects after `ms`); serving need not wait. */
  ready(ms?: number): Promise<void>;
}

/** What the two connections share: whether each is up, the listeners, the counters for /metrics. */
interface BusState {
  instance: string;
  channel: string;
  subUp: boolean;
  pubUp: boolean;
  listeners: Set<(notice: ChangeNotice) => void>;
  recovered: Set<() => void>;
  readyWaiters: Array<() => void>;
  counters: { published: number; published_bytes: number; publish_failures: number; received: number; resyncs: number; losses: number; invalid: number };
}

/** Every local subscriber must check the database. */
function recover(state: BusState): void {
  state.counters.resyncs++;
  for (const listener of state.recovered) listener();
}

/** A connection went down: counted once per fall from healthy. */
function lose(state: BusState, which: 'subUp' | 'pubUp'): void {
  if (state.subUp && state.pubUp) state.counters.losses++;
  state[which] = false;
}

function up(state: BusState, which: 'subUp' | 'pubUp'): void {
  state[which] = true;
  if (!(state.subUp && state.pubUp)) return;
  for (const resolve of state.readyWaiters) resolve();
  state.readyWaiters = [];
}

/** (Re)subscribes on every (re)connect, then recovers; hands other instances' notices to the listeners. */
function watchSubscriber(sub: Redis, state: BusState): void {
  sub.on('ready', () => {
    sub.subscribe(state.channel).then(() => {
      up(state, 'subUp');
      recover(state); // whatever was published while this connection was down is in the database
    }, () => sub.disconnect(true)); // reconnect and try again
  });
  sub.on('close', () => lose(state, 'subUp'));
  sub.on('message', (from: string, text: string) => {
    if (from !== state.channel) return;
    state.counters.received++;
    const parsed = parse(text);
    if (parsed === null) {
      state.counters.invalid++;
      return recover(state); // not a Ferry message: nothing to trust in it, but check the database anyway
    }
    if (parsed.kind === 'resync') {
      if (parsed.origin !== state.instance) recover(state);
      return;
    }
    if (parsed.notice.origin === state.instance) return; // delivered in memory when published
    for (const listener of state.listeners) listener(parsed.notice as ChangeNotice);
  });
}

/** Says `resync` on every (re)connect; returns how to publish (a failure marks the bus lost). */
function watchPublisher(pub: Redis, state: BusState): (text: string) => void {
  const send = (text: string) => {
    state.counters.published++;
    state.counters.published_bytes += new TextEncoder().encode(text).length;
    pub.publish(state.channel, text).catch(() => {
      state.counters.publish_failures++;
      // The other instances may not have heard: lost until the publisher is back and says `resync`.
      lose(state, 'pubUp');
      if (pub.status === 'ready') pub.disconnect(true);
    });
  };
  pub.on('ready', () => {
    up(state, 'pubUp');
    send(JSON.stringify({ kind: 'resync', origin: state.instance }));
  });
  pub.on('close', () => lose(state, 'pubUp'));
  return send;
}

/**
 * The change bus between several instances on one database (docs/scale-out.md): each publishes a hint per
 * commit on one Redis channel and the others read what changed from the database. Pass it as `createApp({ bus })`;
 * it reconnects by itself and says when it was lost (`/healthz`).
 */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const common = {
    retryStrategy: RECONNECT, autoResubscribe: false, autoResendUnfulfilledCommands: false,
    // Fail a command at once when the connection is down instead of queueing it: a notice held back for
    // minutes is worth nothing, and a failed one marks the bus lost, which the `resync` repairs.
    enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, lazyConnect: true,
  };
  const pub = new Redis(options.url, { ...common, connectionName: `ferry-pub-${options.instance}` });
  const sub = new Redis(options.url, { ...common, connectionName: `ferry-sub-${options.instance}` });
  const state: BusState = {
    instance: options.instance, channel: options.channel ?? DEFAULT_CHANNEL, subUp: false, pubUp: false,
    listeners: new Set(), recovered: new Set(), readyWaiters: [],
    counters: { published: 0, published_bytes: 0, publish_failures: 0, received: 0, resyncs: 0, losses: 0, invalid: 0 },
  };
  // Errors are reported by state (healthy(), /healthz, /metrics), not thrown: without a listener ioredis
  // would print every failed reconnect attempt.
  for (const conn of [pub, sub]) conn.on('error', () => {});
  watchSubscriber(sub, state);
  const send = watchPublisher(pub, state);
  void sub.connect().catch(() => {});
  void pub.connect().catch(() => {});
  let closed = false;

  return {
    publish(notice) {
      for (const listener of state.listeners) listener(notice);
      if (!state.pubUp) {
        state.counters.publish_failures++;
        return; // repaired by the `resync` the publisher sends when it is back
      }
      const { entities: _, ...hint } = notice;
      send(JSON.stringify({ kind: 'notice', notice: hint }));
    },
    subscribe(listener) {
      state.listeners.add(listener);
      return () => state.listeners.delete(listener);
    },
    onRecovered(listener) {
      state.recovered.add(listener);
      return () => state.recovered.delete(listener);
    },
    healthy: () => state.subUp && state.pubUp,
    stats: () => ({ ...state.counters }),
    ready(ms = 10_000) {
      if (state.subUp && state.pubUp) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`Redis at ${redacted(options.url)} did not answer within ${ms} ms`)), ms);
        state.readyWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      state.listeners.clear();
      state.recovered.clear();
      pub.disconnect();
      sub.disconnect();
    },
  };
}

function parse(text: string): v.InferOutput<typeof Message> | null {
  try {
    const parsed = v.safeParse(Message, JSON.parse(text));
    return parsed.success ? parsed.output : null;
  } catch {
    return null;
  }
}

