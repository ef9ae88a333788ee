// Accounts, sessions, tokens, spaces and memberships in SQL: the storage side of server/accounts.ts, which
// owns the secrets (hashing, minting) and calls these with hashes only. Every row here is keyed by what the
// caller already derived: a session or token by the SHA-256 of its secret, never the secret itself.
// Every write waits for another process's write lock through whenUnlocked (db.ts), off the JS thread.
import { and, eq, inArray, ne } from 'drizzle-orm';
import type { MemberRef, MemberRole, Role, SpaceRef, UserRef } from '../../schema/accounts.ts';
import { members, sessions, spaces, tokens, users } from '../../schema/tables.ts';
import { type FerryDb, whenUnlocked } from './db.ts';

/**
 * The credential lookups in plain SQL on the libSQL client (a kept statement): through drizzle's builder
 * one cost ~0.2 ms against ~0.05 ms, and a socket asks before every push (docs/benchmarks.md, row 4).
 */
const USER_BY_SESSION = `SELECT users.id, users.name FROM sessions JOIN users ON users.id = sessions.user_id
  WHERE sessions.id = ? AND sessions.expires_at > ?`;
const USER_BY_TOKEN = `SELECT users.id, users.name FROM tokens JOIN users ON users.id = tokens.user_id
  WHERE tokens.id = ? AND (tokens.expires_at IS NULL OR tokens.expires_at > ?)`;

