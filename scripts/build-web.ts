// Bundles the browser side into client/dist, which the server serves (and the binary embeds) at `/`:
//   sw.js       the ready Service Worker (sw/sw.ts): outbox drain, Background Sync, app-shell cache
//   ferry.js    the page library (client/index.ts) as an ES module, for apps without a bundler
//   app.js      the demo PWA (client/demo/main.ts)
// Run: `bun scripts/build-web.ts` (the start script and the binary build run it first).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dir, '..');
const OUT = path.join(ROOT, 'client/dist');

const entries: Array<[string, string]> = [
  ['sw/sw.ts', 'sw.js'],
  ['client/index.ts', 'ferry.js'],
  ['client/demo/main.ts', 'app.js'],
];

export async function buildWeb(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  for (const [entry, name] of entries) {
    if (!existsSync(path.join(ROOT, entry))) continue; // pieces land one by one; skip what is not there yet
    const result = await Bun.build({
      entrypoints: [path.join(ROOT, entry)],
      target: 'browser',
      format: 'esm',
      minify: true,
      sourcemap: 'linked',
      naming: name,
      outdir: OUT,
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    for (const log of result.logs) console[result.success ? 'warn' : 'error'](log);
    if (!result.success) throw new Error(`bundling ${entry} failed`);
  }
}

if (import.meta.main) {
  const started = performance.now();
  await buildWeb();
  console.log(`web bundles in client/dist (${(performance.now() - started).toFixed(0)} ms)`);
}
