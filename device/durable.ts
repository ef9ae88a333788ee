// Durable storage where browsers evict: the outbox is the only copy of what the person typed until the
// server acks it, and a browser under storage pressure (or Safari after days unused) may clear an
// origin's data unless it is persisted. The engine asks for persistence at the moments that justify it
// and keeps what the browser says of the storage in the status (device/status.ts StorageView).
//
//   start ─▶ read persisted + estimate ─▶ status.storage
//     └─ installed (standalone PWA) ─▶ ask persist()
//   write while not connected (the first offline write) ─▶ ask persist() ─▶ read again
//
// persist() may prompt the person (Firefox) and may never settle in a browser nobody watches, so it is
// never awaited by anything that matters: its answer only refreshes the status.
import { coalesced } from './coalesce.ts';
import type { TimerPort } from './ports.ts';
import type { StatusTracker } from './status.ts';

/** The browser's StorageManager as the page adapter hands it in; null answers where there is none. */
export interface StoragePort {
  estimate(): Promise<{ usage: number; quota: number } | null>;
  persisted(): Promise<boolean | null>;
  /** Asks the browser to keep this origin's data; may prompt, may never settle. */
  persist(): Promise<boolean | null>;
  /** The app runs installed (a standalone window, a home-screen app). */
  installed(): boolean;
}

/** The least time between two storage reads: a write burst costs one estimate, not thousands. */
export const STORAGE_GAP_MS = 5_000;

export interface PersistMoment {
  /** Already asked in this context: one prompt per page load at most. */
  asked: boolean;
  /** What the browser last said; true needs no asking. */
  persisted: boolean | null;
  installed: boolean;
  /** A write is being kept because the device is not connected to the server now. */
  offlineWrite: boolean;
}

/** Ask when it is worth a prompt: the app is installed, or changes start piling up offline. */
export function shouldAskPersist(moment: PersistMoment): boolean {
  if (moment.asked || moment.persisted === true) return false;
  return moment.installed || moment.offlineWrite;
}

export interface Durability {
  /** After a write: `connected` says whether the device was in contact with the server. */
  written(connected: boolean): void;
}

export function createDurability(port: StoragePort | undefined, tracker: StatusTracker, timers: TimerPort, report: (error: unknown) => void): Durability {
  if (port === undefined) return { written() {} };
  let asked = false;
  const refresh = coalesced(async () => {
    const [persisted, estimate] = await Promise.all([port.persisted(), port.estimate()]);
    tracker.update({ storage: { persisted, usage: estimate?.usage ?? null, quota: estimate?.quota ?? null } });
  }, report, STORAGE_GAP_MS, timers);
  const consider = (offlineWrite: boolean) => {
    const moment = { asked, persisted: tracker.parts().storage.persisted, installed: port.installed(), offlineWrite };
    if (!shouldAskPersist(moment)) return;
    asked = true;
    port.persist().then(() => refresh(), report);
  };
  refresh();
  consider(false);
  return {
    written(connected) {
      consider(!connected);
      refresh();
    },
  };
}
