// Who is signed in, from the app's own backend: it knows the person (its own login) and hands the page a
// Ferry bearer token for them, Ferry's user id and their space, and where the Ferry server is. Ferry runs on
// another origin, so the page sends the token (the `token` option) rather than relying on a cookie.
// The last answer is kept for starts without a network: the app opens offline and keeps writing.
export interface Session {
  ferryUrl: string;
  token: string;
  user: string;
  space: string;
}

const KEY = 'app:session';

export async function currentSession(): Promise<Session | null> {
  try {
    const response = await fetch('/api/session');
    if (response.status === 401) {
      localStorage.removeItem(KEY);
      return null;
    }
    if (response.ok) {
      const session = (await response.json()) as Session;
      localStorage.setItem(KEY, JSON.stringify(session));
      return session;
    }
  } catch {
    // offline, or the backend is away: the last session this browser had
  }
  const kept = localStorage.getItem(KEY);
  return kept === null ? null : (JSON.parse(kept) as Session);
}
