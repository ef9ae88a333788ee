// The fetch the engine's requests go out with (the drainer's pushes, the snapshot a `reset` asks for:
// snapshot.ts). Cookie apps send the session cookie; token apps add the bearer header (never a URL
// parameter, which the server refuses).

export type TokenSource = () => string | null;

/** fetch with the bearer token, when the app has one. The casts: Bun's `typeof fetch` also has a
 * `preconnect` member, and the tests type-check this file against Bun's types. */
export function authFetch(token: TokenSource | undefined): typeof fetch {
  if (token === undefined) return ((input, init) => fetch(input, init)) as typeof fetch;
  return ((input, init) => {
    const headers = new Headers(init?.headers);
    const value = token();
    if (value) headers.set('authorization', `Bearer ${value}`);
    return fetch(input, { ...init, headers });
  }) as typeof fetch;
}

/**
 * fetch for one signed-in user's device: while the browser profile's signed-in user is someone else (or
 * nobody), no request leaves; the caller gets the 401 the server would give a revoked session, so the
 * drainer pauses with every op kept and the status says sign in (invariant 9).
 */
export function sessionFetch(inner: typeof fetch, signedIn: () => Promise<boolean>): typeof fetch {
  return (async (input, init) => {
    if (await signedIn()) return inner(input, init);
    const body = { code: 'auth_required', message: 'You signed out on this device; sign in again to send these changes.' };
    return new Response(JSON.stringify(body), { status: 401, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
}
