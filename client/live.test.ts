// Live queries: called at once, re-run on every notice for their collection (or their whole space),
// never for other collections, bursts folded into few reads, and results never out of order.
import { describe, expect, test } from 'bun:test';
import { createLiveQueries, type Row } from './live.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup() {
  let version = 0;
  const reads: string[] = [];
  const gates: Array<() => void> = [];
  let gated = false;
  const live = createLiveQueries(async (space, collection) => {
    reads.push(`${space}/${collection}`);
    const seen = version;
    if (gated) await new Promise<void>((resolve) => gates.push(resolve));
    return [{ key: 'v', value: seen as never, pending: false }];
  }, (error) => {
    throw error;
  });
  return {
    live, reads, bump: () => (version += 1), gate: (on: boolean) => (gated = on),
    release: async () => {
      while (gates.length > 0) gates.shift()!();
      await tick();
    },
  };
}

const values = (calls: Row<number>[][]) => calls.map((rows) => rows[0]!.value);

describe('live queries', () => {
  test('called at once, then after each notice for their collection or their whole space only', async () => {
    const { live, reads, bump } = setup();
    const calls: Row<number>[][] = [];
    live.subscribe<number>('s', 'items', (rows) => calls.push(rows));
    await tick();
    expect(values(calls)).toEqual([0]);
    bump();
    live.notify('s', 'items');
    await tick();
    live.notify('s', 'notes');
    live.notify('t', 'items');
    await tick();
    bump();
    live.notify('s', '*');
    await tick();
    expect(values(calls)).toEqual([0, 1, 2]);
    expect(reads).toEqual(['s/items', 's/items', 's/items']);
  });

  test('a burst of notices while a read runs folds into one more read, delivered last', async () => {
    const { live, reads, bump, gate, release } = setup();
    const calls: Row<number>[][] = [];
    live.subscribe<number>('s', 'items', (rows) => calls.push(rows));
    await tick();
    gate(true);
    for (let i = 0; i < 100; i++) {
      bump();
      live.notify('s', 'items');
    }
    await release();
    await release();
    expect(reads).toHaveLength(3); // the first call, the read the burst started, one more for the rest
    expect(values(calls)).toEqual([0, 1, 100]);
  });

  test('unsubscribed callbacks hear nothing more; a throwing callback does not silence the others', async () => {
    const errors: unknown[] = [];
    const live = createLiveQueries(async () => [], (error) => errors.push(error));
    let heard = 0;
    const stop = live.subscribe('s', 'items', () => heard++);
    live.subscribe('s', 'items', () => {
      throw new Error('app bug');
    });
    await tick();
    expect(heard).toBeGreaterThan(0);
    stop();
    const before = heard;
    live.notify('s', 'items');
    await tick();
    expect(heard).toBe(before);
    expect(errors.length).toBeGreaterThan(0);
  });
});
