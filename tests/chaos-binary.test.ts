// DESIGN invariants 1–3 against the BUILT binary (dist/ferry, run from a directory with no node_modules):
// four devices push steadily over HTTP (bearer token, their user's personal space, every op a patch on its
// own key, one batch in flight per device) while the server is killed with SIGKILL at seeded random
// moments, at least KILLS times, and restarted each time on the same file and port. After each restart
// every unacked batch is resent: `duplicate` exactly for the committed ops, `applied` for the rest. After
// the final graceful stop the file is audited: each device's ledger is seqs 1..n in order, one entity per
// op sent, `PRAGMA integrity_check` = ok.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary, freePort, runBinary, serveBinary } from './support/binary.ts';
import { auditFile, buildBatch, crashDevices, expectApplied, pushBatch, recoverDevices, rng, type CrashDevice } from './support/crash.ts';
import { removeDir } from './support/server.ts';

const SEED = Number(process.env.FERRY_CHAOS_SEED ?? 20261124);
const KILLS = Number(process.env.FERRY_CHAOS_KILLS ?? 24);
const DEVICES = ['chaos-a', 'chaos-b', 'chaos-c', 'chaos-d'];

let dir: string;
let current: Bun.Subprocess | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-chaos-'));
});
afterAll(async () => {
  if (current && current.exitCode === null && current.signalCode === null) {
    current.kill('SIGKILL');
    await current.exited;
  }
  removeDir(dir);
});

test('the built binary under steady load survives kill -9 cycles: nothing lost, nothing doubled, in order', async () => {
  const started = performance.now();
  const binary = await buildBinary();
  const buildMs = performance.now() - started;
  const dbFile = join(dir, 'ferry.db');
  const dbUrl = `file:${dbFile}`;
  const created = await runBinary(binary, ['user', 'add', 'chaos', '--password', 'chaos-password', '--db', dbUrl], dir);
  const space = created.match(/personal space (u:\S+)/)![1]!;
  const token = await runBinary(binary, ['token', 'create', 'chaos', '--db', dbUrl], dir);
  expect(token).toMatch(/^fy_/);

  const random = rng(SEED);
  const sizes = DEVICES.map((_, i) => rng(SEED + 1 + i));
  const devices = crashDevices(DEVICES);
  const port = await freePort();
  const stats = { kills: 0, pushesAcked: 0, pushesLost: 0, resentCommitted: 0, resentUncommitted: 0, maxStartMs: 0 };

  const start = async () => {
    const s = await serveBinary(binary, dbFile, dir, [], port);
    current = s.proc;
    stats.maxStartMs = Math.max(stats.maxStartMs, Math.round(s.startMs));
    const resent = await recoverDevices(s.base, token, devices);
    stats.resentCommitted += resent.committed;
    stats.resentUncommitted += resent.uncommitted;
    return s;
  };

  /** One device's steady load: one batch in flight, the next as soon as it is acked, until the server dies. */
  const load = async (base: string, d: CrashDevice, i: number, stopped: () => boolean) => {
    while (!stopped()) {
      const ops = buildBatch(d, space, sizes[i]!.int(1, 20));
      d.unacked.push(ops);
      let status: number;
      let body: any;
      try {
        const res = await pushBatch(base, token, d.id, ops, 5000);
        status = res.status;
        body = await res.json();
      } catch {
        stats.pushesLost++; // killed before the answer arrived (whole or in part): resent after the restart
        return;
      }
      expect(status).toBe(200);
      expectApplied(body, ops);
      d.unacked = d.unacked.filter((b) => b !== ops);
      stats.pushesAcked++;
    }
  };

  for (let cycle = 0; cycle < KILLS; cycle++) {
    const { proc, base } = await start();
    let stopped = false;
    const loads = devices.map((d, i) => load(base, d, i, () => stopped));
    await Bun.sleep(random.int(5, 250));
    stopped = true;
    process.kill(proc.pid, 'SIGKILL');
    await proc.exited;
    expect(proc.signalCode).toBe('SIGKILL');
    current = null;
    stats.kills++;
    await Promise.all(loads);
  }

  // Quiescence: restart, resend what is still unacked, stop gracefully, audit the file.
  const last = await start();
  expect(devices.every((d) => d.unacked.length === 0)).toBe(true);
  last.proc.kill('SIGTERM');
  expect(await Promise.race([last.proc.exited, Bun.sleep(10_000).then(() => 'timeout')])).toBe(0);
  current = null;
  const sent = await auditFile(dbUrl, devices);

  expect(stats.kills).toBeGreaterThanOrEqual(20);
  // The kills really crossed both windows: before a commit, and between a commit and its ack.
  expect(stats.resentUncommitted).toBeGreaterThan(0);
  expect(stats.resentCommitted).toBeGreaterThan(0);
  console.log(`chaos-binary: seed ${SEED}, ${sent} ops, ${JSON.stringify(stats)}, build ${Math.round(buildMs)} ms, total ${Math.round(performance.now() - started)} ms`);
}, 90_000);
