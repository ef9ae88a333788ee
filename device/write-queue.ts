// Writes issued in the same turn share one IndexedDB transaction: one strict commit (the floor of a
// local write's cost) for many, instead of one each. Every call still resolves only once its drafts are
// durable, with its own ops, and still succeeds or fails alone:
//
//   write(drafts) ─▶ waiting (this turn's calls, and any made while a commit runs)
//        ─ end of turn ─▶ commit(all their drafts, in call order)
//             ok ─▶ after(every op) once ─▶ each call resolves with its slice of the ops
//             failed, one call ─▶ that call fails
//             failed, several ─▶ nothing was written (commit is one transaction): each call commits alone,
//                                in order, so a bad draft fails only its own call
//
// A call's drafts are never split between transactions, so a call of several drafts is atomic.
import type { Op } from '../core/types.ts';
import type { Draft } from './records.ts';

export interface WriteQueueDeps {
  /** Stamps and writes the drafts in ONE transaction, all or none; resolves once it is durable. */
  commit(drafts: readonly Draft[]): Promise<Op[]>;
  /** What follows a commit (announce, wake a drain), once per transaction. Its failure is not a retry. */
  after(ops: Op[]): Promise<void>;
  /** When the turn is over; default queueMicrotask. */
  schedule?: (run: () => void) => void;
}

interface Call {
  drafts: readonly Draft[];
  resolve(ops: Op[]): void;
  reject(error: unknown): void;
}

/** What one transaction of the group did: its calls, and their ops or its failure. */
type Outcome = { calls: readonly Call[]; ops: Op[] } | { calls: readonly Call[]; error: unknown };

export function createWriteQueue(deps: WriteQueueDeps) {
  const schedule = deps.schedule ?? queueMicrotask;
  let waiting: Call[] = [];
  let pumping = false;

  /** One transaction for the calls, or (it failed, so wrote nothing) one each, in order. */
  const commit = async (calls: readonly Call[]): Promise<Outcome[]> => {
    try {
      return [{ calls, ops: await deps.commit(calls.flatMap((call) => call.drafts)) }];
    } catch (error) {
      if (calls.length === 1) return [{ calls, error }];
      const alone: Outcome[] = [];
      for (const call of calls) {
        try {
          alone.push({ calls: [call], ops: await deps.commit(call.drafts) });
        } catch (failure) {
          alone.push({ calls: [call], error: failure });
        }
      }
      return alone;
    }
  };

  const finish = async (outcome: Outcome): Promise<void> => {
    if ('error' in outcome) {
      for (const call of outcome.calls) call.reject(outcome.error);
      return;
    }
    try {
      await deps.after(outcome.ops);
    } catch (error) {
      for (const call of outcome.calls) call.reject(error);
      return;
    }
    let at = 0;
    for (const call of outcome.calls) {
      call.resolve(outcome.ops.slice(at, at + call.drafts.length));
      at += call.drafts.length;
    }
  };

  // One transaction at a time, so seqs follow the order the app wrote in (a later write must not get an
  // earlier stamp); calls made while one commits go together in the next. What follows a commit does not
  // hold up the next one.
  const pump = async () => {
    while (waiting.length > 0) {
      const calls = waiting;
      waiting = [];
      for (const outcome of await commit(calls)) void finish(outcome);
    }
    pumping = false;
  };

  return {
    write(drafts: readonly Draft[]): Promise<Op[]> {
      return new Promise<Op[]>((resolve, reject) => {
        waiting.push({ drafts, resolve, reject });
        if (pumping) return;
        pumping = true;
        schedule(() => void pump());
      });
    },
  };
}
