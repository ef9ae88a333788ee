// Exactly-once, ordering and merge through the real server: resends of any shape change nothing,
// gaps and lamport regressions are refused with what the device needs, concurrent edits merge.
// Runs against the server on every runtime (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { applyOp } from '../core/merge.ts';
import type { Doc, Op } from '../core/types.ts';
import { push, removeDir } from './support/server.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

for (const runtime of targets()) describe(`the apply path on ${runtime}`, () => {
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

  const snapshot = async (space: string) => {
    const res = await fetch(`${server.base}/v1/snapshot?space=${encodeURIComponent(space)}&limit=1000`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    const body = (await res.json()) as any;
    return new Map<string, Doc>(body.entities.map((e: any) => [`${e.collection}/${e.key}`, { fields: e.fields, stamps: e.stamps, base: e.base, live: e.live, deleted: e.deleted }]));
  };

  let run = 0;
  describe('exactly once', () => {
    test('any schedule of whole and partial resends gives the first results and one application', async () => {
      const opArb = fc.record({
        key: fc.constantFrom('a', 'b', 'c'),
        kind: fc.constantFrom('put', 'patch', 'patch', 'delete'),
        field: fc.constantFrom('x', 'y'),
        value: fc.integer({ min: 0, max: 9 }),
      });
      await fc.assert(fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.array(fc.tuple(fc.nat(30), fc.integer({ min: 1, max: 8 })), { maxLength: 12 }),
        async (specs, resends) => {
          const device = `resend_${run++}`;
          const ops: Op[] = specs.map((s, i) => ({
            id: `${device}:${i + 1}`, device, seq: i + 1, lamport: i + 1, space: alice.space, collection: device,
            key: s.key, kind: s.kind as Op['kind'], ...(s.kind === 'delete' ? {} : { value: { [s.field]: s.value } }), at: 0,
          }));
          const first = new Map<number, string>();
          let through = 0;
          const record = (results: any[]) => {
            for (const res of results) {
              if (res.result === 'duplicate') expect(res.first).toBe(first.get(res.seq)!);
              else {
                expect(first.has(res.seq)).toBe(false); // processed once, never twice
                first.set(res.seq, res.result);
              }
            }
          };
          // Interleave: send the next fresh chunk, then a random (possibly stale, possibly gapped) range.
          for (let i = 0; i < ops.length || resends.length > 0; ) {
            if (i < ops.length) {
              const chunk = ops.slice(i, i + 4);
              const r = await push(server.base, alice.token, device, chunk);
              expect(r.status).toBe(200);
              record(r.body.results);
              through = r.body.through;
              i += chunk.length;
            }
            const next = resends.shift();
            if (!next) continue;
            const start = next[0] % ops.length;
            const range = ops.slice(start, start + next[1]);
            const r = await push(server.base, alice.token, device, range);
            if (range[0]!.seq > through + 1) {
              expect(r.status).toBe(409);
              expect(r.body).toMatchObject({ code: 'seq_gap', expected: through + 1 });
              continue;
            }
            expect(r.status).toBe(200);
            for (const res of r.body.results) expect(res.result === 'duplicate').toBe(res.seq <= through);
            record(r.body.results);
            through = r.body.through;
          }
          // The server's state is what one clean application of every op gives.
          const expected = new Map<string, Doc>();
          for (const op of ops) {
            const k = `${device}/${op.key}`;
            expected.set(k, applyOp(expected.get(k) ?? null, op).doc);
          }
          const live = [...expected].filter(([, d]) => !d.deleted);
          const actual = [...(await snapshot(alice.space))].filter(([k]) => k.startsWith(`${device}/`));
          expect(new Map(actual)).toEqual(new Map(live));
        },
      ), { numRuns: 40, seed: 20261123 });
    }, 60_000);

    test('a regressed lamport is refused with the floor, and nothing of the batch is written', async () => {
      const device = 'lamport-a';
      const op = (seq: number, lamport: number): Op => ({
        id: `${device}:${seq}`, device, seq, lamport, space: alice.space, collection: 'items', key: `l${seq}`, kind: 'put', value: { n: seq }, at: 0,
      });
      expect((await push(server.base, alice.token, device, [op(1, 10)])).status).toBe(200);
      const refused = await push(server.base, alice.token, device, [op(2, 11), op(3, 10)]);
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'lamport_regression', floor: 10 });
      expect((await snapshot(alice.space)).has('items/l2')).toBe(false);
      const ok = await push(server.base, alice.token, device, [op(2, 11), op(3, 12)]);
      expect(ok.body.through).toBe(3);
      expect(ok.body.lamport).toBeGreaterThanOrEqual(12);
    });

    // The lookup does not probe op ids; the ledger's unique index finds a taken one and the group is
    // planned again (server/storage/sync-store.ts commitTaking). These pin what the device sees.
    const idOp = (device: string, seq: number, id: string, key: string): Op => ({
      id, device, seq, lamport: seq, space: alice.space, collection: 'ids', key, kind: 'put', value: { n: seq }, at: 0,
    });

    test('an op reusing another op\'s id is rejected, consumes its seq, writes nothing, and a resend gets the same answer', async () => {
      expect((await push(server.base, alice.token, 'ids-a', [idOp('ids-a', 1, 'taken-id', 'first')])).body.results[0].result).toBe('applied');
      const batch = [idOp('ids-b', 1, 'fresh-b1', 'b1'), idOp('ids-b', 2, 'taken-id', 'stolen'), idOp('ids-b', 3, 'fresh-b3', 'b3')];
      const sent = await push(server.base, alice.token, 'ids-b', batch);
      expect(sent.status).toBe(200);
      expect(sent.body.through).toBe(3);
      expect(sent.body.results.map((r: any) => [r.result, r.code ?? null])).toEqual([['applied', null], ['rejected', 'invalid'], ['applied', null]]);
      expect(sent.body.results[1].message).toContain('taken-id');
      const docs = await snapshot(alice.space);
      expect([docs.has('ids/first'), docs.has('ids/b1'), docs.has('ids/stolen'), docs.has('ids/b3')]).toEqual([true, true, false, true]);
      const again = await push(server.base, alice.token, 'ids-b', batch);
      expect(again.body.results.map((r: any) => [r.result, r.first, r.code ?? null])).toEqual([
        ['duplicate', 'applied', null], ['duplicate', 'rejected', 'invalid'], ['duplicate', 'applied', null]]);
    });

    test('a taken id past the first 512 ledger rows of a group is found too, and nothing of the first attempt stays', async () => {
      const many = (device: string, count: number) => Array.from({ length: count }, (_, i) => idOp(device, i + 1, `${device}:${i + 1}`, `${device}-${i + 1}`));
      const c = many('ids-c', 300);
      const d = many('ids-d', 300);
      d[279] = { ...d[279]!, id: 'taken-id' }; // the group's 580th ledger row: in the second insert statement
      const { outcomes } = await server.store.commitGroup([{ userId: alice.id, device: 'ids-c', ops: c }, { userId: alice.id, device: 'ids-d', ops: d }], Date.now());
      const kinds = outcomes.map((o) => (o.ok ? o.results.map((r) => r.result) : o.error.code));
      expect(kinds[0]).toEqual(Array(300).fill('applied'));
      expect(kinds[1]).toEqual([...Array(279).fill('applied'), 'rejected', ...Array(20).fill('applied')]);
      const ledger = await server.client.execute("SELECT count(*) AS n, count(op_id) AS ids FROM ops WHERE device IN ('ids-c', 'ids-d')");
      expect([Number(ledger.rows[0]!.n), Number(ledger.rows[0]!.ids)]).toEqual([600, 599]);
      const docs = await snapshot(alice.space);
      expect([docs.has('ids/ids-d-279'), docs.has('ids/ids-d-280'), docs.has('ids/ids-d-281')]).toEqual([true, false, true]);
    });
  });

  describe('merge through the server', () => {
    const edit = (device: string, seq: number, lamport: number, value: Record<string, unknown>): Op => ({
      id: `${device}:${seq}`, device, seq, lamport, space: alice.space, collection: 'shared', key: 'milk', kind: 'patch', value: value as any, at: 0,
    });

    test('two devices editing different fields of one entity both survive', async () => {
      await push(server.base, alice.token, 'phone', [edit('phone', 1, 5, { title: 'Oat milk' })]);
      await push(server.base, alice.token, 'laptop', [edit('laptop', 1, 5, { done: true })]);
      const doc = (await snapshot(alice.space)).get('shared/milk')!;
      expect(doc.fields).toEqual({ title: 'Oat milk', done: true });
    });

    test('the same field resolves by (lamport, device) whatever the arrival order', async () => {
      const names = ['zed', 'amy'];
      const results: unknown[] = [];
      for (const order of [names, [...names].reverse()]) {
        const key = `tie-${order.join('-')}`;
        for (const device of order) {
          const d = `${device}-${key}`;
          await push(server.base, alice.token, d, [{ ...edit(d, 1, 7, { title: device }), key }]);
        }
        results.push((await snapshot(alice.space)).get(`shared/${key}`)!.fields.title);
      }
      // Equal lamports: the larger device id wins, in both arrival orders.
      expect(results).toEqual(['zed', 'zed']);
    });
  });

  describe('heads (derived from the rows, schema/tables.ts `meta`)', () => {
    test('after a restart, and after purging the tombstone that held the newest serverSeq, no number is handed out twice', async () => {
      const own = await startTarget(runtime);
      try {
        const bob = await own.user('bob');
        const device = 'heads-a';
        const op = (seq: number, kind: Op['kind'], key: string): Op => ({
          id: `${device}:${seq}`, device, seq, lamport: 100 + seq, space: bob.space, collection: 'items', key, kind,
          ...(kind === 'delete' ? {} : { value: { n: seq } }), at: 0,
        });
        await push(own.base, bob.token, device, [op(1, 'put', 'a'), op(2, 'put', 'b'), op(3, 'delete', 'b')]);
        const before = await own.store.heads();
        expect(before).toEqual({ serverSeq: 3, lamport: 103 }); // b's tombstone holds seq 3
        expect(await own.store.purgeTombstones(Date.now() + 1)).toBe(1);
        // A fresh process derives the heads from the file: the purged 3 must not come back.
        await own.stop();
        const again = await startTarget(runtime, {}, own.dir);
        try {
          expect(await again.store.heads()).toEqual({ serverSeq: 3, lamport: 103 });
          const next = await push(again.base, bob.token, device, [op(4, 'put', 'c')]);
          expect(next.body).toMatchObject({ through: 4, lamport: 104 });
          const page = await fetch(`${again.base}/v1/snapshot?space=${encodeURIComponent(bob.space)}`, {
            headers: { authorization: `Bearer ${bob.token}` },
          }).then((r) => r.json() as Promise<any>);
          expect(page.entities.map((e: any) => [e.key, e.serverSeq])).toEqual([['a', 1], ['c', 4]]);
        } finally {
          await again.stop();
        }
      } finally {
        removeDir(own.dir);
      }
    });
  });
});
