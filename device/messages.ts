// What pages and the Service Worker say to each other. Pages ask the worker to drain (postMessage to
// it, with a MessageChannel port for the answer); every context tells every page what changed on a
// BroadcastChannel, since a page must refresh its live queries whoever changed the replica — the
// worker applying an ack, another tab writing, another tab's socket bringing a remote change.
//
// Plain data only: both sides structured-clone these, and neither trusts the other's shape blindly.
import type { DrainResult, SyncStatus } from './ports.ts';

/** What a drain is asked to do. `drain`: something may be waiting; `resume`: the person asked to retry
 * now (leave `failed`, cut a backoff short); `signed-in`: a new session exists, leave auth-required. */
export type DrainKind = 'drain' | 'resume' | 'signed-in';

/** Page → worker: a drain of some kind, or workbox-window's `SKIP_WAITING`. */
export type WorkerRequest = { type: DrainKind } | { type: 'SKIP_WAITING' };

/** Worker → page, on the request's port. */
export type WorkerReply = { ok: true; result: DrainResult | null } | { ok: false; error: string };

/** The drainer's status as a context broadcasts it. */
export interface DrainBroadcast extends SyncStatus {
  /** Who drains: shown nowhere, but lets a test (and a curious developer) tell the paths apart. */
  source: 'worker' | 'page';
}

/** On the BroadcastChannel. `collection: '*'` means every collection of the space (after a reset). */
export type Broadcast =
  | { type: 'changed'; space: string; collection: string }
  | { type: 'status'; status: DrainBroadcast }
  /** The outbox or the dead letters changed (a write, a retry, a discard): counts must be re-read. */
  | { type: 'outbox' }
  /** The person signed in again in some tab: every tab's socket may reconnect. */
  | { type: 'signed-in' }
  /** The person signed out in some tab: every context stops talking to the server for them at once. */
  | { type: 'signed-out' };

export const ALL_COLLECTIONS = '*';

export function isWorkerRequest(data: unknown): data is WorkerRequest {
  if (data === null || typeof data !== 'object') return false;
  const type = (data as { type?: unknown }).type;
  return type === 'drain' || type === 'resume' || type === 'signed-in' || type === 'SKIP_WAITING';
}

export function isBroadcast(data: unknown): data is Broadcast {
  if (data === null || typeof data !== 'object') return false;
  const message = data as Record<string, unknown>;
  switch (message.type) {
    case 'changed':
      return typeof message.space === 'string' && typeof message.collection === 'string';
    case 'status':
      return message.status !== null && typeof message.status === 'object';
    case 'outbox':
    case 'signed-in':
    case 'signed-out':
      return true;
    default:
      return false;
  }
}
