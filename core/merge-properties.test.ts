// Property tests for the shared merge. Ops are drawn from a deliberately tiny space (3 devices,
// lamports 1..8, 3 field names) so that writes collide on fields, lamports and kinds all the time.
// Within one generated op set every stamp is unique, as it is in real life (same stamp ⇒ same op).
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { compareStamps, stampOf } from './clock.ts';
import { applyAll, applyOp, docEquals, mergeDocs } from './merge.ts';
import type { Doc, Fields, Json, Op, OpKind, Stamp } from './types.ts';

const RUNS = { numRuns: 1000 };
const DEVICES = ['a', 'b', 'c'] as const;
const PLAIN_NAMES = ['x', 'y', 'z'] as const;
// Names that collide with Object.prototype members: the merge must treat them as ordinary data.
const TRICKY_NAMES = ['constructor', '__proto__', 'toString'] as const;

const jsonValue: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom('p', 'q'),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 2 }),
  fc.record({ m: fc.integer({ min: 0, max: 2 }), n: fc.constantFrom('u', 'v') }, { requiredKeys: [] }),
);

/** Builds a record with own properties only, so '__proto__' becomes a field and not a prototype. */
function recordOf<T>(entries: readonly (readonly [string, T])[]): Record<string, T> {
  const record: Record<string, T> = {};
  for (const [name, value] of entries) {
    Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return record;
}

function fieldsArb(names: readonly string[]): fc.Arbitrary<Fields> {
  return fc.subarray([...names]).chain((chosen) =>
    fc.tuple(...chosen.map((name) => jsonValue.map((value) => [name, value] as const))).map(recordOf),
  );
}

function makeOp(kind: OpKind, lamport: number, device: string, value?: Fields): Op {
  const op: Op = { id: `${device}:${lamport}`, device, seq: lamport, lamport, space: 's', collection: 'notes', key: 'k', kind, at: 0 };
  if (kind !== 'delete') op.value = value ?? {};
  return op;
}

function opArb(names: readonly string[] = PLAIN_NAMES): fc.Arbitrary<Op> {
  return fc
    .tuple(fc.constantFrom<OpKind>('put', 'patch', 'delete'), fc.integer({ min: 1, max: 8 }), fc.constantFrom(...DEVICES), fieldsArb(names))
    .map(([kind, lamport, device, value]) => makeOp(kind, lamport, device, value));
}

const stampKey = (op: Op) => `${op.lamport}/${op.device}`;
function opsArb(options: { minLength?: number; maxLength?: number; names?: readonly string[] } = {}): fc.Arbitrary<Op[]> {
  return fc.uniqueArray(opArb(options.names), { selector: stampKey, minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 14 });
}

function shuffled<T>(items: readonly T[]): fc.Arbitrary<T[]> {
  return fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });
}

/** Every op at least once, some more than once, in any order: what a flaky network delivers. */
function delivery(ops: readonly Op[]): fc.Arbitrary<Op[]> {
  return fc.subarray([...ops]).chain((resent) => shuffled([...ops, ...resent]));
}

/**
 * The specification, written straight from the register definitions and independent of merge.ts:
 * replay the ops in stamp order; each op overwrites the registers it writes.
 */
function specDoc(ops: readonly Op[]): Doc | null {
  if (ops.length === 0) return null;
  const ordered = [...ops].sort((p, q) => compareStamps(stampOf(p), stampOf(q)));
  const registers = new Map<string, { value: Json; stamp: Stamp } | null>();
  let base: Stamp | null = null;
  for (const op of ordered) {
    const stamp = stampOf(op);
    if (op.kind !== 'patch') {
      base = stamp;
      for (const name of registers.keys()) registers.set(name, null); // "absent" to every name
    }
    for (const [name, value] of Object.entries(op.kind === 'delete' ? {} : (op.value ?? {}))) {
      registers.set(name, { value, stamp });
    }
  }
  const newest = ordered[ordered.length - 1] as Op;
  const visible = [...registers].filter((entry): entry is [string, { value: Json; stamp: Stamp }] => entry[1] !== null);
  return {
    fields: recordOf(visible.map(([name, r]) => [name, r.value] as const)),
    stamps: recordOf(visible.map(([name, r]) => [name, r.stamp] as const)),
    base,
    live: stampOf(newest),
    deleted: newest.kind === 'delete',
  };
}

function expectSameDoc(actual: Doc | null, expected: Doc | null): void {
  if (docEquals(actual, expected)) return;
  expect(actual).toEqual(expected); // for the diff
  throw new Error(`docEquals disagrees with toEqual:\n${JSON.stringify(actual)}\n${JSON.stringify(expected)}`);
}

