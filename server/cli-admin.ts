// The `ferry` command's account, token and space commands: what an operator needs to run a server for
// people. Every failure is one sentence and exit code 1: no SQL, no hash, no stack (server/log.ts).
import * as v from 'valibot';
import { MemberRole } from '../schema/accounts.ts';
import { AccountError, type Accounts, TOKEN_ID_LENGTH } from './accounts.ts';
import { describeFailure } from './log.ts';
import type { EffectStatus, EffectStore } from './storage/effects-store.ts';

const DAY = 86_400_000;

export interface Out {
  print(text: string): number;
  fail(text: string): number;
}

type Values = Record<string, string | boolean | undefined>;

export async function userCommand(accounts: Accounts, args: string[], values: Values, out: Out): Promise<number | null> {
  const [sub, name] = args;
  const password = typeof values.password === 'string' ? values.password : process.env.FERRY_PASSWORD;
  if (sub === 'list' && !name) {
    for (const user of await accounts.listUsers()) if (!user.name.startsWith('~removed~')) console.log(`${user.name}\t${user.id}\t${new Date(user.createdAt).toISOString()}`);
    return 0;
  }
  if (!name || !['add', 'passwd', 'remove'].includes(sub ?? '')) return null;
  if (sub === 'add') {
    if (!password) return out.fail('Give a password with --password or FERRY_PASSWORD.');
    return guarded(out, async () => {
      const user = await accounts.addUser(name, password, Date.now());
      return out.print(`created user ${user.name} (${user.id}), personal space u:${user.id}`);
    });
  }
  const user = await accounts.userByName(name);
  if (!user) return out.fail(`There is no user named "${name}".`);
  if (sub === 'passwd') {
    if (!password) return out.fail('Give the new password with --password or FERRY_PASSWORD.');
    return guarded(out, async () => {
      await accounts.setPassword(user.id, password);
      return out.print(`new password for ${name}; their sessions and tokens are revoked`);
    });
  }
  await accounts.removeUser(user.id);
  return out.print(`removed ${name}: their sessions, tokens and memberships are gone; their devices' history stays`);
}

export async function tokenCommand(accounts: Accounts, args: string[], values: Values, out: Out): Promise<number | null> {
  const [sub, name, which] = args;
  if (!name || !['create', 'list', 'revoke'].includes(sub ?? '')) return null;
  const user = await accounts.userByName(name);
  if (!user) return out.fail(`There is no user named "${name}".`);
  if (sub === 'create') {
    let ttl: number | null = null;
    if (values.days !== undefined) {
      const days = Number(values.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650) return out.fail('--days is a whole number of days from 1 to 3650.');
      ttl = days * DAY;
    }
    return out.print(await accounts.createToken(user.id, String(values.name ?? 'cli'), Date.now(), ttl));
  }
  if (sub === 'list') {
    for (const token of await accounts.tokensOf(user.id)) {
      const expires = token.expiresAt === null ? 'never expires' : `expires ${new Date(token.expiresAt).toISOString()}`;
      console.log(`${token.id}\t${token.name}\tcreated ${new Date(token.createdAt).toISOString()}\t${expires}`);
    }
    return 0;
  }
  if (!which) return out.fail(`Say which token: its name, or its id from \`ferry token list ${name}\` (${TOKEN_ID_LENGTH} characters).`);
  const revoked = await accounts.revokeTokens(user.id, which);
  if (revoked === 0) return out.fail(`${name} has no token named or with the id "${which}".`);
  return out.print(`revoked ${revoked} token${revoked === 1 ? '' : 's'} of ${name}; open sockets using them close within a minute`);
}

