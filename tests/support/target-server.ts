// A Ferry server for the two-target suites, run as its own process by `bun` or `deno` (targets.ts): the
// same createApp every runtime serves, listening through the running runtime's adapter, with the deps a
// suite asks for (JSON in argv[2]). It prints "ferry listening on http://127.0.0.1:<port>" once up. With
// `clock` set the server's clock stands still at that time and moves only when a line "clock <ms>"
// arrives on stdin, answered "clock <ms>" on stdout once set. SIGTERM stops it as the CLI does.
import { createInterface } from 'node:readline';
import { createApp } from '../../server/app.ts';
import { currentRuntime } from '../../server/runtime.ts';
import { migrate, openDatabase } from '../../server/storage/db.ts';
import { effectFixture } from './effect-fixtures.ts';
import { RULE_FIXTURES, VERSION_FIXTURES } from './rule-fixtures.ts';
import type { TargetOptions } from './targets.ts';
import { testAssets } from './test-assets.ts';

/** What a suite asks for (targets.ts's options), plus where the database is and the port to take. */
export interface TargetConfig extends TargetOptions {
  db: string;
  port?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as TargetConfig;
let time = config.clock ?? 0;
const runtime = await currentRuntime();
const database = await openDatabase(config.db);
await migrate(database.db);
const app = await createApp({
  db: database.db,
  socket: runtime.socket,
  ...(config.origins ? { origins: config.origins } : {}),
  ...(config.pauseBytes ? { pauseBytes: config.pauseBytes } : {}),
  ...(config.maxPausedMs ? { maxPausedMs: config.maxPausedMs } : {}),
  ...(config.rateLimits ? { rateLimits: config.rateLimits } : {}),
  ...(config.maxSocketsPerUser ? { maxSocketsPerUser: config.maxSocketsPerUser } : {}),
  ...(config.sessionTtlMs ? { sessionTtlMs: config.sessionTtlMs } : {}),
  ...(config.clock === undefined ? {} : { now: () => time }),
  ...(config.web ? { assets: testAssets } : {}),
  ...(config.rules ? { rules: RULE_FIXTURES[config.rules] } : {}),
  ...(config.versions ? VERSION_FIXTURES[config.versions] : {}),
  ...(config.effectsLog ? { effects: effectFixture(config.effectsLog) } : {}),
  ...(config.effectOptions ? { effectOptions: config.effectOptions } : {}),
});
const listening = await runtime.listen(app, { hostname: '127.0.0.1', port: config.port ?? 0 });
console.log(`ferry listening on http://127.0.0.1:${listening.port} (${runtime.name})`);

if (config.clock !== undefined) {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const match = /^clock (\d+)$/.exec(line.trim());
    if (!match) return;
    time = Number(match[1]);
    console.log(`clock ${time}`);
  });
}

process.on('SIGTERM', async () => {
  await listening.stop();
  await app.decorator.ferry.committer.idle();
  app.decorator.ferry.close();
  database.close();
  process.exit(0);
});
