// An app's own per-collection schemas (valibot), and the one check both sides run with them: the page
// before it enqueues a write (so the person hears at once, with their text kept), the server inside the
// apply transaction (so a device that skipped the check still gets a permanent `rejected`).
import * as v from 'valibot';
import type { CollectionCheck } from '../core/apply.ts';
import type { Fields, OpKind } from '../core/types.ts';

/** Per-collection schemas for op values; a collection without one gets the protocol's limits only. */
export type CollectionSchemas = Record<string, v.GenericSchema>;

/**
 * Why `value` breaks its collection's schema (`path: message`); null when it fits or no schema is set.
 * A patch carries some fields only, so it is checked against the schema made partial (when the schema is
 * an object); a delete carries no value and is never checked.
 */
export function collectionProblem(
  schemas: CollectionSchemas | undefined, collection: string, kind: OpKind, value: Fields | undefined,
): string | null {
  const schema = schemas?.[collection];
  if (schema === undefined || kind === 'delete') return null;
  const target = kind === 'patch' && 'entries' in schema
    ? v.partial(schema as v.ObjectSchema<v.ObjectEntries, undefined>)
    : schema;
  const result = v.safeParse(target, value);
  if (result.success) return null;
  const issue = result.issues[0];
  const path = issue ? v.getDotPath(issue) : null;
  return `${path ? `${path}: ` : ''}${issue?.message ?? 'the value does not match the schema'}`;
}

/** The check as the apply planning takes it (core/apply.ts `CollectionCheck`): the server and its fakes. */
export function collectionCheck(schemas: CollectionSchemas | undefined): CollectionCheck | undefined {
  if (schemas === undefined) return undefined;
  return (collection, op) => {
    const why = collectionProblem(schemas, collection, op.kind, op.value);
    return why === null ? null : `${collection}: ${why}`;
  };
}
