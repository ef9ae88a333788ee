// drizzle-kit configuration. `bunx drizzle-kit generate` diffs schema/tables.ts against the last snapshot
// in schema/migrations/meta and writes the next migration there; the server applies them at start
// (server/db.ts `migrate`). Commit every generated file.
//
// `turso` is drizzle-kit's libSQL dialect: the same SQLite DDL, but it may use libSQL's
// `ALTER TABLE ... ALTER COLUMN` where plain `sqlite` would rebuild a table. Ferry only ever runs on
// libSQL (embedded file or sqld/Turso), so that is the right target. `generate` never connects;
// `dbCredentials` only serves `drizzle-kit studio`/`push`, which Ferry does not use in production.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'turso',
  schema: './schema/tables.ts',
  out: './schema/migrations',
  dbCredentials: {
    url: process.env.FERRY_DATABASE_URL ?? 'file:ferry.db',
    authToken: process.env.FERRY_DATABASE_AUTH_TOKEN,
  },
  strict: true,
  verbose: true,
});
