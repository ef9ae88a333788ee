// Instances on many hosts share a remote libSQL server by URL (sqld / Turso). sqld is not to be had here
// (not on npm or in Debian), so tests/support/hrana-server.ts stands in for it: the Hrana 2 protocol over
// HTTP on 127.0.0.1, each stream its own connection to one libSQL file, SQLITE_BUSY answered at once when
// another stream holds the write lock. What runs for real: `ferry` (migrations, `user add`, `token
// create`) and two `ferry serve --db http://… --redis …` processes through @libsql/client's remote path
// (no PRAGMAs; write transactions held across HTTP requests by baton), and a real redis-server.
// Checked: concurrent pushes to both instances commit each op once with serverSeqs 1..N, and a socket on
// each instance gets every one of them live, once, in order.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../server/storage/db.ts';
import { createSyncStore } from '../server/storage/sync-store.ts';
import { type CliServer, runCli, serveCli } from './support/cli-server.ts';
import { type HranaServer, startHranaServer } from './support/hrana-server.ts';
import { waitFor } from './support/model-socket-device.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { makeOps, push, removeDir } from './support/server.ts';
import { helloSocket, type TestSocket } from './support/socket.ts';

let dir: string;
let sqld: HranaServer;
let redis: RedisServer;
const instances: CliServer[] = [];
const sockets: TestSocket[] = [];
let mine: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-remote-'));
  sqld = startHranaServer(join(dir, 'remote.db'));
  redis = await startRedis();
  const created = await runCli(['user', 'add', 'remote', '--password', 'remote-password', '--db', sqld.url]); // migrates over HTTP
  mine = /personal space (u:\S+)/.exec(created)![1]!;
  for (let i = 0; i < 2; i += 1) instances.push(await serveCli(['--db', sqld.url, '--redis', redis.url, '--redis-channel', `ferry:remote:${process.pid}`]));
});
afterAll(async () => {
  for (const s of sockets) s.close();
  for (const s of instances) await s.stop();
  await redis?.stop();
  await sqld?.stop();
  removeDir(dir);
});

test('two instances on one remote libSQL server: every op once, serverSeqs 1..N, both sockets get all live', async () => {
  const token = await runCli(['token', 'create', 'remote', '--db', sqld.url]);
  const admin = await openDatabase(sqld.url);
  try {
    for (const server of instances) {
      const socket = await helloSocket(server.ws, token, `remote-reader-${sockets.length}`);
      socket.send({ type: 'subscribe', spaces: [{ space: mine, cursor: 0 }] });
      await socket.next((f) => f.type === 'caught_up', 15_000);
      sockets.push(socket);
    }
    let total = 0;
    const statuses = await Promise.all(Array.from({ length: 6 }, async (_, w) => {
      const device = `remote-${w}`;
      const got: number[] = [];
      let seq = 1;
      for (let b = 0; b < 6; b += 1) {
        const count = 1 + ((w * 5 + b * 3) % 8);
        const ops = makeOps(device, mine, seq, count).map((op) => ({ ...op, key: `${device}-${op.seq}` }));
        const answer = await push(instances[w % 2]!.base, token, device, ops);
        got.push(answer.status);
        if (answer.status === 200) expect(answer.body.results.every((r: { result: string }) => r.result === 'applied')).toBe(true);
        seq += count;
      }
      total += seq - 1;
      return got;
    }));
    expect(statuses.flat().every((status) => status === 200)).toBe(true);
    const seqs = (await createSyncStore(admin.db).changesSince(mine, 0, 100_000)).map((e) => e.serverSeq);
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    for (const socket of sockets) {
      const received = () => socket.frames.filter((f) => f.type === 'changes').flatMap((f) => f.entities.map((e: { serverSeq: number }) => e.serverSeq));
      expect(await waitFor(() => received().length >= total, 15_000)).toBe(true);
      expect(received()).toEqual(seqs);
    }
    console.log(`remote-db: ${total} ops over ${sqld.counts.pipelines} Hrana pipelines on ${sqld.counts.streams} streams; ${sqld.counts.busy} SQLITE_BUSY answered and retried`);
  } finally {
    admin.close();
  }
}, 90_000);
