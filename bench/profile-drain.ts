// Where a drain's time goes, in the real Service Worker (not a suite: no rows, no baseline). Queues N ops offline
// from /test/raw.html, goes online, and prints when the server's ledger and the outbox were done, the server's
// commitGroup time (GET /metrics), and the worker's console lines against the time the network came back: add
// spans while profiling as `console.log(\`T ${Date.now()} ${performance.now()} <what>\`)` in device/ or sw/ code.
//
//   bun bench/profile-drain.ts [N=1000] [rounds=3]
//   PROFILE_OUT=/tmp/drain bun bench/profile-drain.ts 2000 1   # also the worker's CPU profile, per round
//   bun bench/cpuprofile-summary.ts /tmp/drain-0.cpuprofile
import { launchDevice } from '../tests/support/browser.ts';
import { buildWeb, ledgerCount, metric, openRaw, rawSignIn, startWebServer, until } from '../tests/support/ferry-page.ts';
import { removeDir } from '../tests/support/server.ts';

const N = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 3);
await buildWeb();
const ferry = await startWebServer();
await ferry.user('bench');
const device = await launchDevice();
try {
  const page = await openRaw(device, ferry);
  const login = await rawSignIn(page, 'bench');
  const deviceId: string = await page.evaluate(() => (window as any).raw.deviceId());
  const cdp = await page.context().newCDPSession(page);
  const { targetInfos } = (await cdp.send('Target.getTargets')) as any;
  const worker = targetInfos.find((t: any) => t.type === 'service_worker');
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false })) as any;
  const lines: string[] = [];
  let id = 10;
  const answers = new Map<number, (result: any) => void>();
  const call = (method: string, params: object = {}) => new Promise<any>((resolve) => {
    const mine = ++id;
    answers.set(mine, resolve);
    void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: mine, method, params }) });
  });
  cdp.on('Target.receivedMessageFromTarget', (event: any) => {
    if (event.sessionId !== sessionId) return;
    const m = JSON.parse(event.message);
    if (m.id !== undefined && answers.has(m.id)) { answers.get(m.id)!(m.result); answers.delete(m.id); }
    if (m.method === 'Runtime.consoleAPICalled') lines.push(m.params.args.map((a: any) => a.value ?? a.description).join(' '));
  });
  await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: 1, method: 'Runtime.enable' }) });
  let onServer = 0;
  for (let r = 0; r < ROUNDS; r++) {
    await device.context.setOffline(true);
    await page.evaluate(({ space, n, from }) => (window as any).raw.enqueue(n, 500, space, from), { space: login.spaces[0].id, n: N, from: onServer });
    await page.evaluate(() => (window as any).raw.registerSync());
    const applySum0 = await metric(ferry, 'ferry_apply_latency_ms_sum');
    lines.length = 0;
    const profile = process.env.PROFILE_OUT;
    if (profile) { await call('Profiler.enable'); await call('Profiler.setSamplingInterval', { interval: 200 }); await call('Profiler.start'); }
    const t0 = Date.now();
    await device.context.setOffline(false);
    let ledgerAt = 0;
    await until('ledger', async () => (await ledgerCount(ferry, deviceId)) === onServer + N, 600_000, 10);
    ledgerAt = Date.now() - t0;
    await until('outbox', async () => (await page.evaluate(() => (window as any).raw.pending())) === 0, 60_000, 10);
    const ms = Date.now() - t0;
    onServer += N;
    if (profile) { const { profile: p } = await call('Profiler.stop'); await Bun.write(`${profile}-${r}.cpuprofile`, JSON.stringify(p)); }
    await Bun.sleep(200);
    const apply = (await metric(ferry, 'ferry_apply_latency_ms_sum')) - applySum0;
    console.log(`round ${r}: ${N} ops, ledger full at ${ledgerAt} ms, outbox empty at ${ms} ms (${Math.round(N / (ms / 1000))} ops/s); server apply sum ${apply.toFixed(1)} ms`);
    for (const line of lines) {
      const m = /^T (\d+) (.*)$/.exec(line);
      console.log(m ? `  +${Number(m[1]) - t0} ${m[2]}` : `  ${line}`);
    }
  }
} finally {
  await device.close();
  await ferry.stop();
  removeDir(ferry.dir);
}
