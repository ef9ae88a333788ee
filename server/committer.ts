// Group commit: pushes that arrive while a transaction is running wait and then share the next one,
// so one fsync (synchronous=FULL) serves many batches. Every answer is released only after the
// transaction that holds it committed.
//
//   idle ──submit──▶ running ──commit──▶ (queue empty) idle
//                      ▲  │
//                      └──┘ commit, queue not empty: next group
import type { Batch, BatchOutcome } from './apply.ts';

export interface CommitResult<Extra> {
  outcomes: BatchOutcome[];
  extra: Extra;
}

/** Runs one write transaction for a group of batches; outcomes in the order given. */
export type CommitGroup<Extra> = (batches: Batch[]) => Promise<CommitResult<Extra>>;

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
      const group = takeGroup();
      const batches = group.map((w) => w.batch);
      let result: CommitResult<Extra>;
      try {
        result = await commit(batches);
      } catch (error) {
        // The group failed: usually nothing was committed (rollback); with a test-only fault hook the
        // commit may stand. Either way every batch is answered with an error and its device resends;
        // exactly-once holds because a committed resend is answered `duplicate`.
        for (const w of group) w.reject(error);
        continue;
      }
      try {
        afterCommit(result.extra, batches, result.outcomes);
      } catch (error) {
        console.error('ferry: fan-out after commit failed', error); // the commit stands; answer anyway
      }
      group.forEach((w, i) => w.resolve(result.outcomes[i]!));
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
