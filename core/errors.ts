// One error family for everything that can go wrong between a device and the server. Every edge
// (HTTP response, socket `error` message, thrown fetch) turns what it saw into a SyncError, and one
// exhaustive switch decides what the device does about each kind, so adding a kind fails to compile
// until someone has decided how the device reacts to it.
import { utf8Length } from './limits.ts';

export type SyncErrorKind =
  | 'network' // no answer at all: offline, DNS, reset connection, fetch threw
  | 'server' // 5xx, or the server's own `internal` code
  | 'rate_limited' // 429: come back after retryAfterMs
  | 'auth_required' // 401: the session is gone; the person must sign in again
  | 'forbidden' // 403: this user may not use this device or space
  | 'invalid' // the whole request was refused as malformed
  | 'too_large' // 413: the batch (or one op in it) is over a limit
  | 'seq_gap' // 409: the server expects another seq (`expected`)
  | 'lamport_regression' // 409: our lamport does not exceed the server's `floor`
  | 'reset' // our cursor is below the server's purge horizon
  | 'unparseable' // an answer we could not read (captive portal page, proxy error page…)
  | 'protocol'; // an answer we could read but that breaks the protocol

export type Disposition = 'retry' | 'needs-auth' | 'reject' | 'fatal';

/** The data an error carries besides its kind and message. All of it is plain and cloneable. */
export interface SyncErrorDetails {
  /** seq_gap: the seq the server expects next. */
  expected?: number;
  /** lamport_regression: the highest lamport the server accepted from this device. */
  floor?: number;
  /** rate_limited (or any answer with a server-given floor): wait at least this long. */
  retryAfterMs?: number;
  /** The HTTP status, when the error came from an HTTP answer. */
  status?: number;
  /** unparseable: the answer's text, at most RAW_LIMIT_BYTES, so the person can see what came back. */
  raw?: string;
  /** network: the push got no answer within its timeout (the link may be too slow for the batch). */
  timedOut?: boolean;
}

/** What a SyncError keeps when stored (IndexedDB, postMessage): structured clone drops Error subclasses. */
export interface SyncErrorData extends SyncErrorDetails {
  kind: SyncErrorKind;
  message: string;
}

export class SyncError extends Error {
  override readonly name = 'SyncError';
  readonly kind: SyncErrorKind;
  // `declare`: no field initializers, so absent details are absent keys rather than own `undefined`s.
  declare readonly expected?: number;
  declare readonly floor?: number;
  declare readonly retryAfterMs?: number;
  declare readonly status?: number;
  declare readonly raw?: string;
  declare readonly timedOut?: boolean;

  constructor(kind: SyncErrorKind, message: string, details: SyncErrorDetails & { cause?: unknown } = {}) {
    const { cause, ...data } = details;
    super(message, cause === undefined ? undefined : { cause });
    this.kind = kind;
    if (data.expected !== undefined) this.expected = data.expected;
    if (data.floor !== undefined) this.floor = data.floor;
    if (data.retryAfterMs !== undefined) this.retryAfterMs = data.retryAfterMs;
    if (data.status !== undefined) this.status = data.status;
    if (data.raw !== undefined) this.raw = data.raw;
    if (data.timedOut) this.timedOut = true;
  }

  /** Plain data for storage and for the status the page shows; the cause is left out (not cloneable). */
  toData(): SyncErrorData {
    const data: SyncErrorData = { kind: this.kind, message: this.message };
    if (this.expected !== undefined) data.expected = this.expected;
    if (this.floor !== undefined) data.floor = this.floor;
    if (this.retryAfterMs !== undefined) data.retryAfterMs = this.retryAfterMs;
    if (this.status !== undefined) data.status = this.status;
    if (this.raw !== undefined) data.raw = this.raw;
    if (this.timedOut) data.timedOut = true;
    return data;
  }

  static fromData(data: SyncErrorData): SyncError {
    const { kind, message, ...details } = data;
    return new SyncError(kind, message, details);
  }
}

export function isSyncError(value: unknown): value is SyncError {
  return value instanceof SyncError;
}

/** For exhaustive switches: the compiler proves this is never called; at run time it is a loud bug. */
export function unreachable(value: never): never {
  throw new Error(`Unreachable: ${JSON.stringify(value)}`);
}

/**
 * What the device does about each kind.
 * - retry: keep every op and send again. For seq_gap, lamport_regression and too_large the outbox
 *   first adjusts (resend from `expected`, restamp above `floor`, halve the batch) and retries at once;
 *   for reset the replica re-reads a snapshot while the outbox retries as usual. The rest back off.
 * - needs-auth: keep every op, stop until the person signs in again.
 * - reject: the request as sent is refused whole, so sending the same bytes again gets the same
 *   answer. Since our own code builds the envelope, this is a bug (or a client older than the server).
 *   The device keeps every op — the server did not consume their seqs, so dropping or dead-lettering
 *   them would lose data and leave a gap the server would refuse forever — stops draining, and shows
 *   the error until the person retries or a new app version loads.
 * - fatal: this device cannot sync as things stand (not allowed, or the server broke the protocol).
 *   Ops are kept too; only a person or an operator can fix it.
 */
export function dispositionOf(kind: SyncErrorKind): Disposition {
  switch (kind) {
    case 'network':
    case 'server':
    case 'rate_limited':
    case 'unparseable':
    case 'seq_gap':
    case 'lamport_regression':
    case 'too_large':
    case 'reset':
      return 'retry';
    case 'auth_required':
      return 'needs-auth';
    case 'invalid':
      return 'reject';
    case 'forbidden':
    case 'protocol':
      return 'fatal';
    default:
      return unreachable(kind);
  }
}

