// A minimal W3C WebDriver client over HTTP: what the scenarios need of a session (navigate, run an
// async script, open, switch and close windows). One session has one current window, so every
// command names its window and the commands of a session run one at a time, in order.

export class WebDriverError extends Error {}

export interface WebDriverSession {
  /** The window the session opened with. */
  first: string;
  /** Runs `body` in `handle`'s window: an async function's source taking `arg`, result JSON. */
  run(handle: string, source: string, arg: unknown): Promise<unknown>;
  goto(handle: string, url: string): Promise<void>;
  reload(handle: string): Promise<void>;
  newWindow(): Promise<string>;
  closeWindow(handle: string): Promise<void>;
  /** Ends the session (the driver quits the browser). */
  quit(): Promise<void>;
}

/** How long one script may run; a scenario's own waits are bounded well inside it. */
const SCRIPT_TIMEOUT_MS = 90_000;

export async function createSession(driverUrl: string, capabilities: Record<string, unknown>): Promise<WebDriverSession> {
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const response = await fetch(`${driverUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const answer = (await response.json().catch(() => ({}))) as { value?: any };
    if (!response.ok) {
      const value = answer.value ?? {};
      throw new WebDriverError(`${method} ${path}: ${value.error ?? response.status}: ${value.message ?? ''}`);
    }
    return answer.value;
  };

  const created = await call('POST', '/session', { capabilities: { alwaysMatch: capabilities } });
  const base = `/session/${created.sessionId as string}`;
  await call('POST', `${base}/timeouts`, { script: SCRIPT_TIMEOUT_MS, pageLoad: 60_000 });
  let current: string = await call('GET', `${base}/window`);

  // One command at a time: a command aimed at another window must not slip between a switch and its
  // own command.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  const inWindow = <T>(handle: string, work: () => Promise<T>): Promise<T> => serial(async () => {
    if (current !== handle) {
      await call('POST', `${base}/window`, { handle });
      current = handle;
    }
    return work();
  });

  return {
    first: current,
    run: (handle, source, arg) => inWindow(handle, async () => {
      // The async-script callback is the last argument; errors come back as data, not as a timeout.
      const script = `const done = arguments[arguments.length - 1];
        Promise.resolve().then(() => (${source})(arguments[0])).then(
          (value) => done({ ok: true, value: value === undefined ? null : value }),
          (error) => done({ ok: false, error: String(error && error.stack ? error.message + '\\n' + error.stack : error) }));`;
      const result = (await call('POST', `${base}/execute/async`, { script, args: [arg ?? null] })) as
        { ok: true; value: unknown } | { ok: false; error: string };
      if (!result.ok) throw new WebDriverError(`in the page: ${result.error}`);
      return result.value;
    }),
    goto: (handle, url) => inWindow(handle, async () => void (await call('POST', `${base}/url`, { url }))),
    reload: (handle) => inWindow(handle, async () => void (await call('POST', `${base}/refresh`, {}))),
    newWindow: () => serial(async () => ((await call('POST', `${base}/window/new`, { type: 'tab' })) as { handle: string }).handle),
    closeWindow: (handle) => inWindow(handle, async () => {
      await call('DELETE', `${base}/window`);
      current = '';
    }),
    quit: () => serial(async () => void (await call('DELETE', base).catch(() => undefined))),
  };
}