function expectWellFormed(doc: Doc): void {
  const names = Object.keys(doc.fields).sort();
  expect(Object.keys(doc.stamps).sort()).toEqual(names);
  if (doc.deleted) expect(names).toEqual([]);
  if (doc.base !== null) expect(compareStamps(doc.live, doc.base)).toBeGreaterThanOrEqual(0);
  for (const stamp of Object.values(doc.stamps)) {
    if (doc.base !== null) expect(compareStamps(stamp, doc.base)).toBeGreaterThanOrEqual(0);
    expect(compareStamps(stamp, doc.live)).toBeLessThanOrEqual(0);
  }
}

/** Ops tagged with a 3-bit mask saying which of three replicas saw them (0: none). */
const threeSets = fc
  .uniqueArray(fc.tuple(opArb(), fc.integer({ min: 0, max: 7 })), { selector: ([op]) => stampKey(op), maxLength: 14 })
  .map((tagged) => [1, 2, 4].map((bit) => tagged.filter(([, mask]) => mask & bit).map(([op]) => op)) as [Op[], Op[], Op[]]);

type Apply = (doc: Doc | null, op: Op) => Doc;
const realApply: Apply = (doc, op) => applyOp(doc, op).doc;

function convergenceProperty(apply: Apply) {
  const world = opsArb().chain((ops) => fc.tuple(fc.constant(ops), fc.array(delivery(ops), { minLength: 3, maxLength: 5 })));
  return fc.property(world, ([ops, deliveries]) => {
    const replicas = deliveries.map((ops) => ops.reduce<Doc | null>(apply, null));
    for (const replica of replicas) expectSameDoc(replica, replicas[0] ?? null);
    expectSameDoc(replicas[0] ?? null, specDoc(ops));
  });
}

function specProperty(apply: Apply, names: readonly string[]) {
  const world = opsArb({ names }).chain((ops) => fc.tuple(fc.constant(ops), shuffled(ops)));
  return fc.property(world, ([ops, order]) => {
    expectSameDoc(order.reduce<Doc | null>(apply, null), specDoc(ops));
  });
}

describe('applyOp matches the register specification', () => {
  test('any op set in any order gives the spec state', () => {
    fc.assert(specProperty(realApply, PLAIN_NAMES), RUNS);
  });

  test('field names that shadow Object.prototype members behave like any other', () => {
    fc.assert(specProperty(realApply, TRICKY_NAMES), RUNS);
  });

  test('the spec property has teeth: a merge that treats put as patch is caught', () => {
    const putAsPatch: Apply = (doc, op) => realApply(doc, op.kind === 'put' ? { ...op, kind: 'patch' } : op);
    expect(fc.check(specProperty(putAsPatch, PLAIN_NAMES), RUNS).failed).toBe(true);
  });
});

describe('convergence', () => {
  test('3–5 replicas fed the same ops, with resends, in different orders hold the same state', () => {
    fc.assert(convergenceProperty(realApply), RUNS);
  });

  test('the convergence property has teeth: dropping the device tie-break is caught', () => {
    const noTieBreak: Apply = (doc, op) => realApply(doc, { ...op, device: 'a' });
    expect(fc.check(convergenceProperty(noTieBreak), RUNS).failed).toBe(true);
  });

  test('replicas that apply ops and swap states at random end equal once all ops are everywhere', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('deliver' as const), replica: fc.nat(4), op: fc.nat(13) }),
      fc.record({ kind: fc.constant('sync' as const), replica: fc.nat(4), from: fc.nat(4) }),
    );
    const world = fc.tuple(opsArb({ minLength: 1 }), fc.integer({ min: 3, max: 5 }), fc.array(step, { maxLength: 40 }));
    fc.assert(
      fc.property(world, ([ops, count, steps]) => {
        const replicas: (Doc | null)[] = Array.from({ length: count }, () => null);
        for (const s of steps) {
          const r = s.replica % count;
          if (s.kind === 'deliver') replicas[r] = realApply(replicas[r] ?? null, ops[s.op % ops.length] as Op);
          else replicas[r] = mergeDocs(replicas[r] ?? null, replicas[s.from % count] ?? null);
        }
        const expected = specDoc(ops);
        for (const replica of replicas) expectSameDoc(applyAll(replica, ops), expected);
      }),
      RUNS,
    );
  });
});