export function createAccountStore(db: FerryDb) {
  const userBy = async (sql: string, id: string, now: number): Promise<UserRef | null> => {
    const { rows } = await db.$client.execute({ sql, args: [id, now] });
    const row = rows[0];
    return row ? { id: String(row.id), name: String(row.name) } : null;
  };
  return {
    /** A user with their personal space (they own it), in one transaction. */
    async insertUser(user: { id: string; name: string; passwordHash: string; createdAt: number }, personal: { id: string; name: string }) {
      await whenUnlocked(() => db.transaction(async (tx) => {
        await tx.insert(users).values(user);
        await tx.insert(spaces).values({ id: personal.id, name: personal.name, ownerId: user.id, personal: true, createdAt: user.createdAt });
        await tx.insert(members).values({ spaceId: personal.id, userId: user.id, role: 'owner' });
      }));
    },

    /**
     * A user an embedder's `authenticate` vouches for, provisioned on first sight: their row (no password opens
     * it), their personal space and its membership. A second call finds them there and changes nothing.
     */
    async provision(user: { id: string; name: string; createdAt: number }, personal: { id: string; name: string }) {
      await whenUnlocked(() => db.transaction(async (tx) => {
        const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.name, user.name));
        const name = taken && taken.id !== user.id ? `${user.name}#${user.id.slice(0, 8)}` : user.name;
        const added = await tx.insert(users).values({ id: user.id, name, passwordHash: '!', createdAt: user.createdAt })
          .onConflictDoNothing().returning({ id: users.id });
        if (added.length === 0) return;
        await tx.insert(spaces).values({ id: personal.id, name: personal.name, ownerId: user.id, personal: true, createdAt: user.createdAt })
          .onConflictDoNothing();
        await tx.insert(members).values({ spaceId: personal.id, userId: user.id, role: 'owner' }).onConflictDoNothing();
      }));
    },

    async userByName(name: string) {
      const [row] = await db.select().from(users).where(eq(users.name, name));
      return row ?? null;
    },

    async insertSession(row: { id: string; userId: string; createdAt: number; expiresAt: number }) {
      await whenUnlocked(() => db.insert(sessions).values(row));
    },

    async deleteSession(id: string) {
      await whenUnlocked(() => db.delete(sessions).where(eq(sessions.id, id)));
    },

    /** Asked at every handshake, before every socket push and every minute per open socket: see USER_BY. */
    userBySession: (id: string, now: number) => userBy(USER_BY_SESSION, id, now),

    async insertToken(row: { id: string; userId: string; name: string; createdAt: number; expiresAt: number | null }) {
      await whenUnlocked(() => db.insert(tokens).values(row));
    },

    userByToken: (id: string, now: number) => userBy(USER_BY_TOKEN, id, now),

    async spacesOf(userId: string): Promise<SpaceRef[]> {
      return db.select({ id: spaces.id, name: spaces.name, personal: spaces.personal, role: members.role })
        .from(members).innerJoin(spaces, eq(spaces.id, members.spaceId))
        .where(eq(members.userId, userId));
    },

    /** A shared space and its owner's membership, in one transaction. */
    async insertSpace(space: { id: string; name: string; ownerId: string; createdAt: number }) {
      await whenUnlocked(() => db.transaction(async (tx) => {
        await tx.insert(spaces).values({ ...space, personal: false });
        await tx.insert(members).values({ spaceId: space.id, userId: space.ownerId, role: 'owner' });
      }));
    },

    /** True if added, false if they already were a member (their role is left as it was). */
    async insertMember(spaceId: string, userId: string, role: MemberRole): Promise<boolean> {
      const added = await whenUnlocked(() => db.insert(members).values({ spaceId, userId, role })
        .onConflictDoNothing().returning({ userId: members.userId }));
      return added.length > 0;
    },

    /** Changes a member's role; never the owner's (a space has one owner). True if a member's role was set. */
    async updateRole(spaceId: string, userId: string, role: MemberRole): Promise<boolean> {
      const set = await whenUnlocked(() => db.update(members).set({ role })
        .where(and(eq(members.spaceId, spaceId), eq(members.userId, userId), ne(members.role, 'owner')))
        .returning({ userId: members.userId }));
      return set.length > 0;
    },

    async membersOf(spaceId: string): Promise<MemberRef[]> {
      return db.select({ id: users.id, name: users.name, role: members.role }).from(members)
        .innerJoin(users, eq(users.id, members.userId)).where(eq(members.spaceId, spaceId)).orderBy(users.name);
    },

    /** True if they were a member. */
    async deleteMember(spaceId: string, userId: string): Promise<boolean> {
      const gone = await whenUnlocked(() => db.delete(members).where(and(eq(members.spaceId, spaceId), eq(members.userId, userId)))
        .returning({ userId: members.userId }));
      return gone.length > 0;
    },

    async space(spaceId: string) {
      const [row] = await db.select().from(spaces).where(eq(spaces.id, spaceId));
      return row ?? null;
    },

    async renameSpace(spaceId: string, name: string) {
      await whenUnlocked(() => db.update(spaces).set({ name }).where(eq(spaces.id, spaceId)));
    },

    async listUsers() {
      return db.select({ id: users.id, name: users.name, createdAt: users.createdAt }).from(users).orderBy(users.name);
    },

    /** A new password; every session and token of the user ends with the old one. */
    async setPassword(userId: string, passwordHash: string) {
      await whenUnlocked(() => db.transaction(async (tx) => {
        await tx.update(users).set({ passwordHash }).where(eq(users.id, userId));
        await tx.delete(sessions).where(eq(sessions.userId, userId));
        await tx.delete(tokens).where(eq(tokens.userId, userId));
      }));
    },

    /**
     * Removes an account: its sessions, tokens and memberships go, its name is freed and no password opens it.
     * The row stays (renamed), because its devices' ledgers and the spaces it owned still refer to it.
     */
    async removeUser(userId: string) {
      await whenUnlocked(() => db.transaction(async (tx) => {
        await tx.delete(sessions).where(eq(sessions.userId, userId));
        await tx.delete(tokens).where(eq(tokens.userId, userId));
        await tx.delete(members).where(eq(members.userId, userId));
        await tx.update(users).set({ name: `~removed~${userId}`, passwordHash: '!' }).where(eq(users.id, userId));
      }));
    },

    async tokensOf(userId: string) {
      return db.select({ id: tokens.id, name: tokens.name, createdAt: tokens.createdAt, expiresAt: tokens.expiresAt })
        .from(tokens).where(eq(tokens.userId, userId)).orderBy(tokens.createdAt);
    },

    /** Deletes the user's tokens whose id (hash) starts with `idPrefix` or whose name is `idPrefix`; how many. */
    async deleteTokens(userId: string, ids: readonly string[]): Promise<number> {
      if (ids.length === 0) return 0;
      const gone = await whenUnlocked(() => db.delete(tokens).where(and(eq(tokens.userId, userId), inArray(tokens.id, [...ids])))
        .returning({ id: tokens.id }));
      return gone.length;
    },

    async role(userId: string, spaceId: string): Promise<Role | null> {
      const [row] = await db.select({ role: members.role }).from(members)
        .where(and(eq(members.userId, userId), eq(members.spaceId, spaceId)));
      return row?.role ?? null;
    },
  };
}
