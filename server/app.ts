// createApp(deps) → an Elysia app made of Ferry's plugins. It never listens: `main` (cli.ts) or an
// embedder's own Elysia app does (`new Elysia().use(await createApp(deps))`).
import { Elysia } from 'elysia';
import { LIMITS } from '../core/limits.ts';
import { createFerry, type AppDeps } from './context.ts';
import { errorResponse, FerryHttpError, fail } from './errors.ts';
import { accountRoutes, healthRoutes, pushRoutes, snapshotRoutes } from './routes.ts';
import { syncSocket } from './sync-socket.ts';

export type { AppDeps } from './context.ts';

export async function createApp(deps: AppDeps) {
  const ferry = await createFerry(deps);
  return new Elysia({
    name: 'ferry',
    websocket: {
      // One batch plus envelope slack; a bigger frame is closed by Bun (1009) before we see it.
      maxPayloadLength: LIMITS.batchBytes + 64 * 1024,
      idleTimeout: 60,
      // Bun's own hard stop; the hub pauses far earlier (1 MiB) and closes slow sockets with 4008.
      backpressureLimit: 16 * 1024 * 1024,
      closeOnBackpressureLimit: true,
    },
  })
    .decorate('ferry', ferry)
    .onError(({ error, code }) => {
      if (error instanceof FerryHttpError) return errorResponse(error.body);
      if (code === 'NOT_FOUND') return errorResponse({ code: 'not_found', message: 'There is nothing at this address.' });
      if (code === 'PARSE' || code === 'VALIDATION') return errorResponse({ code: 'invalid', message: 'The request is malformed.' });
      console.error('ferry: request failed', error);
      return errorResponse({ code: 'internal', message: 'The server failed; nothing was changed or acknowledged.' });
    })
    .use(accountRoutes(ferry))
    .use(pushRoutes(ferry))
    .use(snapshotRoutes(ferry))
    .use(healthRoutes(ferry))
    .use(syncSocket(ferry))
    .get('/*', async ({ request }) => {
      const path = new URL(request.url).pathname;
      const response = path.startsWith('/v1/') ? null : await deps.assets?.(path);
      if (!response) throw fail('not_found', 'There is nothing at this address.');
      return response;
    });
}

export type FerryApp = Awaited<ReturnType<typeof createApp>>;