/** fetch threw (offline, DNS, connection reset, abort): no answer reached us. */
export function networkError(cause: unknown): SyncError {
  if (cause instanceof Error && cause.name === 'TimeoutError') {
    return new SyncError('network', 'The server did not answer in time.', { cause, timedOut: true });
  }
  const detail = cause instanceof Error && cause.message ? `: ${cause.message}` : '';
  return new SyncError('network', `The server could not be reached${detail}.`, { cause });
}

/** The `raw` text kept for an unparseable answer is capped: an HTML error page can be megabytes. */
export const RAW_LIMIT_BYTES = 2048;

/** An error body as the server sends it (HTTP body, or the fields of a socket `error` message). */
export interface ErrorBodyLike {
  code: string;
  message?: string;
  expected?: number;
  floor?: number;
  retryAfterMs?: number;
}

/**
 * Maps an HTTP answer to a SyncError; null means success (2xx with a JSON body, which the caller
 * then validates as an ack). The statuses whose meaning does not depend on the body are decided
 * first, so a proxy's HTML 502 is still `server` (with its text kept in `raw`); otherwise the body's
 * machine-readable code decides, and a body we cannot read is `unparseable`, a transient failure.
 */
export function errorFromResponse(status: number, bodyText: string): SyncError | null {
  const parsed = parseJson(bodyText);
  const body = parsed.ok ? bodyFields(parsed.value) : null;
  const raw = parsed.ok || bodyText === '' ? undefined : clipRaw(bodyText);
  const extra: SyncErrorDetails = raw === undefined ? { status } : { status, raw };
  const say = (fallback: string) => body?.message ?? fallback;

  if (status >= 200 && status < 300) {
    if (parsed.ok) return null;
    return new SyncError('unparseable', `The server answered ${status} with a body that is not JSON.`, extra);
  }
  if (status === 401) return new SyncError('auth_required', say('Sign in again to keep syncing.'), extra);
  if (status === 403) return new SyncError('forbidden', say('This account may not sync this device or space.'), extra);
  if (status === 408) return new SyncError('network', say('The request timed out.'), extra);
  if (status === 413) return new SyncError('too_large', say('The batch is too large.'), extra);
  if (status === 429) {
    const retryAfterMs = body?.retryAfterMs;
    const details = retryAfterMs === undefined ? extra : { ...extra, retryAfterMs };
    return new SyncError('rate_limited', say('Too many requests; slowing down.'), details);
  }
  if (status >= 500 && status < 600) return new SyncError('server', say(`The server failed (${status}).`), extra);
  if (!parsed.ok) {
    return new SyncError('unparseable', `The server answered ${status} with a body that is not JSON.`, extra);
  }
  if (body === null) {
    return new SyncError('protocol', `The server answered ${status} without an error code.`, { status });
  }
  return errorFromBody(body, status);
}

/**
 * Maps an error body (HTTP, or a socket `error` message, which has no status) to a SyncError by its
 * code. A code whose required data is missing is a protocol break, not something to guess around:
 * resending from a made-up seq or restamping above a made-up floor could loop forever.
 */
export function errorFromBody(body: ErrorBodyLike, status?: number): SyncError {
  const base: SyncErrorDetails = status === undefined ? {} : { status };
  const message = body.message ?? `The server refused the request (${body.code}).`;
  switch (body.code) {
    case 'seq_gap':
      if (!isCount(body.expected, 1)) return missing(body.code, 'expected', base);
      return new SyncError('seq_gap', message, { ...base, expected: body.expected });
    case 'lamport_regression':
      if (!isCount(body.floor, 0)) return missing(body.code, 'floor', base);
      return new SyncError('lamport_regression', message, { ...base, floor: body.floor });
    case 'rate_limited':
      return new SyncError('rate_limited', message,
        isCount(body.retryAfterMs, 0) ? { ...base, retryAfterMs: body.retryAfterMs } : base);
    case 'auth_required':
    case 'forbidden':
    case 'invalid':
    case 'too_large':
    case 'reset':
      return new SyncError(body.code, message, base);
    case 'internal':
      return new SyncError('server', message, base);
    default:
      // Includes `not_found`: pushing to an endpoint or space that does not exist will not heal by retrying.
      return new SyncError('protocol', `The server answered with code "${clipText(body.code, 64)}": ${message}`, base);
  }
}

function missing(code: string, field: string, base: SyncErrorDetails): SyncError {
  return new SyncError('protocol', `The server's ${code} error has no valid "${field}".`, base);
}

type Parsed = { ok: true; value: unknown } | { ok: false };

function parseJson(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** The fields of an error body we can use; null when it has no string `code`. Wrong-typed extras are dropped. */
function bodyFields(value: unknown): ErrorBodyLike | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  if (typeof record.code !== 'string') return null;
  const body: ErrorBodyLike = { code: record.code };
  if (typeof record.message === 'string') body.message = clipText(record.message, 500);
  for (const key of ['expected', 'floor', 'retryAfterMs'] as const) {
    const field = record[key];
    if (typeof field === 'number') body[key] = field;
  }
  return body;
}

function isCount(value: number | undefined, min: number): value is number {
  return value !== undefined && Number.isSafeInteger(value) && value >= min;
}

/** Cuts `text` to at most RAW_LIMIT_BYTES of UTF-8, never inside a surrogate pair, marking the cut. */
export function clipRaw(text: string): string {
  if (utf8Length(text) <= RAW_LIMIT_BYTES) return text;
  const marker = '…';
  const budget = RAW_LIMIT_BYTES - utf8Length(marker);
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = utf8Length(char);
    if (bytes + size > budget) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end) + marker;
}

function clipText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
