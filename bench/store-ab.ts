#!/usr/bin/env bun
// The device store's write path at another commit against this tree's, in ONE Chromium page, interleaved
// round by round with raw IndexedDB (a strict put per op), so the machine's load hits all three alike:
//
//   bun bench/store-ab.ts <commit> [rounds=9]
//
// Per round: 40 single-draft `enqueue`s each (old, new, raw one-put transactions), then 2 × 500 drafts per
// transaction each. Prints, per shape, the median over rounds of raw's rate over the store's (the ratio the
// Chromium suite reports, without the page library around the store). The old store is `git archive`d
// into .tmp/store-ab/<commit>/device (core and schema are this tree's: the store is what is compared).
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { launchDevice } from '../tests/support/browser.ts';
import { median } from './lib.ts';

const [commit, roundsArg = '9'] = process.argv.slice(2);
if (!commit) throw new Error('usage: bun bench/store-ab.ts <commit> [rounds]');
const ROOT = path.resolve(import.meta.dir, '..');
const dir = path.join(ROOT, '.tmp/store-ab', commit);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const archive = Bun.spawnSync(['sh', '-c', `git archive ${commit} device | tar -x -C ${dir}`], { cwd: ROOT });
if (archive.exitCode !== 0) throw new Error(`git archive ${commit} failed: ${archive.stderr.toString()}`);
for (const shared of ['core', 'schema']) symlinkSync(path.join(ROOT, shared), path.join(dir, shared));
const entry = path.join(dir, 'entry.ts');
await Bun.write(entry, `import { createStore as createOld } from './device/store.ts';
import { createStore as createNew } from '${path.join(ROOT, 'device/store.ts')}';
(window as any).ab = { createOld, createNew };`);
const built = await Bun.build({ entrypoints: [entry], target: 'browser', format: 'esm', minify: true });
if (!built.success) throw new Error(built.logs.join('\n'));
const js = await built.outputs[0]!.text();
const server = Bun.serve({
  hostname: '127.0.0.1', port: 0,
  fetch: (req) => new URL(req.url).pathname === '/ab.js'
    ? new Response(js, { headers: { 'content-type': 'text/javascript' } })
    : new Response('<!doctype html><script type="module" src="/ab.js"></script>', { headers: { 'content-type': 'text/html' } }),
});
const device = await launchDevice();
try {
  const page = await device.page();
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await page.waitForFunction(() => (window as any).ab !== undefined);
  const times = await page.evaluate(async (rounds) => {
    const { createOld, createNew } = (window as any).ab;
    const stores = { old: await createOld({ name: 'ab-old' }), new: await createNew({ name: 'ab-new' }) };
    const space = crypto.randomUUID();
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open('ab-raw', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('outbox', { keyPath: 'seq' });
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    let seq = 0;
    const raw = async (n: number) => {
      const tx = db.transaction('outbox', 'readwrite', { durability: 'strict' });
      for (let j = 0; j < n; j++) {
        seq += 1;
        tx.objectStore('outbox').put({ id: `raw:${seq}`, device: 'raw', seq, lamport: seq, space, collection: 'items', key: `k${seq}`, kind: 'put', value: { n: seq }, at: Date.now() });
      }
      await new Promise<void>((resolve, reject) => { tx.oncomplete = () => resolve(); tx.onerror = () => reject(tx.error); });
    };
    const next = { old: 0, new: 0 };
    const enqueue = (which: 'old' | 'new', n: number) => stores[which].enqueue(Array.from({ length: n }, () => {
      next[which] += 1;
      return { space, collection: 'items', key: `k${next[which]}`, kind: 'put', value: { n: next[which] } };
    }), Date.now());
    const time = async (write: () => Promise<unknown>, count: number) => {
      const started = performance.now();
      for (let i = 0; i < count; i++) await write();
      return performance.now() - started;
    };
    const out: Record<string, number[]> = {};
    const note = (name: string, ms: number) => (out[name] ??= []).push(ms);
    for (let r = 0; r < rounds; r++) {
      note('single old', await time(() => enqueue('old', 1), 40));
      note('single new', await time(() => enqueue('new', 1), 40));
      note('single raw', await time(() => raw(1), 40));
      note('500 old', await time(() => enqueue('old', 500), 2));
      note('500 new', await time(() => enqueue('new', 500), 2));
      note('500 raw', await time(() => raw(500), 2));
    }
    return out;
  }, Number(roundsArg));
  for (const shape of ['single', '500']) {
    for (const which of ['old', 'new']) {
      const ratios = times[`${shape} ${which}`]!.map((ms, i) => times[`${shape} raw`]![i]! / ms);
      console.log(`${shape === 'single' ? '1 per transaction' : '500 per transaction'}, ${which === 'old' ? commit : 'this tree'}: ${median(ratios).toFixed(2)}× raw (rounds ${ratios.map((x) => x.toFixed(2)).join(' ')})`);
    }
  }
} finally {
  await device.close();
  server.stop(true);
}
