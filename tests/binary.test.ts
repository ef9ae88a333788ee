// The shipped artifact: one binary with migrations, the PWA and libSQL's addon inside, run where
// there is no repo and no node_modules.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeOps, push } from './support/server.ts';
import { binarySize, buildBinary, runBinary, serveBinary } from './support/binary.ts';

let binary: string;
let dir: string;
beforeAll(async () => {
  binary = await buildBinary();
  dir = mkdtempSync(join(tmpdir(), 'ferry-bin-run-'));
}, 120_000);

let server: Awaited<ReturnType<typeof serveBinary>> | null = null;
afterAll(() => server?.proc.kill(9));

test('the binary migrates a fresh file, serves /healthz and the PWA, and accepts a push', async () => {
  const db = join(dir, 'fresh.db');
  await runBinary(binary, ['user', 'add', 'carol', '--password', 'pw', '--db', `file:${db}`], dir);
  const token = await runBinary(binary, ['token', 'create', 'carol', '--db', `file:${db}`], dir);
  expect(token).toMatch(/^fy_/);
  server = await serveBinary(binary, db, dir);
  console.log(`binary: ${(binarySize(binary) / 1048576).toFixed(1)} MiB, cold start to /healthz ${server.startMs.toFixed(0)} ms`);
  const me = (await (await fetch(`${server.base}/v1/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as any;
  const space = me.spaces[0].id;
  const r = await push(server.base, token, 'bin-dev', makeOps('bin-dev', space, 1, 3));
  expect(r.status).toBe(200);
  expect(r.body.results.map((x: any) => x.result)).toEqual(['applied', 'applied', 'applied']);
  const again = await push(server.base, token, 'bin-dev', makeOps('bin-dev', space, 1, 3));
  expect(again.body.results.every((x: any) => x.result === 'duplicate')).toBe(true);
  const page = await fetch(`${server.base}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toContain('text/html');
}, 60_000);
