// Signing in and out with the server's built-in accounts (PROTOCOL.md §5). The session is an HttpOnly
// cookie, so no credential is ever readable from JavaScript, and the Service Worker's background
// pushes carry it too. Apps normally use client/session.ts (signIn, currentSession, Ferry.signOut), which
// also keep a shared browser's users apart; these are the bare calls.
import * as v from 'valibot';
import { AccountBody, MeBody } from '../schema/accounts.ts';
import { answer, request } from './api.ts';

export type Account = AccountBody;

/** Signs in; the session cookie is set on the server's origin. Throws FerryError('auth_required') for a wrong password. */
export async function login(url: string, name: string, password: string): Promise<Account> {
  return answer(await request(url, '/v1/auth/login', { method: 'POST', body: JSON.stringify({ name, password }) }), AccountBody);
}

/** Ends the session. Already signed out is fine. */
export async function logout(url: string): Promise<void> {
  const response = await request(url, '/v1/auth/logout', { method: 'POST', body: '{}' });
  if (response.status === 401) return;
  await answer(response, v.unknown());
}

/** Who is signed in: null when nobody is (the server said so). Throws FerryError('network') when offline. */
export async function me(url: string): Promise<Account | null> {
  const body = await answer(await request(url, '/v1/me', { method: 'GET' }), MeBody);
  return body.user === null ? null : { user: body.user, spaces: body.spaces };
}