export async function spaceCommand(accounts: Accounts, args: string[], values: Values, out: Out): Promise<number | null> {
  const [sub, a, b, c] = args;
  const userNamed = async (name: string) => accounts.userByName(name);
  if (sub === 'create' && a && b) {
    const owner = await userNamed(a);
    if (!owner) return out.fail(`There is no user named "${a}".`);
    const space = await accounts.createSpace(owner.id, b, Date.now());
    return out.print(`created space ${space.id} "${space.name}" owned by ${owner.name}`);
  }
  if ((sub === 'add-member' || sub === 'remove-member' || (sub === 'set-role' && c)) && a && b) {
    if (!(await accounts.space(a))) return out.fail(`There is no space "${a}" (\`ferry space list <user>\` shows ids).`);
    const user = await userNamed(b);
    if (!user) return out.fail(`There is no user named "${b}".`);
    if (sub === 'add-member' || sub === 'set-role') {
      const role = v.safeParse(MemberRole, sub === 'set-role' ? c : values.role);
      if (!role.success) return out.fail('A role is "editor" (reads and writes) or "viewer" (only reads); a space has one owner.');
      if (sub === 'set-role') {
        if (await accounts.setRole(a, user.id, role.output)) return out.print(`${user.name} is now ${role.output === 'editor' ? 'an editor' : 'a viewer'} of ${a}`);
        return out.fail((await accounts.role(user.id, a)) === 'owner' ? `${user.name} owns ${a} and keeps that role.` : `${user.name} is not a member of ${a}.`);
      }
      if (await accounts.addMember(a, user.id, role.output)) return out.print(`added ${user.name} to ${a} as ${role.output}`);
      return out.print(`${user.name} is already a member of ${a} (${await accounts.role(user.id, a)}; \`ferry space set-role\` changes it)`);
    }
    if ((await accounts.role(user.id, a)) === 'owner') return out.fail(`${user.name} owns ${a} and cannot be removed from it.`);
    return out.print((await accounts.removeMember(a, user.id)) ? `removed ${user.name} from ${a}` : `${user.name} was not a member of ${a}`);
  }
  if (sub === 'list' && a) {
    const user = await userNamed(a);
    if (!user) return out.fail(`There is no user named "${a}".`);
    for (const s of await accounts.spacesOf(user.id)) console.log(`${s.id}\t${s.role}\t${s.personal ? 'personal' : 'shared'}\t${s.name}`);
    return 0;
  }
  return null;
}

const STATUSES: readonly EffectStatus[] = ['pending', 'failed', 'done', 'dropped'];

/** `ferry effect`: what the app's side effects did (server/effects.ts), and retrying or dropping them. */
export async function effectCommand(effects: EffectStore, args: string[], values: Values, out: Out): Promise<number | null> {
  const [sub, opId, name = null] = args;
  if (sub === 'list' && !opId) {
    const status = values.status === undefined ? null : String(values.status);
    if (status !== null && !STATUSES.includes(status as EffectStatus)) return out.fail(`--status is one of ${STATUSES.join(', ')}.`);
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) return out.fail('--limit is a whole number from 1 to 10000.');
    for (const e of await effects.list(status as EffectStatus | null, limit)) {
      const when = e.status === 'pending' ? `next ${new Date(e.nextAt).toISOString()}` : `settled ${new Date(e.settledAt ?? e.createdAt).toISOString()}`;
      console.log(`${e.opId}\t${e.name}\t${e.status}\t${e.attempts} attempt${e.attempts === 1 ? '' : 's'}\t${when}${e.lastError ? `\t${e.lastError}` : ''}`);
    }
    return 0;
  }
  if (sub === 'retry' && (opId || values.failed === true)) {
    const n = await effects.retry(opId ?? null, name, Date.now());
    if (n === 0) return out.fail(opId ? `No failed or dropped effect of op "${opId}"${name ? ` named ${name}` : ''}.` : 'No effect has failed.');
    return out.print(`${n} effect${n === 1 ? '' : 's'} pending again; a running server delivers ${n === 1 ? 'it' : 'them'} within seconds`);
  }
  if (sub === 'drop' && opId) {
    const n = await effects.drop(opId, name, Date.now());
    if (n === 0) return out.fail(`No pending or failed effect of op "${opId}"${name ? ` named ${name}` : ''}.`);
    return out.print(`dropped ${n} effect${n === 1 ? '' : 's'} of ${opId}: never delivered (\`ferry effect retry ${opId}\` brings ${n === 1 ? 'it' : 'them'} back)`);
  }
  return null;
}

/** Runs an account change; a refused one is its sentence, anything else a safe description. */
async function guarded(out: Out, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AccountError) return out.fail(error.message);
    return out.fail(`The change failed: ${describeFailure(error)}`);
  }
}
