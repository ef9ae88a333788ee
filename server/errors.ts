// The one place that maps protocol error codes to HTTP statuses and socket close codes (PROTOCOL.md §8).
import { statusOf } from '../schema/protocol.ts';
import type { ErrorBody, ErrorCode } from '../schema/wire.ts';

/** A failure with a protocol code, thrown by plugins and turned into `{ code, message }` by the app. */
export class FerryHttpError extends Error {
  readonly body: ErrorBody;
  constructor(body: ErrorBody) {
    super(body.message);
    this.name = 'FerryHttpError';
    this.body = body;
  }
  get status(): number {
    return statusOf(this.body.code);
  }
}

export const fail = (code: ErrorCode, message: string, extra: Partial<ErrorBody> = {}): FerryHttpError =>
  new FerryHttpError({ ...extra, code, message });

export function errorResponse(body: ErrorBody, headers: Record<string, string> = {}): Response {
  const extra: Record<string, string> =
    body.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.ceil(body.retryAfterMs / 1000)) };
  return new Response(JSON.stringify(body), {
    status: statusOf(body.code),
    headers: { 'content-type': 'application/json', ...extra, ...headers },
  });
}