describe('mergeDocs is a join', () => {
  test('commutative', () => {
    fc.assert(
      fc.property(threeSets, ([xs, ys]) => {
        const [a, b] = [applyAll(null, xs), applyAll(null, ys)];
        expectSameDoc(mergeDocs(a, b), mergeDocs(b, a));
      }),
      RUNS,
    );
  });

  test('associative', () => {
    fc.assert(
      fc.property(threeSets, ([xs, ys, zs]) => {
        const [a, b, c] = [applyAll(null, xs), applyAll(null, ys), applyAll(null, zs)];
        expectSameDoc(mergeDocs(mergeDocs(a, b), c), mergeDocs(a, mergeDocs(b, c)));
      }),
      RUNS,
    );
  });

  test('idempotent', () => {
    fc.assert(
      fc.property(opsArb(), (ops) => {
        const doc = applyAll(null, ops);
        expectSameDoc(mergeDocs(doc, doc), doc);
        if (doc !== null) expectSameDoc(mergeDocs(doc, structuredClone(doc)), doc);
      }),
      RUNS,
    );
  });

  test('consistent with applyAll: merging two replicas equals applying the union of their ops', () => {
    fc.assert(
      fc.property(threeSets, ([xs, ys]) => {
        const union = [...new Set([...xs, ...ys])];
        const merged = mergeDocs(applyAll(null, xs), applyAll(null, ys));
        expectSameDoc(merged, applyAll(null, union));
        expectSameDoc(merged, specDoc(union));
        if (merged !== null) expectWellFormed(merged);
      }),
      RUNS,
    );
  });

  test('applying one op equals merging with the doc that op alone creates', () => {
    fc.assert(
      fc.property(opsArb({ minLength: 1 }), (ops) => {
        const [op, ...history] = ops as [Op, ...Op[]];
        const doc = applyAll(null, history);
        expectSameDoc(applyOp(doc, op).doc, mergeDocs(doc, applyOp(null, op).doc));
      }),
      RUNS,
    );
  });
});

describe('every step', () => {
  test('re-applying an op changes nothing and returns the same doc', () => {
    fc.assert(
      fc.property(opsArb({ minLength: 1 }), (ops) => {
        let doc: Doc | null = null;
        for (const op of ops) {
          doc = applyOp(doc, op).doc;
          const again = applyOp(doc, op);
          expect(again.changed).toBe(false);
          expect(again.doc).toBe(doc);
        }
        const seenBefore = applyOp(doc, ops[0] as Op);
        expect(seenBefore.changed).toBe(false);
      }),
      RUNS,
    );
  });

  test('changed is true exactly when the state differs; an unchanged result is the input itself', () => {
    fc.assert(
      fc.property(opsArb().chain((ops) => delivery(ops)), (ops) => {
        let doc: Doc | null = null;
        for (const op of ops) {
          const { doc: next, changed } = applyOp(doc, op);
          expect(changed).toBe(!docEquals(doc, next));
          if (!changed) expect(next).toBe(doc as Doc);
          doc = next;
        }
      }),
      RUNS,
    );
  });

  test('keeps the doc well formed: a tombstone has no fields, every field is at or after base', () => {
    fc.assert(
      fc.property(opsArb(), (ops) => {
        let doc: Doc | null = null;
        for (const op of ops) {
          doc = applyOp(doc, op).doc;
          expectWellFormed(doc);
        }
      }),
      RUNS,
    );
  });

  test('a put or patch revives a tombstone only if its stamp is newer than the delete', () => {
    // The newest op of the history is forced to a delete, so the history always ends in a tombstone.
    const world = opsArb({ minLength: 2 }).map((ops) => {
      const [write, ...history] = ops as [Op, ...Op[]];
      const newest = history.reduce((p, q) => (compareStamps(stampOf(p), stampOf(q)) > 0 ? p : q));
      const deleteOp = makeOp('delete', newest.lamport, newest.device);
      return { write: write.kind === 'delete' ? makeOp('put', write.lamport, write.device, {}) : write,
        history: history.map((op) => (op === newest ? deleteOp : op)), deleteOp };
    });
    fc.assert(
      fc.property(world, ({ write, history, deleteOp }) => {
        const tombstone = applyAll(null, history) as Doc;
        expect(tombstone.deleted).toBe(true);
        const { doc, changed } = applyOp(tombstone, write);
        const newer = compareStamps(stampOf(write), stampOf(deleteOp)) > 0;
        expect(doc.deleted).toBe(!newer);
        expect(changed).toBe(newer);
        // A revived entity holds only what the reviving write said, none of the deleted fields.
        expect(doc.fields).toEqual(newer ? (write.value as Fields) : {});
      }),
      RUNS,
    );
  });

  test('never mutates an op or a doc it is given', () => {
    fc.assert(
      fc.property(threeSets, ([xs, ys]) => {
        const frozenOps = deepFreeze(structuredClone(xs));
        const other = deepFreeze(applyAll(null, ys));
        const snapshot = structuredClone({ frozenOps, other });
        let doc: Doc | null = null;
        for (const op of frozenOps) doc = deepFreeze(applyOp(doc, op).doc);
        const merged = mergeDocs(doc, other);
        expect({ frozenOps, other }).toEqual(snapshot);
        expectSameDoc(merged, specDoc([...new Set([...xs, ...ys])]));
      }),
      RUNS,
    );
  });
});

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
