// Where a local write's time goes in the page (not a suite: no rows, no baseline). Opens the demo app offline,
// awaits N page-API puts (one at a time, or with BURST=1 500 issued in one turn) under the page's CPU profiler,
// and prints the rate and the profile's summary (bench/cpuprofile-summary.ts). Add spans as in
// bench/profile-drain.ts when a step needs timing.
//
//   bun bench/profile-local.ts [N=1000]
//   BURST=1 bun bench/profile-local.ts 5000     # the puts issued 500 in one turn (they share a transaction)
//   PROFILE_OUT=/tmp/local bun bench/profile-local.ts 1000   # also keeps the profile
import { launchDevice } from '../tests/support/browser.ts';
import { buildWeb, openApp, signIn, startWebServer } from '../tests/support/ferry-page.ts';
import { removeDir } from '../tests/support/server.ts';

const N = Number(process.argv[2] ?? 1000);
const BURST = process.env.BURST === '1';
await buildWeb();
const ferry = await startWebServer();
await ferry.user('bench');
const device = await launchDevice();
try {
  const page = await openApp(device, ferry);
  const { spaces } = await signIn(page, 'bench');
  await device.context.setOffline(true);
  const run = (n: number, from: number) => page.evaluate(async ({ space, n, from, burst }) => {
    const items = (window as any).ferry.collection(space, 'bench');
    const started = performance.now();
    if (burst) {
      for (let b = from; b < from + n; b += 500) {
        await Promise.all(Array.from({ length: Math.min(500, from + n - b) }, (_, j) => items.put(`k${b + j}`, { n: b + j })));
      }
    } else {
      for (let i = from; i < from + n; i++) await items.put(`k${i}`, { n: i });
    }
    return performance.now() - started;
  }, { space: spaces[0].id, n, from, burst: BURST });
  await run(100, 0); // warm
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const ms = await run(N, 100);
  const { profile } = (await cdp.send('Profiler.stop')) as { profile: unknown };
  console.log(`${N} puts ${BURST ? '500 in one turn' : 'one at a time'}: ${Math.round(ms)} ms (${Math.round(N / (ms / 1000))} ops/s)`);
  const file = `${process.env.PROFILE_OUT ?? '/tmp/ferry-local'}.cpuprofile`;
  await Bun.write(file, JSON.stringify(profile));
  console.log((await Bun.$`bun ${import.meta.dir}/cpuprofile-summary.ts ${file}`.text()).split('\n').slice(0, 70).join('\n'));
} finally {
  await device.close();
  await ferry.stop();
  removeDir(ferry.dir);
}
