// Cases a person would recognise. The random interleavings live in merge-properties.test.ts.
import { describe, expect, test } from 'bun:test';
import { applyAll, applyOp, docEquals, jsonEquals, mergeDocs } from './merge.ts';
import type { Doc, Fields, Op, OpKind } from './types.ts';

function op(kind: OpKind, lamport: number, device: string, value?: Fields): Op {
  const made: Op = {
    id: `${device}:${lamport}`, device, seq: lamport, lamport, space: 'home', collection: 'notes', key: 'n1', kind, at: 1_700_000_000_000,
  };
  if (value !== undefined) made.value = value;
  return made;
}
const put = (lamport: number, device: string, value: Fields) => op('put', lamport, device, value);
const patch = (lamport: number, device: string, value: Fields) => op('patch', lamport, device, value);
const del = (lamport: number, device: string) => op('delete', lamport, device);

/** Applies the ops in every order and checks they all agree, then returns that state. */
function inAnyOrder(...ops: Op[]): Doc {
  const orders = permutations(ops);
  const first = applyAll(null, orders[0] as Op[]) as Doc;
  for (const order of orders) expect(docEquals(applyAll(null, order), first)).toBe(true);
  return first;
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('creating', () => {
  test('a put on a new key creates the entity with every field at its stamp', () => {
    const { doc, changed } = applyOp(null, put(1, 'a', { title: 'Milk', done: false }));
    expect(changed).toBe(true);
    expect(doc).toEqual({
      fields: { title: 'Milk', done: false },
      stamps: { title: [1, 'a'], done: [1, 'a'] },
      base: [1, 'a'],
      live: [1, 'a'],
      deleted: false,
    });
  });

  test('a patch on a new key creates it with no base, so a later-arriving older put still counts', () => {
    const { doc } = applyOp(null, patch(5, 'a', { done: true }));
    expect(doc).toEqual({ fields: { done: true }, stamps: { done: [5, 'a'] }, base: null, live: [5, 'a'], deleted: false });
    const after = applyOp(doc, put(3, 'b', { title: 'Milk', done: false }));
    expect(after.changed).toBe(true);
    expect(after.doc.fields).toEqual({ title: 'Milk', done: true });
    expect(after.doc.deleted).toBe(false);
  });

  test('a delete of an unknown key leaves a tombstone', () => {
    const { doc, changed } = applyOp(null, del(4, 'a'));
    expect(changed).toBe(true);
    expect(doc).toEqual({ fields: {}, stamps: {}, base: [4, 'a'], live: [4, 'a'], deleted: true });
  });
});

describe('concurrent edits', () => {
  test('edits to different fields both survive, in either order', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk', done: false }), patch(2, 'a', { title: 'Oat milk' }), patch(2, 'b', { done: true }));
    expect(doc.fields).toEqual({ title: 'Oat milk', done: true });
  });

  test('the same field goes to the higher lamport, whichever device and order', () => {
    const doc = inAnyOrder(patch(7, 'a', { title: 'from a' }), patch(6, 'z', { title: 'from z' }));
    expect(doc.fields).toEqual({ title: 'from a' });
    expect(doc.stamps).toEqual({ title: [7, 'a'] });
  });

  test('a lamport tie goes to the larger device id, whichever order', () => {
    const doc = inAnyOrder(patch(3, 'phone', { title: 'phone' }), patch(3, 'laptop', { title: 'laptop' }));
    expect(doc.fields).toEqual({ title: 'phone' });
  });

  test('the losing write is reported as unchanged (the server answers superseded)', () => {
    const first = applyOp(null, patch(3, 'phone', { title: 'phone' })).doc;
    const late = applyOp(first, patch(3, 'laptop', { title: 'laptop' }));
    expect(late.changed).toBe(false);
    expect(late.doc).toBe(first);
  });

  test('a write that wins one field but not another is applied and keeps the newer field', () => {
    const doc = applyAll(null, [patch(5, 'a', { title: 'new' }), patch(4, 'b', { title: 'old', done: true })]);
    expect(doc?.fields).toEqual({ title: 'new', done: true });
    expect(doc?.stamps).toEqual({ title: [5, 'a'], done: [4, 'b'] });
  });
});

