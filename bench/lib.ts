// What every benchmark shares: the row shape, statistics, temp databases opened exactly like the
// server opens them, op generators, and the raw-libSQL baseline statements.
//
// Every figure is a ratio against a baseline measured in the same run (the machine is noisy), so each
// suite runs Ferry and its baseline interleaved, round by round, and reports medians.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, InArgs } from '@libsql/client';
import type { Op } from '../core/types.ts';
import { createAccounts } from '../server/accounts.ts';
import { migrate, openDatabase, type Database } from '../server/storage/db.ts';

// ── rows ────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * One line of the table. `ratio` is always ferry / baseline. A target is either on the ratio
 * (`min` for throughput, where higher is better; `max` for latency) or on the absolute figure.
 */
export interface Row {
  benchmark: string;
  unit: string;
  ferry: number;
  baseline: number | null;
  /** None: the row is for information (e.g. a p50 beside its p99's target). */
  target?: { on: 'ratio' | 'value'; min?: number; max?: number };
  /** Free-form details (rounds, spread, counts) kept in latest.json, not printed in the table. */
  detail?: Record<string, unknown>;
}

export interface SuiteOptions {
  quick: boolean;
  log: (line: string) => void;
}

/**
 * A group of rows. To add rows (e.g. the Chromium suites), write a module exporting a Suite and list it
 * in bench/run.ts; nothing else changes.
 */
export interface Suite {
  name: string;
  run(options: SuiteOptions): Promise<Row[]>;
}

export const ratioOf = (row: Row): number | null => (row.baseline ? row.ferry / row.baseline : null);

export function rowOk(row: Row): boolean | null {
  if (!row.target) return null;
  const x = row.target.on === 'ratio' ? ratioOf(row) : row.ferry;
  if (x === null) return false;
  return (row.target.min === undefined || x >= row.target.min) && (row.target.max === undefined || x <= row.target.max);
}

export function targetText(row: Row): string {
  if (!row.target) return '—';
  const unit = row.target.on === 'ratio' ? '×' : ` ${row.unit}`;
  if (row.target.min !== undefined) return `≥ ${row.target.min}${unit}`;
  return `≤ ${row.target.max}${unit}`;
}

// ── statistics ──────────────────────────────────────────────────────────────────────────────────────────

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: p99 of 100 samples is the 99th smallest, never an interpolation below a real sample.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const median = (values: readonly number[]) => quantile(values, 0.5);

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const p = 10 ** Math.max(0, digits - Math.max(0, Math.floor(Math.log10(Math.abs(x) || 1)) + 1));
  return Math.round(x * p) / p;
}

/** High-resolution wall clock in ms, comparable across processes on one machine. */
export const wallMs = () => performance.timeOrigin + performance.now();

// ── databases ───────────────────────────────────────────────────────────────────────────────────────────

export interface BenchDb {
  database: Database;
  client: Client;
  userId: string;
  space: string;
}

export function tempDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `ferry-bench-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A migrated file DB opened by the server's own `openDatabase` (WAL, synchronous=FULL on every pooled
 * connection), with one user and their personal space. Ferry and the baselines both use this, so the
 * schema, indexes and pragmas are identical; only the code path on top differs.
 */
export async function benchDb(dir: string, name: string): Promise<BenchDb> {
  const database = await openDatabase(`file:${join(dir, name)}`);
  await migrate(database.db);
  const user = await createAccounts(database.db).addUser(`bench-${name}`, 'bench-password', Date.now());
  await assertDurable(database.client);
  return { database, client: database.client, userId: user.id, space: `u:${user.id}` };
}

/** Checks, on the connection a write transaction gets, that the pragmas are the durable ones. */
export async function assertDurable(client: Client): Promise<void> {
  const tx = await client.transaction('write');
  try {
    const sync = Number((await tx.execute('PRAGMA synchronous')).rows[0]?.[0]);
    const journal = String((await tx.execute('PRAGMA journal_mode')).rows[0]?.[0]);
    if (sync !== 2 || journal !== 'wal') throw new Error(`expected WAL + synchronous=FULL, got ${journal} + ${sync}`);
  } finally {
    await tx.rollback();
  }
}

// ── ops and the rows a raw baseline writes for them ────────────────────────────────────────────────────

/** `count` put ops of one device from `seq`, on the given keys (a value of three small fields). */
export function putOps(device: string, space: string, seq: number, keys: readonly string[], extra: Record<string, number> = {}): Op[] {
  return keys.map((key, i) => ({
    id: `${device}:${seq + i}`, device, seq: seq + i, lamport: seq + i, space, collection: 'items', key,
    kind: 'put' as const, value: { title: `item ${key}`, done: (seq + i) % 2 === 0, n: seq + i, ...extra }, at: 0,
  }));
}

const ENTITY_COLUMNS = 'space, collection, key, value, stamps, base, live, deleted, server_seq, updated_at';
const LWW_UPDATE = `ON CONFLICT(space, collection, key) DO UPDATE SET value = excluded.value, stamps = excluded.stamps,
  base = excluded.base, live = excluded.live, deleted = excluded.deleted, server_seq = excluded.server_seq,
  updated_at = excluded.updated_at
  WHERE json_extract(excluded.live, '$[0]') > json_extract(entities.live, '$[0]')`;

/**
 * The raw baseline's statement: the same entity rows Ferry's merge produces for these puts, as ONE
 * multi-row INSERT with a row-level last-writer-wins upsert, server_seq from a counter in JS.
 */
export function rawUpsert(ops: readonly Op[], firstServerSeq: number, now: number): { sql: string; args: InArgs } {
  const args: (string | number | null)[] = [];
  for (const [i, op] of ops.entries()) {
    const stamp = [op.lamport, op.device];
    const value = op.value ?? {};
    const stamps = Object.fromEntries(Object.keys(value).map((f) => [f, stamp]));
    args.push(op.space, op.collection, op.key, JSON.stringify(value), JSON.stringify(stamps),
      JSON.stringify(stamp), JSON.stringify(stamp), 0, firstServerSeq + i, now);
  }
  const one = `(${Array(10).fill('?').join(', ')})`;
  return { sql: `INSERT INTO entities (${ENTITY_COLUMNS}) VALUES ${Array(ops.length).fill(one).join(', ')} ${LWW_UPDATE}`, args };
}

/** One durable write transaction holding one multi-row upsert: the raw cost of committing `ops`. */
export async function rawCommit(client: Client, ops: readonly Op[], firstServerSeq: number): Promise<void> {
  const tx = await client.transaction('write');
  try {
    await tx.execute(rawUpsert(ops, firstServerSeq, Date.now()));
    await tx.commit();
  } catch (error) {
    await tx.rollback();
    throw error;
  }
}

// ── processes ───────────────────────────────────────────────────────────────────────────────────────────

/** Resident set size of a process in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const port = server.port!;
  server.stop(true);
  return port;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
