// Build the npm packages an app installs: `bun scripts/build-packages.ts [--pack]` → dist/packages/.
//
//   dist/packages/client/   @ferry/client: the page library, the worker entry, the React hooks, the protocol
//   dist/packages/server/   @ferry/server: createApp, openDatabase, migrate, both runtimes, Redis, the `ferry` bin
//   dist/packages/*.tgz     with --pack: what `npm pack` makes of each, ready for `npm install ./x.tgz`
//
// Why tsc: it is already the repo's type checker, it writes the declarations from the same program that
// checked them (doc comments included), and emitting file by file keeps the repo's tree inside each package,
// so relative imports (rewritten .ts → .js) and server/assets.ts's paths (migrations, the demo PWA) hold there
// as they do in a checkout. A bundler would add nothing an app's own bundler does not do again. Two things tsc
// does not do are done here: the declarations keep `.ts` import paths (rewritten below), and the libSQL patch.
//
// The libSQL patch (patches/, applied by the repo's `bun install`) would not reach an app: package managers
// apply only the installing project's own patches. So the patched @libsql/client's ES modules are copied into
// the server package (vendor/libsql-client/, its dependencies left as dependencies), and
// server/storage/db.js imports them instead of the unpatched copy an install brings (which still serves the
// remote `@libsql/client/web` path, which the patch does not touch).
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildWeb } from './build-web.ts';
import { bundleSizes } from './bundle-size.ts';

const ROOT = path.resolve(import.meta.dir, '..');
const OUT = path.join(ROOT, 'dist/packages');
// A function only the patched sqlite3.js has.
const PATCH_MARK = 'function prepareCached(';

function fail(message: string): never {
  console.error(`build-packages: ${message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
for (const arg of args) if (arg !== '--pack') fail(`unknown argument ${arg}`);

type Manifest = { name: string; version: string; dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const root = readJson<Manifest & { devDependencies: Record<string, string> }>(path.join(ROOT, 'package.json'));

/** The repo's pinned version of a dependency: root package.json, else what node_modules holds. */
function pinned(name: string): string {
  const version = root.dependencies?.[name] ?? root.devDependencies[name];
  if (version) return version;
  const installed = path.join(ROOT, 'node_modules', name, 'package.json');
  if (!existsSync(installed)) fail(`${name} is neither a dependency of the repo nor installed`);
  return readJson<Manifest>(installed).version;
}

/** A package's manifest, checked: the repo's version, and ranges that admit what the repo tests with. */
function checkedManifest(pkg: string): Manifest {
  const manifest = readJson<Manifest>(path.join(ROOT, 'packages', pkg, 'package.json'));
  if (manifest.version !== root.version) fail(`packages/${pkg}: version ${manifest.version}, the repo is ${root.version}`);
  for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
    const version = pinned(name);
    if (!Bun.semver.satisfies(version, range)) fail(`packages/${pkg}: ${name}@${range} does not admit the repo's ${version}`);
  }
  return manifest;
}

async function tsc(config: string): Promise<void> {
  const proc = Bun.spawn([path.join(ROOT, 'node_modules/.bin/tsc'), '-p', config], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) fail(`tsc -p ${config} failed:\n${out}${err}`);
}

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/**
 * tsc writes declarations with the sources' `.ts` import paths, which an app's TypeScript may refuse
 * (without allowImportingTsExtensions) or not resolve (node16/nodenext); they name the `.js` files beside them.
 */
