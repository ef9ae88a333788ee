// `bun server/cli.ts serve` as a separate process over a temp libSQL file, for suites that must look at
// the server from outside: its resident memory (/proc/<pid>/status), its exit, its log. Users and tokens
// are made with the CLI's own `user add` / `token create`, as an operator would.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..', '..');
const CLI = join(ROOT, 'server', 'cli.ts');
const BUN = process.execPath;

export interface CliServer {
  proc: Bun.Subprocess;
  pid: number;
  base: string;
  ws: string;
  port: number;
  dir: string;
  dbUrl: string;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** Runs a CLI subcommand against the same database file; resolves with its trimmed stdout. */
  cli(args: string[]): Promise<string>;
  /** `user add` + `token create`: the user's id, a bearer token and the personal space. */
  user(name: string): Promise<{ id: string; token: string; space: string }>;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

/** Runs the ferry CLI to completion (bounded) and returns its trimmed stdout. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<string> {
  const proc = Bun.spawn([BUN, CLI, ...args], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '', ...env } });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${code}: ${err}`);
  return out.trim();
}

/**
 * Starts `ferry serve --port 0` (the OS picks the port, read back from its "listening on" line) and
 * waits, bounded, until /healthz answers. `extra` are more serve flags.
 */
export async function serveCli(extra: string[] = [], dir = mkdtempSync(join(tmpdir(), 'ferry-cli-'))): Promise<CliServer> {
  const dbUrl = `file:${join(dir, 'ferry.db')}`;
  const proc = Bun.spawn([BUN, CLI, 'serve', '--db', dbUrl, '--port', '0', '--host', '127.0.0.1', ...extra], {
    cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FERRY_DB: '' },
  });
  let text = '';
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of stream as ReadableStream<Uint8Array>) text += new TextDecoder().decode(chunk);
    })().catch(() => {});
  }
  const deadline = Date.now() + 15_000;
  let port = 0;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`ferry serve exited ${proc.exitCode}: ${text}`);
    port ||= Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? 0);
    if (port > 0) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
      if (ok) break;
    }
    await Bun.sleep(20);
  }
  if (port === 0 || Date.now() >= deadline) {
    proc.kill('SIGKILL');
    throw new Error(`ferry serve did not answer /healthz within 15 s: ${text}`);
  }
  const base = `http://127.0.0.1:${port}`;
  const cli = (args: string[]) => runCli([...args, '--db', dbUrl]);
  return {
    proc, pid: proc.pid, base, ws: `ws://127.0.0.1:${port}/v1/sync`, port, dir, dbUrl, cli,
    output: () => text,
    async user(name) {
      const created = await cli(['user', 'add', name, '--password', `${name}-password`]);
      const id = /\((.+?)\)/.exec(created)?.[1];
      if (!id) throw new Error(`unexpected "user add" output: ${created}`);
      const token = await cli(['token', 'create', name]);
      return { id, token, space: `u:${id}` };
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

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
