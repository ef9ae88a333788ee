// What the server and the CLI say about a failure: one line with the kind of failure, never the SQL, its
// parameters (a password hash, a token's hash, a person's data) or a stack. drizzle wraps a database
// error as "Failed query: <sql> params: <values>"; the libSQL error underneath says what went wrong.

/** A failure as one safe sentence: its code and the database's or runtime's own short message. */
export function describeFailure(error: unknown): string {
  let cause: unknown = error;
  let query = false;
  // drizzle's DrizzleQueryError carries the query in its message (and as `query`) and the driver's error as
  // its cause.
  while (cause instanceof Error && (cause.message.startsWith('Failed query:') || 'query' in cause) && cause.cause !== undefined) {
    cause = cause.cause;
    query = true;
  }
  if (!(cause instanceof Error)) return 'an unknown failure';
  const code = (cause as { code?: unknown }).code;
  const first = cause.message.split('\n')[0]!.replace(/Failed query:.*$/s, 'a database query failed').slice(0, 200);
  const said = typeof code === 'string' && !first.includes(code) ? `${code}: ${first}` : first;
  return query ? `the database failed: ${said}` : said;
}

/** Logs a failure of `what` (e.g. "request failed") safely. */
export function logFailure(what: string, error: unknown): void {
  console.error(`ferry: ${what}: ${describeFailure(error)}`);
}
