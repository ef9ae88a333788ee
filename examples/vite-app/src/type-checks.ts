// Compile-time checks, not shipped: the collections' types come from their schemas.
import type { Ferry } from '@ferry/client';
import type { collections } from './schema';

export function typeChecks(ferry: Ferry<typeof collections>): void {
  const items = ferry.collection('u:someone', 'items');
  void items.put('k', { title: 'Milk', done: false });
  void items.patch('k', { done: true });
  // @ts-expect-error: `wrong` is not a field of an item, and title and done are missing
  void items.put('k', { wrong: 1 });
  // @ts-expect-error: done is a boolean
  void items.patch('k', { done: 'yes' });
}
