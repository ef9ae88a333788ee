// HTTP plugins: accounts, push, snapshot, health and metrics. Each route parses with valibot, calls the
// logic, maps the result; errors become `{ code, message }` in app.ts's onError.
import { Elysia } from 'elysia';
import * as v from 'valibot';
import { LIMITS } from '../core/limits.ts';
import { describeIssues, LoginBody, PushBody, type SnapshotBody } from '../schema/wire.ts';
import { clearedSessionCookie, cookieOf, isSecure, originAllowed, SESSION_COOKIE, sessionCookie } from './auth.ts';
import type { Ferry } from './context.ts';
import { errorResponse, fail } from './errors.ts';

const DAY = 86_400_000;
/** A push body is at most one batch, 1 MiB serialized (PROTOCOL.md §6, §8: over it is 413 too_large).
 * Devices keep within it (core/outbox.ts reserves room for the envelope); an over-limit op in a body
 * within it is still recorded as a `rejected` op. */
const MAX_BODY_BYTES = LIMITS.batchBytes;

/** Reads and validates a JSON body: 413 over the limit, 400 for JSON or schema problems. */
async function readBody<S extends v.GenericSchema>(request: Request, schema: S, maxBytes = 64 * 1024): Promise<v.InferOutput<S>> {
  const declared = Number(request.headers.get('content-length') ?? 0);
  if (declared > maxBytes) throw fail('too_large', `The body is ${declared} bytes; the limit is ${maxBytes}.`);
  const text = await request.text();
  if (Buffer.byteLength(text) > maxBytes) throw fail('too_large', `The body is over ${maxBytes} bytes.`);
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

export function accountRoutes(ferry: Ferry) {
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
      if (principal.via === 'cookie' && secret) await ferry.accounts.endSession(secret);
      return new Response(JSON.stringify({ ok: true }), {
        headers: { 'content-type': 'application/json', 'set-cookie': clearedSessionCookie() },
      });
    }, { parse: 'none' })
    .get('/v1/me', async ({ request }) => {
      const { user } = await ferry.principal(request, false);
      return { user, spaces: await ferry.accounts.spacesOf(user.id) };
    })
    .post('/v1/spaces', async ({ request }) => {
      const { user } = await ferry.principal(request, true);
      const body = await readBody(request, v.strictObject({ name: v.pipe(v.string(), v.minLength(1), v.maxLength(200)) }));
      return ferry.accounts.createSpace(user.id, body.name, ferry.now());
    }, { parse: 'none' })
    .post('/v1/spaces/:id/members', async ({ request, params }) => {
      const { user } = await ferry.principal(request, true);
      const body = await readBody(request, v.strictObject({ name: v.pipe(v.string(), v.minLength(1), v.maxLength(128)) }));
      if ((await ferry.accounts.role(user.id, params.id)) !== 'owner') {
        throw fail('forbidden', 'Only the owner of a space can invite members.');
      }
      const invitee = await ferry.accounts.userByName(body.name);
      if (!invitee) throw fail('not_found', `There is no user named "${body.name}".`);
      return { added: await ferry.accounts.addMember(params.id, invitee.id), user: { id: invitee.id, name: invitee.name } };
    }, { parse: 'none' });
}

export function pushRoutes(ferry: Ferry) {
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

export function snapshotRoutes(ferry: Ferry) {
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

export function healthRoutes(ferry: Ferry) {
  return new Elysia({ name: 'ferry-health' })
    .get('/healthz', async () => {
      const heads = await ferry.store.heads();
      return { ok: true, serverSeq: heads.serverSeq };
    })
    .get('/metrics', () => new Response(ferry.metrics.render(), {
      headers: { 'content-type': 'text/plain; version=0.0.4' },
    }));
}
