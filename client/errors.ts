// The error an app sees from Ferry's page API: a literal `code` to switch on and a sentence to show.
// Sync failures never throw at the app (they are status); these are refusals of what the app asked.

export type FerryErrorCode =
  /** A value that breaks the collection's schema or the protocol's limits: nothing was written. */
  | 'invalid'
  | 'too_large'
  /** Sign-in refused (wrong name or password), or the server asks for a session. */
  | 'auth_required'
  | 'forbidden'
  /** The server knows no such user or space. */
  | 'not_found'
  /** No answer from the server (offline, unreachable), or one that could not be read. */
  | 'network'
  /** This Ferry was closed. */
  | 'closed';

export class FerryError extends Error {
  override readonly name = 'FerryError';
  readonly code: FerryErrorCode;

  constructor(code: FerryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
