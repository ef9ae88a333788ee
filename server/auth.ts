// Who is asking, and may they. Sessions (cookie) for browsers, bearer tokens for everything else,
// an exact Origin allowlist, CSRF defences on cookie-authenticated writes, and no tokens in URLs.
// Embedders replace `authenticate` with their own hook and keep every other check.
import type { Accounts, UserRef } from './accounts.ts';
import { CSRF_HEADER, CSRF_VALUE, TOKEN_PROTOCOL_PREFIX } from '../schema/protocol.ts';
import { fail } from './errors.ts';

export const SESSION_COOKIE = 'ferry_session';
const URL_TOKEN_PARAMS = ['token', 'access_token', 'auth', 'authorization', 'session'];

export interface Principal {
  user: UserRef;
  /** How the request proved it: cookie-authenticated writes need the CSRF checks. */
  via: 'cookie' | 'token' | 'custom';
  /**
   * Whether the credential still holds (not signed out, revoked or expired since). A socket lives long after
   * its handshake: the server asks again before every push and every minute, and closes it with 4401 once
   * it does not. Absent: the credential never ends by itself (an embedder's hook may say otherwise).
   */
  stillValid?: () => Promise<boolean>;
}

/** The embedder's hook: return the user behind a request, or null. */
export type Authenticate = (request: Request) => Promise<Principal | null>;

export function builtInAuthenticate(accounts: Accounts, now: () => number): Authenticate {
  return async (request) => {
    const token = bearerOf(request);
    if (token) {
      const user = await accounts.userByToken(token, now());
      return user ? { user, via: 'token', stillValid: recheck(accounts.userByToken, token, user.id, now) } : null;
    }
    const session = cookieOf(request, SESSION_COOKIE);
    if (session) {
      const user = await accounts.userBySession(session, now());
      return user ? { user, via: 'cookie', stillValid: recheck(accounts.userBySession, session, user.id, now) } : null;
    }
    return null;
  };
}

/** Made outside the request's scope: a socket keeps its principal for its whole life, and a closure made
 * in there kept the handshake's Request and headers alive with it. */
function recheck(lookup: (secret: string, now: number) => Promise<UserRef | null>, secret: string, userId: string, now: () => number) {
  return async () => (await lookup(secret, now()))?.id === userId;
}

/** Bearer token from the Authorization header, or from the socket's `ferry.auth.<token>` subprotocol. */
export function bearerOf(request: Request): string | null {
  const header = request.headers.get('authorization');
  if (header?.startsWith('Bearer ')) return header.slice(7).trim() || null;
  const offered = request.headers.get('sec-websocket-protocol');
  for (const p of offered?.split(',') ?? []) {
    const name = p.trim();
    if (name.startsWith(TOKEN_PROTOCOL_PREFIX)) return name.slice(TOKEN_PROTOCOL_PREFIX.length) || null;
  }
  return null;
}

export function cookieOf(request: Request, name: string): string | null {
  for (const part of request.headers.get('cookie')?.split(';') ?? []) {
    const [k, ...v] = part.trim().split('=');
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join('='));
    } catch {
      return null; // bad percent-encoding: no credential (401), not a server fault (500)
    }
  }
  return null;
}

/** Refuses tokens in the query string outright: URLs end up in logs, histories and Referer headers. */
export function refuseUrlTokens(url: URL): void {
  for (const param of URL_TOKEN_PARAMS) {
    if (url.searchParams.has(param)) {
      throw fail('invalid', `Credentials are never accepted in a URL (found "${param}"); use a header.`);
    }
  }
}

/**
 * Origin policy: an Origin header, when present, must be in the allowlist or be this server's own
 * origin. Browsers always send Origin on WebSocket handshakes and cross-site POSTs.
 */
export function originAllowed(request: Request, allowlist: readonly string[]): boolean {
  const origin = request.headers.get('origin');
  if (origin === null) return true;
  if (allowlist.includes(origin)) return true;
  const host = request.headers.get('host');
  if (!host) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** CSRF defences for a cookie-authenticated write (PROTOCOL.md §5). */
export function checkCookieWrite(request: Request, allowlist: readonly string[]): void {
  if (request.headers.get(CSRF_HEADER) !== CSRF_VALUE) {
    throw fail('forbidden', `Cookie-authenticated writes need the header "${CSRF_HEADER}: ${CSRF_VALUE}".`);
  }
  if (request.headers.get('sec-fetch-site') === 'cross-site') {
    throw fail('forbidden', 'Cross-site requests may not write.');
  }
  if (!originAllowed(request, allowlist)) {
    throw fail('forbidden', `Origin ${request.headers.get('origin')} is not allowed.`);
  }
}

export function sessionCookie(secret: string, maxAgeMs: number, secure: boolean): string {
  const parts = [`${SESSION_COOKIE}=${secret}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${Math.floor(maxAgeMs / 1000)}`];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}

export const clearedSessionCookie = () => `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;

export function isSecure(request: Request): boolean {
  return new URL(request.url).protocol === 'https:' || request.headers.get('x-forwarded-proto') === 'https';
}
