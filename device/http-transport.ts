// The drainer's transport over HTTP: `POST /v1/push` (PROTOCOL.md §6). This is the path Background
// Sync wakes up, so it must work with no page and no socket: the session cookie authenticates it
// (`credentials: 'include'`) and `X-Ferry: 1` forces the CORS preflight the server's CSRF check wants.
//
// Every way this can go wrong ends as a SyncError, so the drainer has one thing to switch on:
//   fetch throws / body read fails / timeout → 'network'
//   non-2xx                                 → errorFromResponse (by status, then by body code)
//   2xx that is not an AckBody              → 'unparseable' with the raw text (transient, §8)
import * as v from 'valibot';
import { clipRaw, errorFromResponse, networkError, SyncError } from '../core/errors.ts';
import { jsonHeaders, PROTOCOL_VERSION } from '../schema/protocol.ts';
import { AckBody, describeIssues } from '../schema/wire.ts';
import type { PushRequest, Transport } from './ports.ts';

export interface HttpTransportOptions {
  /** The server's origin (and base path, if mounted under one), e.g. `https://ferry.example`. */
  url: string;
  fetch: typeof fetch;
  /**
   * A push that hangs would hold the drain lock forever, so it is abandoned after this long. The
   * server may still commit it; the resend is then answered `duplicate`, which is harmless.
   */
  timeoutMs?: number;
}

export const DEFAULT_PUSH_TIMEOUT_MS = 30_000;

export function createHttpTransport(options: HttpTransportOptions): Transport {
  const endpoint = `${options.url.replace(/\/+$/, '')}/v1/push`;
  const fetchFn = options.fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
  return {
    async push(request: PushRequest): Promise<AckBody> {
      const body = JSON.stringify({ protocol: PROTOCOL_VERSION, device: request.device, ops: request.ops });
      const { status, text } = await post(fetchFn, endpoint, body, timeoutMs);
      const error = errorFromResponse(status, text);
      if (error !== null) throw error;
      return parseAck(status, text);
    },
  };
}

async function post(
  fetchFn: typeof fetch,
  endpoint: string,
  body: string,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  try {
    const response = await fetchFn(endpoint, {
      method: 'POST',
      credentials: 'include',
      headers: jsonHeaders(),
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Reading the body can fail too (connection dropped mid-answer): still no answer, so 'network'.
    return { status: response.status, text: await response.text() };
  } catch (cause) {
    throw networkError(cause);
  }
}

function parseAck(status: number, text: string): AckBody {
  // errorFromResponse already proved `text` is JSON for a 2xx.
  const parsed = v.safeParse(AckBody, JSON.parse(text));
  if (parsed.success) return parsed.output;
  // Readable but not an ack (a proxy's JSON, a server of another version): PROTOCOL.md §8 says an
  // answer we cannot use is transient, so we keep the ops, back off and show the raw text.
  throw new SyncError('unparseable', `The server answered ${status} with a body that is not an ack: ${describeIssues(parsed.issues)}`, {
    status,
    raw: clipRaw(text),
  });
}
