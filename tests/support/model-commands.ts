// The model's device commands beyond plain writes: drains, token expiry and sign-in again, and
// killing the Service Worker mid-batch. Each one checks what it can on the spot; tests/model.test.ts
// checks the rest (ledger, order, merge, replicas) at the end of the run.
import { eq, sql } from 'drizzle-orm';
import { tokens } from '../../schema/tables.ts';
import { sha256 } from '../../server/accounts.ts';
import type { DrainResult } from '../../device/ports.ts';
import type { Store } from '../../device/store.ts';
import { type Device, KILL_POINTS, type ModelEnv, startWorker, write } from './model-device.ts';

/** One drain by the device's live worker; a rejection (over its virtual backoff budget) is transient. */
export async function drain(device: Device, env: ModelEnv, resume = false): Promise<DrainResult | null> {
  env.figures.drains += 1;
  const worker = device.sw;
  let result: DrainResult | null = null;
  try {
    result = await worker.engine.drain(resume ? 'resume' : 'drain');
  } catch {
    // The ops stay for the next drain.
    env.figures.drainRejections += 1;
  }
  if (device.expired !== null && worker === device.sw) {
    // While the token is expired, every drain must end where it started: waiting for a sign-in.
    if (result?.phase !== 'paused-auth') throw new Error(`device ${device.index}: drain with an expired token ended ${result?.phase ?? 'rejected'}, not paused-auth`);
    await checkKept(device, env, 'drain while expired');
    env.figures.authPausedDrains += 1;
  }
  return result;
}

/** Drains (resuming a backoff or a failure, as the person's "retry now" would) until the outbox is empty; bounded. */
export async function deliverAll(device: Device, env: ModelEnv, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    if ((await device.store.outboxStats()).count === 0) break;
    const phase = (await device.store.loadDrainState())?.phase;
    await drain(device, env, phase === 'failed' || phase === 'backoff');
  }
  const stats = await device.store.outboxStats();
  if (stats.count !== 0) throw new Error(`device ${device.index}: ${stats.count} ops still in the outbox after ${rounds} drains`);
  if (stats.dead !== 0) throw new Error(`device ${device.index}: ${stats.dead} dead letters for valid ops`);
}

/** The seqs of the device's ops in the server's ledger. */
export async function ledgerSeqs(env: ModelEnv, device: string): Promise<number[]> {
  const rows = await env.server().database.db.all<{ seq: number }>(sql`SELECT seq FROM ops WHERE device = ${device} ORDER BY seq`);
  return rows.map((row) => row.seq);
}

async function outboxSeqs(store: Store): Promise<number[]> {
  return (await store.readOutbox(0, 100_000)).map((entry) => entry.op.seq);
}

/** While expired: nothing reached the ledger, nothing left the outbox, nothing was dead-lettered. */
async function checkKept(device: Device, env: ModelEnv, when: string): Promise<void> {
  const { ledger, queued } = device.expired!;
  const now = await ledgerSeqs(env, device.id);
  if (now.join() !== ledger.join()) {
    throw new Error(`device ${device.index} (${when}): the ledger took seqs ${now.filter((s) => !ledger.includes(s))} from an expired token`);
  }
  const held = new Set(await outboxSeqs(device.store));
  const gone = queued.filter((seq) => !held.has(seq));
  if (gone.length > 0) throw new Error(`device ${device.index} (${when}): seqs ${gone} left the outbox while the token was expired`);
  const { dead } = await device.store.outboxStats();
  if (dead !== 0) throw new Error(`device ${device.index} (${when}): ${dead} dead letters while the token was expired`);
}

/**
 * The device's bearer token expires in the server's database (expires_at in the past): between
 * drains, or (half the time) mid-drain, just before the drain's 1st–3rd request leaves, after the
 * batches before it were acked. The page writes first (so there is something to send); the worker
 * drains (through the faults; resumed out of a backoff, bounded) until it reports needs-auth. From
 * the moment of expiry nothing may reach the ledger, leave the outbox or be dead-lettered. Half the
 * time the person signs in again at once; otherwise the device stays signed out for later commands
 * (each drain there must end paused-auth and keep everything) until the next expire command on it,
 * which is then the sign-in, or the quiesce signs it in.
 */
export async function expireToken(device: Device, space: string, env: ModelEnv): Promise<void> {
  if (device.expired !== null) return renewToken(device, env);
  const { figures, r } = env;
  figures.tokenExpiries += 1;
  // A request a killed worker left in flight was authenticated before the expiry and may still
  // commit: let it land first, so "nothing reaches the ledger while expired" is about this token.
  await Promise.allSettled(env.orphans);
  await write(device, space, r, env.clock.now());
  let expired: { ledger: number[]; queued: number[] } | null = null;
  const expire = async () => {
    await env.server().database.db.update(tokens).set({ expiresAt: Date.now() - 1 }).where(eq(tokens.id, sha256(device.token)));
    env.tokens.delete(device.slot);
    // The device's earlier requests were answered, so their commits are done: a true snapshot.
    expired = { ledger: await ledgerSeqs(env, device.id), queued: await outboxSeqs(device.store) };
  };
  let result: DrainResult | null = null;
  if (r.chance(0.5)) {
    let left = r.int(1, Math.max(1, Math.min(3, Math.ceil((await device.store.outboxStats()).count / 4))));
    device.beforePush = async () => {
      left -= 1;
      if (left > 0) return;
      device.beforePush = null;
      figures.tokenExpiriesMidDrain += 1;
      await expire();
    };
    result = await drain(device, env);
    device.beforePush = null;
  }
  if (expired === null) {
    // The drain got everything acked before its n-th request: queue one more to meet the 401 with.
    if ((await device.store.outboxStats()).count === 0) await write(device, space, r, env.clock.now());
    await expire();
  }
  for (let round = 0; round < 10 && result?.phase !== 'paused-auth'; round += 1) {
    const phase = (await device.store.loadDrainState())?.phase;
    result = await drain(device, env, phase === 'failed' || phase === 'backoff');
  }
  if (result?.phase !== 'paused-auth') throw new Error(`device ${device.index}: drains with an expired token ended ${result?.phase ?? 'rejected'}`);
  const status = device.status;
  if (status?.state !== 'auth-required' || status.errorKind !== 'auth_required') {
    throw new Error(`device ${device.index}: status with an expired token is ${status?.state} (${status?.errorKind})`);
  }
  device.expired = expired;
  await checkKept(device, env, 'expired');
  if (r.chance(0.5)) await renewToken(device, env);
}

