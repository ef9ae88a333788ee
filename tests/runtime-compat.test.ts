// What must hold between the two runtimes the server runs on (the behaviour suites run on both through
// tests/support/targets.ts): a database made on one signs people in on the other (argon2id PHC strings,
// server/password.ts), Deno runs the same patched libSQL client Bun installed (deno.json's
// nodeModulesDir "manual"), and Deno serves with only the permissions the README lists (the targets run
// with exactly those), a remote database URL needing neither FFI nor the file system's writes.
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './support/cli-server.ts';
import { call, sessionPair } from './support/http.ts';
import { command, denoBinary, ROOT } from './support/runtimes.ts';
import { removeDir } from './support/server.ts';
import { startTarget, type RuntimeName } from './support/targets.ts';

const dirs: string[] = [];
const newDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-compat-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach(removeDir));

describe('passwords cross runtimes', () => {
  for (const [maker, server] of [['deno', 'bun'], ['bun', 'deno']] as const satisfies ReadonlyArray<readonly [RuntimeName, RuntimeName]>) {
    test(`a user added by \`ferry user add\` on ${maker} signs in on a ${server} server, and a wrong password does not`, async () => {
      const dir = newDir();
      const db = `file:${join(dir, 'ferry.db')}`;
      await runCli(['user', 'add', 'dana', '--password', 'dana-secret', '--db', db], {}, maker, dir);
      const target = await startTarget(server, {}, dir);
      try {
        const ok = await call(target.base, '/v1/auth/login', { body: { name: 'dana', password: 'dana-secret' } });
        expect(ok.status).toBe(200);
        expect(ok.body.user.name).toBe('dana');
        expect((await call(target.base, '/v1/me', { cookie: sessionPair(ok)! })).status).toBe(200);
        const wrong = await call(target.base, '/v1/auth/login', { body: { name: 'dana', password: 'dana-secreT' } });
        expect(wrong.status).toBe(401);
        expect(wrong.headers.get('set-cookie')).toBeNull();
      } finally {
        await target.stop();
      }
    }, 30_000);
  }

  test('the hash is argon2id with the same cost on both', async () => {
    const hashes: string[] = [];
    for (const runtime of ['bun', 'deno'] as const) {
      const dir = newDir();
      const db = `file:${join(dir, 'ferry.db')}`;
      await runCli(['user', 'add', 'erin', '--password', 'pw', '--db', db], {}, runtime, dir);
      const target = await startTarget('bun', {}, dir);
      try {
        hashes.push(String((await target.client.execute("SELECT password_hash FROM users WHERE name = 'erin'")).rows[0]![0]));
      } finally {
        await target.stop();
      }
    }
    for (const hash of hashes) expect(hash).toMatch(/^\$argon2id\$v=19\$m=65536,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  }, 30_000);
});

test('Deno runs the patched libSQL client: a statement sent again is not prepared again', async () => {
  const dir = newDir();
  const proc = Bun.spawn(command('deno', 'tests/support/prepare-count.ts', [`file:${join(dir, 'p.db')}`], dir), { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  expect({ code, err }).toEqual({ code: 0, err: '' });
  expect(JSON.parse(out)).toEqual({ prepared: 2, seven: 7 });
}, 30_000);

test('on Deno, a remote database URL needs no FFI, no system facts and no writes: serve gets as far as the network', async () => {
  // No sqld here to answer (docs/edge.md): a port with nothing listening. Without the embedded addon's
  // permissions the server must fail on the connection, not on a permission.
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  const proc = Bun.spawn([
    denoBinary(), 'run', '--allow-net=127.0.0.1', `--allow-read=${ROOT}`, '--allow-env=FERRY_*,NODE_ENV,ENV,ELYSIA_AOT,LIBSQL_JS_DEV',
    join(ROOT, 'server/deno.ts'), 'serve', '--db', `http://127.0.0.1:${port}`, '--port', '0',
  ], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '' } });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  expect(code).toBe(1);
  expect(err).not.toContain('NotCapable');
  expect(err.trim()).toMatch(/^ferry: the database failed: .*(connect|refused|fetch)/i);
  expect(err).not.toMatch(/CREATE TABLE|SELECT|INSERT/); // no SQL on the screen
}, 30_000);
