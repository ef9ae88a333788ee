// Vite builds the page as usual; a small plugin then builds the Service Worker (src/sw.ts) to /sw.js as one
// classic script, with every file of the page's build as its precache manifest (what vite-plugin-pwa's
// injectManifest does, in a few lines).
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { build, defineConfig, type Plugin } from 'vite';

function serviceWorker(entry: string): Plugin {
  let outDir = 'dist';
  return {
    name: 'app-service-worker',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    async writeBundle(_, bundle) {
      const manifest = Object.values(bundle).map((file) => ({
        url: `/${file.fileName}`,
        // hashed names change with their content; the rest (index.html, public/) get a revision
        revision: file.fileName.startsWith('assets/')
          ? null
          : createHash('sha256').update(file.type === 'chunk' ? file.code : file.source).digest('hex').slice(0, 16),
      }));
      await build({
        configFile: false,
        logLevel: 'warn',
        define: { 'self.__WB_MANIFEST': JSON.stringify(manifest), 'process.env.NODE_ENV': '"production"' },
        build: {
          outDir,
          emptyOutDir: false,
          copyPublicDir: false,
          lib: { entry: resolve(entry), formats: ['iife'], name: 'sw', fileName: () => 'sw.js' },
        },
      });
    },
  };
}

export default defineConfig({
  plugins: [serviceWorker('src/sw.ts')],
});
