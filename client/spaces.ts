// The spaces API for apps (PROTOCOL.md §5): create a shared space, invite by name (as an editor or a
// viewer), change a member's role, list members, remove a member, leave, rename. Each needs the server (FerryError 'network' when offline); every change reaches
// the affected users' devices live, as a `spaces` frame (Ferry.onSpaces).
import * as v from 'valibot';
import { AddMemberAnswer, MembersBody, type MemberRef, type MemberRole, type Role, SetRoleAnswer, SpaceRef } from '../schema/accounts.ts';
import { answer, request } from './api.ts';

export type { AddMemberAnswer, MemberRef, MemberRole, Role, SpaceRef };

const path = (space: string, rest = '') => `/v1/spaces/${encodeURIComponent(space)}${rest}`;

/** Creates a shared space owned by the signed-in user. */
export async function createSpace(url: string, name: string): Promise<SpaceRef> {
  return answer(await request(url, '/v1/spaces', { method: 'POST', body: JSON.stringify({ name }) }), SpaceRef);
}

/** Invites a user by name into a space the signed-in user owns, as an editor (reads and writes) or a viewer
 * (only reads: the server rejects their changes `read_only`, and they land in the viewer's dead letters). */
export async function invite(url: string, space: string, name: string, role: MemberRole = 'editor'): Promise<AddMemberAnswer> {
  return answer(await request(url, path(space, '/members'), { method: 'POST', body: JSON.stringify({ name, role }) }), AddMemberAnswer);
}

/** The owner makes a member an editor or a viewer; the member's devices learn it at once (Ferry.onSpaces). */
export async function setRole(url: string, space: string, user: string, role: MemberRole): Promise<void> {
  await answer(await request(url, path(space, `/members/${encodeURIComponent(user)}`), { method: 'PATCH', body: JSON.stringify({ role }) }), SetRoleAnswer);
}

/** The members of a space the signed-in user belongs to, with their roles. */
export async function members(url: string, space: string): Promise<MemberRef[]> {
  return (await answer(await request(url, path(space, '/members'), { method: 'GET' }), MembersBody)).members;
}

/** The owner removes a member. Their devices stop syncing the space at once and drop its data. */
export async function removeMember(url: string, space: string, user: string): Promise<void> {
  await answer(await request(url, path(space, `/members/${encodeURIComponent(user)}`), { method: 'DELETE' }), v.unknown());
}

/** The signed-in user leaves a space they do not own. */
export async function leave(url: string, space: string, self: string): Promise<void> {
  await removeMember(url, space, self);
}

/** The owner renames a space; every member sees the new name. */
export async function renameSpace(url: string, space: string, name: string): Promise<void> {
  await answer(await request(url, path(space), { method: 'PATCH', body: JSON.stringify({ name }) }), v.unknown());
}
