// Side effects exactly once per new op (invariant 10), on every runtime the server runs on: resends in any
// schedule (whole, straddling, over HTTP and the socket) record exactly one effect per applied op and
// handler; a duplicate, a viewer's op, a rejected or a superseded op record none; each recorded effect is
// delivered after the commit with the op id, retried with backoff until it succeeds, or `failed` after its
// attempts — visible in /healthz, /metrics and `ferry effect list`, and retried or dropped from the CLI.
// The handlers (tests/support/effect-fixtures.ts) log every call to a file, so the suite sees them from
// outside a Deno process too; the effects table is read from the database file.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fields, Op } from '../core/types.ts';
import { createAccounts } from '../server/accounts.ts';
import { openDatabase } from '../server/storage/db.ts';
import { runCli, type ServerProcess, spawnServer } from './support/cli-server.ts';
import { effectFixture, effectLines, untilLines } from './support/effect-fixtures.ts';
import { call, metric } from './support/http.ts';
import { command } from './support/runtimes.ts';
import type { TargetConfig } from './support/target-server.ts';
import { push, removeDir, startServer } from './support/server.ts';
import { helloSocket } from './support/socket.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

const OPTIONS = { retry: { baseMs: 20, capMs: 80 }, maxAttempts: 3, leaseMs: 5_000, timeoutMs: 4_000, pollMs: 50 };

