// One suite, two targets: a server suite describes its behaviour once and runs it against Ferry on Bun
// (in this process: Elysia's Bun adapter, tests/support/server.ts) and on Deno (a `deno run` process of
// target-server.ts: Deno.serve and Deno.upgradeWebSocket). A suite reaches the server only through what
// works for both: HTTP and sockets, the server's database file (its own connection, as an operator's
// tool would open it), and a clock it moves.
//
//   for (const runtime of targets()) describe(`… on ${runtime}`, () => { … startTarget(runtime, …) … });
import type { Client } from '@libsql/client';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccounts, type Accounts } from '../../server/accounts.ts';
import type { RateLimits } from '../../server/rate-limit.ts';
import { openDatabase } from '../../server/storage/db.ts';
import { createSyncStore, type SyncStore } from '../../server/storage/sync-store.ts';
import { spawnServer } from './cli-server.ts';
import { command, type RuntimeName } from './runtimes.ts';
import { startServer } from './server.ts';
import type { EffectOptions } from '../../server/effects.ts';
import { effectFixture } from './effect-fixtures.ts';
import { RULE_FIXTURES, type RuleFixture, VERSION_FIXTURES, type VersionFixture } from './rule-fixtures.ts';
import { testAssets } from './test-assets.ts';
import type { TargetConfig } from './target-server.ts';

export { targets, type RuntimeName } from './runtimes.ts';

export type User = { id: string; token: string; space: string };

export interface TargetOptions {
  origins?: string[];
  pauseBytes?: number;
  maxPausedMs?: number;
  rateLimits?: RateLimits;
  maxSocketsPerUser?: number;
  sessionTtlMs?: number;
  /** The server's clock starts standing at this time; `setClock` moves it. Absent: the real clock. */
  clock?: number;
  /** Serve the browser suites' /test/ pages beside the PWA. */
  web?: boolean;
  /** The write rules to run, by name (rule-fixtures.ts): the same functions on every runtime. */
  rules?: RuleFixture;
  /** The schema versions, upgrades and collection schemas to run, by name (rule-fixtures.ts). */
  versions?: VersionFixture;
  /** Run effect-fixtures.ts's handlers, logging to this file (in the target's dir, which Deno may write). */
  effectsLog?: string;
  effectOptions?: EffectOptions;
}

export interface Target {
  runtime: RuntimeName;
  base: string;
  ws: string;
  port: number;
  dir: string;
  dbUrl: string;
  /** The test's own handle on the server's database file: raw SQL, the sync store and the accounts. */
  client: Client;
  store: SyncStore;
  accounts: Accounts;
  /** Creates a user and a bearer token for them (in the file, as `ferry user add` / `token create` do). */
  user(name: string): Promise<User>;
  /** Moves the server's clock (TargetOptions.clock) and resolves once the server reads the new time. */
  setClock(ms: number): Promise<void>;
  /** What a server process printed (for failure messages); empty in process. */
  output(): string;
  stop(): Promise<void>;
}

/** `port` 0 lets the OS pick; pass an old target's port and dir to restart it where its clients expect it. */
export async function startTarget(runtime: RuntimeName, options: TargetOptions = {}, dir = mkdtempSync(join(tmpdir(), 'ferry-target-')), port = 0): Promise<Target> {
  const dbUrl = `file:${join(dir, 'ferry.db')}`;
  return runtime === 'bun' ? inProcess(options, dir, port) : asProcess(runtime, options, dir, dbUrl, port);
}

async function inProcess(options: TargetOptions, dir: string, port: number): Promise<Target> {
  let time = options.clock ?? 0;
  const server = await startServer({
    ...(options.origins ? { origins: options.origins } : {}),
    ...(options.pauseBytes ? { pauseBytes: options.pauseBytes } : {}),
    ...(options.maxPausedMs ? { maxPausedMs: options.maxPausedMs } : {}),
    ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
    ...(options.maxSocketsPerUser ? { maxSocketsPerUser: options.maxSocketsPerUser } : {}),
    ...(options.sessionTtlMs ? { sessionTtlMs: options.sessionTtlMs } : {}),
    ...(options.clock === undefined ? {} : { now: () => time }),
    ...(options.web ? { assets: testAssets } : {}),
    ...(options.rules ? { rules: RULE_FIXTURES[options.rules] } : {}),
    ...(options.versions ? VERSION_FIXTURES[options.versions] : {}),
    ...(options.effectsLog ? { effects: effectFixture(options.effectsLog) } : {}),
    ...(options.effectOptions ? { effectOptions: options.effectOptions } : {}),
  }, dir, port);
  const { db, client } = server.database;
  return {
    runtime: 'bun', base: server.base, ws: server.ws, port: Number(new URL(server.base).port), dir, dbUrl: server.dbUrl,
    client, store: createSyncStore(db), accounts: createAccounts(db), user: server.user,
    async setClock(ms) {
      time = ms;
    },
    output: () => '',
    stop: () => server.stop(),
  };
}

async function asProcess(runtime: RuntimeName, options: TargetOptions, dir: string, dbUrl: string, port: number): Promise<Target> {
  const config: TargetConfig = { db: dbUrl, port, ...options };
  const server = await spawnServer(command(runtime, 'tests/support/target-server.ts', [JSON.stringify(config)], dir), { stdin: 'pipe' });
  // The server migrated the file before it listened; this connection only reads and adds accounts.
  const database = await openDatabase(dbUrl);
  const accounts = createAccounts(database.db);
  const stdin = server.proc.stdin as unknown as { write(text: string): void; flush(): void };
  return {
    runtime, base: server.base, ws: server.ws, port: server.port, dir, dbUrl,
    client: database.client, store: createSyncStore(database.db), accounts,
    async user(name) {
      const user = await accounts.addUser(name, `${name}-password`, Date.now());
      const token = await accounts.createToken(user.id, 'test', Date.now(), null);
      return { id: user.id, token, space: `u:${user.id}` };
    },
    async setClock(ms) {
      if (options.clock === undefined) throw new Error('this target was started without a clock to move');
      const seen = server.output().split(`clock ${ms}\n`).length;
      stdin.write(`clock ${ms}\n`);
      stdin.flush();
      const deadline = Date.now() + 10_000;
      while (server.output().split(`clock ${ms}\n`).length === seen) {
        if (Date.now() > deadline) throw new Error(`the ${runtime} server did not take clock ${ms}: ${server.output().slice(-500)}`);
        await Bun.sleep(5);
      }
    },
    output: server.output,
    async stop() {
      await server.stop();
      database.close();
    },
  };
}
