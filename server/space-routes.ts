// The spaces API (PROTOCOL.md §5): create a shared space, list its members, invite by name (as an editor or
// a viewer), change a member's role, remove a member or leave, rename. Every change of membership is told live to the affected users' sockets on every
// instance (ServerContext.membershipChanged), so an invitation shows up at once and a removal stops the sync.
// A space the user is not a member of is answered `forbidden` whether or not it exists.
import { Elysia } from 'elysia';
import { AddMemberBody, CreateSpaceBody, RenameSpaceBody, SetRoleBody } from '../schema/accounts.ts';
import type { ServerContext } from './context.ts';
import { fail } from './errors.ts';
import { readBody } from './routes.ts';

export function spaceRoutes(ctx: ServerContext) {
  /** The caller's role in the space; forbidden (never "not found") when they have none. */
  const roleIn = async (user: string, space: string) => {
    const role = await ctx.accounts.role(user, space);
    if (role === null) throw fail('forbidden', `You are not a member of space "${space}".`);
    return role;
  };
  const ownerOnly = async (user: string, space: string, what: string) => {
    if ((await roleIn(user, space)) !== 'owner') throw fail('forbidden', `Only the owner of a space can ${what}.`);
  };

  return new Elysia({ name: 'ferry-spaces' })
    .post('/v1/spaces', async ({ request }) => {
      const { user } = await ctx.principal(request, true);
      const body = await readBody(request, CreateSpaceBody);
      const space = await ctx.accounts.createSpace(user.id, body.name, ctx.now());
      ctx.membershipChanged([user.id]);
      return space;
    }, { parse: 'none' })
    .get('/v1/spaces/:id/members', async ({ request, params }) => {
      const { user } = await ctx.principal(request, false);
      await roleIn(user.id, params.id);
      return { members: await ctx.accounts.membersOf(params.id) };
    })
    .post('/v1/spaces/:id/members', async ({ request, params }) => {
      const { user } = await ctx.principal(request, true);
      const body = await readBody(request, AddMemberBody);
      await ownerOnly(user.id, params.id, 'invite members');
      const invitee = await ctx.accounts.userByName(body.name);
      if (!invitee) throw fail('not_found', `There is no user named "${body.name}".`);
      const added = await ctx.accounts.addMember(params.id, invitee.id, body.role);
      if (added) ctx.membershipChanged([invitee.id]);
      const role = added ? body.role : (await ctx.accounts.role(invitee.id, params.id)) ?? body.role;
      return { added, user: { id: invitee.id, name: invitee.name }, role };
    }, { parse: 'none' })
    .patch('/v1/spaces/:id/members/:user', async ({ request, params }) => {
      const { user } = await ctx.principal(request, true);
      const body = await readBody(request, SetRoleBody);
      await ownerOnly(user.id, params.id, 'change roles');
      if (params.user === user.id) throw fail('forbidden', 'The owner of a space keeps that role.');
      if (!(await ctx.accounts.setRole(params.id, params.user, body.role))) throw fail('not_found', 'That user is not a member of this space.');
      ctx.membershipChanged([params.user]); // their `spaces` frame carries the new role
      return { user: params.user, role: body.role };
    }, { parse: 'none' })
    .delete('/v1/spaces/:id/members/:user', async ({ request, params }) => {
      const { user } = await ctx.principal(request, true);
      const role = await roleIn(user.id, params.id);
      const leaving = params.user === user.id;
      if (leaving && role === 'owner') throw fail('forbidden', 'The owner cannot leave their own space.');
      if (!leaving && role !== 'owner') throw fail('forbidden', 'Only the owner of a space can remove members.');
      const removed = await ctx.accounts.removeMember(params.id, params.user);
      if (!removed) throw fail('not_found', 'That user is not a member of this space.');
      ctx.membershipChanged([params.user]);
      return { removed };
    }, { parse: 'none' })
    .patch('/v1/spaces/:id', async ({ request, params }) => {
      const { user } = await ctx.principal(request, true);
      const body = await readBody(request, RenameSpaceBody);
      await ownerOnly(user.id, params.id, 'rename it');
      await ctx.accounts.renameSpace(params.id, body.name);
      ctx.membershipChanged((await ctx.accounts.membersOf(params.id)).map((member) => member.id));
      return { id: params.id, name: body.name };
    }, { parse: 'none' });
}
