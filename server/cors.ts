// CORS for the app origins an operator allows (`--origin`): exactly those, with credentials, and nothing for
// anyone else (a browser then refuses the page the answer). A preflight from an allowed origin is answered
// at once; one from another origin is refused with 403 `forbidden`. Same-origin requests need none of it.
import { CSRF_HEADER } from '../schema/protocol.ts';
import { errorResponse } from './errors.ts';

const ALLOW_METHODS = 'GET, POST, PATCH, DELETE';
const ALLOW_HEADERS = `content-type, authorization, ${CSRF_HEADER.toLowerCase()}`;

/** The CORS headers for a request from `origin`, or null when it is not an allowed other origin. */
export function corsHeaders(request: Request, allowlist: readonly string[]): Record<string, string> | null {
  const origin = request.headers.get('origin');
  if (origin === null || !allowlist.includes(origin)) return null;
  return { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', vary: 'Origin' };
}

/** The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`), or null for any other request. */
export function preflight(request: Request, allowlist: readonly string[]): Response | null {
  if (request.method !== 'OPTIONS' || !request.headers.has('access-control-request-method')) return null;
  const headers = corsHeaders(request, allowlist);
  if (headers === null) return errorResponse({ code: 'forbidden', message: 'This origin may not call this server.' }, { vary: 'Origin' });
  return new Response(null, {
    status: 204,
    headers: { ...headers, 'access-control-allow-methods': ALLOW_METHODS, 'access-control-allow-headers': ALLOW_HEADERS, 'access-control-max-age': '600' },
  });
}

/** Adds the CORS headers for `request`'s origin to `response` (when it is an allowed other origin). */
export function withCors(response: Response, request: Request, allowlist: readonly string[]): Response {
  const headers = corsHeaders(request, allowlist);
  if (headers === null) return response;
  for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
  return response;
}
