// A real redis-server (Debian's, installed by scripts/test.sh) on 127.0.0.1 and a free port, nothing on
// disk (no RDB, no AOF), for the change-bus suites and the scale-out bench. `restart()` kills it with
// SIGKILL and starts a fresh one on the same port: every pub/sub subscriber is dropped and every message in
// flight is lost, as when a real Redis dies.
import { existsSync } from 'node:fs';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface RedisServer {
  url: string;
  port: number;
  /** Running now? (false between `kill()` and `start()`). */
  running(): boolean;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after `kill()`). */
  start(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() });
  const port = server.port!;
  await server.stop(true);
  return port;
}

/** Answers PING over a raw TCP connection within `ms`? */
async function pings(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, socket?: { end(): void }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket?.end();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), ms);
    Bun.connect({
      hostname: '127.0.0.1', port,
      socket: {
        open: (socket) => void socket.write('PING\r\n'),
        data: (socket, data) => finish(new TextDecoder().decode(data).startsWith('+PONG'), socket),
        error: () => finish(false),
        connectError: () => finish(false),
        close: () => finish(false),
      },
    }).catch(() => finish(false));
  });
}

export async function startRedis(): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing: scripts/test.sh installs Debian's redis-server`);
  const port = await freePort();
  let proc: Bun.Subprocess | null = null;
  const start = async () => {
    proc = Bun.spawn([REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'yes', '--loglevel', 'warning'], { stdout: 'ignore', stderr: 'pipe' });
    const deadline = Date.now() + 10_000;
    while (!(await pings(port, 500))) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited ${proc.exitCode}: ${await new Response(proc.stderr as ReadableStream).text()}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10 s`);
      await Bun.sleep(20);
    }
  };
  const kill = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGKILL');
    await p.exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`, port,
    running: () => proc !== null,
    kill, start,
    async restart() {
      await kill();
      await start();
    },
    stop: kill,
  };
}