describe('put replaces the whole entity', () => {
  test('a newer put drops fields it does not list', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk', note: '2%' }), put(2, 'b', { title: 'Bread' }));
    expect(doc.fields).toEqual({ title: 'Bread' });
  });

  test('an older patch arriving after a newer put does not resurrect a field the put removed', () => {
    let doc = applyAll(null, [put(1, 'a', { title: 'Milk', note: '2%' }), put(5, 'a', { title: 'Milk' })]) as Doc;
    const late = applyOp(doc, patch(3, 'b', { note: 'skimmed' }));
    expect(late.changed).toBe(false);
    doc = late.doc;
    expect(doc.fields).toEqual({ title: 'Milk' });
  });

  test('a patch newer than the put adds to it', () => {
    const doc = inAnyOrder(put(5, 'a', { title: 'Milk' }), patch(6, 'b', { note: 'skimmed' }));
    expect(doc.fields).toEqual({ title: 'Milk', note: 'skimmed' });
  });

  test('an older put arriving late keeps the newer patch on top and drops what neither wrote later', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk', note: '2%' }), patch(4, 'b', { done: true }), put(3, 'c', { title: 'Bread' }));
    expect(doc.fields).toEqual({ title: 'Bread', done: true });
    expect(doc.base).toEqual([3, 'c']);
    expect(doc.live).toEqual([4, 'b']);
  });
});

describe('delete and revival', () => {
  test('a newer delete wins over earlier edits and leaves no fields', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk' }), patch(2, 'b', { done: true }), del(3, 'a'));
    expect(doc).toEqual({ fields: {}, stamps: {}, base: [3, 'a'], live: [3, 'a'], deleted: true });
  });

  test('an older put arriving after the delete stays deleted and is reported unchanged', () => {
    const tombstone = applyAll(null, [put(1, 'a', { title: 'Milk' }), del(5, 'a')]) as Doc;
    const late = applyOp(tombstone, put(4, 'b', { title: 'Bread' }));
    expect(late.changed).toBe(false);
    expect(late.doc.deleted).toBe(true);
  });

  test('a newer put revives the entity with only its own fields', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk', note: '2%' }), del(2, 'a'), put(3, 'b', { title: 'Bread' }));
    expect(doc.deleted).toBe(false);
    expect(doc.fields).toEqual({ title: 'Bread' });
  });

  test('a patch concurrent with and newer than a delete revives only the patched fields', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk', note: '2%' }), del(4, 'a'), patch(4, 'b', { done: true }));
    expect(doc.deleted).toBe(false);
    expect(doc.fields).toEqual({ done: true });
    expect(doc.live).toEqual([4, 'b']);
    expect(doc.base).toEqual([4, 'a']);
  });

  test('a delete older than a patch still removes the fields written before the delete', () => {
    const doc = inAnyOrder(put(1, 'a', { title: 'Milk' }), patch(6, 'b', { done: true }), del(4, 'c'));
    expect(doc.deleted).toBe(false);
    expect(doc.fields).toEqual({ done: true });
  });
});

describe('values and inputs', () => {
  test('a field value is replaced whole, never deep-merged', () => {
    const doc = applyAll(null, [patch(1, 'a', { meta: { color: 'red', tags: ['x'] } }), patch(2, 'a', { meta: { size: 3 } })]);
    expect(doc?.fields).toEqual({ meta: { size: 3 } });
  });

  test('null is a value like any other', () => {
    const doc = applyAll(null, [put(1, 'a', { note: 'x' }), patch(2, 'a', { note: null })]);
    expect(doc?.fields).toEqual({ note: null });
    expect(doc?.stamps).toEqual({ note: [2, 'a'] });
  });

  test('an undefined value counts as not listed, as it would after the trip through JSON', () => {
    const local = applyAll(null, [put(1, 'a', { title: 'Milk', note: 'x' }), patch(2, 'a', { note: undefined } as unknown as Fields)]);
    const server = applyAll(null, [put(1, 'a', { title: 'Milk', note: 'x' }), JSON.parse(JSON.stringify(patch(2, 'a', { note: undefined } as unknown as Fields)))]);
    expect(docEquals(local, server)).toBe(true);
    expect(local?.fields).toEqual({ title: 'Milk', note: 'x' });
  });

  test('field names shared with Object.prototype are plain fields', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1}') as Fields;
    const doc = applyAll(null, [patch(2, 'a', { toString: 'later' }), put(1, 'b', hostile)]) as Doc;
    expect(Object.keys(doc.fields).sort()).toEqual(['__proto__', 'constructor', 'toString']);
    expect(Object.getPrototypeOf(doc.fields)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const ctor: string = 'constructor';
    expect(doc.stamps[ctor]).toEqual([1, 'b']);
    // Joined with a replica that lacks these fields, the lookup must not find Object's own members.
    const other = applyOp(null, patch(3, 'c', { title: 'x' })).doc;
    for (const merged of [mergeDocs(doc, other), mergeDocs(other, doc)]) {
      expect(merged.fields).toEqual({ ...doc.fields, title: 'x' });
      expect(merged.fields[ctor]).toBe(1);
    }
  });

  test('shares unchanged values with its inputs instead of cloning them', () => {
    const meta = { color: 'red' };
    const first = applyOp(null, put(1, 'a', { meta })).doc;
    const next = applyOp(first, patch(2, 'b', { title: 'x' })).doc;
    expect(next.fields.meta).toBe(meta);
    expect(next).not.toBe(first);
    expect(first.fields).toEqual({ meta: { color: 'red' } });
  });
});

