// React bindings, thin and optional: each hook is `useSyncExternalStore` over what the page library already
// offers (a collection's live query, the status), so a component re-renders when the local replica or the
// status changes — a local write, an ack, another tab, another device — and reads nothing over the network.
//
//   const rows = useCollection(ferry, space, 'items');      // Row<T>[] (empty until the first read)
//   const milk = useEntity(ferry, space, 'items', 'milk');  // Row<T> | null | undefined (undefined: reading)
//   const status = useFerryStatus(ferry);                   // FerryStatus
//
// T is the collection's type from the schemas given to createFerry, or the one the caller names
// (`useCollection<Item>(ferry, space, 'items')`) for a collection without a schema.
import { useCallback, useRef, useSyncExternalStore } from 'react';
import type { CollectionSchemas } from '../schema/collections.ts';
import type { Collection, DocOf, Ferry, FerryStatus, Json, Row } from './index.ts';

/** Any Ferry, whatever its collections' types: what the hooks use of it. */
type AnyFerry = Pick<Ferry, 'collection' | 'status' | 'onStatus'>;

const EMPTY: never[] = [];

/** Every row of a collection, live, in key order: empty until the first read, then re-rendered on every change. */
export function useCollection<C extends CollectionSchemas, N extends keyof C & string>(ferry: Ferry<C>, space: string, name: N): Row<DocOf<C[N]>>[];
/** Every row of a collection without a schema, typed as the caller says. */
export function useCollection<T extends Record<string, Json>>(ferry: AnyFerry, space: string, name: string): Row<T>[];
export function useCollection<T extends Record<string, Json>>(ferry: AnyFerry, space: string, name: string): Row<T>[] {
  const rows = useRef<Row<T>[]>(EMPTY);
  const subscribe = useCallback((changed: () => void) => {
    rows.current = EMPTY;
    return (ferry.collection(space, name) as Collection<T>).subscribe((next) => {
      rows.current = next;
      changed();
    });
  }, [ferry, space, name]);
  return useSyncExternalStore(subscribe, () => rows.current, () => EMPTY);
}

/** One entity of a collection, live: undefined until the first read, null when absent or deleted. */
export function useEntity<C extends CollectionSchemas, N extends keyof C & string>(ferry: Ferry<C>, space: string, name: N, key: string): Row<DocOf<C[N]>> | null | undefined;
/** One entity of a collection without a schema, typed as the caller says. */
export function useEntity<T extends Record<string, Json>>(ferry: AnyFerry, space: string, name: string, key: string): Row<T> | null | undefined;
export function useEntity<T extends Record<string, Json>>(ferry: AnyFerry, space: string, name: string, key: string): Row<T> | null | undefined {
  const row = useRef<Row<T> | null | undefined>(undefined);
  const subscribe = useCallback((changed: () => void) => {
    row.current = undefined;
    return (ferry.collection(space, name) as Collection<T>).subscribe((rows) => {
      const next = rows.find((r) => r.key === key) ?? null;
      if (sameRow(next, row.current)) return;
      row.current = next;
      changed();
    });
  }, [ferry, space, name, key]);
  return useSyncExternalStore(subscribe, () => row.current, () => undefined);
}

/** The one sync status (FerryStatus: state, pending, lastError, …), live. */
export function useFerryStatus(ferry: AnyFerry): FerryStatus {
  const subscribe = useCallback((changed: () => void) => ferry.onStatus(changed), [ferry]);
  return useSyncExternalStore(subscribe, () => ferry.status(), () => ferry.status());
}

/** A re-read of the collection hands back new objects; a row that did not change keeps its identity. */
function sameRow<T>(a: Row<T> | null | undefined, b: Row<T> | null | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.key === b.key && a.pending === b.pending && JSON.stringify(a.value) === JSON.stringify(b.value);
}
