// The change bus: how the sockets of every server instance hear of a commit, whichever instance made it.
// A port with one implementation per deployment: in-process (one instance, the default, below) and a
// pub/sub between processes. The bus is a latency path, not the truth: a notice names what changed and
// where each space's change stream stood before the commit (`from`), so a subscriber that missed a notice
// (a lost message, a reconnect, a restart) sees the gap and reads the rows from the database by cursor.
//
//   commit ─▶ publish(notice) ─▶ every instance's hub: per subscriber of a space
//                                  sent ≥ to          nothing new
//                                  from ≤ sent < to   the notice's rows above `sent` (or read them)
//                                  sent < from        a gap: catch up from the database
import type { EntityRow } from '../core/types.ts';
import type { Down } from '../schema/wire.ts';

/** One commit's effect on one space's change stream. */
export interface SpaceChange {
  space: string;
  /** The space's highest serverSeq before the commit (0 for none). */
  from: number;
  /** Its highest serverSeq after the commit; equal to `from` when the commit wrote nothing there (a resend
   * answered `duplicate`): a subscriber below it catches up, one at it has nothing to do. */
  to: number;
}

/** An ack watermark for the device's other sockets (PROTOCOL.md §6), which may sit on other instances. */
export interface AckNotice {
  device: string;
  /** Only sockets of this user get it: a socket of another user may have said hello as the device. */
  user: string;
  ack: Extract<Down, { type: 'ack' }>;
  /** The connection that pushed (it got the ack as the answer to its push), or null for HTTP. */
  skip: string | null;
}

export interface ChangeNotice {
  spaces: SpaceChange[];
  /** The server's highest lamport after the commit. */
  lamport: number;
  /** The changed rows, in serverSeq order, when the bus carries them; absent: read them by cursor. */
  entities?: EntityRow[];
  acks: AckNotice[];
  /** Users whose spaces changed (invited, removed, a space created or renamed): their sockets get the list. */
  members?: string[];
  /** Users who signed out or lost a credential: their sockets ask again whether theirs still holds. */
  recheck?: string[];
  /** The instance that published it. */
  origin: string;
}

export interface ChangeBus {
  /** Sends the notice to every other instance (and to this one's listeners). Never throws: a notice the
   * bus cannot carry is repaired from the database by the subscribers' cursors. */
  publish(notice: ChangeNotice): void;
  /** Calls `listener` for every notice published by any instance; returns the unsubscribe. */
  subscribe(listener: (notice: ChangeNotice) => void): () => void;
  /** Calls `listener` whenever the bus comes back after being down: every subscriber may have missed
   * notices meanwhile and must check the database. */
  onRecovered(listener: () => void): () => void;
  /** Whether notices are flowing now (for /healthz and /metrics). */
  healthy(): boolean;
  /** Counters for /metrics, each rendered as `ferry_bus_<name>_total` (e.g. published, losses). */
  stats?(): Record<string, number>;
  close(): Promise<void>;
}

/** The bus of a single instance: notices go straight to its own listeners, rows and all. */
export function createLocalBus(): ChangeBus {
  const listeners = new Set<(notice: ChangeNotice) => void>();
  return {
    publish(notice) {
      for (const listener of listeners) listener(notice);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onRecovered: () => () => {},
    healthy: () => true,
    close: async () => {
      listeners.clear();
    },
  };
}
