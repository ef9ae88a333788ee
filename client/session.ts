// Who is signed in on this browser profile, for an app's start and its sign-in form. A sign-out made while
// offline is remembered on the device (device/profile.ts) and completed with the server before anything
// else asks it who we are: the HttpOnly session cookie cannot be removed from JavaScript, so until the
// server has ended the session, only the profile's word keeps a signed-out person signed out.
import { openProfile, type Profile } from '../device/profile.ts';
import { DB_NAME } from '../device/store.ts';
import { type Account, login, logout, me } from './auth.ts';
import { FerryError } from './errors.ts';

export interface Session {
  /** The signed-in user's id, for `createFerry({ user })`; null when nobody is signed in. */
  user: string | null;
  /** Their account as the server has it now; null when the server could not be asked (offline) or said
   * the session has ended (then `user` may still be set: their changes wait for a sign-in). */
  account: Account | null;
}

/** Ends the server session if a sign-out is still pending; true once done (false: offline, still pending). */
export async function endServerSession(url: string, profile: Profile): Promise<boolean> {
  if (!(await profile.logoutPending())) return true;
  try {
    await logout(url);
  } catch (error) {
    if (error instanceof FerryError && error.code === 'network') return false;
    throw error;
  }
  await profile.logoutSent();
  return true;
}

/** Who is signed in: the profile decides whether anyone is; the server, who (and their spaces). */
export async function currentSession(url: string, options: { dbName?: string } = {}): Promise<Session> {
  const profile = await openProfile(options.dbName ?? DB_NAME);
  try {
    await endServerSession(url, profile);
    const active = await profile.active();
    if (active === null) return { user: null, account: null }; // signed out here, whatever the cookie says
    let account: Account | null;
    try {
      account = await me(url);
    } catch (error) {
      if (error instanceof FerryError && error.code === 'network') return { user: active ?? null, account: null };
      throw error;
    }
    // A profile nobody signed in through yet (an older app version) adopts the cookie's user.
    return { user: account?.user.id ?? active ?? null, account };
  } finally {
    profile.close();
  }
}

/** Signs in (ending a previous session still pending on the server first); returns the account. */
export async function signIn(url: string, name: string, password: string, options: { dbName?: string } = {}): Promise<Account> {
  const profile = await openProfile(options.dbName ?? DB_NAME);
  try {
    await endServerSession(url, profile);
    return await login(url, name, password);
  } finally {
    profile.close();
  }
}
