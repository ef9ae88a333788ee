// Apply, resend and gap over HTTP, on every runtime the server runs on (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { makeOps, push, removeDir } from './support/server.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

for (const runtime of targets()) describe(`POST /v1/push on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  beforeAll(async () => {
    server = await startTarget(runtime);
    alice = await server.user('alice');
  });
  afterAll(async () => {
    await server.stop();
    removeDir(server.dir);
  });

  test('applies a batch, then answers a resend with the first results and changes nothing', async () => {
    const ops = makeOps('dev-a', alice.space, 1, 5);
    const first = await push(server.base, alice.token, 'dev-a', ops);
    expect(first.status).toBe(200);
    expect(first.body.through).toBe(5);
    expect(first.body.results.map((r: any) => r.result)).toEqual(Array(5).fill('applied'));
    const head = (await server.store.heads()).serverSeq;
    const again = await push(server.base, alice.token, 'dev-a', ops);
    expect(again.body.results.map((r: any) => [r.result, r.first])).toEqual(Array(5).fill(['duplicate', 'applied']));
    expect((await server.store.heads()).serverSeq).toBe(head);
  });

  test('refuses a gap with the expected seq, and the resend from there succeeds', async () => {
    const gap = await push(server.base, alice.token, 'dev-b', makeOps('dev-b', alice.space, 3, 2));
    expect(gap.status).toBe(409);
    expect(gap.body).toMatchObject({ code: 'seq_gap', expected: 1 });
    const ok = await push(server.base, alice.token, 'dev-b', makeOps('dev-b', alice.space, 1, 4));
    expect(ok.status).toBe(200);
    expect(ok.body.through).toBe(4);
  });
});
