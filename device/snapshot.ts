// The snapshot a `reset` asks for (PROTOCOL.md §7.1), page by page over HTTP with the engine's fetch
// (http.ts). Part of the socket's chunk: only the socket session asks for it.
import * as v from 'valibot';
import { errorFromResponse, networkError, SyncError } from '../core/errors.ts';
import { describeIssues, SnapshotBody } from '../schema/wire.ts';

export const SNAPSHOT_PAGE = 500;
const SNAPSHOT_TIMEOUT_MS = 30_000;

/** One page of a space's snapshot; rejects with a SyncError for anything but a valid page. */
export async function fetchSnapshot(
  fetchFn: typeof fetch, url: string, space: string, after: number, head: number | undefined,
): Promise<SnapshotBody> {
  const query = new URLSearchParams({ space, after: String(after), limit: String(SNAPSHOT_PAGE) });
  if (head !== undefined) query.set('head', String(head));
  let status: number;
  let text: string;
  try {
    const response = await fetchFn(`${url}/v1/snapshot?${query}`, {
      credentials: 'include',
      signal: AbortSignal.timeout(SNAPSHOT_TIMEOUT_MS),
    });
    status = response.status;
    text = await response.text();
  } catch (cause) {
    throw networkError(cause);
  }
  const error = errorFromResponse(status, text);
  if (error !== null) throw error;
  const parsed = v.safeParse(SnapshotBody, JSON.parse(text));
  if (!parsed.success) {
    throw new SyncError('unparseable', `The snapshot is malformed: ${describeIssues(parsed.issues)}`, { status });
  }
  return parsed.output;
}
