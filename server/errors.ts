// The one place that maps protocol error codes to HTTP statuses and socket close codes (PROTOCOL.md §8).
import { unreachable } from '../core/errors.ts';
import type { ErrorBody, ErrorCode } from '../schema/wire.ts';

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'seq_gap':
    case 'lamport_regression':
      return 409;
    case 'auth_required':
      return 401;
    case 'forbidden':
      return 403;
    case 'invalid':
      return 400;
    case 'too_large':
      return 413;
    case 'rate_limited':
      return 429;
    case 'reset':
      return 410;
    case 'not_found':
      return 404;
    case 'internal':
      return 500;
    default:
      return unreachable(code);
  }
}

export const CLOSE = {
  invalid: 4400,
  authRequired: 4401,
  forbidden: 4403,
  noHello: 4408,
  rateLimited: 4429,
  slowConsumer: 4008,
} as const;

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
