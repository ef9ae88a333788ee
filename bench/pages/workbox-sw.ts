// The drain baseline's Service Worker: workbox-background-sync's `Queue`, as an app would use it to
// replay failed writes. Bundled by bench/chromium.ts (Bun.build, NODE_ENV=production so workbox's dev
// logging is compiled out) and served by the bench's own small Bun.serve at /sw.js.
//
// Messages (each answered on the MessagePort sent with it):
//   { type: 'push', count, from, space, device }  queues `count` POST /op requests, one op each
//   { type: 'replay' }                             queue.replayRequests(): one fetch per request, in order
//   { type: 'size' }                               how many requests are still queued
import { Queue } from 'workbox-background-sync';

interface Sw {
  addEventListener(type: string, listener: (event: any) => void): void;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  location: Location;
}
const sw = self as unknown as Sw;

// The browser's own sync event must not replay behind the bench's back: the bench starts the replay.
const queue = new Queue('bench', { onSync: async () => {}, maxRetentionTime: 7 * 24 * 60 });

sw.addEventListener('install', (event) => event.waitUntil(sw.skipWaiting()));
sw.addEventListener('activate', (event) => event.waitUntil(sw.clients.claim()));

async function handle(data: any): Promise<unknown> {
  if (data.type === 'push') {
    const url = new URL('/op', sw.location.origin).href;
    for (let i = 0; i < data.count; i += 100) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(data.count, i + 100); j++) {
        const seq = data.from + j + 1;
        const op = {
          id: `${data.device}:${seq}`, device: data.device, seq, lamport: seq, space: data.space,
          collection: 'items', key: `k${data.from + j}`, kind: 'put', value: { n: data.from + j }, at: 0,
        };
        batch.push(queue.pushRequest({
          request: new Request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(op) }),
        }));
      }
      await Promise.all(batch);
    }
    return queue.size();
  }
  if (data.type === 'replay') {
    await queue.replayRequests();
    return queue.size();
  }
  if (data.type === 'size') return queue.size();
  throw new Error(`unknown message ${JSON.stringify(data)}`);
}

sw.addEventListener('message', (event) => {
  const port = event.ports[0] as MessagePort;
  event.waitUntil(handle(event.data).then((result) => port.postMessage({ result }), (error) => port.postMessage({ error: String(error) })));
});
