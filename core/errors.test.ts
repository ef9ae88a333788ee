import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { utf8Length } from './limits.ts';
import {
  RAW_LIMIT_BYTES,
  SyncError,
  type SyncErrorKind,
  clipRaw,
  dispositionOf,
  errorFromBody,
  errorFromResponse,
  isSyncError,
  networkError,
  unreachable,
} from './errors.ts';

const json = (body: unknown) => JSON.stringify(body);

describe('SyncError', () => {
  test('is an Error with a kind, a cause and only the details it was given', () => {
    const cause = new TypeError('Failed to fetch');
    const error = new SyncError('seq_gap', 'gap', { expected: 7, status: 409, cause });
    expect(error).toBeInstanceOf(Error);
    expect(isSyncError(error)).toBe(true);
    expect(isSyncError(new Error('x'))).toBe(false);
    expect(error.name).toBe('SyncError');
    expect(error.kind).toBe('seq_gap');
    expect(error.cause).toBe(cause);
    expect(error.expected).toBe(7);
    expect('floor' in error).toBe(false);
  });

  test('toData is plain, cloneable data that fromData turns back into the same error', () => {
    const error = new SyncError('unparseable', 'bad', { raw: '<html>', status: 200, cause: new Error('x') });
    const data = error.toData();
    expect(data).toEqual({ kind: 'unparseable', message: 'bad', raw: '<html>', status: 200 });
    expect(structuredClone(data)).toEqual(data);
    const back = SyncError.fromData(data);
    expect(back.kind).toBe('unparseable');
    expect(back.toData()).toEqual(data);
  });

  test('networkError keeps what fetch threw', () => {
    const cause = new TypeError('Failed to fetch');
    const error = networkError(cause);
    expect(error.kind).toBe('network');
    expect(error.cause).toBe(cause);
    expect(error.message).toContain('Failed to fetch');
    expect(networkError('weird').message).toBe('The server could not be reached.');
  });

  test('unreachable throws if a value slips past the type checker', () => {
    expect(() => unreachable('surprise' as never)).toThrow('Unreachable: "surprise"');
  });
});

describe('dispositionOf', () => {
  const expected: Record<SyncErrorKind, string> = {
    network: 'retry',
    server: 'retry',
    rate_limited: 'retry',
    unparseable: 'retry',
    seq_gap: 'retry',
    lamport_regression: 'retry',
    too_large: 'retry',
    reset: 'retry',
    auth_required: 'needs-auth',
    invalid: 'reject',
    forbidden: 'fatal',
    protocol: 'fatal',
  };
  for (const [kind, disposition] of Object.entries(expected)) {
    test(`${kind} → ${disposition}`, () => {
      expect(dispositionOf(kind as SyncErrorKind)).toBe(disposition as ReturnType<typeof dispositionOf>);
    });
  }

  test('an unknown kind at run time is a loud bug, not a silent default', () => {
    expect(() => dispositionOf('teapot' as SyncErrorKind)).toThrow('Unreachable');
  });
});

