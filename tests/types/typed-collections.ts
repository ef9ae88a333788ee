// Type-level tests, checked by `bun run typecheck` (never run): a collection passed to createFerry with a
// valibot schema is typed by it, so a write that breaks the schema does not compile. Each `@ts-expect-error`
// line must fail to type-check, or tsc reports the directive as unused and the typecheck fails.
import * as v from 'valibot';
import { createFerry } from '../../client/index.ts';

export async function typedCollections(): Promise<void> {
  const ferry = await createFerry({
    user: 'u',
    collections: { items: v.object({ title: v.string(), done: v.boolean() }), notes: v.object({ text: v.string() }) },
  });
  const items = ferry.collection('s', 'items');
  await items.put('k', { title: 'Milk', done: false });
  await items.patch('k', { done: true });
  // @ts-expect-error: a field the schema does not have
  await items.put('k', { wrong: 1 });
  // @ts-expect-error: a field of the wrong type
  await items.patch('k', { done: 'yes' });
  // @ts-expect-error: a put needs every field
  await items.put('k', { title: 'Milk' });
  const rows = await items.all();
  const title: string = rows[0]!.value.title;
  // @ts-expect-error: rows are typed too
  const count: number = rows[0]!.value.title;
  ferry.collection('s', 'notes').subscribe((notes) => notes.map((n) => n.value.text.length));
  // A collection without a schema is typed as the caller says.
  await ferry.collection<{ n: number }>('s', 'counters').put('c', { n: 1 });
  void title;
  void count;
}
