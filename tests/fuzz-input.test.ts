// DESIGN invariant 7 under generated abuse: `ferry serve` (a real process over a real libSQL file)
// gets FERRY_FUZZ_INPUTS (default 10,000) seeded bad HTTP pushes plus socket frames: wrong types, huge
// fields, deep nesting, invalid UTF-8, unknown kinds and frame types, oversized batches, seq/lamport
// extremes (0, -1, 1.5, 2^53, "NaN", 1e308), names that look like SQL, tokens in URLs, bad tokens.
//
// For every input: no 5xx; the answer is `{ code, message }` with a protocol code, or an ack whose
// results all carry a known result (a `rejected` one with a code); a refused envelope (4xx) leaves the
// database exactly as it was (heads + row count of every table, compared before and after). At the
// end the process is still alive, answers /healthz, and its output holds no uncaught error.
import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rng } from './support/fault-proxy.ts';
import { removeDir } from './support/server.ts';

const ROOT = join(import.meta.dir, '..');
const CLI = join(ROOT, 'server', 'cli.ts');
const BUN = process.execPath;
const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 424242);
const INPUTS = Number(process.env.FERRY_FUZZ_INPUTS ?? 10_000);
const CODES = new Set(['seq_gap', 'lamport_regression', 'auth_required', 'forbidden', 'invalid', 'too_large', 'rate_limited', 'reset', 'not_found']);
const RESULTS = new Set(['applied', 'duplicate', 'superseded', 'rejected']);
const TABLES = ['users', 'sessions', 'tokens', 'devices', 'spaces', 'members', 'ops', 'entities', 'meta'];
const SQLISH = ["items'; DROP TABLE ops;--", 'x" OR 1=1 --', 'Robert\'); DELETE FROM entities; --', '%', '_', '\u0000', '../../etc/passwd', 'ops', 'sqlite_master'];

let dir: string;
let dbPath: string;
let proc: Bun.Subprocess;
let output = '';
let base: string;
let token: string;
let userId: string;

