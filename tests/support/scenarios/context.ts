// What a device scenario gets to work with: the engine, browsers and servers it starts (closed and
// removed after it, whatever happened), and a place to note numbers for the closing table.
import { createAccounts } from '../../../server/accounts.ts';
import { builtInAuthenticate, type Authenticate } from '../../../server/auth.ts';
import { fail } from '../../../server/errors.ts';
import type { Engine, EngineBrowser } from '../engines/types.ts';
import { startAgain, startWebServer } from '../ferry-page.ts';
import { removeDir, type ServerDeps, type TestServer } from '../server.ts';

export interface ScenarioContext {
  engine: Engine;
  /** A browser on a fresh profile (or `profile`, to reopen one), closed after the scenario. */
  launch(profile?: string): Promise<EngineBrowser>;
  /** A real server with the test pages; its directory is removed after the scenario. */
  server(deps?: ServerDeps): Promise<TestServer>;
  /** The same server again on its port and data (pages keep their origin and cookies). */
  restart(stopped: TestServer, deps?: ServerDeps): Promise<TestServer>;
  /** A number for the closing note: printed, never asserted. */
  note(what: string, ms: number): void;
}

export interface Scenario {
  /** Its name in this engine: where the engine cannot do a step, the name says which and why. */
  name(engine: Engine): string;
  timeoutMs: number;
  run(ctx: ScenarioContext): Promise<void>;
}

export function createContext(engine: Engine, notes: Map<string, number[]>) {
  const browsers: EngineBrowser[] = [];
  // By directory (a restart replaces the stopped one), with whether the scenario stopped it.
  const servers = new Map<string, { server: TestServer; stopped: boolean }>();
  const keep = (server: TestServer): TestServer => {
    const entry = { server, stopped: false };
    servers.set(server.dir, entry);
    return {
      ...server,
      async stop() {
        entry.stopped = true;
        await server.stop();
      },
    };
  };
  const ctx: ScenarioContext = {
    engine,
    async launch(profile) {
      const browser = await engine.launch(profile);
      browsers.push(browser);
      return browser;
    },
    server: async (deps = {}) => keep(await startWebServer(deps)),
    restart: async (stopped, deps = {}) => keep(await startAgain(stopped, deps)),
    note(what, ms) {
      notes.set(what, [...(notes.get(what) ?? []), ms]);
    },
  };
  return {
    ctx,
    async cleanup() {
      await Promise.allSettled(browsers.map((b) => b.close()));
      for (const profile of new Set(browsers.map((b) => b.profile))) removeDir(profile);
      for (const { server, stopped } of servers.values()) {
        if (!stopped) await server.stop();
        removeDir(server.dir);
      }
    },
  };
}

/**
 * The built-in authentication, with every push after the first `passed` refused (500) until `release()`:
 * a drain is cut after exactly that many batches, however long the browser takes to close. Refused at
 * once rather than held: a held push kept Chromium's shutdown waiting ~30 s here.
 */
export function refusePushesAfter(passed: number): { deps: ServerDeps; release(): void } {
  let released = false;
  let pushes = 0;
  return {
    release: () => void (released = true),
    deps: (database) => {
      const inner: Authenticate = builtInAuthenticate(createAccounts(database.db), Date.now);
      return {
        async authenticate(request) {
          if (new URL(request.url).pathname === '/v1/push' && ++pushes > passed && !released) {
            throw fail('internal', 'Refused by the test until the browser has closed.');
          }
          return inner(request);
        },
      };
    },
  };
}
