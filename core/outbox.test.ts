import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import {
  type Ack,
  DEFAULT_BATCH_LIMITS,
  type OutboxEntry,
  planAck,
  planAckOnEntries,
  batchBytes,
  chooseBatch,
  entryOf,
  planRestamp,
} from './outbox.ts';
import { LIMITS } from './limits.ts';
import type { Op, OpResult } from './types.ts';

function makeOp(seq: number, lamport = seq, value: Op['value'] = { title: `op ${seq}` }): Op {
  return { id: `d1:${seq}`, device: 'd1', seq, lamport, space: 's1', collection: 'notes', key: `k${seq % 3}`, kind: 'put', value, at: 1_700_000_000_000 + seq };
}

const entries = (seqs: number[]) => seqs.map((seq) => entryOf(makeOp(seq)));
const seqsOf = (batch: readonly OutboxEntry[]) => batch.map((entry) => entry.op.seq);

describe('entryOf', () => {
  test('bytes is the UTF-8 size of the serialized op, multi-byte text included', () => {
    const op = makeOp(1, 1, { title: 'Grüße 👋 日本' });
    expect(entryOf(op).bytes).toBe(new TextEncoder().encode(JSON.stringify(op)).length);
    expect(entryOf(op).bytes).toBeGreaterThan(JSON.stringify(op).length);
  });

  test('the default limits leave room for the envelope inside the batch limit', () => {
    expect(DEFAULT_BATCH_LIMITS.maxOps).toBe(LIMITS.batchOps);
    const device = '\u0001'.repeat(LIMITS.idBytes); // the worst case for JSON escaping (\u0001 per byte)
    const envelope = JSON.stringify({ type: 'push', rid: Number.MAX_SAFE_INTEGER, device, ops: [] });
    expect(DEFAULT_BATCH_LIMITS.maxBytes + envelope.length).toBeLessThanOrEqual(LIMITS.batchBytes);
  });
});

