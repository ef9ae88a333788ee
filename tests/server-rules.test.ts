// Write rules (AppDeps.rules, core/logic.ts) on a real server, on every runtime it runs on: a rule's computed
// fields reach the writer and every other replica, which converge on them with the one merge (their stamps
// survive the database and the wire); a refusal is a `rejected` result with the rule's code and sentence; a
// resend is answered with its first result even when the rule would now decide otherwise, and changes
// nothing; a rule that throws or answers junk rejects only its own op, `rule_failed`, and says nothing of it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { applyOp, docEquals, mergeDocs } from '../core/merge.ts';
import type { Doc, Fields, Op } from '../core/types.ts';
import { call } from './support/http.ts';
import { push, removeDir } from './support/server.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

const CLOCK = 5_000;

for (const runtime of targets()) describe(`write rules on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  let bob: User;
  const sockets: TestSocket[] = [];
  const seqs = new Map<string, number>();
  beforeAll(async () => {
    server = await startTarget(runtime, { rules: 'notes', clock: CLOCK });
    alice = await server.user('alice');
    bob = await server.user('bob');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server.stop();
    removeDir(server.dir);
  });

  /** The device's next op (seq and lamport counting up per device). */
  const op = (device: string, space: string, key: string, kind: Op['kind'], value?: Fields): Op => {
    const seq = (seqs.get(device) ?? 0) + 1;
    seqs.set(device, seq);
    return { id: `${device}:${seq}`, device, seq, lamport: seq * 10, space, collection: 'notes', key, kind, at: 0, ...(value ? { value } : {}) };
  };
  const send = async (user: User, ops: Op[]) => {
    const answer = await push(server.base, user.token, ops[0]!.device, ops);
    expect(answer.status).toBe(200);
    return answer.body.results as { seq: number; id: string; result: string; first?: string; code?: string; message?: string }[];
  };
  const entity = async (user: User, space: string, key: string) => {
    const page = await call(server.base, `/v1/snapshot?space=${encodeURIComponent(space)}`, { token: user.token });
    return page.body.entities.find((e: { key: string }) => e.key === key) ?? null;
  };
  const docOf = (e: Doc): Doc => ({ fields: e.fields, stamps: e.stamps, base: e.base, live: e.live, deleted: e.deleted });

  test('an accepted op carries the fields the rule computed to every replica, which converge on them', async () => {
    const reader = await helloSocket(server.ws, alice.token, 'alice-tablet');
    sockets.push(reader);
    reader.send({ type: 'subscribe', spaces: [{ space: alice.space, cursor: 0 }] });
    await reader.next((f) => f.type === 'caught_up');
    const put = op('alice-phone', alice.space, 'n1', 'put', { title: '  Milk  ', locked: false });
    expect(await send(alice, [put])).toEqual([{ seq: 1, id: put.id, result: 'applied' }]);
    const frame = await reader.next((f) => f.type === 'changes' && f.entities.some((e: { key: string }) => e.key === 'n1'));
    const seen = frame.entities.find((e: { key: string }) => e.key === 'n1');
    const computed = { title: 'Milk', locked: false, updated_by: alice.id, updated_at: CLOCK, created_by: alice.id };
    expect(seen.fields).toEqual(computed);
    expect((await entity(alice, alice.space, 'n1')).fields).toEqual(computed);
    // The writer's device folds its op as it sent it ("  Milk  ") into its copy of the server's state, then
    // merges the change, in either order: both end where the server is.
    const folded = applyOp(null, put).doc;
    expect(docEquals(mergeDocs(folded, docOf(seen)), docOf(seen))).toBe(true);
    expect(docEquals(applyOp(docOf(seen), put).doc, docOf(seen))).toBe(true);
  });

  test('a refusal is rejected with the rule\'s code and sentence and changes nothing; its resend answers the same', async () => {
    const lock = op('alice-phone', alice.space, 'n1', 'patch', { locked: true });
    expect((await send(alice, [lock]))[0]!.result).toBe('applied');
    const before = await entity(alice, alice.space, 'n1');
    const edit = op('alice-phone', alice.space, 'n1', 'patch', { title: 'Oat milk' });
    const refused = await send(alice, [edit]);
    expect(refused).toEqual([{ seq: edit.seq, id: edit.id, result: 'rejected', code: 'locked', message: 'This note is locked; only an owner can unlock it.' }]);
    expect(await entity(alice, alice.space, 'n1')).toEqual(before);
    // Unlocked, the rule would now accept the same op; its resend still answers the first result.
    await server.setClock(CLOCK + 1000);
    expect((await send(alice, [op('alice-phone', alice.space, 'n1', 'patch', { locked: false })]))[0]!.result).toBe('applied');
    const unlocked = await entity(alice, alice.space, 'n1');
    expect(unlocked.fields).toMatchObject({ title: 'Milk', locked: false, updated_at: CLOCK + 1000 });
    const again = await send(alice, [lock, edit]);
    expect(again).toEqual([
      { seq: lock.seq, id: lock.id, result: 'duplicate', first: 'applied' },
      { seq: edit.seq, id: edit.id, result: 'duplicate', first: 'rejected', code: 'locked', message: 'This note is locked; only an owner can unlock it.' },
    ]);
    // Nothing ran again: the entity did not move, not even its server-stamped time.
    await server.setClock(CLOCK + 2000);
    expect(await send(alice, [lock])).toEqual([{ seq: lock.seq, id: lock.id, result: 'duplicate', first: 'applied' }]);
    expect(await entity(alice, alice.space, 'n1')).toEqual(unlocked);
  });

  test('the rule sees the writer: an editor may not delete another\'s note or unlock one; their own, they may', async () => {
    const space = (await call(server.base, '/v1/spaces', { token: alice.token, body: { name: 'Shared notes' } })).body.id;
    await call(server.base, `/v1/spaces/${space}/members`, { token: alice.token, body: { name: 'bob' } });
    await send(alice, [op('alice-phone', space, 'hers', 'put', { title: 'Hers', locked: false })]);
    const theirs = await send(bob, [
      op('bob-phone', space, 'hers', 'delete'),
      op('bob-phone', space, 'his', 'put', { title: 'His' }),
    ]);
    expect(theirs.map((r) => [r.result, r.code ?? null])).toEqual([['rejected', 'not_yours'], ['applied', null]]);
    expect((await entity(bob, space, 'his')).fields).toMatchObject({ created_by: bob.id, updated_by: bob.id });
    await send(alice, [op('alice-phone', space, 'hers', 'patch', { locked: true })]);
    const unlock = await send(bob, [op('bob-phone', space, 'hers', 'patch', { locked: false }), op('bob-phone', space, 'his', 'delete')]);
    expect(unlock.map((r) => [r.result, r.code ?? null])).toEqual([['rejected', 'locked'], ['applied', null]]);
    expect((await entity(bob, space, 'hers')).fields).toMatchObject({ title: 'Hers', locked: true, created_by: alice.id });
    expect(await entity(bob, space, 'his')).toBeNull();
  });

  test('a rule that throws or answers junk rejects only its op, rule_failed, and tells nothing of its error', async () => {
    const ops = [
      op('alice-laptop', alice.space, 'a', 'put', { title: 'fine' }),
      op('alice-laptop', alice.space, 'b', 'put', { title: 'boom' }),
      op('alice-laptop', alice.space, 'c', 'put', { title: 'bad' }),
      op('alice-laptop', alice.space, 'd', 'put', { title: 'also fine' }),
    ];
    const results = await send(alice, ops);
    expect(results.map((r) => [r.result, r.code ?? null])).toEqual([['applied', null], ['rejected', 'rule_failed'], ['rejected', 'rule_failed'], ['applied', null]]);
    expect(results[1]!.message).toContain("server's rule for notes failed");
    expect(JSON.stringify(results) + server.output()).not.toContain('secret-token-123');
    expect(await entity(alice, alice.space, 'b')).toBeNull();
    expect((await entity(alice, alice.space, 'd')).fields.title).toBe('also fine');
  });
});
