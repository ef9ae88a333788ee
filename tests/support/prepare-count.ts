// Run by `deno` (tests/runtime-compat.test.ts): the first check of tests/libsql-patch.test.ts on this
// runtime. Prints how many statements libSQL prepared for 50 inserts and 50 selects of one statement
// each: 2 with the patch (kept per connection), 100 without it. argv[2]: the database URL.
import { createClient } from '@libsql/client';
import Database from 'libsql';

const proto = Database.prototype as unknown as { prepare: (this: unknown, source: string) => unknown };
const prepare = proto.prepare;
let prepared = 0;
proto.prepare = function (source) {
  prepared += 1;
  return prepare.call(this, source);
};
const client = createClient({ url: process.argv[2]!, concurrency: 1 });
await client.execute('CREATE TABLE IF NOT EXISTS counted (k TEXT PRIMARY KEY, v INTEGER)');
const before = prepared;
for (let i = 0; i < 50; i++) await client.execute({ sql: 'INSERT INTO counted VALUES (?, ?)', args: [`k${i}`, i] });
for (let i = 0; i < 50; i++) await client.execute({ sql: 'SELECT v FROM counted WHERE k = ?', args: [`k${i}`] });
const seven = Number((await client.execute({ sql: 'SELECT v FROM counted WHERE k = ?', args: ['k7'] })).rows[0]!.v);
client.close();
console.log(JSON.stringify({ prepared: prepared - before, seven }));