describe('chooseBatch', () => {
  test('is bounded by count', () => {
    expect(seqsOf(chooseBatch(entries([1, 2, 3, 4, 5]), { maxOps: 3, maxBytes: 1e9 }))).toEqual([1, 2, 3]);
  });

  test('is bounded by bytes, counting the commas between ops', () => {
    const page = entries([1, 2, 3]);
    const two = page[0]!.bytes + 1 + page[1]!.bytes;
    expect(seqsOf(chooseBatch(page, { maxOps: 10, maxBytes: two }))).toEqual([1, 2]);
    expect(seqsOf(chooseBatch(page, { maxOps: 10, maxBytes: two - 1 }))).toEqual([1]);
    expect(batchBytes(chooseBatch(page, { maxOps: 10, maxBytes: two }))).toBe(two);
    expect(batchBytes([])).toBe(0);
  });

  test('sends a single over-size op alone rather than never', () => {
    const big = entryOf(makeOp(1, 1, { body: 'x'.repeat(5000) }));
    const batch = chooseBatch([big, ...entries([2])], { maxOps: 10, maxBytes: 100 });
    expect(seqsOf(batch)).toEqual([1]);
  });

  test('stops at a gap in the local outbox', () => {
    expect(seqsOf(chooseBatch(entries([4, 5, 7, 8]), { maxOps: 10, maxBytes: 1e9 }))).toEqual([4, 5]);
  });

  test('starts at fromSeq, or above it if that op is already gone', () => {
    const page = entries([3, 4, 5, 6]);
    expect(seqsOf(chooseBatch(page, { maxOps: 2, maxBytes: 1e9 }, 5))).toEqual([5, 6]);
    expect(seqsOf(chooseBatch(entries([6, 7]), { maxOps: 2, maxBytes: 1e9 }, 5))).toEqual([6, 7]);
    expect(chooseBatch(page, { maxOps: 2, maxBytes: 1e9 }, 9)).toEqual([]);
    expect(chooseBatch([], { maxOps: 2, maxBytes: 1e9 })).toEqual([]);
  });

  const page = fc
    .array(fc.record({ step: fc.oneof(fc.constant(1), fc.constant(1), fc.constant(1), fc.integer({ min: 2, max: 4 })), size: fc.integer({ min: 0, max: 300 }) }), { maxLength: 40 })
    .map((rows) => {
      let seq = 0;
      return rows.map(({ step, size }) => {
        seq += step;
        return entryOf(makeOp(seq, seq, { body: 'é'.repeat(size) }));
      });
    });

  test('property: bounded, contiguous, starts where asked, and as long as the bounds allow', () => {
    fc.assert(
      fc.property(page, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 4000 }), fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }), (page, maxOps, maxBytes, fromSeq) => {
        const batch = chooseBatch(page, { maxOps, maxBytes }, fromSeq);
        const start = page.findIndex((entry) => fromSeq === undefined || entry.op.seq >= fromSeq);
        if (start < 0) return expect(batch).toEqual([]);
        expect(batch.length).toBeGreaterThanOrEqual(1);
        expect(batch[0]).toBe(page[start]!);
        if (fromSeq !== undefined && page.some((entry) => entry.op.seq === fromSeq)) expect(batch[0]!.op.seq).toBe(fromSeq);
        expect(batch.length).toBeLessThanOrEqual(maxOps);
        if (batch.length > 1) expect(batchBytes(batch)).toBeLessThanOrEqual(maxBytes);
        batch.forEach((entry, i) => i > 0 && expect(entry.op.seq).toBe(batch[i - 1]!.op.seq + 1));
        const next = page[start + batch.length];
        if (next !== undefined && batch.length < maxOps && next.op.seq === batch.at(-1)!.op.seq + 1) {
          expect(batchBytes([...batch, next])).toBeGreaterThan(maxBytes); // it stopped only because of a bound
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('planAck', () => {
  const result = (seq: number, r: OpResult['result'], extra: Partial<OpResult> = {}): OpResult => ({ seq, id: `d1:${seq}`, result: r, ...extra });

  test('drops acked ops, keeps the rest, and advances the clock', () => {
    const ack: Ack = { through: 2, lamport: 40, results: [result(1, 'applied'), result(2, 'superseded')] };
    const out = planAckOnEntries(entries([1, 2, 3]), ack, 7, 1000);
    expect(seqsOf(out.kept)).toEqual([3]);
    expect(out.dead).toEqual([]);
    expect(out.clock).toBe(40);
    expect(planAck({ ...ack, lamport: 3 }, 7, 1000).clock).toBe(7); // never backwards
  });

  test('moves rejected ops to the dead-letter list with the server reason', () => {
    const ack: Ack = {
      through: 3,
      lamport: 3,
      results: [result(1, 'applied'), result(2, 'rejected', { code: 'too_large', message: 'The value is 70000 bytes.' }), result(3, 'applied')],
    };
    const page = entries([1, 2, 3, 4]);
    const out = planAckOnEntries(page, ack, 0, 1234);
    expect(seqsOf(out.kept)).toEqual([4]);
    expect(out.dead).toEqual([{ op: page[1]!.op, code: 'too_large', message: 'The value is 70000 bytes.', at: 1234 }]);
    expect(planAck(ack, 0, 1234).remove).toEqual([1, 2, 3]);
  });

  test('a duplicate whose first answer was a rejection is a dead letter too; other duplicates are not', () => {
    const ack: Ack = {
      through: 3,
      lamport: 0,
      results: [result(1, 'duplicate', { first: 'rejected', code: 'invalid', message: 'Bad field.' }), result(2, 'duplicate', { first: 'applied' }), result(3, 'rejected')],
    };
    const dead = planAck(ack, 0, 5).deadLetters;
    expect(dead).toEqual([
      { seq: 1, code: 'invalid', message: 'Bad field.', at: 5 },
      { seq: 3, code: 'rejected', message: 'The server refused this change.', at: 5 },
    ]);
  });

  test('a result above `through` is ignored: that op was not committed and stays', () => {
    const ack: Ack = { through: 1, lamport: 0, results: [result(1, 'applied'), result(2, 'rejected', { code: 'x' })] };
    const out = planAckOnEntries(entries([1, 2]), ack, 0, 0);
    expect(seqsOf(out.kept)).toEqual([2]);
    expect(out.dead).toEqual([]);
  });

  test('an op below `through` with no result in this ack waits for its own (its ack was lost)', () => {
    const page = entries([1, 2, 3]);
    // Op 1 was applied and rejected, but its ack never arrived; op 2's ack arrives.
    const later = planAckOnEntries(page, { through: 2, lamport: 2, results: [result(2, 'applied')] }, 0, 0);
    expect(seqsOf(later.kept)).toEqual([1, 3]);
    // Resent, op 1 is answered as a duplicate carrying its first result, and becomes a dead letter.
    const resent = planAckOnEntries(later.kept, {
      through: 2, lamport: 2, results: [result(1, 'duplicate', { first: 'rejected', code: 'invalid', message: 'No.' })],
    }, 0, 9);
    expect(seqsOf(resent.kept)).toEqual([3]);
    expect(resent.dead).toEqual([{ op: page[0]!.op, code: 'invalid', message: 'No.', at: 9 }]);
  });

  test('an older ack arriving after a newer one still dead-letters its rejections', () => {
    const newer: Ack = { through: 4, lamport: 9, results: [3, 4].map((seq) => result(seq, 'applied')) };
    const older: Ack = { through: 2, lamport: 5, results: [result(1, 'applied'), result(2, 'rejected')] };
    const first = planAckOnEntries(entries([1, 2, 3, 4, 5]), newer, 0, 0);
    const second = planAckOnEntries(first.kept, older, first.clock, 0);
    expect(seqsOf(second.kept)).toEqual([5]);
    expect(second.dead.map((letter) => letter.op.seq)).toEqual([2]);
    expect(second.clock).toBe(9);
  });

  test('property: acks applied in any order, any number of times, end the same', () => {
    const batches = fc.array(fc.array(fc.constantFrom<OpResult['result']>('applied', 'superseded', 'rejected'), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(batches, fc.integer({ min: 0, max: 3 }), fc.array(fc.nat(), { maxLength: 20 }), (kinds, unacked, picks) => {
        let seq = 0;
        const acks: Ack[] = kinds.map((batch) => {
          const results = batch.map((kind) => result(++seq, kind, kind === 'rejected' ? { code: 'c', message: 'm' } : {}));
          return { through: seq, lamport: seq * 2, results };
        });
        const page = entries(Array.from({ length: seq + unacked }, (_, i) => i + 1));
        // Every ack at least once, in an order (and with repeats) chosen by `picks`.
        const order = [...acks.map((_, i) => i), ...picks.map((p) => p % acks.length)];
        for (let i = order.length - 1; i > 0; i--) {
          const j = (picks[i % Math.max(1, picks.length)] ?? 0) % (i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        let kept: OutboxEntry[] = page;
        let clock = 0;
        const dead: number[] = [];
        for (const i of order) {
          const out = planAckOnEntries(kept, acks[i]!, clock, 0);
          kept = out.kept;
          clock = out.clock;
          dead.push(...out.dead.map((letter) => letter.op.seq));
        }
        expect(seqsOf(kept)).toEqual(page.slice(seq).map((entry) => entry.op.seq));
        const rejected = acks.flatMap((ack) => ack.results.filter((r) => r.result === 'rejected').map((r) => r.seq));
        expect(dead.sort((a, b) => a - b)).toEqual(rejected);
        expect(clock).toBe(seq * 2);
      }),
      { numRuns: 500 },
    );
  });

  const scenario = fc.record({
    first: fc.integer({ min: 1, max: 20 }),
    length: fc.integer({ min: 0, max: 20 }),
    through: fc.integer({ min: 0, max: 45 }),
    lamport: fc.integer({ min: 0, max: 100 }),
    clock: fc.integer({ min: 0, max: 100 }),
    kinds: fc.array(fc.constantFrom('applied', 'superseded', 'rejected', 'dup-applied', 'dup-rejected'), { maxLength: 30 }),
  });

  test('property: applying the same ack twice is the same as once', () => {
    fc.assert(
      fc.property(scenario, ({ first, length, through, lamport, clock, kinds }) => {
        const page = entries(Array.from({ length }, (_, i) => first + i));
        const results = kinds.map((kind, i): OpResult => {
          const seq = Math.max(1, through - kinds.length + 1) + i;
          if (kind === 'dup-applied') return result(seq, 'duplicate', { first: 'applied' });
          if (kind === 'dup-rejected') return result(seq, 'duplicate', { first: 'rejected', code: 'c' });
          return result(seq, kind, kind === 'rejected' ? { code: 'c', message: 'm' } : {});
        });
        const ack: Ack = { through, lamport, results };
        const once = planAckOnEntries(page, ack, clock, 10);
        const twice = planAckOnEntries(once.kept, ack, once.clock, 20);
        expect(twice.kept).toEqual(once.kept);
        expect(twice.dead).toEqual([]);
        expect(twice.clock).toBe(once.clock);
        // Nothing lost: an op leaves only when the ack reports it committed (or rejected).
        const reported = new Set(results.filter((r) => r.seq <= through).map((r) => r.seq));
        for (const entry of page) expect(once.kept.includes(entry)).toBe(!reported.has(entry.op.seq));
        const rejected = new Set(results.filter((r) => r.result === 'rejected' || r.first === 'rejected').map((r) => r.seq));
        expect(once.dead.map((d) => d.op.seq)).toEqual(page.map((e) => e.op.seq).filter((seq) => reported.has(seq) && rejected.has(seq)));
      }),
      { numRuns: 500 },
    );
  });
});

describe('restamp', () => {
  const withLamports = (lamports: number[]) => lamports.map((lamport, i) => entryOf(makeOp(i + 1, lamport)));

  test('raises unsent ops strictly above the floor with the least change, and returns the new clock', () => {
    const page = withLamports([3, 9, 20, 21]);
    const out = planRestamp(page, 10);
    expect(out.entries.map((e) => e.op.lamport)).toEqual([11, 12, 20, 21]);
    expect(out.clock).toBe(21);
    // Ops already above the floor are untouched, the very same objects, so only two need writing back.
    expect(out.entries[2]).toBe(page[2]!);
    expect(out.entries[3]).toBe(page[3]!);
    expect(out.entries[1]!.op).toEqual({ ...page[1]!.op, lamport: 12 });
    expect(out.entries[1]!.bytes).toBe(page[1]!.bytes + 1); // 9 → 12: one more digit on the wire
    expect(page[0]!.op.lamport).toBe(3); // inputs are not mutated
  });

  test('an empty outbox only moves the clock to the floor', () => {
    expect(planRestamp([], 42)).toEqual({ entries: [], clock: 42 });
  });

  const lamports = fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 30 });

  test('property: above the floor, strictly increasing with seq, each as small as allowed', () => {
    fc.assert(
      fc.property(lamports, fc.integer({ min: 0, max: 250 }), (values, floor) => {
        const page = withLamports(values);
        const out = planRestamp(page, floor);
        let prev = floor;
        out.entries.forEach((entry, i) => {
          const before = page[i]!;
          expect(entry.op.lamport).toBeGreaterThan(prev);
          expect(entry.op.lamport).toBe(Math.max(before.op.lamport, prev + 1));
          expect({ ...entry.op, lamport: 0 }).toEqual({ ...before.op, lamport: 0 });
          expect(entry.bytes).toBe(entryOf(entry.op).bytes);
          prev = entry.op.lamport;
        });
        expect(out.clock).toBe(prev);
        expect(planRestamp(out.entries, floor).entries).toEqual(out.entries); // a second restamp is a no-op
      }),
      { numRuns: 500 },
    );
  });

  test('property: restamping page by page, chaining the clock, equals restamping all at once', () => {
    fc.assert(
      fc.property(lamports, fc.integer({ min: 0, max: 250 }), fc.integer({ min: 1, max: 7 }), (values, floor, pageSize) => {
        const all = withLamports(values);
        const whole = planRestamp(all, floor);
        let clock = floor;
        const paged: OutboxEntry[] = [];
        for (let i = 0; i < all.length; i += pageSize) {
          const out = planRestamp(all.slice(i, i + pageSize), clock);
          paged.push(...out.entries);
          clock = out.clock;
        }
        expect(paged).toEqual(whole.entries);
        expect(clock).toBe(whole.clock);
      }),
    );
  });
});
