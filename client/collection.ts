// One collection of one space, as the app sees it: writes that land in the outbox and the replica in
// one transaction, reads of the replica, and a live query.
import { collectionProblem, type CollectionSchemas } from '../schema/collections.ts';
import type { Fields, Json } from '../core/types.ts';
import type { Draft } from '../device/records.ts';
import { FerryError } from './errors.ts';
import type { LiveQueries, Row } from './live.ts';

export interface Collection<T extends Record<string, Json>> {
  /** Sets the whole entity: fields not in `value` are removed. */
  put(key: string, value: T): Promise<void>;
  /** Sets the listed fields only. */
  patch(key: string, fields: Partial<T>): Promise<void>;
  delete(key: string): Promise<void>;
  get(key: string): Promise<Row<T> | null>;
  /** Every entity, in key order. */
  all(): Promise<Row<T>[]>;
  /** Called at once, then after every change to the collection from anywhere (this tab, another, the
   * worker's acks, other devices). Returns the unsubscribe. */
  subscribe(callback: (rows: Row<T>[]) => void): () => void;
}

export interface CollectionHost {
  /** Checks, enqueues and announces one write; resolves once it is durable on this device. */
  write(draft: Draft): Promise<void>;
  get(space: string, collection: string, key: string): Promise<Row<never> | null>;
  all(space: string, collection: string): Promise<Row<never>[]>;
  live: LiveQueries;
}

export function createCollection<T extends Record<string, Json>>(host: CollectionHost, space: string, name: string): Collection<T> {
  return {
    put: (key, value) => host.write({ space, collection: name, key, kind: 'put', value: value as Fields }),
    patch: (key, fields) => host.write({ space, collection: name, key, kind: 'patch', value: fields as Fields }),
    delete: (key) => host.write({ space, collection: name, key, kind: 'delete' }),
    get: (key) => host.get(space, name, key) as Promise<Row<T> | null>,
    all: () => host.all(space, name) as Promise<Row<T>[]>,
    subscribe: (callback) => host.live.subscribe<T>(space, name, callback),
  };
}

/** The draft with the app's schema version for its collection (`createFerry({ versions })`; absent: 1, and
 * the op carries none), which stays with the op in the outbox however late it is sent (core/versions.ts). */
export function withVersion(draft: Draft, versions: Readonly<Record<string, number>> | undefined): Draft {
  const version = versions?.[draft.collection];
  return version === undefined || version === 1 ? draft : { ...draft, version };
}

/**
 * The app's own schema for a collection, checked before anything is written, so a person hears
 * about a bad value at once rather than as a rejected change later: the same check the server runs.
 */
export function checkValue(schemas: CollectionSchemas | undefined, draft: Draft): void {
  const why = collectionProblem(schemas, draft.collection, draft.kind, draft.value);
  if (why !== null) throw new FerryError('invalid', `${draft.collection}/${draft.key}: ${why}`);
}
