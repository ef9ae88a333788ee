// A real listening Ferry server on 127.0.0.1 (port picked by the OS) over a real libSQL file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../../core/types.ts';
import { createApp, type AppDeps } from '../../server/app.ts';
import { migrate, openDatabase } from '../../server/db.ts';

export interface TestServer {
  base: string;
  ws: string;
  dir: string;
  dbUrl: string;
  app: Awaited<ReturnType<typeof createApp>>;
  database: Awaited<ReturnType<typeof openDatabase>>;
  /** Creates a user and a bearer token for them. */
  user(name: string): Promise<{ id: string; token: string; space: string }>;
  stop(): Promise<void>;
}

/** `port` 0 lets the OS pick; pass an old server's port (and dir) to restart it where pages expect it. */
export async function startServer(deps: Partial<AppDeps> = {}, dir = mkdtempSync(join(tmpdir(), 'ferry-test-')), port = 0): Promise<TestServer> {
  const dbUrl = `file:${join(dir, 'ferry.db')}`;
  const database = await openDatabase(dbUrl);
  await migrate(database.db);
  const app = await createApp({ db: database.db, ...deps });
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
      database.close();
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
