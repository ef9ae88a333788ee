// A real listening Ferry server on 127.0.0.1 (port picked by the OS) over a real libSQL file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../../core/types.ts';
import { createAccounts } from '../../server/accounts.ts';
import type { AppDeps } from '../../server/app.ts';
import { createAppWithHooks, type TestHooks } from '../../server/testing.ts';
import { builtInAuthenticate } from '../../server/auth.ts';
import { migrate, openDatabase } from '../../server/storage/db.ts';

export type Database = Awaited<ReturnType<typeof openDatabase>>;
/** The server's deps (plus the test-only hooks), or a function of its database that makes them (for hooks
 * that query it). */
type Deps = Partial<AppDeps> & { faults?: TestHooks };
export type ServerDeps = Deps | ((database: Database) => Deps);

export interface TestServer {
  base: string;
  ws: string;
  dir: string;
  dbUrl: string;
  app: Awaited<ReturnType<typeof createAppWithHooks>>;
  database: Database;
  /** Creates a user and a bearer token for them. */
  user(name: string): Promise<{ id: string; token: string; space: string }>;
  stop(): Promise<void>;
}

/** `port` 0 lets the OS pick; pass an old server's port (and dir) to restart it where pages expect it. */
export async function startServer(deps: ServerDeps = {}, dir = mkdtempSync(join(tmpdir(), 'ferry-test-')), port = 0): Promise<TestServer> {
  const dbUrl = `file:${join(dir, 'ferry.db')}`;
  const database = await openDatabase(dbUrl);
  await migrate(database.db);
  const { faults = {}, ...given } = typeof deps === 'function' ? deps(database) : deps;
  const app = await createAppWithHooks({ db: database.db, ...given }, faults);
  app.listen({ hostname: '127.0.0.1', port });
  const listening = app.server!.port;
  const ferry = app.decorator.ferry;
  return {
    base: `http://127.0.0.1:${listening}`,
    ws: `ws://127.0.0.1:${listening}/v1/sync`,
    dir, dbUrl, app, database,
    async user(name) {
      const user = await ferry.accounts.addUser(name, `${name}-password`, Date.now());
      const token = await ferry.accounts.createToken(user.id, 'test', Date.now(), null);
      return { id: user.id, token, space: `u:${user.id}` };
    },
    async stop() {
      await app.stop(true);
      await ferry.committer.idle();
      ferry.close();
      database.close();
    },
  };
}

/** One request the authenticate hook decided on: its path (`/v1/sync` for a socket handshake) and the
 * user it proved, null when refused. */
export interface AuthDecision {
  path: string;
  user: string | null;
}

/**
 * The built-in authenticate hook over the server's own database, recording every decision it makes.
 * A test waits for the request it expects to reach the server (a socket handshake refused, a push)
 * instead of sleeping, and can tell that nothing else reached it. Pass `deps` to startServer.
 */
export function recordingAuth(): { deps: (database: Database) => Partial<AppDeps>; seen: AuthDecision[] } {
  const seen: AuthDecision[] = [];
  return {
    seen,
    deps(database) {
      const inner = builtInAuthenticate(createAccounts(database.db), Date.now);
      return {
        async authenticate(request) {
          const principal = await inner(request);
          seen.push({ path: new URL(request.url).pathname, user: principal?.user.id ?? null });
          return principal;
        },
      };
    },
  };
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

let opCounter = 0;
/** Builds `count` consecutive ops of one device starting at `seq`. */
export function makeOps(device: string, space: string, seq: number, count: number, patch: Partial<Op> = {}): Op[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${device}:${seq + i}`, device, seq: seq + i, lamport: seq + i, space,
    collection: 'items', key: `k${(opCounter++ % 7) + i}`, kind: 'put' as const,
    value: { title: `item ${seq + i}` }, at: 0, ...patch,
  }));
}

export async function push(base: string, token: string, device: string, ops: Op[]) {
  const res = await fetch(`${base}/v1/push`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 1, device, ops }),
  });
  return { status: res.status, body: (await res.json()) as any };
}
