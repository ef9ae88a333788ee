// Background Sync (https://wicg.github.io/background-sync/spec/) is missing from TypeScript's
// WebWorker and DOM libs. This file is a global script (no import/export) so its interfaces merge with
// the lib's own. `sync` is optional on the registration because Safari and Firefox lack it: the type
// forces every caller to feature-detect and fall back (DESIGN "Background Sync fallbacks").

interface SyncManager {
  /** Asks the browser to fire a `sync` event with this tag once it believes the network is up. */
  register(tag: string): Promise<void>;
  getTags(): Promise<string[]>;
}

declare var SyncManager: {
  prototype: SyncManager;
};

interface SyncEventInit extends ExtendableEventInit {
  tag: string;
  lastChance?: boolean;
}

interface SyncEvent extends ExtendableEvent {
  readonly tag: string;
  /**
   * True when the browser will not retry this registration after this attempt. Our ops are never
   * given up on, so this only tells the entry to leave the timer and `online` fallbacks in charge.
   */
  readonly lastChance: boolean;
}

declare var SyncEvent: {
  prototype: SyncEvent;
  new (type: string, init: SyncEventInit): SyncEvent;
};

interface ServiceWorkerRegistration {
  readonly sync?: SyncManager;
}

interface ServiceWorkerGlobalScopeEventMap {
  sync: SyncEvent;
}

interface ServiceWorkerGlobalScope {
  onsync: ((this: ServiceWorkerGlobalScope, ev: SyncEvent) => any) | null;
}