async function cli(args: string[]): Promise<string> {
  const p = Bun.spawn([BUN, CLI, ...args, '--db', `file:${dbPath}`], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '' } });
  const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${code}: ${err}`);
  return out.trim();
}

function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-fuzz-'));
  dbPath = join(dir, 'ferry.db');
  const created = await cli(['user', 'add', 'fuzz', '--password', 'fuzz-password']);
  userId = /\(([^)]+)\)/.exec(created)![1]!;
  token = await cli(['token', 'create', 'fuzz']);
  const port = freePort();
  proc = Bun.spawn([BUN, CLI, 'serve', '--db', `file:${dbPath}`, '--port', String(port), '--host', '127.0.0.1'], {
    cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '' },
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of stream as ReadableStream<Uint8Array>) output += new TextDecoder().decode(chunk);
    })().catch(() => {});
  }
  base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`ferry serve exited: ${output}`);
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return;
    await Bun.sleep(20);
  }
  throw new Error(`ferry serve did not start: ${output}`);
}, 30_000);

afterAll(async () => {
  if (proc && proc.exitCode === null) {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  if (dir) removeDir(dir);
});

// ── generators ────────────────────────────────────────────────────────────────────────────────────

type R = ReturnType<typeof rng>;

function nested(depth: number, leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i += 1) v = i % 2 === 0 ? [v] : { a: v };
  return v;
}

/** Deep nesting as text: JSON.stringify itself recurses and would overflow on the client side. */
function deepText(depth: number): string {
  return '{"a":['.repeat(depth) + '1' + ']}'.repeat(depth);
}
const DEEP = '__deep__';
/** Serializes, replacing each DEEP marker string with `depth` levels of nesting. */
function withDeep(value: unknown, depth: number): string {
  return JSON.stringify(value).replaceAll(`"${DEEP}"`, deepText(depth));
}

function weirdNumber(r: R): unknown {
  return r.pick([0, -1, 1.5, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1e308, -0, 'NaN', '1', 'Infinity', null, true, [], {}, 2 ** 31, 2 ** 63]);
}

function weirdString(r: R): unknown {
  return r.pick([
    '', 'x'.repeat(129), 'é'.repeat(65), 'x'.repeat(r.int(1000, 200_000)), r.pick(SQLISH), 'Items', '9abc', 'a-b', 'ok',
    '\ud800', '\u202e', 42, null, [], { a: 1 }, true,
  ]);
}

let deviceCounter = 0;
function freshDevice(): string {
  deviceCounter += 1;
  return `fuzz-${SEED}-${deviceCounter}`;
}

/** A well-formed op, to be broken in one place. */
function goodOp(device: string, seq: number): Record<string, unknown> {
  return { id: `${device}:${seq}`, device, seq, lamport: seq, space: `u:${userId}`, collection: 'items', key: `k${seq}`, kind: 'put', value: { title: 'ok' }, at: 0 };
}

const OP_FIELDS = ['id', 'device', 'seq', 'lamport', 'space', 'collection', 'key', 'kind', 'value', 'at'];

function badOp(r: R, device: string, seq: number): Record<string, unknown> {
  const op = goodOp(device, seq);
  const field = r.pick(OP_FIELDS);
  const roll = r.next();
  if (roll < 0.15) delete op[field];
  else if (field === 'seq' || field === 'lamport' || field === 'at') op[field] = weirdNumber(r);
  else if (field === 'kind') op.kind = r.pick(['upsert', 'PUT', '', 'delete ', 'merge', 1, null]);
  else if (field === 'value') {
    op.value = r.pick([
      nested(r.int(30, 40)), DEEP, 'x', 1, [], null, { 'Bad-Field': 1 }, { "x'; DROP TABLE ops;--": 1 },
      { big: 'x'.repeat(r.int(60_000, 70_000)) }, { ['f'.repeat(65)]: 1 }, { __proto__: { polluted: true } }, { constructor: 1 },
    ]);
    if (r.chance(0.2)) op.kind = 'delete';
  } else op[field] = weirdString(r);
  if (r.chance(0.1)) op.extra = weirdString(r);
  return op;
}

interface Input {
  label: string;
  path?: string;
  headers?: Record<string, string>;
  body: string | Uint8Array<ArrayBuffer>;
  /** A valid envelope whose ops may be rejected one by one (200 allowed). */
}

function invalidUtf8(r: R): Uint8Array<ArrayBuffer> {
  const prefix = new TextEncoder().encode(`{"protocol":1,"device":"${freshDevice()}","ops":[{"id":"`);
  const bad = Uint8Array.from(Array.from({ length: r.int(1, 8) }, () => r.pick([0xc3, 0x80, 0xff, 0xfe, 0xed, 0xa0, 0xf8, 0xc0])));
  const suffix = new TextEncoder().encode('"}]}');
  return new Uint8Array([...prefix, ...bad, ...(r.chance(0.5) ? suffix : [])]);
}

function generate(r: R): Input {
  const device = freshDevice();
  const roll = r.int(0, 15);
  const env = (ops: unknown, extra: Record<string, unknown> = {}) => withDeep({ protocol: 1, device, ops, ...extra }, r.int(100, 20_000));
  switch (roll) {
    case 0: return { label: 'not json', body: r.pick(['', '{', 'null', 'true', '[]', '"x"', '1e999', '{"protocol":1,', 'undefined', '\u0000', '{"a":1}{"b":2}']) };
    case 1: return { label: 'invalid utf-8', body: invalidUtf8(r) };
    case 2: return { label: 'deep nesting body', body: deepText(r.int(1000, 150_000)) };
    case 3: return { label: 'bad protocol', body: JSON.stringify({ protocol: r.pick([0, 2, '1', null, 1.5, -1]), device, ops: [goodOp(device, 1)] }) };
    case 4: return { label: 'bad device', body: JSON.stringify({ protocol: 1, device: weirdString(r), ops: [goodOp(device, 1)] }) };
    case 5: return { label: 'bad ops type', body: env(r.pick([null, {}, 'ops', 1, [], [null], [1], [[]], ['op']])) };
    case 6: {
      const count = r.pick([501, 600, 1000]);
      return { label: 'oversized batch', body: env(Array.from({ length: count }, (_, i) => goodOp(device, i + 1))) };
    }
    case 7: return { label: 'over 1 MiB', body: env([{ ...goodOp(device, 1), value: { big: 'x'.repeat(1_100_000) } }]) };
    case 8: case 9: case 10: {
      // A batch of valid ops with one broken: the envelope may be refused or the op rejected.
      const n = r.int(1, 4);
      const ops: unknown[] = Array.from({ length: n }, (_, i) => goodOp(device, i + 1));
      const at = r.int(0, n - 1);
      ops[at] = badOp(r, device, at + 1);
      return { label: 'bad op', body: env(ops) };
    }
    case 11: {
      // Seq games: gaps, repeats, out of order, lamport going back, ops of another device.
      const ops = [goodOp(device, 1), goodOp(device, 2), goodOp(device, 3)];
      const game = r.int(0, 5);
      if (game === 0) ops[1]!.seq = 5;
      else if (game === 1) ops[2]!.seq = 2;
      else if (game === 2) ops.reverse();
      else if (game === 3) ops[2]!.lamport = 1;
      else if (game === 4) ops[1]!.device = 'someone-else';
      else ops.forEach((op) => { op.seq = (op.seq as number) + 10; });
      return { label: 'seq games', body: env(ops) };
    }
    case 12: return { label: 'unknown/extra fields', body: env([goodOp(device, 1)], { [r.pick(['kind', 'type', '__proto__', 'constructor', 'cursor'])]: weirdString(r) }) };
    case 13: return {
      label: 'bad auth', body: env([goodOp(device, 1)]),
      headers: r.pick<Record<string, string>>([{}, { authorization: 'Bearer nope' }, { authorization: `Basic ${btoa('a:b')}` }, { authorization: 'Bearer ' + 'x'.repeat(5000) }, { cookie: 'ferry_session=forged' }]),
    };
    case 14: return { label: 'token in url', path: `/v1/push?${r.pick(['token', 'access_token', 'auth'])}=${token}`, body: env([goodOp(device, 1)]) };
    default: return { label: 'sql-ish names', body: env([{ ...goodOp(device, 1), space: r.pick(SQLISH), collection: r.pick(SQLISH), key: r.pick(SQLISH) }]) };
  }
}

// ── the database, read from the side ──────────────────────────────────────────────────────────────

function fingerprint(db: Database): string {
  const counts = TABLES.map((t) => `${t}=${(db.query(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n}`);
  // The heads are derived (schema/tables.ts `meta`): the newest serverSeq and the highest lamport.
  const heads = db.query('SELECT (SELECT max(server_seq) FROM entities) AS seq, (SELECT max(max_lamport) FROM devices) AS lamport').get();
  const devices = db.query('SELECT count(*) AS n, coalesce(sum(last_seq), 0) AS s, coalesce(sum(max_lamport), 0) AS l FROM devices').get();
  return JSON.stringify({ counts, heads, devices });
}

test(`fuzz: ${INPUTS} generated bad pushes and socket frames`, async () => {
  const r = rng(SEED);
  const side = new Database(dbPath, { readonly: true });
  const tally: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  const problems: string[] = [];
  const started = performance.now();
  let httpInputs = 0;
  let frames = 0;
  const httpShare = Math.ceil(INPUTS * 0.8);
  try {
    for (let i = 0; i < httpShare && problems.length < 10; i += 1) {
      const input = generate(r);
      tally[input.label] = (tally[input.label] ?? 0) + 1;
      const before = fingerprint(side);
      const headers: Record<string, string> = input.headers ?? { authorization: `Bearer ${token}` };
      const res = await fetch(`${base}${input.path ?? '/v1/push'}`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: input.body,
      });
      const text = await res.text();
      httpInputs += 1;
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const where = `#${i} ${input.label} → ${res.status} ${text.slice(0, 200)}`;
      let body: any;
      try { body = JSON.parse(text); } catch { problems.push(`unparseable answer: ${where}`); continue; }
      if (res.status >= 500) { problems.push(`5xx: ${where}`); continue; }
      if (res.status === 200) {
        if (!Array.isArray(body.results) || typeof body.through !== 'number') { problems.push(`200 without an ack: ${where}`); continue; }
        for (const result of body.results) {
          if (!RESULTS.has(result.result)) problems.push(`unknown result: ${where}`);
          if (result.result === 'rejected' && (!CODES.has(result.code) || typeof result.message !== 'string')) problems.push(`rejected without a code: ${where}`);
        }
        continue;
      }
      if (!CODES.has(body.code) || typeof body.message !== 'string' || body.message === '') { problems.push(`no clear error: ${where}`); continue; }
      const after = fingerprint(side);
      if (after !== before) problems.push(`refused envelope changed the database: ${where}\n  before ${before}\n  after  ${after}`);
    }

    // Socket frames: a hello'd socket gets bad frames; every frame must get an error frame or a
    // 44xx close, and a closed socket is replaced (bounded).
    const frameBudget = INPUTS - httpInputs;
    let sockets = 0;
    while (frames < frameBudget && problems.length < 10 && sockets < 200) {
      sockets += 1;
      const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/sync`, { protocols: ['ferry.v1', `ferry.auth.${token}`] } as any);
      const received: any[] = [];
      let closeCode = 0;
      const closed = new Promise<void>((resolve) => ws.addEventListener('close', (e) => { closeCode = e.code; resolve(); }));
      ws.addEventListener('message', (e) => {
        try { received.push(JSON.parse(String(e.data))); } catch { problems.push(`unparseable frame: ${String(e.data).slice(0, 100)}`); }
      });
      const opened = await new Promise<boolean>((resolve) => {
        ws.addEventListener('open', () => resolve(true), { once: true });
        ws.addEventListener('error', () => resolve(false), { once: true });
      });
      if (!opened) { problems.push('socket did not open'); break; }
      const device = freshDevice();
      if (r.chance(0.7)) ws.send(JSON.stringify({ type: 'hello', protocol: 1, device }));
      const batch = Math.min(r.int(5, 30), frameBudget - frames);
      for (let k = 0; k < batch && ws.readyState === WebSocket.OPEN; k += 1) {
        const roll = r.int(0, 7);
        if (roll === 0) ws.send(invalidUtf8(r));
        else if (roll === 1) ws.send(r.pick(['', '{', 'null', '[]', '"hello"', '{"type":', 'x'.repeat(r.int(1, 100_000))]));
        else if (roll === 2) ws.send(JSON.stringify({ type: r.pick(['HELLO', 'nope', '', 'ack', 'changes', 'welcome', 'error', null, 1]), protocol: 1, device }));
        else if (roll === 3) ws.send(deepText(r.int(100, 50_000)));
        else if (roll === 4) ws.send(withDeep({ type: 'push', rid: weirdNumber(r), device, ops: [badOp(r, device, 1)] }, r.int(100, 20_000)));
        else if (roll === 5) ws.send(JSON.stringify({ type: 'subscribe', spaces: r.pick([null, 'x', [{ space: r.pick(SQLISH), cursor: weirdNumber(r) }], [{ space: `u:${userId}`, cursor: weirdNumber(r) }]]) }));
        else if (roll === 6) ws.send(JSON.stringify({ type: 'hello', protocol: weirdNumber(r), device: weirdString(r) }));
        else ws.send(JSON.stringify({ type: 'push', rid: 1, device, ops: Array.from({ length: r.pick([0, 501]) }, (_, i) => goodOp(device, i + 1)) }));
        frames += 1;
      }
      // Let the answers arrive, then close and check what came back.
      ws.send(JSON.stringify({ type: 'ping', t: 1 }));
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && ws.readyState === WebSocket.OPEN && !received.some((f) => f.type === 'pong')) await Bun.sleep(2);
      ws.close();
      await Promise.race([closed, Bun.sleep(1000)]);
      for (const f of received) {
        if (f.type === 'error' && (!CODES.has(f.code) || typeof f.message !== 'string')) problems.push(`socket error without a clear code: ${JSON.stringify(f).slice(0, 200)}`);
        if (f.type === 'ack') for (const res of f.results ?? []) if (!RESULTS.has(res.result) || (res.result === 'rejected' && !CODES.has(res.code))) problems.push(`socket ack with unclear result: ${JSON.stringify(res)}`);
      }
      if (closeCode >= 4000 && ![4400, 4401, 4403, 4408, 4429, 4008].includes(closeCode)) problems.push(`unknown close code ${closeCode}`);
      if (closeCode === 1011) problems.push('socket closed with 1011 (server error)');
    }
  } finally {
    side.close();
  }
  const health = await fetch(`${base}/healthz`).then((res) => res.status, () => 0);
  const ms = Math.round(performance.now() - started);
  console.log('fuzz figures', JSON.stringify({ inputs: httpInputs + frames, http: httpInputs, frames, ms, statuses, tally }));
  expect(problems).toEqual([]);
  expect(httpInputs + frames).toBeGreaterThanOrEqual(INPUTS);
  expect(proc.exitCode).toBeNull();
  expect(health).toBe(200);
  expect(output).not.toMatch(/uncaught|unhandled|request failed|frame failed|RangeError|TypeError|panic/i);
}, 300_000); // ~50 s alone; a loaded 2-core machine has taken over 120 s
