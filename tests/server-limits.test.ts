// DESIGN invariant 7 against a real listening server: a malformed envelope is refused whole with
// `{ code, message }` and changes nothing; a well-formed op that breaks a limit is `rejected` alone and
// consumes its seq; rate limits, frame floods, health, metrics and unknown routes. On every runtime the
// server runs on (tests/support/targets.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Op } from '../core/types.ts';
import { call, fingerprint, metric } from './support/http.ts';
import { makeOps, push, removeDir } from './support/server.ts';
import { helloSocket, openSocket, type TestSocket } from './support/socket.ts';
import { startTarget, targets, type Target, type User } from './support/targets.ts';

for (const runtime of targets()) describe(`limits and malformed input on ${runtime}`, () => {
  const MiB = 1024 * 1024;
  let server: Target;
  let alice: User;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    server = await startTarget(runtime);
    alice = await server.user('alice');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server.stop();
    removeDir(server.dir);
  });

  const track = (s: TestSocket) => (sockets.push(s), s);
  /** makeOps with a key of its own per op, so every op is `applied`. */
  const opsOf = (device: string, space: string, seq: number, count: number, patch: Partial<Op> = {}): Op[] =>
    makeOps(device, space, seq, count).map((op) => ({ ...op, key: `${device}/${op.seq}`, ...patch }));
  const rawPush = (body: string, token = alice.token, headers: Record<string, string> = {}) =>
    call(server.base, '/v1/push', { token, body, headers });
  /** A value that is `levels` objects deep: the value object itself is level 1 (core/validate.ts). */
  const nested = (levels: number) => {
    let value: any = 1;
    for (let i = 0; i < levels; i++) value = { d: value };
    return value as Op['value'];
  };

  async function tableNames(s: Target): Promise<string[]> {
    const r = await s.client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    return r.rows.map((row) => String(row.name));
  }

  describe('a malformed envelope is refused whole and changes nothing', () => {
    const dev = 'env-dev';
    beforeAll(async () => {
      // The device has history, so "unchanged" also covers its seq and lamport watermarks.
      expect((await push(server.base, alice.token, dev, opsOf(dev, alice.space, 1, 3))).body.through).toBe(3);
    });

    const good = (seq = 4, count = 1) => opsOf(dev, alice.space, seq, count);
    const body = (over: Record<string, unknown> = {}, ops: unknown[] = good()) => JSON.stringify({ protocol: 1, device: dev, ops, ...over });
    const withOp = (change: Record<string, unknown>) => body({}, [{ ...good()[0], ...change }]);
    const without = (field: string) => {
      const { [field as keyof Op]: _, ...rest } = good()[0]!;
      return body({}, [rest]);
    };

    const cases: Array<[string, () => string, number, string]> = [
      ['not JSON', () => '{"protocol":1,"device":', 400, 'invalid'],
      ['an empty body', () => '', 400, 'invalid'],
      ['JSON null', () => 'null', 400, 'invalid'],
      ['a JSON array', () => '[]', 400, 'invalid'],
      ['another protocol version', () => body({ protocol: 2 }), 400, 'invalid'],
      ['protocol as a string', () => body({ protocol: '1' }), 400, 'invalid'],
      ['device as a number', () => body({ device: 7 }), 400, 'invalid'],
      ['ops as an object', () => body({ ops: { 0: good()[0] } }), 400, 'invalid'],
      ['no ops', () => body({}, []), 400, 'invalid'],
      ['an unknown top-level field', () => body({ extra: true }), 400, 'invalid'],
      ['an unknown op field', () => withOp({ extra: 1 }), 400, 'invalid'],
      ['an op without seq', () => without('seq'), 400, 'invalid'],
      ['an op without kind', () => without('kind'), 400, 'invalid'],
      ['seq as a string', () => withOp({ seq: '4' }), 400, 'invalid'],
      ['seq 0', () => withOp({ seq: 0 }), 400, 'invalid'],
      ['a fractional seq', () => withOp({ seq: 4.5 }), 400, 'invalid'],
      ['seq above 2^53-1', () => withOp({ seq: 2 ** 53 }), 400, 'invalid'],
      ['lamport -1', () => withOp({ lamport: -1 }), 400, 'invalid'],
      ['lamport 0', () => withOp({ lamport: 0 }), 400, 'invalid'],
      ['an unknown kind', () => withOp({ kind: 'upsert' }), 400, 'invalid'],
      ['a string value', () => withOp({ value: 'x' }), 400, 'invalid'],
      ['a null value', () => withOp({ value: null }), 400, 'invalid'],
      ['at as a string', () => withOp({ at: 'now' }), 400, 'invalid'],
      ['an op of another device', () => body({}, [...good(4, 1), ...opsOf('someone-else', alice.space, 5, 1)]), 400, 'invalid'],
      ['non-consecutive seqs', () => body({}, [...good(4, 1), ...good(6, 1)]), 400, 'invalid'],
      ['seqs in reverse', () => body({}, [...good(5, 1), ...good(4, 1)]), 400, 'invalid'],
      ['501 ops', () => body({}, good(4, 501)), 413, 'too_large'],
      ['a body over 1 MiB', () => {
        // 20 ops each well under the value limit: well-formed except for the batch's size.
        const ops = good(4, 20).map((op) => ({ ...op, value: { pad: 'x'.repeat(60_000) } }));
        return body({}, ops);
      }, 413, 'too_large'],
    ];

    test.each(cases.map(([name, make, status, code]) => [`${name} → ${status} ${code}`, make, status, code] as const))('%s', async (_name, make, status, code) => {
      const before = await fingerprint(server);
      const text = make();
      const r = await rawPush(text);
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toContain('application/json');
      expect(r.body).toMatchObject({ code });
      expect(typeof r.body.message).toBe('string');
      expect(r.body.message.length).toBeGreaterThan(0);
      expect(r.body.results).toBeUndefined();
      expect(await fingerprint(server)).toEqual(before);
      expect(await server.store.device(dev)).toMatchObject({ lastSeq: 3, maxLamport: 3 });
    });

    test('the 1 MiB limit is exact: a body of 1 MiB is processed, 1 MiB + 1 byte is 413', async () => {
      const sized = (bytes: number, seq: number) => {
        const ops = opsOf(dev, alice.space, seq, 17).map((op) => ({ ...op, value: { pad: '' } }));
        const bare = Buffer.byteLength(body({}, ops));
        const share = Math.floor((bytes - bare) / ops.length);
        ops.forEach((op, i) => (op.value = { pad: 'y'.repeat(share + (i === 0 ? bytes - bare - share * ops.length : 0)) }));
        const text = body({}, ops);
        expect(Buffer.byteLength(text)).toBe(bytes);
        return text;
      };
      const before = await fingerprint(server);
      const over = await rawPush(sized(MiB + 1, 4));
      expect(over.status).toBe(413);
      expect(over.body).toMatchObject({ code: 'too_large' });
      expect(await fingerprint(server)).toEqual(before);
      const exact = await rawPush(sized(MiB, 4));
      expect(exact.status).toBe(200);
      expect(exact.body.through).toBe(20);
      expect(exact.body.results.every((r: any) => r.result === 'applied')).toBe(true);
    });

    test('a chunked body with no Content-Length is bounded too', async () => {
      const before = await fingerprint(server);
      const chunk = new TextEncoder().encode(`{"protocol":1,"device":"${dev}","ops":[],"pad":"${'z'.repeat(64 * 1024)}`);
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 2 * MiB) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(`${server.base}/v1/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: stream,
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ code: 'too_large' });
      expect(await fingerprint(server)).toEqual(before);
    });

    test('a refused envelope leaves the device where it was: the next good batch is accepted at once', async () => {
      const now = (await server.store.device(dev))!.lastSeq;
      const r = await push(server.base, alice.token, dev, good(now + 1, 2));
      expect(r.status).toBe(200);
      expect(r.body.through).toBe(now + 2);
    });

    test('the socket refuses a 501-op push with too_large and a malformed one with invalid, writing nothing', async () => {
      const sdev = 'env-socket';
      const s = track(await helloSocket(server.ws, alice.token, sdev));
      const before = await fingerprint(server);
      s.send({ type: 'push', rid: 1, device: sdev, ops: opsOf(sdev, alice.space, 1, 501) });
      expect(await s.next((f) => f.rid === 1)).toMatchObject({ type: 'error', code: 'too_large' });
      s.send({ type: 'push', rid: 2, device: sdev, ops: [{ ...opsOf(sdev, alice.space, 1, 1)[0], seq: 0 }] });
      expect(await s.next((f) => f.type === 'error' && f.code === 'invalid')).toMatchObject({ code: 'invalid' });
      s.send({ type: 'ping', t: 1 });
      await s.next((f) => f.type === 'pong');
      expect(await fingerprint(server)).toEqual(before);
      s.send({ type: 'push', rid: 3, device: sdev, ops: opsOf(sdev, alice.space, 1, 2) });
      expect(await s.next((f) => f.rid === 3)).toMatchObject({ type: 'ack', through: 2 });
    });
  });

  describe('a well-formed op that breaks a limit is rejected alone and consumes its seq', () => {
    const dev = 'rej-dev';
    let seq = 0;
    /** Pushes one op at the next seq; returns its result. */
    async function one(patch: Partial<Op>) {
      seq += 1;
      const r = await push(server.base, alice.token, dev, opsOf(dev, alice.space, seq, 1, patch));
      expect(r.status).toBe(200);
      expect(r.body.through).toBe(seq);
      return r.body.results[0];
    }

    const rejections: Array<[string, Partial<Op>, string]> = [
      ['a collection name with capitals and a dash', { collection: 'Bad-Name' }, 'invalid'],
      ['a collection name that looks like SQL', { collection: 'entities; DROP TABLE ops' }, 'invalid'],
      ['a field name that looks like SQL', { value: { 'x; DROP TABLE entities': 1 } }, 'invalid'],
      ['a field name with a quote', { value: { "x') --": 1 } }, 'invalid'],
      ['a 65 KiB value', { value: { text: 'x'.repeat(65 * 1024) } }, 'too_large'],
      ['a value of 64 KiB + 1 byte', { value: { v: 'x'.repeat(64 * 1024 - 8 + 1) } }, 'too_large'],
      ['40 levels of nesting', { value: nested(40) }, 'invalid'],
      ['33 levels of nesting', { value: nested(33) }, 'invalid'],
      ['a key over 128 bytes', { key: 'k'.repeat(129) }, 'too_large'],
      ['an empty key', { key: '' }, 'invalid'],
      ['a put without a value', { kind: 'put', value: undefined }, 'invalid'],
      ['a delete with a value', { kind: 'delete', value: { a: 1 } }, 'invalid'],
      ["a space that is not the user's (SQL-looking)", { space: "u:x'; DROP TABLE members; --" }, 'forbidden'],
    ];

    test.each(rejections.map(([name, patch, code]) => [`${name} → rejected ${code}, the next seq is applied`, patch, code] as const))('%s', async (_name, patch, code) => {
      const tablesBefore = await tableNames(server);
      const head = (await server.store.heads()).serverSeq;
      const bad = await one(patch);
      expect(bad).toMatchObject({ seq, result: 'rejected', code });
      expect(typeof bad.message).toBe('string');
      expect((await server.store.heads()).serverSeq).toBe(head); // no entity written
      const ok = await one({ key: `after-${seq}` });
      expect(ok).toMatchObject({ seq, result: 'applied' });
      expect(await tableNames(server)).toEqual(tablesBefore);
      // The rejection is durable: a resend is answered with it.
      const again = await push(server.base, alice.token, dev, opsOf(dev, alice.space, seq - 1, 1, patch));
      expect(again.body.results[0]).toMatchObject({ result: 'duplicate', first: 'rejected', code });
    });

    test('the limits are exact: 64 KiB and 32 levels are applied', async () => {
      expect(await one({ value: { v: 'x'.repeat(64 * 1024 - 8) } })).toMatchObject({ result: 'applied' });
      expect(await one({ value: nested(32) })).toMatchObject({ result: 'applied' });
    });

    test('a mixed batch is decided op by op, and SQL in a key is stored as plain text', async () => {
      const start = seq + 1;
      const ops = [
        ...opsOf(dev, alice.space, start, 1),
        ...opsOf(dev, alice.space, start + 1, 1, { value: { 'x; DROP TABLE entities': 1 } }),
        ...opsOf(dev, alice.space, start + 2, 1, { key: "k'); DROP TABLE entities; --", value: { ok: true } }),
        ...opsOf(dev, alice.space, start + 3, 1, { value: nested(40) }),
        ...opsOf(dev, alice.space, start + 4, 1),
      ];
      seq = start + 4;
      const r = await push(server.base, alice.token, dev, ops);
      expect(r.body.through).toBe(seq);
      expect(r.body.results.map((x: any) => x.result)).toEqual(['applied', 'rejected', 'applied', 'rejected', 'applied']);
      const row = await server.client.execute({
        sql: 'SELECT value FROM entities WHERE space = ? AND key = ?',
        args: [alice.space, "k'); DROP TABLE entities; --"],
      });
      expect(JSON.parse(String(row.rows[0]!.value))).toEqual({ ok: true });
    });

    test('the database is intact afterwards', async () => {
      expect(await tableNames(server)).toEqual(expect.arrayContaining(['devices', 'entities', 'members', 'meta', 'ops', 'sessions', 'spaces', 'tokens', 'users']));
      const check = await server.client.execute('PRAGMA integrity_check');
      expect(String(check.rows[0]![0])).toBe('ok');
      const ledger = await server.client.execute({ sql: 'SELECT count(*) AS n FROM ops WHERE device = ?', args: [dev] });
      expect(Number(ledger.rows[0]!.n)).toBe(seq); // every seq, rejected or not, is in the ledger once
    });

    test('over the socket too: a 65 KiB value is rejected in the ack and the next seq is applied', async () => {
      const sdev = 'rej-socket';
      const s = track(await helloSocket(server.ws, alice.token, sdev));
      s.send({ type: 'push', rid: 1, device: sdev, ops: opsOf(sdev, alice.space, 1, 2).map((op, i) => (i === 0 ? { ...op, value: { t: 'x'.repeat(65 * 1024) } } : op)) });
      const ack = await s.next((f) => f.rid === 1);
      expect(ack).toMatchObject({ type: 'ack', through: 2 });
      expect(ack.results.map((r: any) => [r.result, r.code ?? null])).toEqual([['rejected', 'too_large'], ['applied', null]]);
    });
  });

  describe('rate limits', () => {
    // The limiter reads the server's clock (AppDeps.now), and this suite owns it: time stands still
    // unless a test moves it, so every bucket holds exactly what the limits say and nothing refills
    // behind a test's back. The socket frame limiter reads the same clock.
    const RATE = { pushesPerSecond: 2, opsPerSecond: 1000 };
    const BURST = 2 * RATE.pushesPerSecond;
    /** A push when its device's bucket is empty misses one whole push: 1 / rate seconds. */
    const EMPTY_WAIT_MS = 1000 / RATE.pushesPerSecond;
    let time = Date.now();
    let limited: Target;
    let bob: User;
    let carol: User;
    beforeAll(async () => {
      limited = await startTarget(runtime, { rateLimits: RATE, clock: time });
      bob = await limited.user('bob');
      carol = await limited.user('carol');
    });
    afterAll(async () => {
      await limited.stop();
      removeDir(limited.dir);
    });

    test('a device over its push rate gets 429 rate_limited with retryAfterMs and Retry-After, and writes nothing', async () => {
      const dev = 'fast-dev';
      let seq = 1;
      let refused: Awaited<ReturnType<typeof call>> | null = null;
      for (let i = 0; i < 20 && !refused; i++) {
        const r = await call(limited.base, '/v1/push', { token: bob.token, body: { protocol: 1, device: dev, ops: opsOf(dev, bob.space, seq, 1) } });
        if (r.status === 429) refused = r;
        else {
          expect(r.status).toBe(200);
          seq++;
        }
      }
      expect(refused).not.toBeNull();
      expect(seq - 1).toBe(BURST); // the burst is exactly twice the rate
      expect(refused!.body).toMatchObject({ code: 'rate_limited' });
      expect(typeof refused!.body.message).toBe('string');
      const wait = refused!.body.retryAfterMs;
      expect(wait).toBe(EMPTY_WAIT_MS);
      expect(refused!.headers.get('retry-after')).toBe(String(Math.ceil(wait / 1000)));
      expect(await limited.store.device(dev)).toMatchObject({ lastSeq: BURST });
      // Refused again while no time passes: a refusal spends nothing and earns nothing.
      const again = await push(limited.base, bob.token, dev, opsOf(dev, bob.space, seq, 1));
      expect(again.status).toBe(429);
      expect(again.body.retryAfterMs).toBe(wait);

      // Another device of the same user is not slowed down.
      const other = await push(limited.base, bob.token, 'calm-dev', opsOf('calm-dev', bob.space, 1, 1));
      expect(other.status).toBe(200);
      // After the advised wait the device is served again, from the seq it had reached, and only once.
      await limited.setClock((time += wait));
      const after = await push(limited.base, bob.token, dev, opsOf(dev, bob.space, seq, 1));
      expect(after.status).toBe(200);
      expect(after.body.through).toBe(seq);
      const next = await push(limited.base, bob.token, dev, opsOf(dev, bob.space, seq + 1, 1));
      expect(next.status).toBe(429);
      expect(next.body.retryAfterMs).toBe(EMPTY_WAIT_MS);
    });

    test('a socket push over the rate gets an error frame rate_limited with its rid', async () => {
      const dev = 'fast-socket';
      const s = track(await helloSocket(limited.ws, bob.token, dev));
      for (let i = 0; i < 8; i++) s.send({ type: 'push', rid: i, device: dev, ops: opsOf(dev, bob.space, i + 1, 1) });
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => s.next((f) => f.rid === i)));
      // Pushes are answered in order: the burst is acked, every push after it is refused with the wait.
      expect(answers.map((a) => a.type)).toEqual([...Array(BURST).fill('ack'), ...Array(8 - BURST).fill('error')]);
      answers.slice(0, BURST).forEach((a, i) => expect(a).toMatchObject({ through: i + 1 }));
      for (const a of answers.slice(BURST)) expect(a).toMatchObject({ code: 'rate_limited', retryAfterMs: EMPTY_WAIT_MS });
      expect(await limited.store.device(dev)).toMatchObject({ lastSeq: BURST });
    });

    test("another user cannot spend a device's rate limit by pushing under its id", async () => {
      const dev = 'carol-phone';
      expect((await push(limited.base, carol.token, dev, opsOf(dev, carol.space, 1, 1))).status).toBe(200);
      // Bob's pushes under carol's device id spend his own bucket for it: refused as forbidden while it
      // lasts, then rate limited.
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await push(limited.base, bob.token, dev, opsOf(dev, bob.space, 2, 1))).status);
      expect(statuses).toEqual([...Array(BURST).fill(403), ...Array(10 - BURST).fill(429)]);
      // Carol's bucket is as she left it, one push spent: the rest of her burst goes through, then 429.
      for (let seq = 2; seq <= BURST; seq++) {
        const own = await push(limited.base, carol.token, dev, opsOf(dev, carol.space, seq, 1));
        expect(own.status).toBe(200);
        expect(own.body.through).toBe(seq);
      }
      expect((await push(limited.base, carol.token, dev, opsOf(dev, carol.space, BURST + 1, 1))).status).toBe(429);
    });

    test('a socket frame flood is closed with 4429; other sockets and the server carry on', async () => {
      // 200 frames a second with a burst of 400 per socket (sync-socket.ts); hello was the first.
      const FRAME_BURST = 400;
      const s = await helloSocket(limited.ws, bob.token, 'flood-dev');
      const calm = track(await helloSocket(limited.ws, bob.token, 'calm-socket'));
      for (let i = 0; i < 1000 && s.ws.readyState === WebSocket.OPEN; i++) s.send({ type: 'ping', t: i });
      const closed = await Promise.race([s.closed, Bun.sleep(5000).then(() => null)]);
      expect(closed).toMatchObject({ code: 4429 });
      // With the clock standing still no frame budget came back: no ping past the burst was answered.
      const pongs = s.frames.filter((f) => f.type === 'pong');
      expect(pongs.length).toBeLessThanOrEqual(FRAME_BURST - 1);
      expect(pongs.every((f, i) => f.t === i)).toBe(true);
      calm.send({ type: 'ping', t: 42 });
      expect((await calm.next((f) => f.type === 'pong' && f.t === 42)).t).toBe(42);
      expect((await call(limited.base, '/healthz')).status).toBe(200);
    });

    test('the frame limit follows the push limit: with pushes raised to 500/s, 1,000 frames at one instant are answered', async () => {
      const raised = await startTarget(runtime, { rateLimits: { pushesPerSecond: 500, opsPerSecond: 1_000_000 }, clock: time });
      try {
        const { token } = await raised.user('dora');
        const s = await helloSocket(raised.ws, token, 'fast-socket');
        for (let i = 0; i < 1000; i++) s.send({ type: 'ping', t: i });
        await s.next((f) => f.type === 'pong' && f.t === 999);
        expect(s.ws.readyState).toBe(WebSocket.OPEN);
        s.close();
      } finally {
        await raised.stop();
        removeDir(raised.dir);
      }
    });
  });

  describe('sockets per user', () => {
    const LIMIT = 3;
    let capped: Target;
    let dan: User;
    let erin: User;
    beforeAll(async () => {
      capped = await startTarget(runtime, { maxSocketsPerUser: LIMIT });
      dan = await capped.user('dan');
      erin = await capped.user('erin');
    });
    afterAll(async () => {
      await capped.stop();
      removeDir(capped.dir);
    });

    test('one socket over the limit is told why and closed with 4429; the others, other users and a freed place are not', async () => {
      const open: TestSocket[] = [];
      for (let i = 0; i < LIMIT; i++) open.push(await helloSocket(capped.ws, dan.token, `dan-${i}`));
      const refused = await openSocket(capped.ws, dan.token);
      expect(await refused.closed).toMatchObject({ code: 4429, reason: 'too many sockets' });
      expect(refused.frames).toEqual([{ type: 'error', code: 'rate_limited', retryAfterMs: 30_000,
        message: `You have ${LIMIT} sync connections open to this server, the most it allows; close a tab or try again later.` }]);
      // The sockets already open carry on, and another user opens theirs.
      open[0]!.send({ type: 'ping', t: 1 });
      expect((await open[0]!.next((f) => f.type === 'pong')).t).toBe(1);
      const other = await helloSocket(capped.ws, erin.token, 'erin-0');
      let text = (await call(capped.base, '/metrics')).text;
      expect(metric(text, 'ferry_sockets_refused_total')).toBe(1);
      expect(metric(text, 'ferry_sockets_open')).toBe(LIMIT + 1);
      // A socket closed frees its place: once the server has let it go, a new one is welcomed.
      open[0]!.close();
      await open[0]!.closed;
      for (let round = 0; round < 200 && metric(text, 'ferry_sockets_open') !== LIMIT; round++) {
        await Bun.sleep(10);
        text = (await call(capped.base, '/metrics')).text;
      }
      expect(metric(text, 'ferry_sockets_open')).toBe(LIMIT);
      const again = await helloSocket(capped.ws, dan.token, 'dan-again');
      expect(again.frames[0]).toMatchObject({ type: 'welcome', user: dan.id });
      for (const s of [...open.slice(1), other, again]) s.close();
    });
  });

  describe('health, metrics and unknown routes', () => {
    let fresh: Target;
    let dave: User;
    beforeAll(async () => {
      fresh = await startTarget(runtime);
      dave = await fresh.user('dave');
    });
    afterAll(async () => {
      await fresh.stop();
      removeDir(fresh.dir);
    });

    test('GET /healthz answers ok with the head serverSeq, the change bus (in-process: always connected) and effects', async () => {
      const r = await call(fresh.base, '/healthz');
      expect(r.status).toBe(200);
      expect(r.body).toEqual({
        ok: true, serverSeq: (await fresh.store.heads()).serverSeq, bus: 'connected', effects: 'ok', effectsPending: 0, effectsFailed: 0,
      });
    });

    test('GET /metrics counts applied, duplicate, rejected ops and refused batches', async () => {
      const base = await call(fresh.base, '/metrics');
      expect(base.status).toBe(200);
      expect(base.headers.get('content-type')).toContain('text/plain');
      expect(base.text).toContain('# TYPE ferry_ops_applied_total counter');
      expect(metric(base.text, 'ferry_ops_applied_total')).toBe(0);

      const a = 'metrics-a';
      expect((await push(fresh.base, dave.token, a, opsOf(a, dave.space, 1, 5))).status).toBe(200); // 5 applied
      expect((await push(fresh.base, dave.token, a, opsOf(a, dave.space, 1, 5))).status).toBe(200); // 5 duplicate
      expect((await push(fresh.base, dave.token, a, opsOf(a, dave.space, 6, 2, { collection: 'Nope' }))).status).toBe(200); // 2 rejected
      expect((await push(fresh.base, dave.token, a, opsOf(a, dave.space, 9, 1))).status).toBe(409); // refused: gap
      const s = await helloSocket(fresh.ws, dave.token, 'metrics-b');
      s.send({ type: 'push', rid: 1, device: 'metrics-b', ops: opsOf('metrics-b', dave.space, 1, 3) }); // 3 applied
      await s.next((f) => f.rid === 1);
      // A malformed envelope never reaches apply and is not counted as a batch.
      expect((await call(fresh.base, '/v1/push', { token: dave.token, body: '{' })).status).toBe(400);

      const text = (await call(fresh.base, '/metrics')).text;
      expect(metric(text, 'ferry_ops_applied_total')).toBe(8);
      expect(metric(text, 'ferry_ops_duplicate_total')).toBe(5);
      expect(metric(text, 'ferry_ops_rejected_total')).toBe(2);
      expect(metric(text, 'ferry_batches_total')).toBe(5);
      expect(metric(text, 'ferry_batches_refused_total')).toBe(1);
      expect(metric(text, 'ferry_sockets_open')).toBe(1);
      expect(metric(text, 'ferry_apply_latency_ms_count')).toBeGreaterThanOrEqual(1);
      // Every sample line is `name[{labels}] number`.
      for (const line of text.trim().split('\n').filter((l) => !l.startsWith('#'))) {
        expect(line).toMatch(/^[a-z_]+(\{le="[^"]+"\})? -?[0-9.e+]+$/);
      }
      expect((await fresh.store.heads()).serverSeq).toBe(8);
      s.close();
    });

    test('an unknown route is 404 not_found as JSON', async () => {
      for (const [method, path] of [['GET', '/nope'], ['GET', '/v1/nope'], ['POST', '/nope'], ['POST', '/v1/push/extra'], ['GET', '/v1/push'], ['DELETE', '/v1/spaces']] as const) {
        const r = await call(fresh.base, path, { method, token: dave.token });
        expect({ method, path, status: r.status }).toEqual({ method, path, status: 404 });
        expect(r.headers.get('content-type')).toContain('application/json');
        expect(r.body).toMatchObject({ code: 'not_found' });
        expect(typeof r.body.message).toBe('string');
      }
    });
  });
});
