import { describe, expect, test } from 'bun:test';
import { SyncError } from '../core/errors.ts';
import type { Op } from '../core/types.ts';
import type { AckBody } from '../schema/wire.ts';
import { createHttpTransport } from './http-transport.ts';

const op: Op = {
  id: 'd1:1', device: 'd1', seq: 1, lamport: 1, space: 'u:alice', collection: 'items', key: 'milk',
  kind: 'put', value: { title: 'Milk' }, at: 1_700_000_000_000,
};
const ack: AckBody = { through: 1, lamport: 7, results: [{ seq: 1, id: 'd1:1', result: 'applied' }] };

/** A fetch that records its request and answers `status` with `body` (or throws `body` if it is an Error). */
function fakeFetch(status: number, body: string | object | Error) {
  const requests: Array<{ url: string; init: RequestInit }> = [];
  const fetch = (async (url: string, init: RequestInit) => {
    requests.push({ url, init });
    if (body instanceof Error) throw body;
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
  }) as unknown as typeof globalThis.fetch;
  return { fetch, requests };
}

async function pushWith(status: number, body: string | object | Error): Promise<unknown> {
  const { fetch } = fakeFetch(status, body);
  return createHttpTransport({ url: 'https://ferry.test', fetch }).push({ device: 'd1', ops: [op] }).catch((e: unknown) => e);
}

describe('http transport', () => {
  test('POSTs the batch to /v1/push with the cookie, the CSRF header and the protocol version', async () => {
    const { fetch, requests } = fakeFetch(200, ack);
    const transport = createHttpTransport({ url: 'https://ferry.test/', fetch });
    expect(await transport.push({ device: 'd1', ops: [op] })).toEqual(ack);
    const [request] = requests;
    expect(request!.url).toBe('https://ferry.test/v1/push');
    expect(request!.init).toMatchObject({
      method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'X-Ferry': '1' },
    });
    expect(JSON.parse(request!.init.body as string)).toEqual({ protocol: 1, device: 'd1', ops: [op] });
    expect(request!.init.signal).toBeInstanceOf(AbortSignal);
  });

  test('maps each refusal to its SyncError, with the data the drainer needs', async () => {
    expect(await pushWith(409, { code: 'seq_gap', message: 'gap', expected: 4 })).toMatchObject({ kind: 'seq_gap', expected: 4 });
    expect(await pushWith(409, { code: 'lamport_regression', message: 'low', floor: 90 })).toMatchObject({ kind: 'lamport_regression', floor: 90 });
    expect(await pushWith(401, { code: 'auth_required', message: 'Sign in.' })).toMatchObject({ kind: 'auth_required', status: 401 });
    expect(await pushWith(413, { code: 'too_large', message: 'big' })).toMatchObject({ kind: 'too_large' });
    expect(await pushWith(429, { code: 'rate_limited', message: 'slow', retryAfterMs: 1500 })).toMatchObject({ kind: 'rate_limited', retryAfterMs: 1500 });
    expect(await pushWith(503, '<html>Service Unavailable</html>')).toMatchObject({ kind: 'server', status: 503, raw: '<html>Service Unavailable</html>' });
  });

  test('no answer at all is a network error', async () => {
    const error = await pushWith(0, new TypeError('Failed to fetch'));
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ kind: 'network' });
    expect((error as SyncError).message).toContain('Failed to fetch');
  });

  test('a 200 that is not JSON, or not an ack, is unparseable (transient) with its raw text', async () => {
    expect(await pushWith(200, '<html>Wi-Fi login</html>')).toMatchObject({ kind: 'unparseable', raw: '<html>Wi-Fi login</html>' });
    const notAck = await pushWith(200, { ok: true });
    expect(notAck).toMatchObject({ kind: 'unparseable', status: 200, raw: '{"ok":true}' });
    expect((notAck as SyncError).message).toContain('not an ack');
  });

  test('a push that hangs past the timeout is abandoned as a network error', async () => {
    const fetch = ((_url: string, init: RequestInit) =>
      new Promise((_resolve, reject) => {
        init.signal!.addEventListener('abort', () => reject(init.signal!.reason));
      })) as unknown as typeof globalThis.fetch;
    const transport = createHttpTransport({ url: 'https://ferry.test', fetch, timeoutMs: 5 });
    await expect(transport.push({ device: 'd1', ops: [op] })).rejects.toMatchObject({ kind: 'network' });
  });
});
