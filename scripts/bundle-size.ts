// What a page downloads for a bundle built with code splitting, read from the build's metafile:
//   first load   the entry and every chunk it imports statically: all of it is fetched and run before the
//                entry's code does (`import '/ferry.js'` resolves only then)
//   lazy parts   each dynamic `import()` target, with the static chunks it brings that the first load has not
//                already fetched: fetched only when the code asks for it
// Sizes are of the minified files gzipped at level 9, as a server or CDN would send them.
// Used by `bun run bench` (bench/bundle.ts) and scripts/build-packages.ts.
import { gzipSync } from 'node:zlib';

export interface ChunkSize {
  /** The file, relative to the build's outdir (`ferry.js`, `chunks/drainer-1a2b3c.js`). */
  file: string;
  bytes: number;
  gzip: number;
  /** Repo-relative source modules in this file, largest first, with their minified bytes in it. */
  modules: Array<{ path: string; bytes: number }>;
}

export interface LazyPart {
  /** The chunk `import()` names. */
  file: string;
  /** It, and the static chunks it needs that the first load does not hold. */
  files: string[];
  gzip: number;
  bytes: number;
}

export interface BundleSizes {
  entry: string;
  firstLoad: { files: string[]; bytes: number; gzip: number };
  lazy: LazyPart[];
  chunks: ChunkSize[];
}

type MetaOutput = { bytes: number; inputs: Record<string, { bytesInOutput: number }>; imports: Array<{ path: string; kind: string }> };

const gzipped = (bytes: Uint8Array) => gzipSync(bytes, { level: 9 }).length;
const normal = (file: string) => file.replace(/^\.\//, '');

/** The sizes of a finished build (it needs `metafile: true`). `entryFile`: the entry's output, e.g. `ferry.js`. */
export async function bundleSizes(result: Bun.BuildOutput, outdir: string, entryFile: string): Promise<BundleSizes> {
  const meta = result.metafile?.outputs as Record<string, MetaOutput> | undefined;
  if (!result.success || meta === undefined) throw new Error('bundleSizes needs a successful build with metafile: true');
  const chunks = new Map<string, ChunkSize & { imports: MetaOutput['imports'] }>();
  for (const output of result.outputs) {
    if (output.kind !== 'entry-point' && output.kind !== 'chunk') continue;
    const file = normal(output.path.slice(outdir.replace(/\/+$/, '').length + 1));
    const info = meta[`./${file}`] ?? meta[file];
    if (info === undefined) throw new Error(`no metafile entry for ${file}`);
    const bytes = new Uint8Array(await output.arrayBuffer());
    const modules = Object.entries(info.inputs).map(([path, input]) => ({ path, bytes: input.bytesInOutput }))
      .filter((m) => m.bytes > 0).sort((a, b) => b.bytes - a.bytes);
    chunks.set(file, { file, bytes: bytes.length, gzip: gzipped(bytes), modules, imports: info.imports.map((i) => ({ ...i, path: normal(i.path) })) });
  }
  if (!chunks.has(entryFile)) throw new Error(`${entryFile} is not an output of this build`);

  /** A file and everything it imports statically, transitively. */
  const closure = (file: string, into = new Set<string>()): Set<string> => {
    if (into.has(file)) return into;
    into.add(file);
    for (const i of chunks.get(file)?.imports ?? []) if (i.kind !== 'dynamic-import') closure(i.path, into);
    return into;
  };
  const sum = (files: Iterable<string>) => {
    let bytes = 0;
    let gzip = 0;
    for (const f of files) {
      bytes += chunks.get(f)!.bytes;
      gzip += chunks.get(f)!.gzip;
    }
    return { bytes, gzip };
  };
  const first = closure(entryFile);
  const dynamic = new Set([...chunks.values()].flatMap((c) => c.imports.filter((i) => i.kind === 'dynamic-import').map((i) => i.path)));
  const lazy = [...dynamic].filter((file) => !first.has(file)).map((file) => {
    const files = [...closure(file)].filter((f) => !first.has(f));
    return { file, files, ...sum(files) };
  }).sort((a, b) => b.gzip - a.gzip);
  return {
    entry: entryFile,
    firstLoad: { files: [...first], ...sum(first) },
    lazy,
    chunks: [...chunks.values()].map(({ imports: _, ...chunk }) => chunk),
  };
}

/** The lazy part whose chunk holds `module` (a repo-relative source path), if any. */
export function partHolding(sizes: BundleSizes, module: string): LazyPart | null {
  const file = sizes.chunks.find((c) => c.modules.some((m) => m.path === module))?.file;
  if (file === undefined) return null;
  return sizes.lazy.find((part) => part.files.includes(file)) ?? null;
}

export const kib = (bytes: number) => Math.round((bytes / 1024) * 100) / 100;