describe('mergeDocs', () => {
  const server = applyAll(null, [put(1, 'a', { title: 'Milk' }), patch(3, 'b', { done: true })]) as Doc;
  const local = applyAll(null, [put(1, 'a', { title: 'Milk' }), patch(2, 'a', { title: 'Oat milk' }), patch(4, 'a', { note: 'x' })]) as Doc;

  test("combines a replica with the server's doc as if it had seen every op", () => {
    const ops = [put(1, 'a', { title: 'Milk' }), patch(3, 'b', { done: true }), patch(2, 'a', { title: 'Oat milk' }), patch(4, 'a', { note: 'x' })];
    const merged = mergeDocs(local, server);
    expect(merged.fields).toEqual({ title: 'Oat milk', done: true, note: 'x' });
    expect(docEquals(merged, applyAll(null, ops))).toBe(true);
  });

  test('null is the identity', () => {
    expect(mergeDocs(null, null)).toBeNull();
    expect(mergeDocs(server, null)).toBe(server);
    expect(mergeDocs(null, server)).toBe(server);
  });

  test('a tombstone merged with an older live replica stays deleted with no fields', () => {
    const gone = applyOp(server, del(5, 'c')).doc;
    expect(mergeDocs(local, gone)).toEqual({ fields: {}, stamps: {}, base: [5, 'c'], live: [5, 'c'], deleted: true });
  });
});

describe('docEquals', () => {
  const doc: Doc = { fields: { a: 1, b: { p: [1, { q: 2 }] } }, stamps: { a: [1, 'x'], b: [2, 'y'] }, base: [1, 'x'], live: [2, 'y'], deleted: false };

  test('ignores key order at every depth', () => {
    const reordered: Doc = { deleted: false, live: [2, 'y'], base: [1, 'x'], stamps: { b: [2, 'y'], a: [1, 'x'] }, fields: { b: { p: [1, { q: 2 }] }, a: 1 } };
    expect(docEquals(doc, reordered)).toBe(true);
    expect(docEquals(doc, structuredClone(doc))).toBe(true);
  });

  test('notices any difference, stamps included', () => {
    const variants: Doc[] = [
      { ...doc, fields: { ...doc.fields, a: 2 } },
      { ...doc, fields: { a: 1, b: { p: [{ q: 2 }, 1] } } },
      { ...doc, fields: { a: 1 }, stamps: { a: [1, 'x'] } },
      { ...doc, stamps: { ...doc.stamps, a: [1, 'z'] } },
      { ...doc, stamps: { ...doc.stamps, a: [3, 'x'] } },
      { ...doc, base: null },
      { ...doc, base: [1, 'y'] },
      { ...doc, live: [3, 'y'] },
      { ...doc, deleted: true },
    ];
    for (const variant of variants) {
      expect(docEquals(doc, variant)).toBe(false);
      expect(docEquals(variant, doc)).toBe(false);
    }
    expect(docEquals(doc, null)).toBe(false);
    expect(docEquals(null, null)).toBe(true);
  });

  test('jsonEquals tells arrays from objects and nulls from missing keys', () => {
    expect(jsonEquals([], {})).toBe(false);
    expect(jsonEquals({ a: null }, {})).toBe(false);
    expect(jsonEquals({ a: [1, 2] }, { a: [1, 2] })).toBe(true);
    expect(jsonEquals('1', 1)).toBe(false);
  });
});
