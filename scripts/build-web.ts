// Bundles the browser side into client/dist, which the server serves (and the binary embeds) at `/`:
//   sw.js       the ready Service Worker (sw/sw.ts): outbox drain, Background Sync, app-shell cache
//   ferry.js    the page library (client/index.ts) as an ES module, for apps without a bundler
//   app.js      the demo PWA (client/demo/main.ts)
//   chunks/     what the two pages load only when they need it (`import()`: the page's own drainer, the
//               sync socket, the worker's registration), shared by both where the code is the same
// Run: `bun scripts/build-web.ts` (the start script and the binary build run it first).
//
// The pages are split at their dynamic imports; the worker is one file (a Service Worker cannot `import()`).
//
// The worker is bundled last, with FERRY_SHELL defined as the list of files to cache for offline
// starts and a hash of their bytes: any change to the app changes sw.js, so browsers install the new
// worker, which caches the new files under a new name.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dir, '..');
const OUT = path.join(ROOT, 'client/dist');
const PUBLIC = path.join(ROOT, 'client/public');

const entries: Array<[string, string]> = [
  ['client/index.ts', 'ferry.js'],
  ['client/demo/main.ts', 'app.js'],
  ['sw/sw.ts', 'sw.js'],
];

/** Never cached as the shell: the worker itself (the browser fetches it directly) and source maps. */
const notShell = (rel: string) => rel === 'sw.js' || rel.endsWith('.map');

/** The shell's URLs (`/` for index.html) and a version hashed from their bytes. */
export function shellManifest(): { files: string[]; version: string } {
  const found = new Map<string, string>(); // url → file; a built file overrides a public one
  for (const dir of [PUBLIC, OUT]) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || entry.name.startsWith('.')) continue;
      const rel = path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
      if (notShell(rel)) continue;
      found.set(rel === 'index.html' ? '/' : `/${rel}`, path.join(dir, rel));
    }
  }
  const files = [...found.keys()].sort();
  const hasher = new Bun.CryptoHasher('sha256');
  for (const url of files) hasher.update(url).update(readFileSync(found.get(url)!));
  return { files, version: hasher.digest('hex').slice(0, 16) };
}

/** How a page bundle is built (bench/bundle.ts measures exactly this): `entry` → `outdir/name`, its
 * dynamic imports as chunks/<module>-<hash>.js beside it. */
export function pageBuild(entry: string, name: string, outdir: string): Bun.BuildConfig {
  return {
    entrypoints: [path.join(ROOT, entry)],
    target: 'browser',
    format: 'esm',
    minify: true,
    splitting: true,
    sourcemap: 'linked',
    naming: { entry: name, chunk: `${CHUNKS}/[name]-[hash].js` },
    outdir,
    define: { 'process.env.NODE_ENV': '"production"' },
  };
}

const CHUNKS = 'chunks';

export async function buildWeb(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const written = new Set<string>();
  for (const [entry, name] of entries) {
    if (!existsSync(path.join(ROOT, entry))) continue; // pieces land one by one; skip what is not there yet
    const config: Bun.BuildConfig = name === 'sw.js'
      ? {
        ...pageBuild(entry, name, OUT), splitting: false, naming: name,
        define: { 'process.env.NODE_ENV': '"production"', FERRY_SHELL: JSON.stringify(shellManifest()) },
      }
      : pageBuild(entry, name, OUT);
    const result = await Bun.build(config);
    for (const log of result.logs) console[result.success ? 'warn' : 'error'](log);
    if (!result.success) throw new Error(`bundling ${entry} failed`);
    for (const output of result.outputs) written.add(path.resolve(output.path));
    // The chunks of an earlier build that this one no longer has would be cached as shell for nothing.
    if (name === 'app.js') removeStaleChunks(written);
  }
}

/** Deletes what chunks/ holds that this build did not write (after the pages, before the worker lists the shell). */
function removeStaleChunks(written: Set<string>): void {
  const dir = path.join(OUT, CHUNKS);
  if (!existsSync(dir)) return;
  for (const file of readdirSync(dir)) {
    const full = path.join(dir, file);
    if (!written.has(full)) rmSync(full, { force: true });
  }
}

if (import.meta.main) {
  const started = performance.now();
  await buildWeb();
  console.log(`web bundles in client/dist (${(performance.now() - started).toFixed(0)} ms)`);
}
