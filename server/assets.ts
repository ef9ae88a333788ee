// Files the server ships with: the drizzle migrations and the PWA. Run from source they are read from
// the repo; inside the `bun build --compile` binary (scripts/build.ts) they are embedded with
// `compile.assets` and read from Bun's in-binary filesystem, which node:fs and Bun.file() both read,
// directories included (readdir, stat, existsSync). So nothing is ever unpacked to disk.
//
// An asset path is "<mount>/<path inside it>", e.g. "public/index.html" or
// "migrations/meta/_journal.json". A mount is built from one or more repo folders; when two folders
// hold the same path, the later folder wins (a built bundle overrides a static file of the same name).
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { BunFile } from 'bun';

/** Mount name → repo-relative source folders, lowest priority first. scripts/build.ts embeds these. */
export const ASSET_MOUNTS = {
  migrations: ['schema/migrations'],
  public: ['client/public', 'client/dist'],
} as const satisfies Record<string, readonly string[]>;

export type AssetMount = keyof typeof ASSET_MOUNTS;

/** True inside the compiled binary. */
export const isCompiled: boolean = Bun.isStandaloneExecutable;

// Source: this file is <repo>/server/assets.ts. Binary: everything is bundled into one module whose
// import.meta.dir is the embedded root ("/$bunfs/root" on Linux and macOS), and `compile.assets`
// mounts each staged folder there under its own name.
const REPO_ROOT = path.resolve(import.meta.dir, '..');
const EMBED_ROOT = import.meta.dir;

/** Folders to look in for a mount, highest priority first. */
function mountDirs(mount: AssetMount): string[] {
  if (isCompiled) return [path.join(EMBED_ROOT, mount)];
  return ASSET_MOUNTS[mount].map((dir) => path.join(REPO_ROOT, dir)).reverse();
}

/**
 * Dotfiles (.DS_Store, .gitkeep, .env) are never assets: the build leaves them out and lookups refuse
 * them, so source and binary agree. `.well-known` is the exception a PWA may need.
 */
export function isHiddenName(name: string): boolean {
  return name.startsWith('.') && name !== '.well-known';
}

function isMount(name: string): name is AssetMount {
  return Object.hasOwn(ASSET_MOUNTS, name);
}

/**
 * Split "public/a/b.js" into its mount and the path inside it. Anything that could step outside a
 * mount (empty, "." or ".." segments, backslashes, NUL) or names a dotfile gives null, so a request path can be passed
 * straight in.
 */
function parseAssetPath(assetPath: string): { mount: AssetMount; rel: string } | null {
  if (assetPath.includes('\\') || assetPath.includes('\0')) return null;
  const parts = assetPath.replace(/^\/+/, '').split('/');
  const [mount, ...rest] = parts;
  if (mount === undefined || !isMount(mount) || rest.length === 0) return null;
  if (rest.some((p) => p === '' || isHiddenName(p))) return null; // also catches "." and "..".
  return { mount, rel: rest.join('/') };
}

/**
 * The file for an asset path, as a BunFile (lazy; `new Response(file)` streams it with a
 * Content-Type from its extension), or null when there is no such file.
 */
export async function assetFile(assetPath: string): Promise<BunFile | null> {
  const parsed = parseAssetPath(assetPath);
  if (parsed === null) return null;
  for (const dir of mountDirs(parsed.mount)) {
    const file = Bun.file(path.join(dir, parsed.rel));
    // exists() is false for directories, so "public/icons" is not an asset.
    if (await file.exists()) return file;
  }
  return null;
}

/** The bytes of an asset, or null when there is no such file. */
export async function readAsset(assetPath: string): Promise<Uint8Array | null> {
  const file = await assetFile(assetPath);
  return file === null ? null : await file.bytes();
}

/** Every asset path in one mount, or in all of them; sorted, each listed once. */
export async function listAssets(mount?: AssetMount): Promise<string[]> {
  const mounts = mount === undefined ? (Object.keys(ASSET_MOUNTS) as AssetMount[]) : [mount];
  const found = new Set<string>();
  for (const m of mounts) {
    for (const dir of mountDirs(m)) {
      if (!existsSync(dir)) continue;
      for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const rel = path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep);
        if (rel.some(isHiddenName)) continue;
        found.add(`${m}/${rel.join('/')}`);
      }
    }
  }
  return [...found].sort();
}

/**
 * The PWA over HTTP, for createApp's `assets`: a URL pathname ("/", "/sw.js", "/icons/") → the file
 * from the public mount, or null (the app answers 404). A path ending in "/" means its index.html.
 * The Content-Type comes from the extension; no caching headers are set here.
 */
export async function staticAssets(urlPath: string): Promise<Response | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null; // malformed percent-encoding
  }
  const rel = decoded.replace(/^\/+/, '');
  const file = await assetFile(`public/${rel === '' || rel.endsWith('/') ? `${rel}index.html` : rel}`);
  return file === null ? null : new Response(file);
}

/**
 * A folder drizzle's migrator can read (`migrate(db, { migrationsFolder })` from
 * drizzle-orm/libsql/migrator). Inside the binary this is the embedded folder itself: drizzle only
 * uses existsSync and readFileSync, which work on it, so nothing is copied out.
 */
export async function migrationsFolder(): Promise<string> {
  for (const dir of mountDirs('migrations')) {
    if (existsSync(path.join(dir, 'meta', '_journal.json'))) return dir;
  }
  const where = isCompiled ? 'embedded in this binary' : `under ${REPO_ROOT}`;
  throw new Error(`no drizzle migrations (meta/_journal.json) ${where}; run \`bun run db:generate\``);
}
