// The server as a package entry (`@ferry/server`): what an app needs to run Ferry inside its own Bun or
// Deno process. Open and migrate the database, then mount createApp's Elysia app in the app's own (or
// listen with a runtime's adapter: `@ferry/server/bun`, `@ferry/server/deno`). The `ferry` command
// (server/cli.ts) is the same pieces behind flags. Each name is defined once, where it is re-exported from.
//
//   const { db } = await openDatabase('file:app.db');
//   await migrate(db);
//   new Elysia().use(await createApp({ db, origins: ['https://app.example.com'] })).listen(8787);
export { createApp, type AppDeps } from './app.ts';
export { migrate, openDatabase, type Database, type FerryDb, type OpenOptions, type SyncMode } from './storage/db.ts';
export { bearerOf, type Authenticate, type Principal } from './auth.ts';
export type { UserRef } from '../schema/accounts.ts';
export type { ChangeBus, ChangeNotice } from './change-bus.ts';
export type { RateLimits } from './rate-limit.ts';
export { currentRuntime, type Listening, type Runtime } from './runtime.ts';
export type { SocketAdapter } from './sync-socket.ts';
export type { CollectionSchemas } from '../schema/collections.ts';
export type { AppliedWrite, RuleInput, RuleResult, WriteRule, WriteRules, Writer } from '../core/logic.ts';
export type { CollectionVersion, CollectionVersions } from '../core/versions.ts';
export { EffectFailure, type Effect, type EffectHandler, type EffectHandlers, type EffectOptions } from './effects.ts';
