// The protocol's fixed facts besides the message shapes (wire.ts): version, names, header, socket close
// codes and the HTTP status of each error code. Each is defined here once; the server, the device engine,
// the page and the tests import it from here. PROTOCOL.md is the normative text.
//
// Protocol versions:
//   1 — first version: push/ack over HTTP and socket, subscribe with per-space cursors, catch-up pages,
//       live changes, ack watermarks to every connection of a device, reset below the purge horizon.
//       Amended (additive, every client of this repository reads them): the `spaces` frame (live
//       membership); `GET /v1/me` answers `user: null` instead of 401 when signed out; roles (owner, editor,
//       viewer) in spaces and members (before: owner, member), a viewer's ops rejected `read_only`; an app's
//       write rules: `rule_failed` and the rule's own codes in `rejected` results, no U+0000 in a device id;
//       schema versions for queued ops: an op's optional `version` (the app's schema version for its
//       collection, absent: 1), upgraded by the server's app (`code: "upgraded"` on its applied or
//       superseded result: a client that predates it reads an unknown code and, as before, folds the op it
//       sent) or rejected `outdated_app` / `upgrade_failed`. A server without versions takes every op at 1.
//       Amended (negotiated, so clients that predate it are unaffected): a socket that also offers the
//       subprotocol `ferry.from` gets `from` on every `changes` frame, the cursor the frame continues from,
//       so a lost frame is a gap the client sees (PROTOCOL.md §7). Its strict frame schema would refuse an
//       unknown field, so it is never sent unasked. Likewise `ferry.sent`: pongs carry `sent`, each live
//       subscription's cursor, so a lost last frame is seen too.
export const PROTOCOL_VERSION = 1;

/** The socket subprotocol both sides speak; the server echoes only this one (PROTOCOL.md §5). */
export const SOCKET_PROTOCOL = 'ferry.v1';
/** A bearer token offered on the socket as the subprotocol `ferry.auth.<token>` (never in the URL). */
export const TOKEN_PROTOCOL_PREFIX = 'ferry.auth.';

/** Offered besides `ferry.v1`: the client reads `from` on `changes` frames (PROTOCOL.md §7). Never echoed. */
export const FROM_PROTOCOL = 'ferry.from';
/** Offered besides `ferry.v1`: the client reads `sent` on pongs (PROTOCOL.md §7). Never echoed. */
export const SENT_PROTOCOL = 'ferry.sent';

/** The subprotocols a device offers: the cookie alone authenticates, or a bearer token rides along. */
export function socketProtocols(token: string | null): string[] {
  const offered = [SOCKET_PROTOCOL, FROM_PROTOCOL, SENT_PROTOCOL];
  return token ? [...offered, `${TOKEN_PROTOCOL_PREFIX}${token}`] : offered;
}

/**
 * The custom header every cookie-authenticated write carries (PROTOCOL.md §5): a cross-site form cannot
 * set it, and setting it forces a CORS preflight, so together with the Origin check it stops CSRF.
 */
export const CSRF_HEADER = 'X-Ferry';
export const CSRF_VALUE = '1';

/** Headers of every JSON request a device or page sends the server. */
export function jsonHeaders(): Record<string, string> {
  return { 'content-type': 'application/json', [CSRF_HEADER]: CSRF_VALUE };
}

/** The Web Lock every drainer of a device holds (one drainer at a time per device, DESIGN). */
export const DRAIN_LOCK = 'ferry:drain';
/** The Background Sync tag the worker listens for. */
export const SYNC_TAG = 'ferry:drain';

/** Socket close codes (PROTOCOL.md §8). */
export const CLOSE = {
  /** A frame broke the protocol in a way resending cannot fix. */
  invalid: 4400,
  /** No valid session or token: sign in again. */
  authRequired: 4401,
  /** This user may not use this device. */
  forbidden: 4403,
  /** No hello within the server's deadline. */
  noHello: 4408,
  /** Too many frames, or the user holds too many sockets (PROTOCOL.md §5). */
  rateLimited: 4429,
  /** The socket stayed over its buffer limit too long; reconnect and resume from the cursors. */
  slowConsumer: 4008,
} as const;

/** The error codes of PROTOCOL.md §8. The last four are only ever an op's `rejected` code: a viewer's op
 * (`read_only`), an op the app's write rule failed on (`rule_failed`), an op of an older app version with no
 * upgrade to the server's (`outdated_app`) or whose upgrade failed (`upgrade_failed`). A rule may reject with
 * codes of its own. */
export const ERROR_CODES = [
  'seq_gap', 'lamport_regression', 'auth_required', 'forbidden', 'invalid',
  'too_large', 'rate_limited', 'reset', 'not_found', 'internal',
  'read_only', 'rule_failed', 'outdated_app', 'upgrade_failed',
] as const;
export type ErrorCodeName = (typeof ERROR_CODES)[number];

/** The HTTP status of each error code (PROTOCOL.md §8). */
export function statusOf(code: ErrorCodeName): number {
  switch (code) {
    case 'seq_gap':
    case 'lamport_regression':
    case 'outdated_app':
      return 409;
    case 'auth_required':
      return 401;
    case 'forbidden':
    case 'read_only':
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
    case 'rule_failed':
    case 'upgrade_failed':
      return 500;
    default:
      // Exhaustive: a new code fails to compile here. (Not core's `unreachable`: this module, which every
      // page loads first, depends on nothing.)
      throw new Error(`no HTTP status for ${code satisfies never}`);
  }
}
