// DESIGN invariants 1 and 2 with real processes: `ferry serve` over a libSQL file is killed with
// SIGKILL while pushes are in flight — at a random moment, or right after a batch has committed and
// before its ack could arrive — then restarted on the same file. Every batch whose ack was not received
// is resent: the resend is answered `duplicate` for exactly the ops that were committed and `applied`
// for the rest. At the end every op is in the ledger and in the entities exactly once. On Bun
// (`bun server/cli.ts serve`) and on Deno (`deno run … server/deno.ts serve`).
import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../core/types.ts';
import { runCli, spawnServer, type ServerProcess } from './support/cli-server.ts';
import { auditFile, buildBatch, crashDevices, expectApplied, pushBatch, recoverDevices, rng, type CrashDevice } from './support/crash.ts';
import { CLI_ENTRY, command } from './support/runtimes.ts';
import { removeDir } from './support/server.ts';
import { targets } from './support/targets.ts';

const SEED = Number(process.env.FERRY_CRASH_SEED ?? 20261123);
const CYCLES = 10;
const MAX_EXTRA_CYCLES = 6;
const DEVICES = ['crash-a', 'crash-b', 'crash-c'];

for (const runtime of targets()) describe(`kill -9 on ${runtime}`, () => {
  let dir: string;
  let dbUrl: string;
  let current: ServerProcess['proc'] | null = null;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-crash-'));
    dbUrl = `file:${join(dir, 'ferry.db')}`;
  });
  afterAll(async () => {
    if (current && current.exitCode === null && current.signalCode === null) {
      current.kill('SIGKILL');
      await current.exited;
    }
    removeDir(dir);
  });

  /** Runs the ferry CLI on this suite's runtime against its file (bounded); returns its stdout. */
  const cli = (args: string[]) => runCli(args, {}, runtime, dir);

  type Running = ServerProcess;

  /** `ferry serve` on the file, on a port the OS picks, once /healthz answers. */
  async function serve(): Promise<Running> {
    const running = await spawnServer(command(runtime, CLI_ENTRY[runtime], ['serve', '--db', dbUrl, '--port', '0', '--host', '127.0.0.1'], dir));
    current = running.proc;
    return running;
  }

  async function kill9(running: Running) {
    if (running.proc.exitCode === null && running.proc.signalCode === null) process.kill(running.proc.pid, 'SIGKILL');
    await running.proc.exited;
    expect(running.proc.signalCode).toBe('SIGKILL');
  }

  /**
   * Blocks the thread (bounded) until the file shows one of `last` (device → seq) committed, then calls
   * `then` at once. The file is read with a second, synchronous SQLite connection polled in a tight
   * loop, so `then` runs within microseconds of the commit becoming visible: the server answers only
   * after that (ack after commit), typically 50–300 µs later, so a kill here usually beats the ack.
   */
  function onCommit(path: string, last: Map<string, number>, then: () => void, ms = 5000): boolean {
    // Read-only: on close it can neither checkpoint nor remove the WAL, so the restarted server itself
    // recovers the file exactly as the kill left it.
    const db = new Database(path, { readonly: true });
    try {
      const query = db.query<{ id: string; last_seq: number }, []>('SELECT id, last_seq FROM devices');
      const deadline = performance.now() + ms;
      while (performance.now() < deadline) {
        if (query.all().some((r) => last.has(r.id) && r.last_seq >= last.get(r.id)!)) {
          then();
          return true;
        }
      }
      return false;
    } finally {
      db.close();
    }
  }

  test('kill -9 at any moment loses nothing and applies nothing twice', async () => {
    const random = rng(SEED);
    const started = performance.now();
    const created = await cli(['user', 'add', 'crash', '--password', 'crash-password', '--db', dbUrl]);
    const space = created.match(/personal space (u:\S+)/)![1]!;
    const token = (await cli(['token', 'create', 'crash', '--db', dbUrl])).trim();
    expect(token).toMatch(/^fy_/);

    const devices = crashDevices(DEVICES);
    const build = (d: CrashDevice) => buildBatch(d, space, random.int(1, 40));
    const send = (base: string, d: CrashDevice, ops: Op[]) => pushBatch(base, token, d.id, ops);

    const stats = { cycles: 0, killedAfterCommit: 0, killedAtRandom: 0, resentCommitted: 0, resentUncommitted: 0, ackedInFlight: 0 };

    /** After a (re)start: check what survived, then resend every unacked batch in order. */
    const recover = async (base: string) => {
      const resent = await recoverDevices(base, token, devices);
      stats.resentCommitted += resent.committed;
      stats.resentUncommitted += resent.uncommitted;
    };

    for (let cycle = 0; cycle < CYCLES + MAX_EXTRA_CYCLES; cycle++) {
      // Extra cycles (all killed right after a commit) only until that case has been seen at least once.
      // Extra cycles only until both windows were hit (the resends of this cycle's kill count next cycle).
      if (cycle >= CYCLES && stats.resentCommitted > 0 && stats.resentUncommitted > 0) break;
      stats.cycles++;
      const running = await serve();
      const { base } = running;
      await recover(base);

      // An old, acked batch resent once more changes nothing either.
      const old = devices[random.int(0, devices.length - 1)]!;
      if (old.batches.length > 0) {
        const ops = old.batches[random.int(0, old.batches.length - 1)]!;
        const before = (await (await fetch(`${base}/healthz`)).json()).serverSeq;
        const body = (await (await send(base, old, ops)).json()) as any;
        expect(body.results.every((r: any) => r.result === 'duplicate' && r.first === 'applied')).toBe(true);
        expect((await (await fetch(`${base}/healthz`)).json()).serverSeq).toBe(before);
      }

      // Load: each device pushes a few batches, each acked before the next.
      await Promise.all(devices.map(async (d) => {
        const rounds = random.int(2, 6);
        for (let i = 0; i < rounds; i++) {
          const ops = build(d);
          const res = await send(base, d, ops);
          expect(res.status).toBe(200);
          expectApplied(await res.json(), ops);
        }
      }));

      // Fire one more batch per device and kill the server without waiting for the answers: on even
      // (and extra) cycles the moment the first of them is committed in the file, so its ack is at best
      // on its way; on odd cycles after a random 0–25 ms (a push takes ~5–30 ms here: before, during or
      // after its commit).
      // An extra cycle aims at whichever window the run has not hit yet: right after a commit, or at once
      // (0 ms: before the server can have committed anything fired).
      const afterCommit = cycle >= CYCLES ? stats.resentCommitted === 0 : cycle % 2 === 0;
      const fired = devices.map((d) => ({ d, ops: build(d) }));
      for (const f of fired) f.d.unacked.push(f.ops);
      // An answer cut by the kill (no answer, or a status whose body never came: Deno may write them
      // apart) is no ack.
      const answers = fired.map((f) => send(base, f.d, f.ops).then(async (res) => ({ status: res.status, body: (await res.json()) as any })).catch(() => null));
      if (afterCommit) {
        const last = new Map(fired.map((f) => [f.d.id, f.ops.at(-1)!.seq]));
        expect(onCommit(join(dir, 'ferry.db'), last, () => process.kill(running.proc.pid, 'SIGKILL'))).toBe(true);
        stats.killedAfterCommit++;
      } else {
        await Bun.sleep(cycle >= CYCLES ? 0 : random.int(0, 25));
        stats.killedAtRandom++;
      }
      await kill9(running);
      current = null;

      // An ack that made it out before the kill is final; the rest stay unacked for the resend.
      const settled = await Promise.all(answers);
      if (process.env.FERRY_CRASH_DEBUG) console.log(cycle, afterCommit, fired.map((f, i) => `${f.d.id}@${f.ops.at(-1)!.seq}:${settled[i] ? 'acked' : 'lost'}`));
      fired.forEach((f, i) => {
        const answer = settled[i];
        if (!answer) return;
        expect(answer.status).toBe(200);
        expectApplied(answer.body, f.ops);
        f.d.unacked = f.d.unacked.filter((b) => b !== f.ops);
        stats.ackedInFlight++;
      });
    }

    // Final round: restart, check and resend what is still unacked, stop gracefully, audit the file.
    const running = await serve();
    await recover(running.base);
    running.proc.kill('SIGTERM');
    expect(await Promise.race([running.proc.exited, Bun.sleep(10_000).then(() => 'timeout')])).toBe(0);
    current = null;

    const sent = await auditFile(dbUrl, devices);

    // The run really crossed the window between commit and ack, and really lost uncommitted pushes.
    expect(stats.cycles).toBeGreaterThanOrEqual(5);
    expect(stats.resentCommitted).toBeGreaterThan(0);
    expect(stats.resentUncommitted).toBeGreaterThan(0);
    console.log(`crash: seed ${SEED}, ${sent} ops, ${JSON.stringify(stats)}, ${Math.round(performance.now() - started)} ms`);
  }, 90_000);
});
