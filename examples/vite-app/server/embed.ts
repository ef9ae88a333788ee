// The other way to run Ferry: inside the app's own Bun backend, one origin for the app and Ferry. The backend
// signs people in its own way and hands the page a token of its own making (here an HMAC of the user id:
// a stand-in for your real sign-in and tokens); Ferry's `authenticate` hook checks it, and Ferry provisions
// its rows for a user id it has not seen. The collections' schemas are the page's (src/schema.ts).
//
//   PORT=8787 DATA=./data APP_SECRET=… bun server/embed.ts      (after `vite build`, which fills dist/)
import { createHmac, timingSafeEqual } from 'node:crypto';
import { join, normalize } from 'node:path';
import { Elysia } from 'elysia';
import { bearerOf, createApp, migrate, openDatabase } from '@ferry/server';
import { bunRuntime } from '@ferry/server/bun';
import { collections } from '../src/schema';

const secret = process.env.APP_SECRET ?? 'change-me';
const dist = join(import.meta.dir, '../dist');

const sign = (user: string) => createHmac('sha256', secret).update(user).digest('base64url');
const tokenFor = (user: string) => `${user}.${sign(user)}`;
function userOf(token: string | null): string | null {
  const [user, mac] = token?.split('.') ?? [];
  if (!user || !mac) return null;
  const expected = Buffer.from(sign(user));
  const given = Buffer.from(mac);
  return given.length === expected.length && timingSafeEqual(given, expected) ? user : null;
}

const { db } = await openDatabase(`file:${join(process.env.DATA ?? '.', 'ferry.db')}`);
await migrate(db);

const app = new Elysia()
  // Your sign-in goes here; this stand-in signs in whoever asks (?user=ada).
  .get('/api/session', ({ request }) => {
    const url = new URL(request.url);
    const user = url.searchParams.get('user') ?? 'ada';
    return { ferryUrl: url.origin, token: tokenFor(user), user, space: `u:${user}` };
  })
  .use(await createApp({
    db,
    collections,
    authenticate: async (request) => {
      const user = userOf(bearerOf(request));
      return user === null ? null : { user: { id: user, name: user }, via: 'custom' };
    },
    // The built app, for every GET no route took.
    assets: async (path) => {
      // normalize() of an absolute path cannot climb above it: this stays inside dist/
      const file = Bun.file(join(dist, normalize(path === '/' ? '/index.html' : path)));
      return (await file.exists()) ? new Response(file) : null;
    },
  }));

const listening = await bunRuntime.listen(app, { hostname: '127.0.0.1', port: Number(process.env.PORT ?? 8787) });
console.log(`app and Ferry on http://127.0.0.1:${listening.port}`);
