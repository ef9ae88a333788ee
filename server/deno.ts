// Deno's entry point: the same `ferry` commands as server/cli.ts, served with Deno.serve and
// Deno.upgradeWebSocket (socket-deno.ts). Run from a checkout after `bun install`: deno.json points Deno
// at the node_modules Bun installed, the libSQL patch included. The permissions it needs, and why each:
// README.md and docs/edge.md.
import { run } from './cli.ts';
import { denoRuntime } from './socket-deno.ts';

if (import.meta.main) run(process.argv.slice(2), Promise.resolve(denoRuntime));
