#!/usr/bin/env bun
// The `ferry` command: serve, and manage users, tokens and spaces. Flags win over environment variables.
// This file is Bun's entry point (`bun server/cli.ts`, and the compiled binary); server/deno.ts runs the
// same commands on Deno. Only `runtime` (how to serve the socket and listen) differs between them.
import { parseArgs } from 'node:util';
import { type Accounts, createAccounts } from './accounts.ts';
import { effectCommand, type Out, spaceCommand, tokenCommand, userCommand } from './cli-admin.ts';
import { describeFailure } from './log.ts';
import { createApp } from './app.ts';
import { DEFAULT_MAX_SOCKETS_PER_USER } from './context.ts';
import { migrationsFolder, staticAssets } from './assets.ts';
import { DEFAULT_CHANNEL, redacted } from './redis-config.ts';
import { currentRuntime, type Runtime } from './runtime.ts';
import { migrate, openDatabase, type Database } from './storage/db.ts';
import { createEffectStore } from './storage/effects-store.ts';

const DAY = 86_400_000;
const DB_FLAG = { db: { type: 'string', default: process.env.FERRY_DB ?? 'file:ferry.db' } } as const;

const HELP: Record<string, string> = {
  '': `ferry — offline-first sync server

Usage: ferry <command> [flags]   (ferry <command> --help for its flags)
  serve                                run the server with the demo PWA
  user add <name>                      create a user (password from --password or FERRY_PASSWORD)
  user list | passwd <name> | remove <name>
  token create <user> [--name L] [--days N]   print a new bearer token for a user
  token list <user> | revoke <user> <name-or-id>
  space create <owner> <name>          create a shared space
  space add-member <space> <user> [--role editor|viewer] | set-role <space> <user> <editor|viewer>
  space remove-member <space> <user> | list <user>
  effect list [--status pending|failed|done|dropped]   the app's side effects, newest first
  effect retry <op-id> [name] | retry --failed | drop <op-id> [name]`,
  serve: `ferry serve [--db URL] [--port N] [--host H] [--origin URL]... [--sync full|normal]
             [--tombstone-retention-days N] [--max-sockets-per-user N] [--redis URL] [--demo]
  --db          libSQL URL (file:ferry.db, libsql://…)    env FERRY_DB
  --db-token    auth token for a remote libSQL server      env FERRY_DB_AUTH_TOKEN
  --port        port to listen on (default 8787)           env FERRY_PORT
  --host        address to bind (default 127.0.0.1)        env FERRY_HOST
  --origin      an allowed browser Origin, repeatable      env FERRY_ORIGINS (comma-separated)
  --sync        full (default: survives power loss) | normal (survives a process kill)   env FERRY_SYNC
  --tombstone-retention-days  purge tombstones older than this (default 30)
  --max-sockets-per-user  sync sockets one user may hold open on this instance (default ${DEFAULT_MAX_SOCKETS_PER_USER})   env FERRY_MAX_SOCKETS_PER_USER
  --redis       redis://host:port: several instances on one database share live changes over it
                (default: none, a single instance)          env FERRY_REDIS
  --redis-channel  pub/sub channel, one per deployment (default ${DEFAULT_CHANNEL})   env FERRY_REDIS_CHANNEL
  --demo        create users alice and bob (password "ferry-demo") if missing`,
  user: 'ferry user add <name> [--password P] | list | passwd <name> [--password P] | remove <name>   [--db URL]',
  token: 'ferry token create <user> [--name LABEL] [--days N] | list <user> | revoke <user> <name-or-id>   [--db URL]',
  effect: 'ferry effect list [--status pending|failed|done|dropped] [--limit N] | retry <op-id> [name] | retry --failed | drop <op-id> [name]   [--db URL]',
  space: 'ferry space create <owner> <name> | add-member <space-id> <user> [--role editor|viewer] | set-role <space-id> <user> <editor|viewer> | remove-member <space-id> <user> | list <user>   [--db URL]',
};

const out: Out = { print, fail };

export async function main(argv: string[], runtime: Runtime): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === '--help' || command === 'help') return print(HELP['']!);
  if (rest.includes('--help')) return print(HELP[command] ?? HELP['']!);
  const admin = (run: (accounts: Accounts, args: string[], values: Values) => Promise<number | null>, options: Options = {}) =>
    withDb(rest, options, async (database, args, values) => (await run(createAccounts(database.db), args, values)) ?? usage(command));
  switch (command) {
    case 'serve':
      return serve(rest, runtime);
    case 'user':
      return admin((accounts, args, values) => userCommand(accounts, args, values, out), { password: { type: 'string' } });
    case 'token':
      return admin((accounts, args, values) => tokenCommand(accounts, args, values, out), { name: { type: 'string', default: 'cli' }, days: { type: 'string' } });
    case 'space':
      return admin((accounts, args, values) => spaceCommand(accounts, args, values, out), { role: { type: 'string', default: 'editor' } });
    case 'effect':
      return withDb(rest, { status: { type: 'string' }, limit: { type: 'string', default: '50' }, failed: { type: 'boolean' } },
        async (database, args, values) => (await effectCommand(createEffectStore(database.db), args, values, out)) ?? usage(command));
    default:
      return fail(`Unknown command "${command}".\n\n${HELP['']}`);
  }
}

