// The app's collections: one valibot schema each. The page passes them to createFerry (writes are checked,
// and typed, by them); the server, when you embed it, gets the same ones (createApp({ collections })).
import * as v from 'valibot';

export const collections = {
  items: v.object({ title: v.pipe(v.string(), v.minLength(1), v.maxLength(200)), done: v.boolean() }),
};
