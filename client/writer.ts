// How the page's collections write: each write checked against the app's schema, then handed to the
// device engine (whose writes of one turn share one transaction, device/write-queue.ts); and
// `ferry.batch(build)`, which collects every write `build` makes into ONE write: all of it lands, in one
// transaction with consecutive seqs, or none of it does.
//
//   write(draft) ─ batch running ─▶ checked, added to the batch; resolves (or fails) with it
//                └ else ─────────▶ checked, device.write([draft]); resolves once durable
import type { CollectionSchemas } from '../schema/collections.ts';
import type { Draft } from '../device/records.ts';
import { checkValue } from './collection.ts';
import { FerryError } from './errors.ts';

export interface WriterDeps {
  collections: CollectionSchemas | undefined;
  /** The device engine's write: the drafts in one transaction; resolves once durable. */
  write(drafts: readonly Draft[]): Promise<unknown>;
  /** Throws when the Ferry is closed. */
  open(): void;
}

interface Batch {
  drafts: Draft[];
  done: Promise<void>;
  error: unknown;
}

/** A promise the app may ignore without an unhandled rejection: its failure reaches batch() too. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

export function createWriter(deps: WriterDeps) {
  let batch: Batch | null = null;

  return {
    write(draft: Draft): Promise<void> {
      if (batch !== null) {
        const current = batch;
        try {
          deps.open();
          checkValue(deps.collections, draft);
        } catch (error) {
          current.error ??= error;
          return quiet(Promise.reject(error));
        }
        current.drafts.push(draft);
        return current.done;
      }
      return (async () => {
        deps.open();
        checkValue(deps.collections, draft);
        await deps.write([draft]);
      })();
    },

    /**
     * Runs `build`, which writes through collections (put, patch, delete) without awaiting them, and
     * writes all of that at once: one transaction, all or nothing. Resolves once it is durable; a bad
     * value anywhere fails the whole batch, and nothing of it is written.
     */
    async batch(build: () => void): Promise<void> {
      if (batch !== null) throw new FerryError('invalid', 'ferry.batch cannot run inside another batch.');
      let settle!: { resolve: () => void; reject: (error: unknown) => void };
      const current: Batch = { drafts: [], done: quiet(new Promise<void>((resolve, reject) => (settle = { resolve, reject }))), error: undefined };
      batch = current;
      let returned: unknown;
      try {
        returned = build();
      } catch (error) {
        current.error ??= error;
      } finally {
        batch = null;
      }
      if (returned instanceof Promise || (typeof returned === 'object' && returned !== null && 'then' in returned)) {
        // Writes after its first await would land outside the batch, so it would not be atomic.
        current.error ??= new FerryError('invalid', 'ferry.batch takes a function that writes without awaiting; nothing was written.');
        void Promise.resolve(returned).catch(() => {});
      }
      try {
        if (current.error !== undefined) throw current.error;
        if (current.drafts.length > 0) await deps.write(current.drafts);
        settle.resolve();
      } catch (error) {
        settle.reject(error);
        throw error;
      }
    },
  };
}