for (const runtime of targets()) describe(`effects on ${runtime}`, () => {
  let server: Target;
  let alice: User;
  let carol: User;
  let log: string;
  const seqs = new Map<string, number>();
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-effects-'));
    log = join(dir, 'effects.log');
    server = await startTarget(runtime, { effectsLog: log, effectOptions: OPTIONS }, dir);
    alice = await server.user('alice');
    carol = await server.user('carol');
  });
  afterAll(async () => {
    await server.stop();
    removeDir(server.dir);
  });

  const op = (device: string, space: string, key: string, value: Fields, lamport?: number): Op => {
    const seq = (seqs.get(device) ?? 0) + 1;
    seqs.set(device, seq);
    return { id: `${device}:${seq}`, device, seq, lamport: lamport ?? seq * 10, space, collection: 'items', key, kind: 'patch', value, at: 0 };
  };
  const rows = async () => (await server.client.execute('SELECT op_id, name, status, attempts, last_error FROM effects ORDER BY op_id, name')).rows
    .map((r) => ({ op: String(r.op_id), name: String(r.name), status: String(r.status), attempts: Number(r.attempts), error: r.last_error }));
  const untilRows = async (done: (r: Awaited<ReturnType<typeof rows>>) => boolean, what: string) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const now = await rows();
      if (done(now)) return now;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(now)}`);
      await Bun.sleep(20);
    }
  };
  const ferry = (...args: string[]) => runCli([...args, '--db', server.dbUrl], {}, runtime, server.dir);

  test('resends in any schedule record one effect per applied op and handler; duplicates, viewers, rejections none', async () => {
    const space = (await call(server.base, '/v1/spaces', { token: alice.token, body: { name: 'Chores' } })).body.id;
    await call(server.base, `/v1/spaces/${space}/members`, { token: alice.token, body: { name: 'carol', role: 'viewer' } });
    const first = [op('a1', space, 'dishes', { title: 'Dishes' }), op('a1', space, 'bins', { title: 'Bins', assignee: 'bob' })];
    expect((await push(server.base, alice.token, 'a1', first)).body.results.map((r: any) => r.result)).toEqual(['applied', 'applied']);
    // The same batch again, then straddling with one new op, then over the socket: duplicates, one new.
    const next = op('a1', space, 'bins', { assignee: 'dana' });
    expect((await push(server.base, alice.token, 'a1', first)).body.results.map((r: any) => r.result)).toEqual(['duplicate', 'duplicate']);
    expect((await push(server.base, alice.token, 'a1', [...first, next])).body.results.map((r: any) => r.result)).toEqual(['duplicate', 'duplicate', 'applied']);
    const socket = await helloSocket(server.ws, alice.token, 'a1');
    socket.send({ type: 'push', rid: 1, device: 'a1', ops: [...first, next] });
    expect((await socket.next((f) => f.type === 'ack' && f.rid === 1)).results.map((r: any) => r.result)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    socket.close();
    // A patch that loses everywhere (an older lamport on the same field) is superseded: no effect.
    const stale = op('a2', space, 'bins', { assignee: 'erin' }, 1);
    expect((await push(server.base, alice.token, 'a2', [stale])).body.results[0].result).toBe('superseded');
    // A viewer's op is rejected read_only; an op over the limits is rejected: no effect either.
    const viewer = op('c1', space, 'dishes', { title: 'Mine now', assignee: 'carol' });
    expect((await push(server.base, carol.token, 'c1', [viewer])).body.results[0]).toMatchObject({ result: 'rejected', code: 'read_only' });
    const huge = op('a2', space, 'dishes', { title: 'x'.repeat(70_000) });
    expect((await push(server.base, alice.token, 'a2', [huge])).body.results[0]).toMatchObject({ result: 'rejected', code: 'too_large' });

    const expected = [
      { op: 'a1:1', name: 'audit' }, { op: 'a1:2', name: 'audit' }, { op: 'a1:2', name: 'notify_assignee' },
      { op: 'a1:3', name: 'audit' }, { op: 'a1:3', name: 'notify_assignee' },
    ];
    const settled = await untilRows((r) => r.length >= expected.length && r.every((x) => x.status === 'done'), 'every effect delivered');
    expect(settled.map(({ op: o, name }) => ({ op: o, name }))).toEqual(expected);
    expect(settled.every((r) => r.attempts === 1)).toBe(true);
    // Each handler saw each op id once, with what changed.
    const done = effectLines(log).filter((l) => l.phase === 'done');
    expect(done.map((l) => `${l.id} ${l.name}`).sort()).toEqual(expected.map((e) => `${e.op} ${e.name}`).sort());
    expect(done.filter((l) => l.name === 'notify_assignee').map((l) => [l.id, l.assignee])).toEqual([['a1:2', 'bob'], ['a1:3', 'dana']]);
    const metrics = (await call(server.base, '/metrics')).text;
    expect([metric(metrics, 'ferry_effects_pending'), metric(metrics, 'ferry_effects_failed')]).toEqual([0, 0]);
  }, 60_000);

  test('a failing handler is retried with backoff and the same id until it succeeds', async () => {
    const flaky = op('a3', alice.space, 'flaky', { flaky: 2 });
    expect((await push(server.base, alice.token, 'a3', [flaky])).body.results[0].result).toBe('applied');
    const lines = await untilLines(log, (l) => l.some((x) => x.id === flaky.id && x.phase === 'done'), 'the third attempt');
    expect(lines.filter((l) => l.id === flaky.id).map((l) => [l.attempt, l.phase])).toEqual([[1, 'start'], [2, 'start'], [3, 'start'], [3, 'done']]);
    const row = (await untilRows((r) => r.find((x) => x.op === flaky.id)?.status === 'done', 'flaky done')).find((x) => x.op === flaky.id)!;
    expect(row).toMatchObject({ status: 'done', attempts: 3, error: null });
  }, 60_000);

  test('one that keeps failing is failed: /healthz and /metrics say so, the CLI lists, retries and drops it', async () => {
    const doomed = op('a4', alice.space, 'doomed', { secret: true });
    await push(server.base, alice.token, 'a4', [doomed]);
    const failed = (await untilRows((r) => r.find((x) => x.op === doomed.id)?.status === 'failed', 'failed')).find((x) => x.op === doomed.id)!;
    expect(failed).toMatchObject({ attempts: 3, error: 'the handler threw Error' });
    const health = (await call(server.base, '/healthz')).body;
    expect(health).toMatchObject({ ok: true, effects: 'failing', effectsFailed: 1, effectsPending: 0 });
    expect(metric((await call(server.base, '/metrics')).text, 'ferry_effects_failed')).toBe(1);
    const listed = await ferry('effect', 'list', '--status', 'failed');
    expect(listed).toContain(`${doomed.id}\taudit\tfailed\t3 attempts`);
    expect(listed).toContain('the handler threw Error');
    expect(`${listed}${server.output()}${JSON.stringify(health)}`).not.toContain('secret-xyz-789');

    expect(await ferry('effect', 'retry', doomed.id)).toContain('1 effect pending again');
    const starts = () => effectLines(log).filter((l) => l.id === doomed.id).length;
    await untilLines(log, () => starts() >= 6, 'three more attempts after the retry');
    await untilRows((r) => r.find((x) => x.op === doomed.id)?.status === 'failed', 'failed again');
    expect(await ferry('effect', 'drop', doomed.id, 'audit')).toContain('dropped 1 effect');
    expect((await call(server.base, '/healthz')).body).toMatchObject({ effects: 'ok', effectsFailed: 0 });
    expect((await rows()).find((x) => x.op === doomed.id)!.status).toBe('dropped');
    expect(starts()).toBe(6);
  }, 90_000);
});

// A separate server process (tests/support/target-server.ts on the runtime) killed with SIGKILL twice: first
// after its commit and before any delivery (an instance that records but does not deliver: there is no
// window to aim for), then in the middle of a handler that never returns on its first attempt.
for (const runtime of targets()) describe(`effects across kill -9 on ${runtime}`, () => {
  let dir: string;
  let current: ServerProcess | null = null;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-effects-kill-'));
  });
  afterAll(async () => {
    if (current) await kill(current);
    removeDir(dir);
  });
  const log = () => join(dir, 'effects.log');
  const dbUrl = () => `file:${join(dir, 'ferry.db')}`;
  const spawn = async (deliver: boolean) => {
    const config: TargetConfig = { db: dbUrl(), effectsLog: log(), effectOptions: { ...OPTIONS, leaseMs: 1500, timeoutMs: 1000, deliver } };
    current = await spawnServer(command(runtime, 'tests/support/target-server.ts', [JSON.stringify(config)], dir));
    return current;
  };
  const kill = async (server: ServerProcess) => {
    server.proc.kill('SIGKILL');
    await server.proc.exited;
    current = null;
  };
  const rowsOf = async () => {
    const database = await openDatabase(dbUrl());
    try {
      return (await database.client.execute('SELECT op_id, status, attempts FROM effects ORDER BY op_id')).rows.map((r) => [String(r.op_id), String(r.status), Number(r.attempts)]);
    } finally {
      database.close();
    }
  };

  test('every effect is delivered after the restarts, none lost; the killed handler runs again with the same id', async () => {
    const first = await spawn(false);
    const database = await openDatabase(dbUrl());
    const accounts = createAccounts(database.db);
    const user = await accounts.addUser('alice', 'alice-password', Date.now());
    const token = await accounts.createToken(user.id, 'test', Date.now(), null);
    database.close();
    const ops: Op[] = [
      { id: 'k1:1', device: 'k1', seq: 1, lamport: 1, space: `u:${user.id}`, collection: 'items', key: 'plain', kind: 'put', value: { title: 'plain' }, at: 0 },
      { id: 'k1:2', device: 'k1', seq: 2, lamport: 2, space: `u:${user.id}`, collection: 'items', key: 'stuck', kind: 'put', value: { hang: true }, at: 0 },
    ];
    expect((await push(first.base, token, 'k1', ops)).body.results.map((r: any) => r.result)).toEqual(['applied', 'applied']);
    await kill(first);
    expect(await rowsOf()).toEqual([['k1:1', 'pending', 0], ['k1:2', 'pending', 0]]);
    expect(effectLines(log())).toEqual([]);

    // Restarted, it delivers both; the second handler hangs, and the process is killed in it.
    const second = await spawn(true);
    await untilLines(log(), (l) => l.some((x) => x.id === 'k1:1' && x.phase === 'done') && l.some((x) => x.id === 'k1:2'), 'both deliveries begun');
    await kill(second);
    expect(await rowsOf()).toEqual([['k1:1', 'done', 1], ['k1:2', 'pending', 1]]);

    // The next start takes the stuck one once its lease ran out: attempt 2, the same id, and it finishes.
    const third = await spawn(true);
    const lines = await untilLines(log(), (l) => l.some((x) => x.id === 'k1:2' && x.phase === 'done'), 'the stuck effect delivered again');
    // Each handler saw each op id once, or, after the kill mid-handler, again with the same id.
    expect(lines.map((l) => `${l.id} ${l.attempt} ${l.phase}`).sort()).toEqual(['k1:1 1 done', 'k1:1 1 start', 'k1:2 1 start', 'k1:2 2 done', 'k1:2 2 start']);
    expect(lines.filter((l) => l.id === 'k1:2').map((l) => `${l.attempt} ${l.phase}`)).toEqual(['1 start', '2 start', '2 done']);
    const deadline = Date.now() + 10_000;
    while ((await rowsOf()).some((r) => r[1] !== 'done') && Date.now() < deadline) await Bun.sleep(20);
    expect(await rowsOf()).toEqual([['k1:1', 'done', 1], ['k1:2', 'done', 2]]);
    await third.stop();
    current = null;
  }, 120_000);
});

// Two instances on one database file (the scale-out setup, here in one process): both deliver, each
// effect runs on one of them, once — the claim is one UPDATE under the database's write lock.
describe('effects with two instances on one file', () => {
  test('each effect is delivered by exactly one instance, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-effects-two-'));
    const log = join(dir, 'effects.log');
    const deps = { effects: effectFixture(log), effectOptions: { ...OPTIONS, pollMs: 10 } };
    const one = await startServer({ ...deps, instance: 'one' }, dir);
    const two = await startServer({ ...deps, instance: 'two' }, dir);
    try {
      const alice = await one.user('alice');
      const ops: Op[] = Array.from({ length: 60 }, (_, i) => ({
        id: `t:${i + 1}`, device: 't', seq: i + 1, lamport: i + 1, space: alice.space, collection: 'items', key: `k${i}`, kind: 'put', value: { n: i, slow: 30 }, at: 0,
      }));
      // Pushed to both instances in turns, 10 ops a batch, so both commit and both are kicked; each handler
      // takes 30 ms, long enough for the other instance to look for due effects several times meanwhile.
      for (let b = 0; b < 6; b++) {
        const answer = await push((b % 2 === 0 ? one : two).base, alice.token, 't', ops.slice(b * 10, b * 10 + 10));
        expect(answer.body.results.every((r: any) => r.result === 'applied')).toBe(true);
      }
      const lines = await untilLines(log, (l) => l.filter((x) => x.phase === 'done').length >= 60, 'sixty deliveries');
      const done = lines.filter((l) => l.phase === 'done' && l.name === 'audit').map((l) => l.id);
      expect(done.sort()).toEqual(ops.map((o) => o.id).sort()); // each once: no id twice, none missing
      expect(lines.every((l) => l.attempt === 1)).toBe(true);
    } finally {
      await two.stop();
      await one.stop();
      removeDir(dir);
    }
  }, 60_000);
});
