#!/usr/bin/env bun
// Where a commitGroup's time goes: every statement the apply path sends is timed at the libSQL client
// (prepare + run + rows), so per batch: BEGIN, each statement, COMMIT (the fsync), and the rest, which is
// JavaScript (drizzle building queries and mapping rows, planGroup, serializing). The raw baseline's
// commit is timed the same way for comparison.
//
//   bun bench/profile-apply.ts [--size 500] [--batches 40] [--updates] [--pages]
//
// --pages instead counts what each commit writes: WAL pages per commit (checkpoints off, so the WAL only
// grows) and how many pages each table and index grew by, for both sides. COMMIT's fsync and the
// checkpoints after it are paid per page, so this is what a commit costs beyond CPU.
//
// For a CPU profile of the same loop instead: bun --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-apply.ts,
// then bun bench/cpuprofile-summary.ts /tmp/prof/*.cpuprofile.
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Client } from '@libsql/client';
import { createSyncStore } from '../server/storage/sync-store.ts';
import { benchDb, putOps, rawCommit, round, tempDir } from './lib.ts';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    size: { type: 'string', default: '500' }, batches: { type: 'string', default: '40' },
    updates: { type: 'boolean', default: false }, pages: { type: 'boolean', default: false },
  },
});
const SIZE = Number(values.size);
const BATCHES = Number(values.batches);

/** Wraps the client so every statement inside a write transaction is timed, keyed by its first words. */
function instrument(client: Client) {
  const spent = { begin: 0, commit: 0, statements: new Map<string, number>() };
  const transaction = client.transaction.bind(client);
  (client as { transaction: unknown }).transaction = async (...args: Parameters<Client['transaction']>) => {
    let t = performance.now();
    const tx = await transaction(...args);
    spent.begin += performance.now() - t;
    const execute = tx.execute.bind(tx);
    tx.execute = async (stmt) => {
      t = performance.now();
      try {
        return await execute(stmt);
      } finally {
        const text = typeof stmt === 'string' ? stmt : stmt.sql;
        const key = text.replace(/\s+/g, ' ').slice(0, 48);
        spent.statements.set(key, (spent.statements.get(key) ?? 0) + performance.now() - t);
      }
    };
    const commit = tx.commit.bind(tx);
    tx.commit = async () => {
      t = performance.now();
      await commit();
      spent.commit += performance.now() - t;
    };
    return tx;
  };
  return spent;
}

const keysOf = (b: number) => Array.from({ length: SIZE }, (_, i) => (values.updates && b > 0 && i % 2 ? `k${b - 1}-${i}` : `k${b}-${i}`));

async function measure(label: string, write: (b: number) => Promise<void>, spent: ReturnType<typeof instrument>) {
  await write(0); // warm-up, not counted
  spent.begin = spent.commit = 0;
  spent.statements.clear();
  const started = performance.now();
  for (let b = 1; b <= BATCHES; b++) await write(b);
  const total = performance.now() - started;
  const sql = [...spent.statements.values()].reduce((a, b) => a + b, 0);
  const per = (x: number) => round(x / BATCHES, 3);
  console.log(`${label}: ${per(total)} ms per ${SIZE}-op batch = BEGIN ${per(spent.begin)} + statements ${per(sql)} + COMMIT ${per(spent.commit)} + JS ${per(total - sql - spent.begin - spent.commit)}`);
  for (const [key, ms] of [...spent.statements].sort((a, b) => b[1] - a[1])) console.log(`  ${String(per(ms)).padStart(7)} ms  ${key}`);
}

/** Pages per table and index (SQLite's dbstat), to see which of them a commit grows. */
async function pagesOf(client: Client): Promise<Map<string, number>> {
  const { rows } = await client.execute('SELECT name, count(*) FROM dbstat GROUP BY name');
  return new Map(rows.map((r) => [String(r[0]), Number(r[1])]));
}

async function pages(label: string, file: string, client: Client, write: (b: number) => Promise<void>) {
  await client.execute('PRAGMA wal_autocheckpoint=0'); // on the write connection: the pool has one
  await write(0);
  const before = { wal: statSync(`${file}-wal`).size, pages: await pagesOf(client) };
  for (let b = 1; b <= BATCHES; b++) await write(b);
  const after = await pagesOf(client);
  const page = Number((await client.execute('PRAGMA page_size')).rows[0]![0]);
  const grown = [...after].map(([name, n]) => [name, (n - (before.pages.get(name) ?? 0)) / BATCHES] as const).filter(([, n]) => n > 0);
  console.log(`${label}: ${round((statSync(`${file}-wal`).size - before.wal) / BATCHES / (page + 24), 3)} WAL pages per ${SIZE}-op commit; grown per commit: ${grown.map(([name, n]) => `${name} ${round(n, 3)}`).join(', ')}`);
}

const tmp = tempDir('profile-apply');
try {
  const ferry = await benchDb(tmp.dir, 'ferry.db');
  const raw = await benchDb(tmp.dir, 'raw.db');
  const store = createSyncStore(ferry.database.db);
  let seq = 1;
  if (values.pages) {
    await pages('ferry commitGroup', `${tmp.dir}/ferry.db`, ferry.client, async (b) => {
      await store.commitGroup([{ userId: ferry.userId, device: 'd', ops: putOps('d', ferry.space, seq, keysOf(b)) }], Date.now());
      seq += SIZE;
    });
    let rawSeq = 1;
    await pages('raw multi-row upsert', `${tmp.dir}/raw.db`, raw.client, async (b) => {
      await rawCommit(raw.client, putOps('d', raw.space, rawSeq, keysOf(b)), rawSeq);
      rawSeq += SIZE;
    });
    process.exit(0);
  }
  await measure('ferry commitGroup', async (b) => {
    const ops = putOps('d', ferry.space, seq, keysOf(b));
    await store.commitGroup([{ userId: ferry.userId, device: 'd', ops }], Date.now());
    seq += SIZE;
  }, instrument(ferry.client));
  let rawSeq = 1;
  await measure('raw multi-row upsert', async (b) => {
    await rawCommit(raw.client, putOps('d', raw.space, rawSeq, keysOf(b)), rawSeq);
    rawSeq += SIZE;
  }, instrument(raw.client));
  ferry.database.close();
  raw.database.close();
} finally {
  tmp.remove();
}
