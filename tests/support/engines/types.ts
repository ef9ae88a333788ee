// The seam between the device scenarios (tests/support/scenarios/) and the browsers that run them: a
// scenario drives tabs of a browser through this interface alone, so one list runs on every engine.
//
//   Engine ── launch(profile?) ──▶ EngineBrowser ── tab() / newTab() ──▶ Tab ── run(fn, arg) ──▶ the page
//
// `run` ships `fn`'s source to the page (as Playwright and Puppeteer do): it must use only its argument
// and the page's globals, and return structured data. What an engine cannot do is data too (`limits`),
// with the reason in words, so a scenario that meets one says why instead of skipping in silence.

export type EngineName = 'chromium' | 'firefox' | 'webkit';

export interface Tab {
  /** Runs `fn(arg)` in the page, awaiting what it returns (JSON-serializable). */
  run<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<Awaited<R>>;
  run<R>(fn: () => R | Promise<R>): Promise<Awaited<R>>;
  goto(url: string): Promise<void>;
  reload(): Promise<void>;
  close(): Promise<void>;
}

export interface EngineBrowser {
  engine: EngineName;
  /** The profile directory: pass it to `launch` again to reopen the same device. */
  profile: string;
  /** The tab the browser opened with. */
  tab(): Promise<Tab>;
  newTab(): Promise<Tab>;
  /** Closes the whole browser (every tab; its workers go with it). */
  close(): Promise<void>;
}

export interface EngineLimits {
  /** The browser fires Background Sync events (`registration.sync` exists). */
  backgroundSync: boolean;
  /** What `navigator.storage.persisted()` says after `persist()` in this harness: true (granted),
   * false (refused), null (no StorageManager at all). */
  persistGranted: boolean | null;
}

export interface Engine {
  name: EngineName;
  limits: EngineLimits;
  /** A browser on a fresh profile, or on `profile` to reopen that device. */
  launch(profile?: string): Promise<EngineBrowser>;
}
