// createApp(deps) → an Elysia app made of Ferry's plugins. It never listens: `main` (cli.ts) or an
// embedder's own Elysia app does (`new Elysia().use(await createApp(deps))`). The runtime enters only
// through `deps.socket` (how it serves the sync socket); everything else here runs anywhere Elysia's
// fetch handler does.
import { Elysia } from 'elysia';
import { createServerContext, type AppDeps, type TestHooks } from './context.ts';
import { errorResponse, FerryHttpError, fail } from './errors.ts';
import { corsHeaders, preflight, withCors } from './cors.ts';
import { logFailure } from './log.ts';
import { accountRoutes, healthRoutes, pushRoutes, snapshotRoutes } from './routes.ts';
import { spaceRoutes } from './space-routes.ts';
import { currentRuntime } from './runtime.ts';
import { createSyncSockets } from './sync-socket.ts';

export type { AppDeps } from './context.ts';
export type { AppliedWrite, RuleInput, RuleResult, WriteRule, WriteRules, Writer } from '../core/logic.ts';
export type { CollectionVersion, CollectionVersions } from '../core/versions.ts';
export { EffectFailure, type Effect, type EffectHandler, type EffectHandlers, type EffectOptions } from './effects.ts';

/**
 * Ferry's server as an Elysia app: the push, sync-socket, catch-up, snapshot, account and space routes, CORS
 * for `origins`, and the tombstone purge on its schedule while the app listens. It never listens by itself:
 * mount it (`new Elysia().use(await createApp(deps))`) or hand it to a runtime (`bunRuntime.listen`).
 */
export function createApp(deps: AppDeps) {
  return buildApp(deps, {});
}

/** createApp with test-only hooks (server/testing.ts); not part of the public API. */
export async function buildApp(deps: AppDeps, hooks: TestHooks) {
  const ctx = createServerContext(deps, hooks);
  const socket = deps.socket ?? (await currentRuntime()).socket;
  const origins = ctx.origins;
  const app = new Elysia({ name: 'ferry', ...(socket.settings ? { websocket: socket.settings } : {}) })
    .decorate('ferry', ctx)
    // The purge runs while the app (or the embedder's app that mounts it) listens.
    .onStart(() => ctx.startBackground())
    .onStop(() => ctx.stopBackground())
    .onRequest(({ request, set }) => {
      const pre = preflight(request, origins);
      if (pre) return pre;
      Object.assign(set.headers, corsHeaders(request, origins) ?? {});
    })
    .onError(({ error, code, request }) => withCors(errorOf(error, code), request, origins));
  // Not chained: the adapter's plugin is typed loosely (each runtime's differs), which would erase the
  // app's own types; `use` registers it on this instance all the same.
  app.use(socket.plugin(createSyncSockets(ctx)));
  return app
    .use(accountRoutes(ctx))
    .use(spaceRoutes(ctx))
    .use(pushRoutes(ctx))
    .use(snapshotRoutes(ctx))
    .use(healthRoutes(ctx))
    .get('/*', async ({ request }) => {
      const path = new URL(request.url).pathname;
      const response = path.startsWith('/v1/') ? null : await deps.assets?.(path);
      if (!response) throw fail('not_found', 'There is nothing at this address.');
      return revalidated(response, request);
    });
}

/** Every failure as `{ code, message }` with its status; an unexpected one is logged (safely) as `internal`. */
function errorOf(error: unknown, code: unknown): Response {
  if (error instanceof FerryHttpError) return errorResponse(error.body);
  if (code === 'NOT_FOUND') return errorResponse({ code: 'not_found', message: 'There is nothing at this address.' });
  if (code === 'PARSE' || code === 'VALIDATION') return errorResponse({ code: 'invalid', message: 'The request is malformed.' });
  logFailure('request failed', error);
  return errorResponse({ code: 'internal', message: 'The server failed; nothing was changed or acknowledged.' });
}

/**
 * App files carry a strong ETag (a hash of their bytes) and `Cache-Control: no-cache`: a browser keeps them
 * and asks each time, and an unchanged file costs a 304 and no body. The build's file names are not
 * content-hashed, so anything longer-lived could pin an old app; the Service Worker's shell cache is what
 * makes the app open offline.
 */
async function revalidated(response: Response, request: Request): Promise<Response> {
  // A file's type may live on its blob rather than in the headers (a Response made from a file).
  const blob = await response.blob();
  const bytes = await blob.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const etag = `"${Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, '0')).join('')}"`;
  const headers = new Headers(response.headers);
  if (!headers.has('content-type') && blob.type) headers.set('content-type', blob.type);
  headers.set('etag', etag);
  headers.set('cache-control', 'no-cache');
  const matches = (request.headers.get('if-none-match') ?? '').split(',').map((tag) => tag.trim().replace(/^W\//, ''));
  if (matches.includes(etag)) return new Response(null, { status: 304, headers });
  return new Response(bytes, { status: response.status, headers });
}
