// Accounts, sessions, tokens and spaces in SQL. Secrets are never stored: sessions and tokens are kept
// as the SHA-256 of the secret, passwords as Bun.password (argon2id) hashes.
import { and, eq, gt, isNull, or } from 'drizzle-orm';
import { members, sessions, spaces, tokens, users } from '../schema/tables.ts';
import type { FerryDb } from './db.ts';

export interface UserRef {
  id: string;
  name: string;
}

export interface SpaceRef {
  id: string;
  name: string;
  personal: boolean;
  role: 'owner' | 'member';
}

export const personalSpaceOf = (userId: string) => `u:${userId}`;

export function sha256(secret: string): string {
  return new Bun.CryptoHasher('sha256').update(secret).digest('hex');
}

export function newSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
}

export function createAccounts(db: FerryDb) {
  return {
    /** Creates the user with their personal space (id `u:<userId>`). */
    async addUser(name: string, password: string, now: number): Promise<UserRef> {
      const id = crypto.randomUUID();
      const passwordHash = await Bun.password.hash(password);
      await db.transaction(async (tx) => {
        await tx.insert(users).values({ id, name, passwordHash, createdAt: now });
        const space = personalSpaceOf(id);
        await tx.insert(spaces).values({ id: space, name: `${name}'s space`, ownerId: id, personal: true, createdAt: now });
        await tx.insert(members).values({ spaceId: space, userId: id, role: 'owner' });
      });
      return { id, name };
    },

    async userByName(name: string) {
      const [row] = await db.select().from(users).where(eq(users.name, name));
      return row ?? null;
    },

    /** Checks a password; also spends the hashing time when the user does not exist (no timing oracle). */
    async verify(name: string, password: string): Promise<UserRef | null> {
      const row = await this.userByName(name);
      const ok = await Bun.password.verify(password, row?.passwordHash ?? (await dummyHash()));
      return row && ok ? { id: row.id, name: row.name } : null;
    },

    async createSession(userId: string, now: number, ttlMs: number): Promise<string> {
      const secret = newSecret();
      await db.insert(sessions).values({ id: sha256(secret), userId, createdAt: now, expiresAt: now + ttlMs });
      return secret;
    },

    async endSession(secret: string): Promise<void> {
      await db.delete(sessions).where(eq(sessions.id, sha256(secret)));
    },

    async userBySession(secret: string, now: number): Promise<UserRef | null> {
      const [row] = await db.select({ id: users.id, name: users.name }).from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .where(and(eq(sessions.id, sha256(secret)), gt(sessions.expiresAt, now)));
      return row ?? null;
    },

    async createToken(userId: string, name: string, now: number, ttlMs: number | null): Promise<string> {
      const secret = `fy_${newSecret()}`;
      await db.insert(tokens).values({
        id: sha256(secret), userId, name, createdAt: now, expiresAt: ttlMs === null ? null : now + ttlMs,
      });
      return secret;
    },

    async userByToken(secret: string, now: number): Promise<UserRef | null> {
      const [row] = await db.select({ id: users.id, name: users.name }).from(tokens)
        .innerJoin(users, eq(users.id, tokens.userId))
        .where(and(eq(tokens.id, sha256(secret)), or(isNull(tokens.expiresAt), gt(tokens.expiresAt, now))));
      return row ?? null;
    },

    async spacesOf(userId: string): Promise<SpaceRef[]> {
      return db.select({ id: spaces.id, name: spaces.name, personal: spaces.personal, role: members.role })
        .from(members).innerJoin(spaces, eq(spaces.id, members.spaceId))
        .where(eq(members.userId, userId));
    },

    async isMember(userId: string, spaceId: string): Promise<boolean> {
      const [row] = await db.select({ role: members.role }).from(members)
        .where(and(eq(members.userId, userId), eq(members.spaceId, spaceId)));
      return row !== undefined;
    },

    async createSpace(ownerId: string, name: string, now: number, id = `s:${crypto.randomUUID()}`): Promise<SpaceRef> {
      await db.transaction(async (tx) => {
        await tx.insert(spaces).values({ id, name, ownerId, personal: false, createdAt: now });
        await tx.insert(members).values({ spaceId: id, userId: ownerId, role: 'owner' });
      });
      return { id, name, personal: false, role: 'owner' };
    },

    /** Adds a member; true if added, false if they already were one. */
    async addMember(spaceId: string, userId: string): Promise<boolean> {
      const added = await db.insert(members).values({ spaceId, userId, role: 'member' })
        .onConflictDoNothing().returning({ userId: members.userId });
      return added.length > 0;
    },

    async role(userId: string, spaceId: string): Promise<'owner' | 'member' | null> {
      const [row] = await db.select({ role: members.role }).from(members)
        .where(and(eq(members.userId, userId), eq(members.spaceId, spaceId)));
      return row?.role ?? null;
    },
  };
}

export type Accounts = ReturnType<typeof createAccounts>;

// A real argon2id hash of a random password, so verifying an unknown user costs the same as a known one.
let dummy: Promise<string> | null = null;
const dummyHash = () => (dummy ??= Bun.password.hash(newSecret()));
