// Signing in and out with the server's built-in accounts (PROTOCOL.md §5). The session is an HttpOnly
// cookie, so no credential is ever readable from JavaScript, and the Service Worker's background
// pushes carry it too. Writes send `X-Ferry: 1`, which the server's CSRF check asks for.
import { FerryError, type FerryErrorCode } from './errors.ts';

export interface Account {
  user: { id: string; name: string };
  spaces: Array<{ id: string; name: string; personal: boolean; role: 'owner' | 'member' }>;
}

/** Signs in; the session cookie is set on the server's origin. Throws FerryError('auth_required') for a wrong password. */
export async function login(url: string, name: string, password: string): Promise<Account> {
  const response = await request(url, '/v1/auth/login', { method: 'POST', body: JSON.stringify({ name, password }) });
  return (await answer(response)) as Account;
}

/** Ends the session. Already signed out is fine. */
export async function logout(url: string): Promise<void> {
  const response = await request(url, '/v1/auth/logout', { method: 'POST', body: '{}' });
  if (response.status === 401) return;
  await answer(response);
}

/** Who is signed in: null when nobody is (the server said so). Throws FerryError('network') when offline. */
export async function me(url: string): Promise<Account | null> {
  const response = await request(url, '/v1/me', { method: 'GET' });
  if (response.status === 401) return null;
  return (await answer(response)) as Account;
}

async function request(url: string, path: string, init: { method: string; body?: string }): Promise<Response> {
  try {
    return await fetch(`${url.replace(/\/+$/, '')}${path}`, {
      ...init,
      credentials: 'include',
      headers: { 'content-type': 'application/json', 'X-Ferry': '1' },
      signal: AbortSignal.timeout(15_000),
    });
  } catch (cause) {
    throw new FerryError('network', 'The server could not be reached.', { cause });
  }
}

async function answer(response: Response): Promise<unknown> {
  const text = await response.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FerryError('network', `The server answered ${response.status} with something that is not JSON.`);
  }
  if (response.ok) return body;
  const { code, message } = (body ?? {}) as { code?: string; message?: string };
  throw new FerryError(codeOf(code), message ?? `The server refused (${response.status}).`);
}

function codeOf(code: string | undefined): FerryErrorCode {
  switch (code) {
    case 'auth_required':
    case 'forbidden':
    case 'invalid':
    case 'too_large':
      return code;
    default:
      return 'network';
  }
}