function declarationsToJs(dir: string): void {
  const relativeTs = /((?:from|import)\s*\(?\s*['"])(\.\.?\/[^'"]+)\.ts(['"])/g;
  for (const file of filesUnder(dir, '.d.ts')) {
    const text = readFileSync(file, 'utf8');
    const rewritten = text.replace(relativeTs, '$1$2.js$3');
    if (/['"]\.\.?\/[^'"]+\.ts['"]/.test(rewritten)) fail(`${path.relative(ROOT, file)} still imports a .ts path`);
    if (rewritten !== text) writeFileSync(file, rewritten);
  }
}

/** Copies the patched @libsql/client's ES modules into vendor/libsql-client/ and points db.js at them. */
function vendorLibsql(dir: string, manifest: Manifest): void {
  const client = path.join(ROOT, 'node_modules/@libsql/client');
  type Conditions = { import?: { node?: string; deno?: string } };
  const clientManifest = readJson<Manifest & { exports: Record<string, Conditions> }>(path.join(client, 'package.json'));
  if (clientManifest.version !== manifest.dependencies?.['@libsql/client']) {
    fail(`@libsql/client is ${clientManifest.version} in node_modules, ${manifest.dependencies?.['@libsql/client']} in packages/server`);
  }
  // Its own dependencies stay packages (libsql carries the native addon); the server depends on each directly.
  for (const name of Object.keys(clientManifest.dependencies ?? {})) {
    if (manifest.dependencies?.[name] !== clientManifest.dependencies?.[name]) {
      fail(`packages/server must depend on ${name}@${clientManifest.dependencies?.[name]} (the vendored @libsql/client's dependency)`);
    }
  }
  // The entry Bun and Deno load (its `node` and `deno` conditions): the one with the local-file client.
  const { node: entry, deno } = clientManifest.exports['.']?.import ?? {};
  if (!entry || entry !== deno) fail('@libsql/client no longer has one import entry for Node and Deno; update scripts/build-packages.ts');
  // Copied file by file, not bundled: its modules import each other relatively and the rest by package
  // name, which resolve the same from vendor/; Bun's bundler drops its `export * from '@libsql/core/api'`.
  const from = path.dirname(path.join(client, entry));
  const to = path.join(dir, 'vendor/libsql-client');
  mkdirSync(to, { recursive: true });
  const notice = `// @libsql/client ${clientManifest.version} (MIT, github.com/tursodatabase/libsql-client-ts) with Ferry's\n` +
    "// patches/ applied, copied by scripts/build-packages.ts: an app's install would not apply the patch.\n";
  for (const file of readdirSync(from).filter((name) => name.endsWith('.js'))) {
    writeFileSync(path.join(to, file), notice + readFileSync(path.join(from, file), 'utf8'));
  }
  if (!readFileSync(path.join(to, 'sqlite3.js'), 'utf8').includes(PATCH_MARK)) fail('node_modules/@libsql/client is not patched: run `bun install`');

  const db = path.join(dir, 'server/storage/db.js');
  const text = readFileSync(db, 'utf8');
  const uses = text.split("import('@libsql/client')").length - 1;
  if (uses !== 1) fail(`server/storage/db.js imports '@libsql/client' ${uses} times, expected once; update scripts/build-packages.ts`);
  writeFileSync(db, text.replace("import('@libsql/client')", `import('../../vendor/libsql-client/${path.basename(entry)}')`));
}

/** Copies a repo file or folder into a package, without dotfiles or source maps. */
function copyInto(dir: string, from: string, to = from): void {
  const source = path.join(ROOT, from);
  if (!existsSync(source)) fail(`${from} is missing`);
  const keep = (p: string) => p === source || !(path.basename(p).startsWith('.') || p.endsWith('.map'));
  cpSync(source, path.join(dir, to), { recursive: true, filter: keep });
}

function finish(pkg: string, manifest: Manifest): string {
  const dir = path.join(OUT, pkg);
  writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  copyInto(dir, `packages/${pkg}/README.md`, 'README.md');
  copyInto(dir, 'CHANGELOG.md');
  return dir;
}

async function buildClient(): Promise<string> {
  const manifest = checkedManifest('client');
  await Promise.all([tsc('packages/client/tsconfig.page.json'), tsc('packages/client/tsconfig.worker.json')]);
  return finish('client', manifest);
}

async function buildServer(): Promise<string> {
  const manifest = checkedManifest('server');
  await buildWeb(); // the demo PWA that `ferry serve` ships at `/`, as the binary does
  await tsc('packages/server/tsconfig.json');
  const dir = path.join(OUT, 'server');
  vendorLibsql(dir, manifest);
  copyInto(dir, 'schema/migrations');
  copyInto(dir, 'client/public');
  copyInto(dir, 'client/dist');
  copyInto(dir, 'packages/server/bin', 'bin');
  return finish('server', manifest);
}

async function pack(dir: string): Promise<string> {
  const proc = Bun.spawn(['npm', 'pack', '--silent', '--pack-destination', OUT], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) fail(`npm pack in ${path.relative(ROOT, dir)} failed: ${err}`);
  return path.join(OUT, out.trim().split('\n').pop()!);
}

/** An entry as an app's bundler would ship it: minified with its dependencies, split at its `import()`s,
 * gzipped: what a page fetches before the entry runs, and that with every chunk it may fetch later. */
async function minGzip(entry: string): Promise<{ firstLoad: number; all: number }> {
  const outdir = path.join(OUT, '.size');
  const result = await Bun.build({ entrypoints: [entry], target: 'browser', format: 'esm', minify: true, splitting: true, outdir, metafile: true,
    naming: { entry: 'entry.js', chunk: '[name]-[hash].js' }, define: { 'process.env.NODE_ENV': '"production"' } });
  if (!result.success) fail(`bundling ${entry} for its size failed`);
  const sizes = await bundleSizes(result, outdir, 'entry.js');
  rmSync(outdir, { recursive: true, force: true });
  return { firstLoad: sizes.firstLoad.gzip, all: sizes.chunks.reduce((sum, chunk) => sum + chunk.gzip, 0) };
}

const started = performance.now();
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const dirs = await Promise.all([buildClient(), buildServer()]);
for (const dir of dirs) declarationsToJs(dir);
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const client = path.join(OUT, 'client');
const page = await minGzip(path.join(client, 'client/index.js'));
console.log(`@ferry/client: page library ${kib(page.firstLoad)} min+gzip at first load (${kib(page.all)} with every chunk), ` +
  `worker entry ${kib((await minGzip(path.join(client, 'sw/worker.js'))).all)} (each with its dependencies)`);
if (args.includes('--pack')) {
  for (const dir of dirs) {
    const tarball = await pack(dir);
    console.log(`${path.relative(ROOT, tarball)}: ${kib(statSync(tarball).size)}`);
  }
}
console.log(`packages in ${path.relative(ROOT, OUT)}/ (${((performance.now() - started) / 1000).toFixed(1)}s)`);
