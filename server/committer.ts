// Group commit: pushes that arrive while a transaction is running wait and then share the next one,
// so one fsync (synchronous=FULL) serves many batches. Every answer is released only after the
// transaction that holds it committed. The group is taken once the transaction holds the write lock
// (`take`), so pushes that arrive while another process holds it (scale-out on one file) join it too.
//
//   idle ──submit──▶ running ──commit──▶ (queue empty) idle
//                      ▲  │
//                      └──┘ commit, queue not empty: next group
import { setImmediate } from 'node:timers';
import type { Batch, BatchOutcome } from '../core/apply.ts';
import { logFailure } from './log.ts';

export interface CommitResult<Extra> {
  outcomes: BatchOutcome[];
  extra: Extra;
}

/**
 * Runs one write transaction: begins it, calls `take()` for the group (once, synchronously, after the
 * lock is held), commits; outcomes in the order `take` gave.
 */
export type CommitGroup<Extra> = (take: () => Batch[]) => Promise<CommitResult<Extra>>;

interface Waiting {
  batch: Batch;
  resolve: (outcome: BatchOutcome) => void;
  reject: (error: unknown) => void;
}

export interface Committer {
  submit(batch: Batch): Promise<BatchOutcome>;
  /** Resolves once every submitted batch has been answered. */
  idle(): Promise<void>;
}

/**
 * @param commit     the transaction; its `extra` (changed rows, watermarks) goes to `afterCommit`
 * @param maxOps     bound on ops per group so one transaction (and its memory) stays bounded
 * @param afterCommit runs after the commit, before answers are released (fan-out of changes)
 */
export function createCommitter<Extra>(
  commit: CommitGroup<Extra>,
  afterCommit: (extra: Extra, batches: Batch[], outcomes: BatchOutcome[]) => void,
  maxOps = 5000,
): Committer {
  let queue: Waiting[] = [];
  let running: Promise<void> | null = null;

  const takeGroup = (): Waiting[] => {
    let ops = 0;
    let n = 0;
    while (n < queue.length && (n === 0 || ops + queue[n]!.batch.ops.length <= maxOps)) {
      ops += queue[n]!.batch.ops.length;
      n++;
    }
    const group = queue.slice(0, n);
    queue = queue.slice(n);
    return group;
  };

  const run = async (): Promise<void> => {
    while (queue.length > 0) {
      // libSQL's file driver runs every statement synchronously on this thread, so a commit never lets
      // the event loop deliver the pushes that arrive meanwhile: without this yield each group held ONE
      // batch (1,000 single-op pushes/s = 1,000 commits/s, and the queue grew without bound). One turn of
      // the loop lets every push already received join the group.
      await new Promise<void>((resolve) => setImmediate(resolve));
      let group: Waiting[] | null = null;
      let batches: Batch[] = [];
      let result: CommitResult<Extra>;
      try {
        result = await commit(() => {
          group = takeGroup();
          batches = group.map((w) => w.batch);
          return batches;
        });
      } catch (error) {
        // The group failed: usually nothing was committed (rollback); with a test-only fault hook the
        // commit may stand. Either way every batch is answered with an error and its device resends;
        // exactly-once holds because a committed resend is answered `duplicate`. A transaction that never
        // began (the lock not had in time) fails the group that would have been next.
        for (const w of group ?? takeGroup()) w.reject(error);
        continue;
      }
      const taken: Waiting[] = group ?? [];
      try {
        afterCommit(result.extra, batches, result.outcomes);
      } catch (error) {
        logFailure('fan-out after commit failed', error); // the commit stands; answer anyway
      }
      taken.forEach((w, i) => w.resolve(result.outcomes[i]!));
    }
    running = null;
  };

  return {
    submit(batch) {
      return new Promise<BatchOutcome>((resolve, reject) => {
        queue.push({ batch, resolve, reject });
        running ??= run();
      });
    },
    async idle() {
      while (running) await running;
    },
  };
}
