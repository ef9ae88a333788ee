// Accounts, sessions, tokens and spaces: the rules and the secrets, over the SQL in storage/accounts-store.ts.
// Secrets are never stored: sessions and tokens are kept as the SHA-256 of the secret, passwords as
// argon2id hashes (password.ts).
import { createHash, randomBytes } from 'node:crypto';
import * as v from 'valibot';
import { type MemberRole, type SpaceRef, UserName, type UserRef } from '../schema/accounts.ts';
import { createAccountStore } from './storage/accounts-store.ts';
import type { FerryDb } from './storage/db.ts';
import { hashPassword, verifyPassword } from './password.ts';

export type { SpaceRef, UserRef };

export const personalSpaceOf = (userId: string) => `u:${userId}`;

export function sha256(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function createAccounts(db: FerryDb) {
  const store = createAccountStore(db);
  return {
    /** Creates the user with their personal space (id `u:<userId>`). Refuses a taken or malformed name. */
    async addUser(name: string, password: string, now: number): Promise<UserRef> {
      const valid = v.safeParse(UserName, name);
      if (!valid.success) throw new AccountError('invalid', valid.issues[0]!.message);
      if (password.length === 0) throw new AccountError('invalid', 'A password cannot be empty.');
      if (await store.userByName(name)) throw new AccountError('taken', `A user named "${name}" already exists.`);
      const id = crypto.randomUUID();
      const passwordHash = await hashPassword(password);
      await store.insertUser({ id, name, passwordHash, createdAt: now }, { id: personalSpaceOf(id), name: `${name}'s space` });
      return { id, name };
    },

    listUsers: () => store.listUsers(),

    async setPassword(userId: string, password: string): Promise<void> {
      if (password.length === 0) throw new AccountError('invalid', 'A password cannot be empty.');
      await store.setPassword(userId, await hashPassword(password));
    },

    removeUser: (userId: string) => store.removeUser(userId),

    /** The user's tokens, each with a short id (the start of its hash) to revoke it by. */
    async tokensOf(userId: string) {
      return (await store.tokensOf(userId)).map(({ id, ...token }) => ({ ...token, id: id.slice(0, TOKEN_ID_LENGTH) }));
    },

    /** Revokes the user's tokens named `which` or whose short id is `which`; how many. */
    async revokeTokens(userId: string, which: string): Promise<number> {
      const all = await store.tokensOf(userId);
      const ids = all.filter((t) => t.name === which || (which.length >= 6 && t.id.startsWith(which))).map((t) => t.id);
      return store.deleteTokens(userId, ids);
    },

    membersOf: (spaceId: string) => store.membersOf(spaceId),
    removeMember: (spaceId: string, userId: string) => store.deleteMember(spaceId, userId),
    space: (spaceId: string) => store.space(spaceId),
    renameSpace: (spaceId: string, name: string) => store.renameSpace(spaceId, name),

    userByName: (name: string) => store.userByName(name),

    /** Makes sure a user an embedder's `authenticate` returned has Ferry's rows (and a personal space). */
    provision: (user: UserRef, now: number) =>
      store.provision({ ...user, createdAt: now }, { id: personalSpaceOf(user.id), name: `${user.name}'s space` }),

    /** Checks a password; also spends the hashing time when the user does not exist (no timing oracle). */
    async verify(name: string, password: string): Promise<UserRef | null> {
      const row = await store.userByName(name);
      // A row no password opens (removed, or provisioned for an embedder's users) still costs a verify.
      const opens = row !== null && row.passwordHash.startsWith('$');
      const ok = await verifyPassword(password, opens ? row.passwordHash : await dummyHash());
      return row && opens && ok ? { id: row.id, name: row.name } : null;
    },

    async createSession(userId: string, now: number, ttlMs: number): Promise<string> {
      const secret = newSecret();
      await store.insertSession({ id: sha256(secret), userId, createdAt: now, expiresAt: now + ttlMs });
      return secret;
    },

    endSession: (secret: string) => store.deleteSession(sha256(secret)),

    userBySession: (secret: string, now: number) => store.userBySession(sha256(secret), now),

    async createToken(userId: string, name: string, now: number, ttlMs: number | null): Promise<string> {
      const secret = `fy_${newSecret()}`;
      await store.insertToken({ id: sha256(secret), userId, name, createdAt: now, expiresAt: ttlMs === null ? null : now + ttlMs });
      return secret;
    },

    userByToken: (secret: string, now: number) => store.userByToken(sha256(secret), now),

    spacesOf: (userId: string) => store.spacesOf(userId),

    async isMember(userId: string, spaceId: string): Promise<boolean> {
      return (await store.role(userId, spaceId)) !== null;
    },

    async createSpace(ownerId: string, name: string, now: number, id = `s:${crypto.randomUUID()}`): Promise<SpaceRef> {
      await store.insertSpace({ id, name, ownerId, createdAt: now });
      return { id, name, personal: false, role: 'owner' };
    },

    /** Adds a member (an editor unless said otherwise); true if added, false if they already were one. */
    addMember: (spaceId: string, userId: string, role: MemberRole = 'editor') => store.insertMember(spaceId, userId, role),

    /** Makes a member an editor or a viewer; false when they are not a member or own the space. */
    setRole: (spaceId: string, userId: string, role: MemberRole) => store.updateRole(spaceId, userId, role),

    role: (userId: string, spaceId: string) => store.role(userId, spaceId),
  };
}

export type Accounts = ReturnType<typeof createAccounts>;

/** How many characters of a token's hash name it in `token list` and `token revoke`. */
export const TOKEN_ID_LENGTH = 10;

/** An account rule refused a change: one sentence for the person, nothing of the database in it. */
export class AccountError extends Error {
  override readonly name = 'AccountError';
  constructor(readonly code: 'invalid' | 'taken', message: string) {
    super(message);
  }
}

// A real argon2id hash of a random password, so verifying an unknown user costs the same as a known one.
let dummy: Promise<string> | null = null;
const dummyHash = () => (dummy ??= hashPassword(newSecret()));
