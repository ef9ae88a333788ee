// The page bundles' sizes (`--only bundle`): what a page downloads before Ferry's code runs (the first
// load) and what it fetches later only when it needs it (the lazy parts), min+gzip (level 9). Each bundle
// is built exactly as scripts/build-web.ts builds it, into a temp dir; the baseline is the same entry built
// as one file (its dynamic imports inlined), i.e. what a page downloaded before the split.
//
// The lazy parts are found by a module they hold (LAZY_PARTS below).
import { pageBuild } from '../scripts/build-web.ts';
import { bundleSizes, type BundleSizes, kib, partHolding } from '../scripts/bundle-size.ts';
import { tempDir, type Row, type Suite } from './lib.ts';

const FIRST_LOAD_TARGET_KIB = 20;

/** The lazy parts of the page library, by a module each holds: fetched as it starts, then on demand. */
const LAZY_PARTS = [
  ['device/device-socket.ts', 'sync socket (fetched as Ferry opens, not waited for)'],
  ['node_modules/workbox-window/build/workbox-window.prod.es5.mjs', 'worker registration (workbox-window)'],
  ['device/drainer.ts', 'page-side drainer (only where no worker drains for the page)'],
  ['client/auth.ts', 'account calls (sign-in, session, spaces: on the first call)'],
] as const;

async function measure(entry: string, name: string, split: boolean): Promise<BundleSizes> {
  const out = tempDir(`bundle-${split ? 'split' : 'whole'}`);
  try {
    const config = pageBuild(entry, name, out.dir);
    const result = await Bun.build({ ...config, splitting: split, sourcemap: 'none', metafile: true });
    if (!result.success) throw new Error(`bundling ${entry} failed: ${result.logs.join('\n')}`);
    return await bundleSizes(result, out.dir, name);
  } finally {
    out.remove();
  }
}

const topModules = (sizes: BundleSizes, files: readonly string[]) => sizes.chunks
  .filter((c) => files.includes(c.file)).flatMap((c) => c.modules)
  .sort((a, b) => b.bytes - a.bytes).slice(0, 12).map((m) => `${m.path} ${m.bytes}`);

export const bundleSuite: Suite = {
  name: 'bundle',
  async run({ log }) {
    const rows: Row[] = [];
    for (const [entry, name, what] of [['client/index.ts', 'ferry.js', 'page library'], ['client/demo/main.ts', 'app.js', 'demo app']] as const) {
      const [split, whole] = [await measure(entry, name, true), await measure(entry, name, false)];
      log(`  ${name}: first load ${kib(split.firstLoad.gzip)} KiB (${split.firstLoad.files.join(', ')}), one file ${kib(whole.firstLoad.gzip)} KiB`);
      for (const part of split.lazy) log(`    lazy ${part.file}: ${kib(part.gzip)} KiB (${part.files.join(', ')})`);
      rows.push({
        benchmark: `${what} (${name}): first load, min+gzip`, unit: 'KiB',
        ferry: kib(split.firstLoad.gzip), baseline: kib(whole.firstLoad.gzip),
        ...(name === 'ferry.js' ? { target: { on: 'value' as const, max: FIRST_LOAD_TARGET_KIB } } : {}),
        detail: {
          files: split.firstLoad.files, minifiedBytes: split.firstLoad.bytes, wholeMinifiedBytes: whole.firstLoad.bytes,
          largestModules: topModules(split, split.firstLoad.files),
        },
      });
      if (name !== 'ferry.js') continue;
      const parts = LAZY_PARTS.map(([module, label]) => ({ label, part: partHolding(split, module) }));
      for (const { label, part } of parts) {
        if (part === null) {
          log(`    ${label}: in the first load, not a lazy part`);
          continue;
        }
        rows.push({
          benchmark: `page library lazy part: ${label}, min+gzip`, unit: 'KiB', ferry: kib(part.gzip), baseline: null,
          detail: { files: part.files, minifiedBytes: part.bytes, largestModules: topModules(split, part.files) },
        });
      }
      // What a page its worker controls fetches as it starts: the first load, then (not waited for) the
      // socket and the registration; an uncontrolled page adds the drainer.
      const started = new Set([...split.firstLoad.files, ...parts.slice(0, 2).flatMap(({ part }) => part?.files ?? [])]);
      const startGzip = [...started].reduce((sum, file) => sum + split.chunks.find((c) => c.file === file)!.gzip, 0);
      rows.push({
        benchmark: 'page library fetched by a controlled page as it starts (first load + socket + registration), min+gzip',
        unit: 'KiB', ferry: kib(startGzip), baseline: kib(whole.firstLoad.gzip), detail: { files: [...started] },
      });
    }
    return rows;
  },
};

// `bun bench/bundle.ts`: this suite alone, with every module of every chunk.
if (import.meta.main) {
  for (const row of await bundleSuite.run({ quick: true, log: console.log })) console.log(JSON.stringify(row, null, 1));
}
