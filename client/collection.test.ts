// The app's own collection schemas, checked before a write is enqueued: puts whole, patches partial,
// deletes not at all, with a FerryError that names the field.
import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { checkValue, withVersion } from './collection.ts';
import { FerryError } from './errors.ts';

const schemas = { items: v.object({ title: v.string(), done: v.boolean() }) };
const draft = (kind: 'put' | 'patch' | 'delete', value?: Record<string, unknown>) =>
  ({ space: 's', collection: 'items', key: 'k', kind, ...(value ? { value: value as never } : {}) });

describe('checkValue', () => {
  test('a put must match the whole schema; the error names the field', () => {
    expect(() => checkValue(schemas, draft('put', { title: 'Milk', done: false }))).not.toThrow();
    let error: unknown;
    try {
      checkValue(schemas, draft('put', { title: 42, done: false }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FerryError);
    expect(error).toMatchObject({ code: 'invalid' });
    expect((error as Error).message).toContain('items/k: title');
    expect(() => checkValue(schemas, draft('put', { title: 'Milk' }))).toThrow(FerryError);
  });

  test('a patch is checked against the schema made partial; a delete and unknown collections are not checked', () => {
    expect(() => checkValue(schemas, draft('patch', { done: true }))).not.toThrow();
    expect(() => checkValue(schemas, draft('patch', { done: 'yes' }))).toThrow(FerryError);
    expect(() => checkValue(schemas, draft('delete'))).not.toThrow();
    expect(() => checkValue(schemas, { ...draft('put', { anything: 1 }), collection: 'notes' })).not.toThrow();
    expect(() => checkValue(undefined, draft('put', { title: 1 }))).not.toThrow();
  });
});

describe('withVersion', () => {
  test('a write carries the app\'s schema version for its collection; version 1 or none leaves the op without one', () => {
    expect(withVersion(draft('put', { title: 'Milk', done: false }), { items: 2 })).toEqual({ ...draft('put', { title: 'Milk', done: false }), version: 2 });
    expect(withVersion(draft('delete'), { items: 3 }).version).toBe(3);
    expect(withVersion(draft('patch', { done: true }), { items: 1 })).toEqual(draft('patch', { done: true }));
    expect(withVersion(draft('patch', { done: true }), { tags: 2 })).toEqual(draft('patch', { done: true }));
    expect(withVersion(draft('patch', { done: true }), undefined)).toEqual(draft('patch', { done: true }));
  });
});
