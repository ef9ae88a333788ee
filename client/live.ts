// Live queries over the local replica. The device engine says when a collection changed, in this tab or
// any other context (device/channel.ts carries the notices between them).
//
// A query is (space, collection) → every visible row. Whoever changes the replica — this page's
// write, an ack applied here or in the worker, a remote change from any tab's socket — says which
// collection moved; each subscribed query then re-reads it. Re-reads are coalesced per query: while
// one runs, further notices only mark it dirty, so a burst of 3,000 writes costs a handful of reads,
// and callbacks see results in order.

export interface Row<T> {
  key: string;
  value: T;
  /** Unsent or unacknowledged ops on it. */
  pending: boolean;
}

type Callback = (rows: Row<never>[]) => void;

interface Query {
  space: string;
  collection: string;
  callbacks: Set<Callback>;
  running: boolean;
  dirty: boolean;
}

export interface LiveQueries {
  subscribe<T>(space: string, collection: string, callback: (rows: Row<T>[]) => void): () => void;
  /** The replica of (space, collection) changed; `*` for every collection of the space. */
  notify(space: string, collection: string): void;
  close(): void;
}

export function createLiveQueries(read: (space: string, collection: string) => Promise<Row<never>[]>, onError: (error: unknown) => void): LiveQueries {
  const queries = new Map<string, Query>();
  let closed = false;
  const keyOf = (space: string, collection: string) => `${space}\u0000${collection}`;

  const run = async (query: Query) => {
    if (query.running) {
      query.dirty = true;
      return;
    }
    query.running = true;
    try {
      do {
        query.dirty = false;
        let rows: Row<never>[];
        try {
          rows = await read(query.space, query.collection);
        } catch (error) {
          onError(error);
          return;
        }
        if (closed) return;
        for (const callback of [...query.callbacks]) {
          try {
            callback(rows);
          } catch (error) {
            onError(error); // one app callback's bug must not stop the others from hearing
          }
        }
      } while (query.dirty && query.callbacks.size > 0);
    } finally {
      query.running = false;
    }
  };

  return {
    subscribe<T>(space: string, collection: string, callback: (rows: Row<T>[]) => void) {
      const key = keyOf(space, collection);
      let query = queries.get(key);
      if (query === undefined) {
        query = { space, collection, callbacks: new Set(), running: false, dirty: false };
        queries.set(key, query);
      }
      const added = callback as unknown as Callback;
      query.callbacks.add(added);
      // Called at once. Through the query's own run, so no result can overtake a newer one; other
      // subscribers of the query hear the same rows again, which costs them nothing but a render.
      void run(query);
      return () => {
        query.callbacks.delete(added);
        if (query.callbacks.size === 0 && queries.get(key) === query) queries.delete(key);
      };
    },

    notify(space: string, collection: string) {
      if (closed) return;
      for (const query of queries.values()) {
        if (query.space === space && (collection === '*' || query.collection === collection)) void run(query);
      }
    },

    close() {
      closed = true;
      queries.clear();
    },
  };
}
