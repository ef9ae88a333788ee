// Apply throughput: ops/s through the real apply path, `store.commitGroup` (load → validate → dedupe →
// merge → one write transaction of multi-row statements → results), in batches of 500, against raw
// @libsql/client writing the same entity rows with ONE multi-row statement per 500 inside a transaction,
// on an identical file DB (same migrations, WAL, synchronous=FULL).
//
//   (a) fresh keys: every op creates an entity.
//   (b) 50% updates: each batch rewrites the 250 keys the previous batch created and creates 250 more.
//
// Rounds alternate which side goes first; the figure is the median round.
import { createSyncStore } from '../server/storage/sync-store.ts';
import { benchDb, median, putOps, quantile, rawCommit, round, tempDir, type BenchDb, type Row, type Suite } from './lib.ts';

const BATCH = 500;

/** The keys of batch `b` (0-based) for a workload; deterministic, so both sides write the same rows. */
function keysOf(mode: 'fresh' | 'half', b: number): string[] {
  if (mode === 'fresh') return Array.from({ length: BATCH }, (_, i) => `f${b}-${i}`);
  const half = BATCH / 2;
  const updates = b === 0 ? [] : Array.from({ length: half }, (_, i) => `h${b - 1}-${i}`);
  const fresh = Array.from({ length: BATCH - updates.length }, (_, i) => `h${b}-${i}`);
  // Interleaved, so an update is not always at the same position of the statement.
  return fresh.flatMap((k, i) => (updates[i] ? [updates[i]!, k] : [k]));
}

interface Side {
  name: 'ferry' | 'raw';
  /** Writes batch `b`; the caller times it. */
  write(mode: 'fresh' | 'half', b: number): Promise<void>;
}

function ferrySide(db: BenchDb): Side {
  const store = createSyncStore(db.database.db);
  const device = 'bench-apply';
  let seq = 1;
  return {
    name: 'ferry',
    async write(mode, b) {
      const ops = putOps(device, db.space, seq, keysOf(mode, b));
      const { outcomes } = await store.commitGroup([{ userId: db.userId, device, ops }], Date.now());
      const outcome = outcomes[0]!;
      if (!outcome.ok || outcome.results.some((r) => r.result !== 'applied')) {
        throw new Error(`apply bench: unexpected outcome ${JSON.stringify(outcome).slice(0, 300)}`);
      }
      seq += ops.length;
    },
  };
}

function rawSide(db: BenchDb): Side {
  const device = 'bench-apply';
  let seq = 1;
  let serverSeq = 1;
  return {
    name: 'raw',
    async write(mode, b) {
      const ops = putOps(device, db.space, seq, keysOf(mode, b));
      await rawCommit(db.client, ops, serverSeq);
      seq += ops.length;
      serverSeq += ops.length;
    },
  };
}

async function measure(side: Side, mode: 'fresh' | 'half', from: number, batches: number): Promise<number> {
  const started = performance.now();
  for (let b = from; b < from + batches; b++) await side.write(mode, b);
  return (batches * BATCH) / ((performance.now() - started) / 1000);
}

export const applySuite: Suite = {
  name: 'apply',
  async run({ quick, log }) {
    const rounds = quick ? 3 : 9;
    const batchesPerRound = quick ? 6 : 16;
    const rows: Row[] = [];
    for (const mode of ['fresh', 'half'] as const) {
      const tmp = tempDir(`apply-${mode}`);
      try {
        const dbs = [await benchDb(tmp.dir, 'ferry.db'), await benchDb(tmp.dir, 'raw.db')] as const;
        const sides = [ferrySide(dbs[0]), rawSide(dbs[1])];
        // Warm-up: JIT, statement caches, the first pages of every table and index.
        for (const side of sides) await measure(side, mode, 0, 2);
        const rates: Record<'ferry' | 'raw', number[]> = { ferry: [], raw: [] };
        let next = 2;
        for (let r = 0; r < rounds; r++) {
          const order = r % 2 === 0 ? sides : [...sides].reverse();
          for (const side of order) rates[side.name].push(await measure(side, mode, next, batchesPerRound));
          next += batchesPerRound;
          log(`  apply ${mode} round ${r + 1}/${rounds}: ferry ${round(rates.ferry.at(-1)!)} ops/s, raw ${round(rates.raw.at(-1)!)} ops/s`);
        }
        for (const db of dbs) db.database.close();
        rows.push({
          benchmark: mode === 'fresh' ? 'apply 500-op batches, fresh keys' : 'apply 500-op batches, 50% updates',
          unit: 'ops/s',
          ferry: median(rates.ferry),
          baseline: median(rates.raw),
          target: { on: 'ratio', min: 0.65 },
          detail: {
            rounds, batchesPerRound, batch: BATCH,
            ferryRange: [quantile(rates.ferry, 0), quantile(rates.ferry, 1)].map((x) => round(x)),
            rawRange: [quantile(rates.raw, 0), quantile(rates.raw, 1)].map((x) => round(x)),
          },
        });
      } finally {
        tmp.remove();
      }
    }
    return rows;
  },
};
