// The plain data every part of Ferry speaks: ops, stamps and documents.
// Nothing here does I/O; the wire schemas in schema/ validate these shapes at the edges.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The fields of one entity: a flat record of named JSON values. */
export type Fields = Record<string, Json>;

export type OpKind = 'put' | 'patch' | 'delete';

/**
 * Orders concurrent writes: by lamport first, then by device id (plain string order).
 * Each op has a unique stamp, because a device's lamport strictly increases from op to op.
 */
export type Stamp = readonly [lamport: number, device: string];

/** One change made on one device. */
export interface Op {
  /** Globally unique id (the device mints it, e.g. `${device}:${seq}` or a random UUID). */
  id: string;
  device: string;
  /** 1, 2, 3… per device, no gaps. */
  seq: number;
  /** The device's Lamport clock after ticking for this op. */
  lamport: number;
  space: string;
  collection: string;
  key: string;
  kind: OpKind;
  /** put: every field of the entity; patch: the fields to set; delete: absent. */
  value?: Fields;
  /** Wall-clock milliseconds when the person made the change (informational, never used to order). */
  at: number;
  /** The app's schema version for this op's collection when it was written (absent: 1); the server brings
   * an older op up to its own version with the app's upgrade (core/versions.ts). */
  version?: number;
}

/** What a member may do in a space: the owner everything, an editor read and write, a viewer only read. */
export const ROLES = ['owner', 'editor', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The mergeable state of one entity: per-field last-writer-wins registers plus two more:
 * - `base`: the newest put or delete. Every field not written at or after it is absent, so an old
 *   patch arriving late cannot resurrect a field a newer put removed.
 * - `live`: the stamp of the op that last decided existence (put/patch say alive, delete says dead).
 * `fields` holds only the visible values; `stamps` has exactly the same keys.
 */
export interface Doc {
  fields: Fields;
  stamps: Record<string, Stamp>;
  base: Stamp | null;
  live: Stamp;
  deleted: boolean;
}

/** What the server holds for one entity, as sent in changes and snapshots. */
export interface EntityRow extends Doc {
  space: string;
  collection: string;
  key: string;
  serverSeq: number;
}

export type OpResultKind = 'applied' | 'duplicate' | 'superseded' | 'rejected';

/** The server's answer for one op. `duplicate` carries the first result in `first`. */
export interface OpResult {
  seq: number;
  id: string;
  result: OpResultKind;
  /** For duplicates: what the op got the first time (never `duplicate`). */
  first?: Exclude<OpResultKind, 'duplicate'>;
  /** For rejections (or duplicates of them): machine-readable reason and a sentence. For an op applied or
   * superseded (or a duplicate of one) as the app's upgrade rewrote it: `upgraded` (core/versions.ts), and
   * the server's state holds the upgraded op, which reaches the writer through the change stream. */
  code?: string;
  message?: string;
}