describe('errorFromResponse', () => {
  test('2xx with a JSON body is success', () => {
    expect(errorFromResponse(200, json({ through: 3, lamport: 9, results: [] }))).toBeNull();
    expect(errorFromResponse(204, 'null')).toBeNull();
  });

  test('2xx that is not JSON (a captive portal page) is unparseable, with the raw text', () => {
    const error = errorFromResponse(200, '<html>Sign in to Airport WiFi</html>')!;
    expect(error.kind).toBe('unparseable');
    expect(error.raw).toBe('<html>Sign in to Airport WiFi</html>');
    expect(error.status).toBe(200);
    expect(dispositionOf(error.kind)).toBe('retry');
  });

  test('401 → auth_required with the server message', () => {
    const error = errorFromResponse(401, json({ code: 'auth_required', message: 'Session expired.' }))!;
    expect(error.kind).toBe('auth_required');
    expect(error.message).toBe('Session expired.');
    expect(error.status).toBe(401);
  });

  test('401 and 403 do not depend on the body', () => {
    expect(errorFromResponse(401, '')!.kind).toBe('auth_required');
    expect('raw' in errorFromResponse(401, '')!).toBe(false); // an empty body is nothing to show
    expect(errorFromResponse(403, '<h1>Forbidden</h1>')!.kind).toBe('forbidden');
    expect(errorFromResponse(403, '<h1>Forbidden</h1>')!.raw).toBe('<h1>Forbidden</h1>');
  });

  test('409 seq_gap carries expected', () => {
    const error = errorFromResponse(409, json({ code: 'seq_gap', message: 'Expected 12.', expected: 12 }))!;
    expect(error.kind).toBe('seq_gap');
    expect(error.expected).toBe(12);
  });

  test('409 lamport_regression carries floor (0 is a valid floor)', () => {
    const error = errorFromResponse(409, json({ code: 'lamport_regression', message: 'm', floor: 40 }))!;
    expect(error.kind).toBe('lamport_regression');
    expect(error.floor).toBe(40);
    expect(errorFromResponse(409, json({ code: 'lamport_regression', message: 'm', floor: 0 }))!.floor).toBe(0);
  });

  test('409 whose required data is missing or wrong is a protocol break, never a guess', () => {
    for (const body of [
      { code: 'seq_gap', message: 'm' },
      { code: 'seq_gap', message: 'm', expected: 0 },
      { code: 'seq_gap', message: 'm', expected: 2.5 },
      { code: 'seq_gap', message: 'm', expected: '12' },
      { code: 'lamport_regression', message: 'm', floor: -1 },
      { code: 'lamport_regression', message: 'm' },
    ]) {
      const error = errorFromResponse(409, json(body))!;
      expect(error.kind).toBe('protocol');
      expect(dispositionOf(error.kind)).toBe('fatal');
    }
  });

  test('409 that is not JSON is unparseable; JSON without a code is a protocol break', () => {
    expect(errorFromResponse(409, 'Conflict')!.kind).toBe('unparseable');
    expect(errorFromResponse(409, json({ message: 'no code' }))!.kind).toBe('protocol');
    expect(errorFromResponse(409, json([1, 2]))!.kind).toBe('protocol');
  });

  test('413 → too_large whatever the body (proxies answer 413 in HTML)', () => {
    expect(errorFromResponse(413, json({ code: 'too_large', message: 'Batch over 1 MiB.' }))!.kind).toBe('too_large');
    expect(errorFromResponse(413, '<html>Request Entity Too Large</html>')!.kind).toBe('too_large');
  });

  test('429 → rate_limited with retryAfterMs from the body', () => {
    const error = errorFromResponse(429, json({ code: 'rate_limited', message: 'Slow down.', retryAfterMs: 1500 }))!;
    expect(error.kind).toBe('rate_limited');
    expect(error.retryAfterMs).toBe(1500);
    const bare = errorFromResponse(429, 'Too Many Requests')!;
    expect(bare.kind).toBe('rate_limited');
    expect(bare.retryAfterMs).toBeUndefined();
    expect(bare.raw).toBe('Too Many Requests');
  });

  test('5xx → server, keeping a proxy page as raw text', () => {
    expect(errorFromResponse(500, json({ code: 'internal', message: 'Database is locked.' }))!.message)
      .toBe('Database is locked.');
    const error = errorFromResponse(502, '<html>Bad Gateway</html>')!;
    expect(error.kind).toBe('server');
    expect(error.status).toBe(502);
    expect(error.raw).toBe('<html>Bad Gateway</html>');
  });

  test('408 is a network failure (retry)', () => {
    expect(errorFromResponse(408, '')!.kind).toBe('network');
  });

  test('400 invalid → invalid; other codes decide by code', () => {
    const error = errorFromResponse(400, json({ code: 'invalid', message: 'ops.0.lamport: Invalid type' }))!;
    expect(error.kind).toBe('invalid');
    expect(error.message).toBe('ops.0.lamport: Invalid type');
    expect(dispositionOf(error.kind)).toBe('reject');
    expect(errorFromResponse(410, json({ code: 'reset', message: 'Below horizon.' }))!.kind).toBe('reset');
    expect(errorFromResponse(404, json({ code: 'not_found', message: 'No such space.' }))!.kind).toBe('protocol');
  });

  test('an unreadable 4xx is unparseable (transient), not a permanent refusal', () => {
    const error = errorFromResponse(400, '<html>400 Bad Request</html>')!;
    expect(error.kind).toBe('unparseable');
    expect(error.raw).toBe('<html>400 Bad Request</html>');
  });

  test('raw text is cut to 2 KB of UTF-8', () => {
    const error = errorFromResponse(200, 'é'.repeat(5000))!;
    expect(error.kind).toBe('unparseable');
    expect(utf8Length(error.raw!)).toBeLessThanOrEqual(RAW_LIMIT_BYTES);
    expect(error.raw!.endsWith('…')).toBe(true);
    expect(error.raw!.startsWith('éééé')).toBe(true);
  });

  test('never throws and always answers 4xx/5xx with an error, whatever the body', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.string(), (status, body) => {
        const error = errorFromResponse(status, body);
        if (status >= 400) expect(error).toBeInstanceOf(SyncError);
        if (error?.raw !== undefined) expect(utf8Length(error.raw)).toBeLessThanOrEqual(RAW_LIMIT_BYTES);
      }),
    );
  });
});

describe('errorFromBody (socket error messages)', () => {
  test('maps codes to kinds without a status', () => {
    const gap = errorFromBody({ code: 'seq_gap', message: 'm', expected: 3 });
    expect(gap.kind).toBe('seq_gap');
    expect(gap.expected).toBe(3);
    expect(gap.status).toBeUndefined();
    expect(errorFromBody({ code: 'internal', message: 'm' }).kind).toBe('server');
    expect(errorFromBody({ code: 'rate_limited', message: 'm', retryAfterMs: 20 }).retryAfterMs).toBe(20);
    expect(errorFromBody({ code: 'rate_limited', message: 'm', retryAfterMs: -5 }).retryAfterMs).toBeUndefined();
    expect(errorFromBody({ code: 'what', message: 'm' }).kind).toBe('protocol');
  });
});

describe('clipRaw', () => {
  test('keeps short text as is', () => {
    expect(clipRaw('hello')).toBe('hello');
  });

  test('never exceeds the limit and never splits a surrogate pair', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 3000 }), (text) => {
        const clipped = clipRaw(text);
        expect(utf8Length(clipped)).toBeLessThanOrEqual(RAW_LIMIT_BYTES);
        if (clipped !== text) expect(text.startsWith(clipped.slice(0, -1))).toBe(true);
        expect(/[\ud800-\udbff]$/.test(clipped.replace(/…$/, ''))).toBe(false);
      }),
    );
  });
});
