// The accounts and spaces API's bodies (PROTOCOL.md §5): what `/v1/auth/*`, `/v1/me` and `/v1/spaces/*`
// take and answer. The server parses requests with these, the page library parses the answers with them,
// so neither side trusts the other's shape blindly.
import * as v from 'valibot';
import { ROLES } from '../core/types.ts';

/** What a new account may be called: letters, digits and `._-`, 1–64 characters, starting with a letter or
 * digit (so a name is one word on a command line and in an invitation). Sign-in accepts any name. */
export const USER_NAME = /^[\p{L}\p{N}][\p{L}\p{N}._-]{0,63}$/u;
export const UserName = v.pipe(v.string(), v.regex(USER_NAME,
  'A user name is 1–64 letters, digits, dots, dashes or underscores, starting with a letter or digit.'));

const Name = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const SpaceName = v.pipe(v.string(), v.trim(), v.minLength(1, 'A space needs a name.'), v.maxLength(200, 'A space name is at most 200 characters.'));

export const LoginBody = v.strictObject({
  name: Name,
  password: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
});

export const CreateSpaceBody = v.strictObject({ name: SpaceName });
export const RenameSpaceBody = v.strictObject({ name: SpaceName });
/** What a member may do in a space: the owner everything (and alone invites, removes and changes roles),
 * an editor read and write, a viewer only read (their ops are rejected `read_only`). */
export const Role = v.picklist(ROLES);
/** The roles an owner can give: a space has exactly one owner, its creator. */
export const MemberRole = v.picklist(['editor', 'viewer'], 'A member is an "editor" or a "viewer".');

/** An invitation: by user name, as an editor unless said otherwise. */
export const AddMemberBody = v.strictObject({ name: Name, role: v.optional(MemberRole, 'editor') });
export const SetRoleBody = v.strictObject({ role: MemberRole });

export const UserRef = v.object({ id: v.string(), name: v.string() });

export const SpaceRef = v.object({ id: v.string(), name: v.string(), personal: v.boolean(), role: Role });

/** The answer to login: who is signed in and the spaces they may sync. */
export const AccountBody = v.object({ user: UserRef, spaces: v.array(SpaceRef) });

/** The answer to `GET /v1/me`: the account, or `user: null` when no valid session or token came with it. */
export const MeBody = v.union([AccountBody, v.object({ user: v.null(), spaces: v.array(SpaceRef) })]);

/** The answer to an invitation: whether it added them (false: they already were a member). */
export const AddMemberAnswer = v.object({ added: v.boolean(), user: UserRef, role: Role });

/** The answer to a role change. */
export const SetRoleAnswer = v.object({ user: v.string(), role: MemberRole });

export const MemberRef = v.object({ id: v.string(), name: v.string(), role: Role });
export const MembersBody = v.object({ members: v.array(MemberRef) });

export type LoginBody = v.InferOutput<typeof LoginBody>;
export type Role = v.InferOutput<typeof Role>;
export type MemberRole = v.InferOutput<typeof MemberRole>;
export type UserRef = v.InferOutput<typeof UserRef>;
export type SpaceRef = v.InferOutput<typeof SpaceRef>;
export type AccountBody = v.InferOutput<typeof AccountBody>;
export type AddMemberAnswer = v.InferOutput<typeof AddMemberAnswer>;
export type MemberRef = v.InferOutput<typeof MemberRef>;
