// HTTP plugins: accounts, push, snapshot, health and metrics. Each route parses with valibot, calls the
// logic, maps the result; errors become `{ code, message }` in app.ts's onError.
import { Elysia } from 'elysia';
import * as v from 'valibot';
import { LIMITS } from '../core/limits.ts';
import { LoginBody } from '../schema/accounts.ts';
import { describeIssues, PushBody, type SnapshotBody } from '../schema/wire.ts';
import { clearedSessionCookie, cookieOf, isSecure, originAllowed, refuseUrlTokens, SESSION_COOKIE, sessionCookie } from './auth.ts';
import type { ServerContext } from './context.ts';
import { errorResponse, fail } from './errors.ts';

const DAY = 86_400_000;
/** A push body is at most one batch, 1 MiB serialized (PROTOCOL.md §6, §8: over it is 413 too_large).
 * Devices keep within it (core/outbox.ts reserves room for the envelope); an over-limit op in a body
 * within it is still recorded as a `rejected` op. */
const MAX_BODY_BYTES = LIMITS.batchBytes;

/** Reads and validates a JSON body: 413 over the limit, 400 for JSON or schema problems. */
export async function readBody<S extends v.GenericSchema>(request: Request, schema: S, maxBytes = 64 * 1024): Promise<v.InferOutput<S>> {
  const declared = Number(request.headers.get('content-length') ?? 0);
  if (declared > maxBytes) throw fail('too_large', `The body is ${declared} bytes; the limit is ${maxBytes}.`);
  const bytes = await request.arrayBuffer();
  if (bytes.byteLength > maxBytes) throw fail('too_large', `The body is over ${maxBytes} bytes.`);
  const text = new TextDecoder().decode(bytes); // as request.text(): bad UTF-8 becomes U+FFFD
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw fail('invalid', 'The body is not valid JSON.');
  }
  const parsed = v.safeParse(schema, json);
  if (!parsed.success) throw fail('invalid', describeIssues(parsed.issues));
  return parsed.output;
}

export function accountRoutes(ferry: ServerContext) {
  const ttl = ferry.deps.sessionTtlMs ?? 30 * DAY;
  return new Elysia({ name: 'ferry-accounts' })
    .post('/v1/auth/login', async ({ request }) => {
      const body = await readBody(request, LoginBody);
      if (!originAllowed(request, ferry.origins)) throw fail('forbidden', 'Sign-in from this origin is not allowed.');
      const user = await ferry.accounts.verify(body.name, body.password);
      if (!user) throw fail('auth_required', 'That name and password do not match an account.');
      const secret = await ferry.accounts.createSession(user.id, ferry.now(), ttl);
      return new Response(JSON.stringify({ user, spaces: await ferry.accounts.spacesOf(user.id) }), {
        headers: { 'content-type': 'application/json', 'set-cookie': sessionCookie(secret, ttl, isSecure(request)) },
      });
    }, { parse: 'none' })
    .post('/v1/auth/logout', async ({ request }) => {
      const principal = await ferry.principal(request, true);
      const secret = cookieOf(request, SESSION_COOKIE);
      if (principal.via === 'cookie' && secret) {
        await ferry.accounts.endSession(secret);
        ferry.credentialsChanged([principal.user.id]); // that session's open sockets close now
      }
      return new Response(JSON.stringify({ ok: true }), {
        headers: { 'content-type': 'application/json', 'set-cookie': clearedSessionCookie() },
      });
    }, { parse: 'none' })
    .get('/v1/me', async ({ request }) => {
      // Signed out is an answer, not an error: an app asks this at every start.
      refuseUrlTokens(new URL(request.url));
      const principal = await ferry.authenticate(request);
      if (!principal) return { user: null, spaces: [] };
      return { user: principal.user, spaces: await ferry.accounts.spacesOf(principal.user.id) };
    });
}

export function pushRoutes(ferry: ServerContext) {
  return new Elysia({ name: 'ferry-push' }).post('/v1/push', async ({ request }) => {
    const principal = await ferry.principal(request, true);
    const body = await readBody(request, PushBody, MAX_BODY_BYTES);
    if (body.ops.length > LIMITS.batchOps) {
      throw fail('too_large', `A batch holds at most ${LIMITS.batchOps} ops; this one has ${body.ops.length}.`);
    }
    const outcome = await ferry.push(principal, body.device, body.ops, null);
    if (!outcome.ok) return errorResponse(outcome.error);
    const { ok: _, ...ack } = outcome;
    return ack;
  }, { parse: 'none' });
}

export function snapshotRoutes(ferry: ServerContext) {
  const Query = v.object({
    space: v.pipe(v.string(), v.minLength(1)),
    after: v.optional(v.pipe(v.string(), v.digits(), v.transform(Number)), '0'),
    head: v.optional(v.pipe(v.string(), v.digits(), v.transform(Number))),
    limit: v.optional(v.pipe(v.string(), v.digits(), v.transform(Number), v.minValue(1), v.maxValue(1000)), '500'),
  });
  return new Elysia({ name: 'ferry-snapshot' }).get('/v1/snapshot', async ({ request }) => {
    const { user } = await ferry.principal(request, false);
    const parsed = v.safeParse(Query, Object.fromEntries(new URL(request.url).searchParams));
    if (!parsed.success) throw fail('invalid', describeIssues(parsed.issues));
    const { space, after, limit } = parsed.output;
    if (!(await ferry.accounts.isMember(user.id, space))) throw fail('forbidden', `You are not a member of space "${space}".`);
    const head = parsed.output.head ?? (await ferry.store.heads()).serverSeq;
    const entities = await ferry.store.snapshotPage(space, after, limit);
    const body: SnapshotBody = { space, entities, next: entities.length === limit ? entities.at(-1)!.serverSeq : null, head };
    return body;
  });
}

export function healthRoutes(ferry: ServerContext) {
  return new Elysia({ name: 'ferry-health' })
    // Still 200 while the bus is lost: pushes, catch-up and snapshots work; only live changes from other
    // instances wait until it is back (docs/scale-out.md). Taking every instance out of a load balancer
    // because Redis is down would turn a delay into an outage.
    .get('/healthz', async () => {
      const [heads, effects] = await Promise.all([ferry.store.heads(), ferry.effects.counts()]);
      // `effects: 'failing'` while any effect gave up (until an operator retries or drops it): degraded, not
      // down, so the instance keeps serving (the rows are the database's, not this instance's).
      return {
        ok: true, serverSeq: heads.serverSeq, bus: ferry.bus.healthy() ? 'connected' : 'lost',
        effects: effects.failed > 0 ? 'failing' : 'ok', effectsPending: effects.pending, effectsFailed: effects.failed,
      };
    })
    .get('/metrics', async () => {
      const effects = await ferry.effects.counts();
      return new Response(ferry.metrics.render({
        gauges: {
          ferry_bus_up: ferry.bus.healthy() ? 1 : 0,
          ferry_effects_pending: effects.pending,
          ferry_effects_failed: effects.failed,
          ferry_effects_oldest_pending_age_ms: effects.oldestPendingAt === null ? 0 : Math.max(0, ferry.now() - effects.oldestPendingAt),
        },
        counters: Object.fromEntries(Object.entries(ferry.bus.stats?.() ?? {}).map(([name, n]) => [`ferry_bus_${name}_total`, n])),
      }), {
        headers: { 'content-type': 'text/plain; version=0.0.4' },
      });
    });
}
