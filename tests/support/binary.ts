// Builds dist/ferry once per test process and runs it from a directory with no node_modules around,
// so a binary that still reaches for the repo's files fails here as it would on a server.
import { copyFileSync, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dir, '../..');
let built: Promise<string> | null = null;

export function buildBinary(): Promise<string> {
  built ??= (async () => {
    const proc = Bun.spawn(['bun', 'scripts/build.ts'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
    if ((await proc.exited) !== 0) throw new Error(`build failed: ${await new Response(proc.stderr).text()}`);
    const dir = mkdtempSync(join(tmpdir(), 'ferry-bin-'));
    const binary = join(dir, 'ferry');
    copyFileSync(join(ROOT, 'dist/ferry'), binary);
    Bun.spawnSync(['chmod', '+x', binary]);
    return binary;
  })();
  return built;
}

export function binarySize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

export async function freePort(): Promise<number> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() });
  const port = server.port!;
  await server.stop(true);
  return port;
}

/** Runs a CLI command of the binary to completion; returns trimmed stdout. */
export async function runBinary(binary: string, args: string[], cwd: string): Promise<string> {
  const proc = Bun.spawn([binary, ...args], { cwd, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${code}: ${err}`);
  return out.trim();
}

/** Starts `ferry serve` and waits (bounded) until /healthz answers. */
export async function serveBinary(binary: string, dbFile: string, cwd: string, extra: string[] = [], port?: number) {
  port ??= await freePort();
  const started = performance.now();
  const proc = Bun.spawn([binary, 'serve', '--db', `file:${dbFile}`, '--port', String(port), '--host', '127.0.0.1', ...extra], {
    cwd, stdout: 'pipe', stderr: 'pipe',
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return { proc, base, port, startMs: performance.now() - started };
    } catch {}
    await Bun.sleep(25);
  }
  proc.kill(9);
  throw new Error(`ferry serve did not answer /healthz: ${await new Response(proc.stderr).text()}`);
}