/**
 * The person signs in again: checks that the expired period kept everything, gives the device a
 * fresh token (the server's accounts API, as tests/support/server.ts does), tells the worker
 * (`signedIn`), and the next drains must deliver every op: outbox empty, ledger = seqs 1..n.
 */
export async function renewToken(device: Device, env: ModelEnv): Promise<void> {
  await checkKept(device, env, 'before sign-in');
  const phase = (await device.store.loadDrainState())?.phase;
  if (phase !== 'paused-auth') throw new Error(`device ${device.index}: stored phase ${phase} before sign-in, not paused-auth`);
  device.token = await env.server().app.decorator.ferry.accounts.createToken(device.user.id, `model-${device.index}`, Date.now(), null);
  env.tokens.set(device.slot, device.token);
  device.expired = null;
  env.figures.tokenRenewals += 1;
  env.figures.drains += 1;
  await device.sw.engine.drain('signed-in').catch(() => { env.figures.drainRejections += 1; });
  await deliverAll(device, env, 30);
  const ledger = await ledgerSeqs(env, device.id);
  if (ledger.length !== device.written || ledger.some((seq, i) => seq !== i + 1)) {
    throw new Error(`device ${device.index}: after sign-in the ledger holds ${ledger.length} ops (${ledger.slice(0, 20)}…), device wrote ${device.written}`);
  }
}

/**
 * The browser kills the Service Worker while a batch is in flight: a drain starts and its worker
 * dies at a seeded point of a seeded push (see KillPoint); its drain is never awaited again and it
 * can never touch the store or the network again. Its orphaned request (if any) is awaited, or, in
 * 30 % of kills, left racing the new worker. Then the browser starts a fresh worker on the same
 * database (new connection, drainer and lock), which drains at once 60 % of the time. Every op the
 * ledger holds that is still queued at the restart is watched: each answer to its resend must be
 * `duplicate` (checked in model-device.ts's observeAnswer, and at the end that one came back).
 * The page writes first if the outbox is empty. If the drain ends before the kill point (nothing
 * sent: the token is expired), the worker is killed idle.
 */
export async function killDrainer(device: Device, space: string, env: ModelEnv): Promise<void> {
  const { figures, r } = env;
  const worker = device.sw;
  // A write is what usually wakes the worker: make sure a batch can be in flight.
  if ((await device.store.outboxStats()).count === 0) await write(device, space, r, env.clock.now());
  const { count } = await device.store.outboxStats();
  const point = r.pick(KILL_POINTS);
  worker.plan = { push: r.int(1, Math.max(1, Math.min(3, Math.ceil(count / 4)))), point };
  const race = r.chance(0.3);
  await Promise.race([drain(device, env), worker.killed]);
  const midBatch = !worker.alive;
  if (midBatch) {
    figures.drainerKills += 1;
    figures.killPoints[point] += 1;
  } else {
    worker.die();
    figures.drainerKillsIdle += 1;
  }
  if (worker.orphan !== null) {
    env.orphans.push(worker.orphan);
    if (race) figures.killOrphanRaces += 1;
    else await worker.orphan;
  }
  worker.store.close();
  const committed = new Set(await ledgerSeqs(env, device.id));
  if (midBatch && point !== 'after-apply') {
    for (const seq of worker.lastBatch) {
      if (committed.has(seq)) figures.killedBatchCommitted += 1;
      else figures.killedBatchUncommitted += 1;
    }
  }
  for (const seq of await outboxSeqs(device.store)) {
    if (committed.has(seq) && !device.watch.has(seq)) {
      device.watch.set(seq, 0);
      figures.resendsWatched += 1;
    }
  }
  device.sw = await startWorker(device, env);
  if (r.chance(0.6)) await drain(device, env);
}

/** End of run: every watched op came back `duplicate` at least once, and never anything else. */
export function checkResends(device: Device, env: ModelEnv): void {
  if (device.violations.length > 0) {
    env.figures.doubled += 1;
    throw new Error(`device ${device.index}: ${device.violations[0]}`);
  }
  for (const [seq, duplicates] of device.watch) {
    if (duplicates === 0) throw new Error(`device ${device.index}: seq ${seq}, committed before a worker restart, was never answered duplicate`);
    env.figures.resentDuplicates += 1;
  }
}
