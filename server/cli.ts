#!/usr/bin/env bun
// The `ferry` command: serve, and manage users, tokens and spaces. Flags win over environment variables.
import { parseArgs } from 'node:util';
import { createAccounts } from './accounts.ts';
import { createApp } from './app.ts';
import { migrationsFolder, staticAssets } from './assets.ts';
import { migrate, openDatabase, type Database } from './db.ts';

const DAY = 86_400_000;
const DB_FLAG = { db: { type: 'string', default: process.env.FERRY_DB ?? 'file:ferry.db' } } as const;

const HELP: Record<string, string> = {
  '': `ferry — offline-first sync server

Usage: ferry <command> [flags]   (ferry <command> --help for its flags)
  serve                       run the server with the demo PWA
  user add <name>             create a user (password from --password or FERRY_PASSWORD)
  token create <user>         print a new bearer token for a user
  space create <owner> <name> create a shared space
  space add-member <space> <user>
  space list <user>`,
  serve: `ferry serve [--db URL] [--port N] [--host H] [--origin URL]... [--sync full|normal]
             [--tombstone-retention-days N] [--demo]
  --db          libSQL URL (file:ferry.db, libsql://…)    env FERRY_DB
  --db-token    auth token for a remote libSQL server      env FERRY_DB_AUTH_TOKEN
  --port        port to listen on (default 8787)           env FERRY_PORT
  --host        address to bind (default 127.0.0.1)        env FERRY_HOST
  --origin      an allowed browser Origin, repeatable      env FERRY_ORIGINS (comma-separated)
  --sync        full (default: survives power loss) | normal (survives a process kill)   env FERRY_SYNC
  --tombstone-retention-days  purge tombstones older than this (default 30)
  --demo        create users alice and bob (password "ferry-demo") if missing`,
  user: 'ferry user add <name> [--password P] [--db URL]',
  token: 'ferry token create <user-name> [--name LABEL] [--days N] [--db URL]',
  space: 'ferry space create <owner> <name> | add-member <space-id> <user> | list <user> [--db URL]',
};

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === '--help' || command === 'help') return print(HELP['']!);
  if (rest.includes('--help')) return print(HELP[command] ?? HELP['']!);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'user':
      return withDb(rest, { password: { type: 'string' } }, async (database, args, values) => {
        if (args[0] !== 'add' || !args[1]) return usage('user');
        const password = values.password ?? process.env.FERRY_PASSWORD;
        if (!password) return fail('Give a password with --password or FERRY_PASSWORD.');
        const user = await createAccounts(database.db).addUser(args[1], String(password), Date.now());
        return print(`created user ${user.name} (${user.id}), personal space u:${user.id}`);
      });
    case 'token':
      return withDb(rest, { name: { type: 'string', default: 'cli' }, days: { type: 'string' } }, async (database, args, values) => {
        if (args[0] !== 'create' || !args[1]) return usage('token');
        const accounts = createAccounts(database.db);
        const user = await accounts.userByName(args[1]);
        if (!user) return fail(`There is no user named "${args[1]}".`);
        const ttl = values.days ? Number(values.days) * DAY : null;
        return print(await accounts.createToken(user.id, String(values.name), Date.now(), ttl));
      });
    case 'space':
      return withDb(rest, {}, async (database, args) => spaceCommand(createAccounts(database.db), args));
    default:
      return fail(`Unknown command "${command}".\n\n${HELP['']}`);
  }
}

async function spaceCommand(accounts: ReturnType<typeof createAccounts>, args: string[]): Promise<number> {
  const [sub, a, b] = args;
  const userNamed = async (name: string | undefined) => (name ? accounts.userByName(name) : null);
  if (sub === 'create' && a && b) {
    const owner = await userNamed(a);
    if (!owner) return fail(`There is no user named "${a}".`);
    const space = await accounts.createSpace(owner.id, b, Date.now());
    return print(`created space ${space.id} "${space.name}" owned by ${owner.name}`);
  }
  if (sub === 'add-member' && a && b) {
    const user = await userNamed(b);
    if (!user) return fail(`There is no user named "${b}".`);
    return print((await accounts.addMember(a, user.id)) ? `added ${user.name} to ${a}` : `${user.name} is already a member of ${a}`);
  }
  if (sub === 'list' && a) {
    const user = await userNamed(a);
    if (!user) return fail(`There is no user named "${a}".`);
    for (const s of await accounts.spacesOf(user.id)) console.log(`${s.id}\t${s.role}\t${s.personal ? 'personal' : 'shared'}\t${s.name}`);
    return 0;
  }
  return usage('space');
}

async function serve(argv: string[]): Promise<number> {
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
      demo: { type: 'boolean', default: false },
    },
  });
  if (values.sync !== 'full' && values.sync !== 'normal') return fail('--sync is "full" or "normal".');
  const database = await openDatabase(values.db, {
    syncMode: values.sync,
    ...(values['db-token'] ? { authToken: values['db-token'] } : {}),
  });
  await migrate(database.db, await migrationsFolder());
  if (values.demo) await seedDemo(database);
  const retentionMs = Number(values['tombstone-retention-days']) * DAY;
  const app = await createApp({ db: database.db, origins: values.origin, assets: staticAssets, tombstoneRetentionMs: retentionMs });
  app.listen({ hostname: values.host, port: Number(values.port) });
  const purge = setInterval(() => {
    void app.decorator.ferry.store.purgeTombstones(Date.now() - retentionMs).catch((e) => console.error('ferry: purge failed', e));
  }, Math.min(retentionMs, DAY) / 24);
  console.log(`ferry listening on http://${values.host}:${app.server!.port} (db ${values.db.replace(/\?.*$/, '')})`);
  const stop = async () => {
    clearInterval(purge);
    await app.stop();
    await app.decorator.ferry.committer.idle();
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

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];
async function withDb<O extends Options>(
  argv: string[],
  options: O,
  run: (database: Database, args: string[], values: Record<string, string | boolean | undefined>) => Promise<number>,
): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...DB_FLAG, ...options }, allowPositionals: true });
  const database = await openDatabase(String((values as Record<string, unknown>).db));
  try {
    await migrate(database.db, await migrationsFolder());
    return await run(database, positionals, values as Record<string, string | boolean | undefined>);
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

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    console.error(`ferry: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
