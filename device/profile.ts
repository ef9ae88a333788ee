// Who is signed in on this browser profile, and which device database is theirs: a small IndexedDB
// database of its own (`<base>-profile`), owned by this module as device/store.ts owns the device
// databases. Every user of a shared browser gets a device database of their own (`<base>:<user>`, with its
// own device id, outbox, replica and channel), so one person never sees, sends or is blocked by another's
// local state; the Service Worker drains only the signed-in user's database; and a sign-out made offline
// is remembered until the server has been told.
//
//   profile   'active' → user id | null        the user whose database may send
//             'pending-logout' → true           a sign-out the server has not heard of yet
import { type DBSchema, type IDBPDatabase, wrap } from 'idb';

export const PROFILE_VERSION = 1;

interface ProfileSchema extends DBSchema {
  profile: { key: string; value: unknown };
}

export interface Profile {
  /** The signed-in user; null once signed out; undefined when no one ever signed in through the profile
   * (an app that does not pass `user` keeps one database for the whole browser profile). */
  active(): Promise<string | null | undefined>;
  /** Makes `user` the signed-in one; returns their device database's name. */
  signIn(user: string): Promise<string>;
  /** Nobody is signed in any more: from now on no database of this profile may send. The server is told
   * later (`logoutPending` until `logoutSent`). */
  signOut(): Promise<void>;
  logoutPending(): Promise<boolean>;
  logoutSent(): Promise<void>;
  close(): void;
}

/** The device database of `user` under the app's base name. */
export function databaseOf(base: string, user: string): string {
  return `${base}:${user}`;
}

export async function openProfile(base: string, factory: IDBFactory = indexedDB): Promise<Profile> {
  const request = factory.open(`${base}-profile`, PROFILE_VERSION);
  // One migration per version, as device/store.ts: version 1 creates the key-value store.
  request.addEventListener('upgradeneeded', (event) => {
    if (event.oldVersion < 1) request.result.createObjectStore('profile');
  });
  const db = (await (wrap(request) as Promise<unknown>)) as IDBPDatabase<ProfileSchema>;
  db.addEventListener('versionchange', () => db.close()); // a newer app version upgrades: let it
  const write = async (entries: Array<[string, unknown]>) => {
    const tx = db.transaction('profile', 'readwrite', { durability: 'strict' });
    await Promise.all([...entries.map(([key, value]) => tx.store.put(value, key)), tx.done]);
  };
  return {
    active: async () => (await db.get('profile', 'active')) as string | null | undefined,
    async signIn(user) {
      await write([['active', user]]);
      return databaseOf(base, user);
    },
    signOut: () => write([['active', null], ['pending-logout', true]]),
    logoutPending: async () => (await db.get('profile', 'pending-logout')) === true,
    logoutSent: () => write([['pending-logout', false]]),
    close: () => db.close(),
  };
}

/**
 * Whether a database of that name exists, so a worker woken before anyone wrote (a first visit that only
 * cached the app) does not create an empty one. True where the browser cannot list its databases.
 */
export async function databaseExists(name: string, factory: IDBFactory = indexedDB): Promise<boolean> {
  if (typeof factory.databases !== 'function') return true;
  return (await factory.databases()).some((db) => db.name === name);
}

/** Deletes a device database and everything in it (a person wiping their data at sign-out). */
export function deleteDatabase(name: string, factory: IDBFactory = indexedDB): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.deleteDatabase(name);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    // Blocked: another context still has it open; it closes on `versionchange` (store.ts), then this succeeds.
  });
}
