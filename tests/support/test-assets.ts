// What test servers serve besides the API: the PWA as `ferry serve` ships it, plus /test/<file> from
// tests/pages (and its built script, .tmp/test-pages). node:fs only, so a Deno test server serves it too.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileResponse, staticAssets } from '../../server/assets.ts';

const ROOT = path.resolve(import.meta.dirname!, '../..');
export const PAGES = path.join(ROOT, 'tests/pages');
export const BUILT = path.join(ROOT, '.tmp/test-pages');

export async function testAssets(urlPath: string): Promise<Response | null> {
  if (urlPath.startsWith('/test/')) {
    const name = urlPath.slice('/test/'.length);
    if (!/^[a-z0-9-]+\.(html|js)$/.test(name)) return null;
    for (const dir of [BUILT, PAGES]) {
      const file = path.join(dir, name);
      if (existsSync(file)) return fileResponse(file);
    }
    return null;
  }
  return staticAssets(urlPath);
}
