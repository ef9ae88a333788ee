#!/usr/bin/env node
// The installed `ferry` command (`npx ferry`, `node_modules/.bin/ferry`). The server runs on Bun or Deno,
// not on Node.js (it serves its sockets with the runtime's own server): under Bun or Deno this runs the
// commands in this process; under Node it runs itself again with Bun (`FERRY_BUN`, else `bun` on PATH),
// passing signals and the exit code through, and without Bun it says in one sentence what to install.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);

if (process.versions.bun !== undefined || 'Deno' in globalThis) {
  const { run } = await import('../server/cli.js');
  const { currentRuntime } = await import('../server/runtime.js');
  run(args, currentRuntime());
} else {
  const bun = process.env.FERRY_BUN || 'bun';
  const child = spawn(bun, [fileURLToPath(import.meta.url), ...args], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('error', (error) => {
    if (error.code === 'ENOENT') {
      console.error(`ferry: the server runs on Bun, not Node.js, and "${bun}" was not found: install Bun 1.4.4 or later (npm install -g bun), or set FERRY_BUN to its path.`);
    } else {
      console.error(`ferry: could not start ${bun}: ${error.message}`);
    }
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
