// Build the single-file server: `bun scripts/build.ts` → dist/ferry.
//
//   bun scripts/build.ts                          # for this machine, with a bytecode cache
//   bun scripts/build.ts --no-bytecode            # ~4 MiB smaller, starts ~2× slower
//   bun scripts/build.ts --target=bun-linux-arm64 # cross-compile (untested): Bun downloads that
//                                                 # runtime; the target's @libsql/* package must be installed
//
// What goes in, besides the bundled server:
// - every mount in server/assets.ts (drizzle migrations, the PWA): staged as dist/.assets/<mount>/
//   and embedded with `compile.assets`; server/assets.ts reads them back at run time;
// - libSQL's native addon. libsql/index.js loads it with require(`@libsql/${target}`), which the
//   bundler cannot follow, so the binary would look for node_modules at run time and fail anywhere
//   else. The plugin below rewrites that require to the literal package for the build target, and
//   Bun then embeds its index.node (at run time Bun writes it once to $TMPDIR and dlopens it).
import { cpSync, existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BunPlugin } from 'bun';
import { ASSET_MOUNTS, isHiddenName } from '../server/assets.ts';
import { buildWeb } from './build-web.ts';

const ROOT = path.resolve(import.meta.dir, '..');
const ENTRY = 'server/cli.ts';
const OUTFILE = 'dist/ferry';
const STAGE = 'dist/.assets';

function fail(message: string): never {
  console.error(`build: ${message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
for (const arg of args) {
  if (arg !== '--no-bytecode' && !arg.startsWith('--target=')) fail(`unknown argument ${arg}`);
}
const bytecode = !args.includes('--no-bytecode');
// Without --target Bun embeds the runtime running this script (no download); the name is then only
// used to pick libSQL's addon.
const targetFlag = args.find((a) => a.startsWith('--target='))?.slice('--target='.length) as
  | Bun.Build.CompileTarget
  | undefined;
const target: string = targetFlag ?? hostTarget();

function hostTarget(): string {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  // The test detect-libc (and so libsql) makes: a glibc runtime reports its version.
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  const musl = process.platform === 'linux' && !report.header?.glibcVersionRuntime;
  return `bun-${os}-${process.arch}${musl ? '-musl' : ''}`;
}

/** Bun compile target (bun-<os>-<arch>[-<simd>][-<libc>]) → the @libsql/* package with its addon. */
function libsqlPackage(compileTarget: string): string {
  const [, os, arch, ...rest] = compileTarget.split('-');
  if (os === 'linux' && (arch === 'x64' || arch === 'arm64')) {
    return `@libsql/linux-${arch}-${rest.includes('musl') ? 'musl' : 'gnu'}`;
  }
  if (os === 'darwin' && (arch === 'x64' || arch === 'arm64')) return `@libsql/darwin-${arch}`;
  if (os === 'windows' && arch === 'x64') return '@libsql/win32-x64-msvc';
  return fail(`no libSQL addon for compile target ${compileTarget}`);
}

const addon = libsqlPackage(target);
try {
  Bun.resolveSync(`${addon}/package.json`, path.join(ROOT, 'node_modules', 'libsql'));
} catch {
  fail(`${addon} is not installed, so a ${target} binary cannot embed libSQL's addon`);
}
if (!existsSync(path.join(ROOT, ENTRY))) fail(`${ENTRY} does not exist`);

const libsqlStaticAddon: BunPlugin = {
  name: 'libsql-static-addon',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]libsql[\\/](index|promise)\.js$/ }, async ({ path: file }) => {
      const source = await Bun.file(file).text();
      const dynamic = /require\(`@libsql\/\$\{target\}`\)/g;
      if (!dynamic.test(source)) {
        throw new Error(`${file}: no require(\`@libsql/\${target}\`) to rewrite (libsql upgraded?); update scripts/build.ts`);
      }
      return { contents: source.replace(dynamic, `require(${JSON.stringify(addon)})`), loader: 'js' };
    });
  },
};

// `compile.assets` embeds a folder under its own name (client/public → "public"), so each mount is
// first staged into a folder named after it; that also merges a mount's source folders, later wins.
function stageAssets(): string[] {
  rmSync(path.join(ROOT, STAGE), { recursive: true, force: true });
  const staged: string[] = [];
  for (const [mount, dirs] of Object.entries(ASSET_MOUNTS)) {
    const into = path.join(ROOT, STAGE, mount);
    let files = 0;
    for (const dir of dirs) {
      const from = path.join(ROOT, dir);
      if (!existsSync(from)) continue;
      const keep = (p: string) => p === from || !isHiddenName(path.basename(p)); // no .DS_Store, .gitkeep…
      files += [...new Bun.Glob('**/*').scanSync({ cwd: from, onlyFiles: true, dot: true })].filter((f) =>
        f.split('/').every((part) => !isHiddenName(part)),
      ).length;
      cpSync(from, into, { recursive: true, dereference: true, filter: keep });
    }
    if (mount === 'migrations' && !existsSync(path.join(into, 'meta', '_journal.json'))) {
      fail(`${dirs.join(', ')} has no meta/_journal.json; run \`bun run db:generate\``);
    }
    if (files === 0) {
      console.warn(`build: warning: nothing to embed for "${mount}" (${dirs.join(', ')} missing or empty)`);
      continue;
    }
    staged.push(into);
  }
  return staged;
}

const started = performance.now();
await buildWeb(); // the PWA bundles go into client/dist before it is staged
const assets = stageAssets();
const result = await Bun.build({
  entrypoints: [path.join(ROOT, ENTRY)],
  target: 'bun',
  compile: {
    ...(targetFlag ? { target: targetFlag } : {}),
    outfile: path.join(ROOT, OUTFILE),
    assets,
    // A server should not pick up whatever bunfig.toml is in the directory it is started from.
    autoloadBunfig: false,
  },
  bytecode,
  format: 'esm', // with bytecode the default is cjs, which rejects top-level await
  // Identifiers stay unminified so stack traces keep function names; the JS is ~2 MiB of ~118 MiB.
  minify: { whitespace: true, syntax: true },
  // The source map goes inside the binary whatever the mode (traces show server/….ts:line); the
  // side file Bun also writes is removed below so that dist/ holds just the binary.
  sourcemap: 'linked',
  define: { 'process.env.NODE_ENV': '"production"' }, // as `bun build --compile` (it implies --production)
  plugins: [libsqlStaticAddon],
  metafile: true,
  throw: false,
});
rmSync(path.join(ROOT, STAGE), { recursive: true, force: true });
rmSync(path.join(ROOT, `${OUTFILE}.map`), { force: true });
for (const log of result.logs) console[result.success ? 'warn' : 'error'](log);
if (!result.success) fail('bundling failed');

const inputs = Object.keys(result.metafile?.inputs ?? {});
if (!inputs.some((input) => input.includes(`${addon}/`) && input.endsWith('.node'))) {
  rmSync(path.join(ROOT, OUTFILE), { force: true });
  fail(`${addon}'s .node file did not get into the binary; libSQL would fail at run time`);
}

const mib = (statSync(path.join(ROOT, OUTFILE)).size / 2 ** 20).toFixed(1);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const mounts = assets.map((a) => path.basename(a)).join(', ') || 'no assets';
console.log(`${OUTFILE}: ${mib} MiB, ${target}${bytecode ? ' + bytecode' : ''}, built in ${seconds}s (${mounts}, ${addon})`);
