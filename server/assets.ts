// Files the server ships with: the drizzle migrations and the PWA. Run from source they are read from
// the repo; inside the `bun build --compile` binary (scripts/build.ts) they are embedded with
// `compile.assets` and read from Bun's in-binary filesystem, which node:fs reads, directories included
// (readdir, stat, existsSync). So nothing is ever unpacked to disk. Only node:fs is used here, so Deno
// serves the same files from the repo as Bun does.
//
// An asset path is "<mount>/<path inside it>", e.g. "public/index.html" or
// "migrations/meta/_journal.json". A mount is built from one or more repo folders; when two folders
// hold the same path, the later folder wins (a built bundle overrides a static file of the same name).
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** Mount name → repo-relative source folders, lowest priority first. scripts/build.ts embeds these. */
export const ASSET_MOUNTS = {
  migrations: ['schema/migrations'],
  public: ['client/public', 'client/dist'],
} as const satisfies Record<string, readonly string[]>;

export type AssetMount = keyof typeof ASSET_MOUNTS;

/** True inside the compiled binary (only Bun makes one). */
export const isCompiled: boolean = (globalThis as { Bun?: { isStandaloneExecutable: boolean } }).Bun?.isStandaloneExecutable ?? false;

// Source: this file is <repo>/server/assets.ts. Binary: everything is bundled into one module whose
// import.meta.dirname is the embedded root ("/$bunfs/root" on Linux and macOS), and `compile.assets`
// mounts each staged folder there under its own name.
const HERE = import.meta.dirname!;
const REPO_ROOT = path.resolve(HERE, '..');
const EMBED_ROOT = HERE;

/** Content-Types by extension, for every kind of file the PWA ships (others are octet-stream). */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html;charset=utf-8',
  '.js': 'text/javascript;charset=utf-8',
  '.mjs': 'text/javascript;charset=utf-8',
  '.css': 'text/css;charset=utf-8',
  '.json': 'application/json;charset=utf-8',
  '.map': 'application/json;charset=utf-8',
  '.webmanifest': 'application/manifest+json;charset=utf-8',
  '.txt': 'text/plain;charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

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

/** The file on disk (or in the binary) for an asset path, or null when there is no such file. */
export async function assetFile(assetPath: string): Promise<string | null> {
  const parsed = parseAssetPath(assetPath);
  if (parsed === null) return null;
  for (const dir of mountDirs(parsed.mount)) {
    const file = path.join(dir, parsed.rel);
    // A directory is not an asset, so "public/icons" is not one.
    if (await stat(file).then((s) => s.isFile(), () => false)) return file;
  }
  return null;
}

/** A file as a response, its Content-Type from its extension. The PWA's files are small: read whole. */
export async function fileResponse(file: string): Promise<Response> {
  return new Response(new Uint8Array(await readFile(file)), { headers: { 'content-type': contentTypeOf(file) } });
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
  return file === null ? null : fileResponse(file);
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
