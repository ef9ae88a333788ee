// `ferry serve` as a separate process over a temp libSQL file, on Bun (`bun server/cli.ts`) or Deno
// (`deno run … server/deno.ts`), for suites that must look at the server from outside: its resident
// memory (/proc/<pid>/status), its exit, its log, a kill -9. Users and tokens are made with the CLI's own
// `user add` / `token create`, as an operator would. spawnServer starts any server script that prints
// "listening on http://127.0.0.1:<port>" (targets.ts's test server too).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CLI_ENTRY, command, ROOT, type RuntimeName } from './runtimes.ts';

export interface ServerProcess {
  proc: Bun.Subprocess<'pipe', 'pipe', 'pipe'>;
  pid: number;
  base: string;
  ws: string;
  port: number;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

export interface CliServer extends ServerProcess {
  runtime: RuntimeName;
  dir: string;
  dbUrl: string;
  /** Runs a CLI subcommand against the same database file; resolves with its trimmed stdout. */
  cli(args: string[]): Promise<string>;
  /** `user add` + `token create`: the user's id, a bearer token and the personal space. */
  user(name: string): Promise<{ id: string; token: string; space: string }>;
}

/** Runs the ferry CLI to completion (bounded) and returns its trimmed stdout. `dbDir`: the database's folder. */
export async function runCli(args: string[], env: Record<string, string> = {}, runtime: RuntimeName = 'bun', dbDir = tmpdir()): Promise<string> {
  const proc = Bun.spawn(command(runtime, CLI_ENTRY[runtime], args, dbDir), {
    cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '', ...env },
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`ferry ${args.join(' ')} (${runtime}) exited ${code}: ${err}`);
  return out.trim();
}

/**
 * Spawns `argv` and waits, bounded, until it printed its port and /healthz answers there. `port` 0 (the
 * default the scripts are given) lets the OS pick.
 */
export async function spawnServer(argv: string[], options: { stdin?: 'pipe' } = {}): Promise<ServerProcess> {
  const proc = Bun.spawn(argv, {
    cwd: ROOT, stdout: 'pipe', stderr: 'pipe', stdin: options.stdin ?? 'ignore', env: { ...process.env, FERRY_DB: '' },
  }) as unknown as Bun.Subprocess<'pipe', 'pipe', 'pipe'>;
  let text = '';
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of stream as ReadableStream<Uint8Array>) text += new TextDecoder().decode(chunk);
    })().catch(() => {});
  }
  const deadline = Date.now() + 30_000;
  let port = 0;
  let up = false;
  while (Date.now() < deadline && !up) {
    if (proc.exitCode !== null) throw new Error(`${argv.slice(0, 4).join(' ')} exited ${proc.exitCode}: ${text}`);
    port ||= Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? 0);
    if (port > 0) up = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (!up) await Bun.sleep(20);
  }
  if (!up) {
    proc.kill('SIGKILL');
    throw new Error(`the server did not answer /healthz within 30 s: ${text}`);
  }
  return {
    proc, pid: proc.pid, port, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/v1/sync`,
    output: () => text,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Starts `ferry serve --port 0` on `runtime` and waits until it answers. `extra` are more serve flags;
 * `port` a fixed one (to restart a server where its clients expect it).
 */
export async function serveCli(extra: string[] = [], dir = mkdtempSync(join(tmpdir(), 'ferry-cli-')), runtime: RuntimeName = 'bun', port = 0): Promise<CliServer> {
  const dbUrl = `file:${join(dir, 'ferry.db')}`;
  const args = ['serve', '--db', dbUrl, '--port', String(port), '--host', '127.0.0.1', ...extra];
  const server = await spawnServer(command(runtime, CLI_ENTRY[runtime], args, dir));
  const cli = (more: string[]) => runCli([...more, '--db', dbUrl], {}, runtime, dir);
  return {
    ...server, runtime, dir, dbUrl, cli,
    async user(name) {
      const created = await cli(['user', 'add', name, '--password', `${name}-password`]);
      const id = /\((.+?)\)/.exec(created)?.[1];
      if (!id) throw new Error(`unexpected "user add" output: ${created}`);
      const token = await cli(['token', 'create', name]);
      return { id, token, space: `u:${id}` };
    },
  };
}

/** The folder of a `file:` URL's database. */
export const dbDirOf = (dbUrl: string) => dirname(dbUrl.replace(/^file:/, ''));

/** Resident set size of a process, in bytes (VmRSS; `peak`: VmHWM), from /proc/<pid>/status. */
export function rssBytes(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** Reads one counter or gauge from GET /metrics. */
export async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
  if (value === undefined) throw new Error(`no ${name} in /metrics`);
  return Number(value);
}