async function serve(argv: string[], runtime: Runtime): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...DB_FLAG,
      'db-token': { type: 'string', default: process.env.FERRY_DB_AUTH_TOKEN },
      port: { type: 'string', default: process.env.FERRY_PORT ?? '8787' },
      host: { type: 'string', default: process.env.FERRY_HOST ?? '127.0.0.1' },
      origin: { type: 'string', multiple: true, default: (process.env.FERRY_ORIGINS ?? '').split(',').filter(Boolean) },
      sync: { type: 'string', default: process.env.FERRY_SYNC ?? 'full' },
      'tombstone-retention-days': { type: 'string', default: '30' },
      'max-sockets-per-user': { type: 'string', default: process.env.FERRY_MAX_SOCKETS_PER_USER ?? String(DEFAULT_MAX_SOCKETS_PER_USER) },
      redis: { type: 'string', default: process.env.FERRY_REDIS },
      'redis-channel': { type: 'string', default: process.env.FERRY_REDIS_CHANNEL ?? DEFAULT_CHANNEL },
      demo: { type: 'boolean', default: false },
    },
  });
  if (values.sync !== 'full' && values.sync !== 'normal') return fail('--sync is "full" or "normal".');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return fail(`--port is a whole number from 0 to 65535, not "${values.port}".`);
  const retentionDays = Number(values['tombstone-retention-days']);
  if (!Number.isInteger(retentionDays) || retentionDays < 1) return fail('--tombstone-retention-days is a whole number of days, at least 1.');
  const maxSocketsPerUser = Number(values['max-sockets-per-user']);
  if (!Number.isInteger(maxSocketsPerUser) || maxSocketsPerUser < 1) return fail('--max-sockets-per-user is a whole number, at least 1.');
  if (values.redis && !/^rediss?:\/\//.test(values.redis)) return fail('--redis is a redis:// or rediss:// URL.');
  const database = await openDatabase(values.db, {
    syncMode: values.sync,
    ...(values['db-token'] ? { authToken: values['db-token'] } : {}),
  });
  await migrate(database.db, await migrationsFolder());
  if (values.demo) await seedDemo(database);
  const retentionMs = retentionDays * DAY;
  const instance = crypto.randomUUID().slice(0, 8);
  const bus = values.redis
    ? (await import('./redis-bus.ts')).createRedisBus({ url: values.redis, instance, channel: values['redis-channel'] })
    : undefined;
  const app = await createApp({
    db: database.db, origins: values.origin, assets: staticAssets, tombstoneRetentionMs: retentionMs, instance, maxSocketsPerUser,
    socket: runtime.socket, ...(bus ? { bus } : {}),
  });
  const listening = await runtime.listen(app, { hostname: values.host, port });
  console.log(`ferry listening on http://${values.host}:${listening.port} (db ${values.db.replace(/\?.*$/, '')}, ${runtime.name})`);
  if (bus && values.redis) {
    // Serving does not wait for Redis: pushes and catch-up need only the database, and the bus catches up.
    await bus.ready(3000).then(
      () => console.log(`ferry: instance ${instance}, live changes over ${redacted(values.redis!)}`),
      () => console.error(`ferry: ${redacted(values.redis!)} is not answering; serving, and catching up when it does (/healthz says "bus": "lost")`),
    );
  }
  const stop = async () => {
    await listening.stop();
    await app.decorator.ferry.committer.idle();
    app.decorator.ferry.close();
    await bus?.close();
    database.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return new Promise(() => {}); // serve until signalled
}

async function seedDemo(database: Database) {
  const accounts = createAccounts(database.db);
  for (const name of ['alice', 'bob']) {
    if (!(await accounts.userByName(name))) {
      await accounts.addUser(name, 'ferry-demo', Date.now());
      console.log(`demo user ${name} / ferry-demo`);
    }
  }
}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
type Values = Record<string, string | boolean | undefined>;
async function withDb(
  argv: string[],
  options: Options,
  run: (database: Database, args: string[], values: Values) => Promise<number>,
): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...DB_FLAG, ...options }, allowPositionals: true });
  const database = await openDatabase(String((values as Record<string, unknown>).db));
  try {
    await migrate(database.db, await migrationsFolder());
    return await run(database, positionals, values as Values);
  } finally {
    database.close();
  }
}

function print(text: string): number {
  console.log(text);
  return 0;
}
function fail(text: string): number {
  console.error(`ferry: ${text}`);
  return 1;
}
function usage(command: string): number {
  return fail(`usage: ${HELP[command]}`);
}

/** Runs a command to its end and exits with its code; errors are printed as one line, no stack. */
export function run(argv: string[], runtime: Promise<Runtime>): void {
  runtime.then((r) => main(argv, r)).then((code) => process.exit(code), (error: unknown) => {
    // A flag parseArgs does not know is the person's mistake: say it plainly. Anything else, safely.
    const known = error instanceof Error && (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    console.error(`ferry: ${known ? (error as Error).message : describeFailure(error)}`);
    process.exit(1);
  });
}

if (import.meta.main) run(process.argv.slice(2), currentRuntime());
