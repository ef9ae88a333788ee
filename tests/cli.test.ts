// The `ferry` command as an operator meets it: what it needs (user list, password change, user removal,
// token list and revoke, removing a member), and every mistake answered with one human sentence and exit
// code 1 — never SQL, a parameter, a password hash or a stack.
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from './support/http.ts';
import { removeDir, startServer } from './support/server.ts';

const ROOT = join(import.meta.dir, '..');
const dir = mkdtempSync(join(tmpdir(), 'ferry-cli-test-'));
const db = `file:${join(dir, 'ferry.db')}`;
afterAll(() => removeDir(dir));

/** Runs the CLI to completion (bounded) against the test's database. */
async function ferry(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const proc = Bun.spawn([process.execPath, join(ROOT, 'server/cli.ts'), ...args, '--db', db], {
    cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '', FERRY_PASSWORD: '' },
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, out: out.trim(), err: err.trim() };
}

/** A refusal: exit 1, one line on stderr starting `ferry: `, and nothing a person should not see. */
function expectRefusal(result: { code: number; out: string; err: string }, says: RegExp) {
  expect(result.code).toBe(1);
  expect(result.err).toMatch(says);
  expect(result.err.split('\n')).toHaveLength(1);
  expect(result.err).toStartWith('ferry: ');
  expect(`${result.out}\n${result.err}`).not.toMatch(/insert|select|update|delete from|params|\$argon2|sqlite|at .*\.ts:\d+/i);
}

describe('operator mistakes are one sentence', () => {
  test('a name that is taken, malformed, or a missing password', async () => {
    expect((await ferry('user', 'add', 'alice', '--password', 's3cret')).code).toBe(0);
    expectRefusal(await ferry('user', 'add', 'alice', '--password', 'other'), /already exists/);
    expectRefusal(await ferry('user', 'add', 'bad name with spaces', '--password', 'x'), /user name is/i);
    expectRefusal(await ferry('user', 'add', 'nopass'), /password/i);
  }, 30_000);

  test('flags that are not numbers, unknown users and spaces, unknown commands and options', async () => {
    expectRefusal(await ferry('token', 'create', 'alice', '--days', 'abc'), /--days is a whole number/);
    expectRefusal(await ferry('token', 'create', 'nobody'), /no user named "nobody"/);
    expectRefusal(await ferry('space', 'add-member', 's:nope', 'alice'), /no space "s:nope"/);
    expectRefusal(await ferry('serve', '--port', 'abc'), /--port is a whole number/);
    expectRefusal(await ferry('serve', '--tombstone-retention-days', '0'), /whole number of days/);
    expectRefusal(await ferry('serve', '--max-sockets-per-user', '0'), /--max-sockets-per-user is a whole number, at least 1/);
    const frob = await ferry('frobnicate');
    expect([frob.code, frob.err.split('\n')[0]]).toEqual([1, 'ferry: Unknown command "frobnicate".']); // then the usage
    const unknown = await ferry('user', 'list', '--wat');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("Unknown option '--wat'");
  }, 30_000);
});

describe('what an operator needs', () => {
  test('users: list, change a password (revoking sessions and tokens), remove', async () => {
    await ferry('user', 'add', 'bert', '--password', 'first');
    expect((await ferry('user', 'list')).out).toMatch(/^alice\t.*\nbert\t/m);
    const token = (await ferry('token', 'create', 'bert')).out;
    expect(token).toMatch(/^fy_/);
    expect((await ferry('user', 'passwd', 'bert', '--password', 'second')).code).toBe(0);
    expect((await ferry('token', 'list', 'bert')).out).toBe(''); // the password change revoked it
    expect((await ferry('user', 'remove', 'bert')).code).toBe(0);
    expect((await ferry('user', 'list')).out).not.toContain('bert');
    expect((await ferry('user', 'add', 'bert', '--password', 'again')).code).toBe(0); // the name is free again
  }, 30_000);

  test('tokens: list and revoke by name or id; a revoked token opens nothing', async () => {
    const server = await startServer({}, mkdtempSync(join(tmpdir(), 'ferry-cli-srv-')));
    try {
      // The server's own database: the CLI acts on it as on any.
      const cli = async (...args: string[]) => {
        const proc = Bun.spawn([process.execPath, join(ROOT, 'server/cli.ts'), ...args, '--db', server.dbUrl], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
        const [code, out] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
        return { code, out: out.trim() };
      };
      await cli('user', 'add', 'cora', '--password', 'pw');
      const laptop = (await cli('token', 'create', 'cora', '--name', 'laptop')).out;
      const phone = (await cli('token', 'create', 'cora', '--name', 'phone')).out;
      const listed = (await cli('token', 'list', 'cora')).out.split('\n').map((line) => line.split('\t'));
      expect(listed.map((row) => row[1])).toEqual(['laptop', 'phone']);
      expect((await call(server.base, '/v1/me', { token: laptop })).body.user.name).toBe('cora');
      expect((await cli('token', 'revoke', 'cora', 'laptop')).out).toContain('revoked 1 token');
      expect((await call(server.base, '/v1/me', { token: laptop })).body.user).toBeNull();
      expect((await cli('token', 'revoke', 'cora', listed[1]![0]!)).code).toBe(0); // by its short id
      expect((await call(server.base, '/v1/push', { token: phone, body: { protocol: 1, device: 'd', ops: [] } })).status).toBe(401);
    } finally {
      await server.stop();
      removeDir(server.dir);
    }
  }, 30_000);

  test('spaces: add and remove a member; the owner cannot be removed', async () => {
    const created = (await ferry('space', 'create', 'alice', 'Trip')).out;
    const space = /space (s:\S+)/.exec(created)![1]!;
    expect((await ferry('space', 'add-member', space, 'bert')).out).toContain('added bert');
    expect((await ferry('space', 'list', 'bert')).out).toContain(space);
    expect((await ferry('space', 'remove-member', space, 'bert')).out).toContain('removed bert');
    expect((await ferry('space', 'list', 'bert')).out).not.toContain(space);
    expectRefusal(await ferry('space', 'remove-member', space, 'alice'), /owns .* cannot be removed/);
  }, 30_000);

  test('spaces: a member is added as an editor or a viewer, and their role changed; the owner keeps theirs', async () => {
    await ferry('user', 'add', 'cleo', '--password', 'pw');
    const space = /space (s:\S+)/.exec((await ferry('space', 'create', 'alice', 'Menu')).out)![1]!;
    expect((await ferry('space', 'add-member', space, 'bert')).out).toContain('added bert to ' + space + ' as editor');
    expect((await ferry('space', 'add-member', space, 'cleo', '--role', 'viewer')).out).toContain('as viewer');
    expect((await ferry('space', 'add-member', space, 'cleo')).out).toContain('already a member of ' + space + ' (viewer');
    expect((await ferry('space', 'list', 'cleo')).out).toContain(`${space}\tviewer\tshared\tMenu`);
    expect((await ferry('space', 'set-role', space, 'cleo', 'editor')).out).toContain('cleo is now an editor');
    expect((await ferry('space', 'list', 'cleo')).out).toContain(`${space}\teditor\tshared`);
    expectRefusal(await ferry('space', 'set-role', space, 'alice', 'viewer'), /alice owns .* keeps that role/);
    expectRefusal(await ferry('space', 'set-role', space, 'cleo', 'owner'), /"editor" .* or "viewer"/);
    expectRefusal(await ferry('space', 'add-member', space, 'bert', '--role', 'boss'), /"editor" .* or "viewer"/);
    expect((await ferry('space', 'list', 'alice')).out).toContain(`${space}\towner\tshared`);
  }, 30_000);
});
