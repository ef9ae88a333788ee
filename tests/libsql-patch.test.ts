// patches/@libsql%2Fclient@0.18.0.patch keeps prepared statements per connection (server/store.ts relies
// on it for speed, docs/benchmarks.md). These tests pin that it is applied and that a kept statement
// behaves exactly like a fresh one: after an error, after DDL on the same or another connection.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { removeDir } from './support/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-patch-'));
const url = `file:${join(dir, 'patch.db')}`;
afterAll(() => removeDir(dir));

test('a statement sent again is not prepared again', async () => {
  const proto = Database.prototype as unknown as { prepare: (this: unknown, source: string) => unknown };
  const prepare = proto.prepare;
  let prepared = 0;
  proto.prepare = function (source) {
    prepared += 1;
    return prepare.call(this, source);
  };
  const client = createClient({ url, concurrency: 1 });
  try {
    await client.execute('CREATE TABLE IF NOT EXISTS counted (k TEXT PRIMARY KEY, v INTEGER)');
    const before = prepared;
    for (let i = 0; i < 50; i++) await client.execute({ sql: 'INSERT INTO counted VALUES (?, ?)', args: [`k${i}`, i] });
    for (let i = 0; i < 50; i++) await client.execute({ sql: 'SELECT v FROM counted WHERE k = ?', args: [`k${i}`] });
    expect(prepared - before).toBe(2);
    expect(Number((await client.execute({ sql: 'SELECT v FROM counted WHERE k = ?', args: ['k7'] })).rows[0]!.v)).toBe(7);
  } finally {
    proto.prepare = prepare;
    client.close();
  }
});

test('a kept statement works after a constraint error, and inside transactions', async () => {
  const client = createClient({ url, concurrency: 1 });
  try {
    await client.execute('CREATE TABLE IF NOT EXISTS once (k TEXT PRIMARY KEY)');
    const insert = (k: string) => client.execute({ sql: 'INSERT INTO once VALUES (?)', args: [k] });
    await insert('a');
    await expect(insert('a')).rejects.toThrow(/UNIQUE/);
    await insert('b');
    const tx = await client.transaction('write');
    await tx.execute({ sql: 'INSERT INTO once VALUES (?)', args: ['c'] });
    await tx.rollback();
    const rows = (await client.execute('SELECT k FROM once ORDER BY k')).rows.map((r) => r.k);
    expect(rows).toEqual(['a', 'b']);
  } finally {
    client.close();
  }
});

test('a kept SELECT * sees columns added by DDL, on its own connection or another', async () => {
  const client = createClient({ url, concurrency: 1 });
  const other = createClient({ url, concurrency: 1 });
  try {
    await client.execute('CREATE TABLE IF NOT EXISTS wide (a INTEGER)');
    await client.execute('INSERT INTO wide VALUES (1)');
    expect((await client.execute('SELECT * FROM wide')).columns).toEqual(['a']);
    await other.execute('ALTER TABLE wide ADD COLUMN b INTEGER DEFAULT 2');
    const seen = await client.execute('SELECT * FROM wide');
    expect(seen.columns).toEqual(['a', 'b']);
    expect(seen.rows[0]!.b).toBe(2);
    await client.execute('ALTER TABLE wide ADD COLUMN c INTEGER DEFAULT 3');
    expect((await client.execute('SELECT * FROM wide')).columns).toEqual(['a', 'b', 'c']);
  } finally {
    client.close();
    other.close();
  }
});
