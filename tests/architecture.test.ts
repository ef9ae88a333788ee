// The shape of the house, checked: one module owns each outside thing, the pure core imports nothing
// outside itself, the device engine reaches no page- or worker-only global, and each protocol fact is
// spelled in one place. A change that breaks one of these fails here with the file and line.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dir, '..');
const PRODUCT = ['core', 'schema', 'device', 'sw', 'client', 'server'];

/** Every product source file (tests and generated bundles excluded), with its text. */
async function sources(): Promise<Array<{ file: string; text: string }>> {
  const files: Array<{ file: string; text: string }> = [];
  for (const folder of PRODUCT) {
    for await (const rel of new Bun.Glob('**/*.ts').scan({ cwd: path.join(ROOT, folder) })) {
      if (rel.endsWith('.test.ts') || rel.startsWith('dist/')) continue;
      const file = `${folder}/${rel}`;
      files.push({ file, text: readFileSync(path.join(ROOT, file), 'utf8') });
    }
  }
  return files;
}

/** `file:line` of every line that matches `pattern` (comments skipped). */
function where(files: Array<{ file: string; text: string }>, pattern: RegExp): string[] {
  const hits: string[] = [];
  for (const { file, text } of files) {
    text.split('\n').forEach((line, i) => {
      const code = line.trimStart();
      if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return;
      if (pattern.test(line)) hits.push(`${file}:${i + 1}`);
    });
  }
  return hits;
}

const files = await sources();
/** Keeps the hits outside `owners`: files (`device/store.ts`) or folders (`server/storage/`). */
const only = (owners: string[]) => (hit: string) =>
  !owners.some((owner) => (owner.endsWith('/') ? hit.startsWith(owner) : hit.startsWith(`${owner}:`)));

describe('one owner per outside thing', () => {
  test('IndexedDB is opened by one module per database: device/store.ts (device data), device/profile.ts (who is signed in)', () => {
    const hits = where(files, /from 'idb'/).filter(only(['device/store.ts', 'device/store-steps.ts', 'device/profile.ts']));
    expect(hits).toEqual([]);
    // store-steps.ts may name idb's types; opening a database (idb's `wrap`) is the owners' alone.
    expect(where(files, /^import \{[^}]*\bwrap\b[^}]*\} from 'idb'/).map((hit) => hit.split(':')[0]).sort())
      .toEqual(['device/profile.ts', 'device/store.ts']);
    expect(where(files, /^import type .* from 'idb'/).filter(only(['device/store-steps.ts']))).toEqual([]);
  });

  test('only server/storage/ speaks SQL (drizzle, libSQL, the tables)', () => {
    expect(where(files, /from '(drizzle-orm[^']*|@libsql\/client)'|schema\/tables\.ts'/).filter(only(['server/storage/', 'schema/tables.ts']))).toEqual([]);
  });

  test('only server/redis-bus.ts talks to Redis', () => {
    expect(where(files, /from 'ioredis'|\bBun\.redis\b|\bRedisClient\b/).filter(only(['server/redis-bus.ts']))).toEqual([]);
  });

  test('only device/channel.ts opens a BroadcastChannel', () => {
    expect(where(files, /new BroadcastChannel\(/).filter(only(['device/channel.ts']))).toEqual([]);
  });

  test('only client/storage.ts asks the StorageManager (persistence, estimate, installed)', () => {
    expect(where(files, /navigator\.storage\b|display-mode|\.standalone\b/).filter(only(['client/storage.ts']))).toEqual([]);
  });

  test('only client/worker-link.ts registers the Service Worker; only sw/ listens as one', () => {
    expect(where(files, /workbox-window|serviceWorker\.register/).filter(only(['client/worker-link.ts']))).toEqual([]);
    expect(where(files, /addEventListener\('(sync|activate|install|fetch)'/).filter(only(['sw/']))).toEqual([]);
  });
});

describe('layers', () => {
  test('core imports only core', () => {
    expect(where(files.filter((f) => f.file.startsWith('core/')), /from '\.\.\/|from '[a-z@]/)).toEqual([]);
  });

  test('the device engine reaches no page-only or worker-only global: those come in as ports', () => {
    const device = files.filter((f) => f.file.startsWith('device/'));
    // navigator.locks is the default of createWebLock's parameter, which both pages and workers have.
    expect(where(device, /\b(document|window|self|location|localStorage)\.|(^|[^.\w])addEventListener\(/)).toEqual([]);
    // Online state, the Service Worker and the StorageManager are the adapters' to read.
    expect(where(device, /navigator\.(onLine|serviceWorker|storage)\b|\bmatchMedia\(/)).toEqual([]);
  });

  test("only the page (client/) loads code with import(): a Service Worker cannot, and the engine gets its parts handed in", () => {
    const hits = where(files.filter((f) => !f.file.startsWith('server/')), /\bimport\(['"]/).filter(only(['client/']));
    expect(hits).toEqual([]);
  });

  test('nothing outside server/ imports the server; the server imports no device or page code', () => {
    expect(where(files.filter((f) => !f.file.startsWith('server/')), /from '[./]*server\//)).toEqual([]);
    expect(where(files.filter((f) => f.file.startsWith('server/')), /from '[./]*(device|client|sw)\//)).toEqual([]);
  });
});

describe('one server on every runtime', () => {
  test("a runtime's own API is reached only by its adapter (and the two guarded probes of Bun's)", () => {
    const server = files.filter((f) => f.file.startsWith('server/'));
    // password.ts uses Bun.password where it exists; assets.ts asks whether it runs inside Bun's binary.
    expect(where(server, /\bBun\.|\bDeno\.|from 'bun'/).filter(only(['server/socket-bun.ts', 'server/socket-deno.ts']))).toEqual([]);
    expect(where(server, /globalThis as \{ Bun\?/).filter(only(['server/password.ts', 'server/assets.ts']))).toEqual([]);
  });

  test("the server uses no global only Bun (or only Node's npm packages on Deno) has", () => {
    for (const name of ['Buffer', 'setImmediate', 'clearImmediate', 'global']) {
      // Imported from node:buffer or node:timers is fine: Deno has those modules, not those globals.
      const server = files.filter((f) => f.file.startsWith('server/') && !new RegExp(`import \\{[^}]*\\b${name}\\b[^}]*\\} from 'node:`).test(f.text));
      expect(where(server, new RegExp(`(^|[^.\\w'])${name}\\b(?!:)`))).toEqual([]);
    }
    expect(where(files.filter((f) => f.file.startsWith('server/')), /import\.meta\.dir\b/)).toEqual([]);
  });
});

describe('each protocol fact spelled once (schema/protocol.ts)', () => {
  test('the CSRF header, the subprotocols, the lock and sync tag names, the close codes', () => {
    const elsewhere = files.filter((f) => f.file !== 'schema/protocol.ts');
    expect(where(elsewhere, /['"]x-ferry['"]|['"]ferry\.v1['"]|['"]ferry\.auth\.|['"]ferry:drain['"]|\b44(00|01|03|08|29)\b|\b4008\b/i)).toEqual([]);
  });

  test('no protocol version literal outside schema/', () => {
    expect(where(files.filter((f) => !f.file.startsWith('schema/')), /protocol:\s*\d/)).toEqual([]);
  });

  test('no export * hides where a name comes from', () => {
    expect(where(files, /^export \* from/)).toEqual([]);
  });
});
