// The runtimes the server suites run the server on ("one suite, two targets"), and how to start a
// script of the repo on each: Bun as it is, Deno with the narrowest permissions the README lists.
// FERRY_TARGETS=bun (or deno) narrows the two-target suites to one runtime; `bun run test:fast` runs Bun's.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

export type RuntimeName = 'bun' | 'deno';

export const ROOT = resolve(import.meta.dir, '../..');
const BUN = process.execPath;

/** The runtimes to run the two-target suites against. */
export function targets(): RuntimeName[] {
  const named = (process.env.FERRY_TARGETS ?? 'bun,deno').split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = named.filter((t) => t !== 'bun' && t !== 'deno');
  if (unknown.length > 0) throw new Error(`FERRY_TARGETS names unknown runtimes: ${unknown.join(', ')}`);
  return named as RuntimeName[];
}

let deno: string | null = null;
/**
 * The Deno executable itself (FERRY_DENO, or `deno` on the PATH resolved through Deno.execPath()): npm's
 * `deno` may be a Node shim, and a test that kills the server by pid must reach Deno, not the shim.
 */
export function denoBinary(): string {
  if (deno) return deno;
  const found = spawnSync(process.env.FERRY_DENO ?? 'deno', ['eval', 'console.log(Deno.execPath())'], { encoding: 'utf8', timeout: 30_000 });
  const path = found.stdout?.trim();
  if (found.status !== 0 || !path) {
    throw new Error(`Deno is not installed (npm install -g deno@2.9.6, as .ci/run does): ${found.error?.message ?? found.stderr}`);
  }
  return (deno = path);
}

/**
 * README's permissions for `ferry serve` on Deno over an embedded file in `dbDir`: the network (here only
 * loopback), the repo's files (source, node_modules, the PWA) and the database's folder (SQLite writes
 * -wal and -shm beside the file), FERRY_* and the few variables Elysia and libSQL read, and FFI plus the
 * system facts libSQL's loader asks for to pick its native addon.
 */
export function denoPermissions(dbDir: string): string[] {
  return [
    '--allow-net=127.0.0.1',
    `--allow-read=${ROOT},${dbDir}`,
    `--allow-write=${dbDir}`,
    '--allow-env=FERRY_*,NODE_ENV,ENV,ELYSIA_AOT,LIBSQL_JS_DEV',
    '--allow-sys=cpus,networkInterfaces,hostname',
    `--allow-ffi=${join(ROOT, 'node_modules')}`,
  ];
}

/** argv that runs the repo-relative `script` on `runtime` with `args`, for a database in `dbDir`. */
export function command(runtime: RuntimeName, script: string, args: string[], dbDir: string): string[] {
  if (runtime === 'bun') return [BUN, join(ROOT, script), ...args];
  return [denoBinary(), 'run', ...denoPermissions(dbDir), join(ROOT, script), ...args];
}

/** The ferry CLI's entry point on each runtime. */
export const CLI_ENTRY: Record<RuntimeName, string> = { bun: 'server/cli.ts', deno: 'server/deno.ts' };
