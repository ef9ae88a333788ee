// The cost of an app's server logic on the apply path: 500-op batches of fresh keys through the real
// `store.commitTaking` (one write transaction each, synchronous=FULL), with no logic (the baseline), with a
// write rule on every op (it reads the entity and computes two fields, stamped after the op), and with one
// effect recorded per op (an `effects` row in the same commit; delivery runs after the commit, off this
// path, and is not measured here). Each side has its own identical file; rounds alternate the order; the
// figure is the median round. The extra cost per op is (1/rate − 1/baseline) in µs.
import { createSyncStore, type CommitLogic } from '../server/storage/sync-store.ts';
import { effectSelection } from '../server/effects.ts';
import { benchDb, median, putOps, round, tempDir, type BenchDb, type Row, type Suite } from './lib.ts';

const BATCH = 500;
type SideName = 'plain' | 'rule' | 'effect';

const LOGIC: Record<SideName, CommitLogic> = {
  plain: {},
  rule: {
    rules: {
      items: ({ current, writer, now }) => (current?.locked === true ? { reject: 'locked', message: 'Locked.' } : { set: { updated_by: writer.user, updated_at: now } }),
    },
  },
  effect: { effects: effectSelection({ audit: { collection: 'items', run: () => {} } }) },
};

function side(db: BenchDb, name: SideName) {
  const store = createSyncStore(db.database.db, undefined, LOGIC[name]);
  let seq = 1;
  let batch = 0;
  return {
    name,
    async write() {
      const keys = Array.from({ length: BATCH }, (_, i) => `${name}-${batch}-${i}`);
      const ops = putOps('bench-logic', db.space, seq, keys);
      const { outcomes } = await store.commitGroup([{ userId: db.userId, device: 'bench-logic', ops }], Date.now());
      const outcome = outcomes[0]!;
      if (!outcome.ok || outcome.results.some((r) => r.result !== 'applied')) {
        throw new Error(`logic bench: unexpected outcome ${JSON.stringify(outcome).slice(0, 300)}`);
      }
      seq += BATCH;
      batch += 1;
    },
  };
}

async function measure(s: ReturnType<typeof side>, batches: number): Promise<number> {
  const started = performance.now();
  for (let b = 0; b < batches; b++) await s.write();
  return (batches * BATCH) / ((performance.now() - started) / 1000);
}

export const logicSuite: Suite = {
  name: 'logic',
  async run({ quick, log }) {
    const rounds = quick ? 3 : 7;
    const batchesPerRound = quick ? 4 : 10;
    const tmp = tempDir('logic');
    try {
      const names: SideName[] = ['plain', 'rule', 'effect'];
      const dbs = await Promise.all(names.map((n) => benchDb(tmp.dir, `${n}.db`)));
      const sides = names.map((n, i) => side(dbs[i]!, n));
      for (const s of sides) await measure(s, 2); // warm-up
      const rates: Record<SideName, number[]> = { plain: [], rule: [], effect: [] };
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? sides : [...sides].reverse();
        for (const s of order) rates[s.name].push(await measure(s, batchesPerRound));
        log(`  logic round ${r + 1}/${rounds}: plain ${round(rates.plain.at(-1)!)}, rule ${round(rates.rule.at(-1)!)}, effect ${round(rates.effect.at(-1)!)} ops/s`);
      }
      for (const db of dbs) db.database.close();
      const base = median(rates.plain);
      const row = (name: 'rule' | 'effect', benchmark: string): Row => {
        const rate = median(rates[name]);
        return {
          benchmark, unit: 'ops/s', ferry: rate, baseline: base, target: { on: 'ratio', min: 0.8 },
          detail: { rounds, batchesPerRound, batch: BATCH, extraMicrosPerOp: round((1 / rate - 1 / base) * 1e6, 2) },
        };
      };
      return [
        row('rule', 'apply 500-op batches with a write rule (2 computed fields) vs none'),
        row('effect', 'apply 500-op batches recording one effect per op vs none'),
      ];
    } finally {
      tmp.remove();
    }
  },
};
