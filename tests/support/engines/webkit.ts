// WebKit: Debian's WebKitGTK driven by its WebDriver (`WebKitWebDriver`, W3C over HTTP) under its own
// Xvfb display. The browser is webkit-browser.py beside this file rather than MiniBrowser, whose
// automation mode keeps site data in memory only: a device here is a profile directory that survives
// the browser closing, as in the other engines. One driver serves one session, so each browser gets its
// own driver and display, and closing the browser ends all three. No Background Sync, and no
// StorageManager (`navigator.storage`) in this build.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { until } from '../ferry-page.ts';
import { createSession, type WebDriverSession } from './webdriver.ts';
import type { Engine, EngineBrowser, Tab } from './types.ts';

export const WEBKIT_DRIVER = process.env.FERRY_WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
export const WEBKIT_BROWSER = process.env.FERRY_WEBKIT_BROWSER ?? join(import.meta.dir, 'webkit-browser.py');

/** A free display number: Xvfb refuses one that is taken, so try a few at random. */
async function startXvfb(): Promise<{ display: string; process: Subprocess }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const n = 100 + Math.floor(Math.random() * 800);
    if (existsSync(`/tmp/.X${n}-lock`) || existsSync(`/tmp/.X11-unix/X${n}`)) continue;
    const xvfb = Bun.spawn(['Xvfb', `:${n}`, '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], { stdout: 'ignore', stderr: 'ignore' });
    const ready = await until(`Xvfb :${n} to listen`, () => existsSync(`/tmp/.X11-unix/X${n}`) || xvfb.exitCode !== null, 10_000, 25)
      .catch(() => false);
    if (ready && xvfb.exitCode === null) return { display: `:${n}`, process: xvfb };
    xvfb.kill();
  }
  throw new Error('no free X display for Xvfb');
}

/** A port the OS says is free right now (the driver binds it a moment later). */
function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

async function startDriver(display: string): Promise<{ url: string; process: Subprocess }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = freePort();
    const driver = Bun.spawn([WEBKIT_DRIVER, `--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdout: 'ignore', stderr: 'ignore' });
    const url = `http://127.0.0.1:${port}`;
    const up = await until('WebKitWebDriver to answer', async () => {
      if (driver.exitCode !== null) return 'exited';
      return (await fetch(`${url}/status`).then((r) => r.ok, () => false)) ? 'up' : null;
    }, 10_000, 50).catch(() => 'timeout');
    if (up === 'up') return { url, process: driver };
    driver.kill();
  }
  throw new Error('WebKitWebDriver did not start');
}

function tabOf(session: WebDriverSession, handle: string): Tab {
  return {
    run: ((fn: (arg: unknown) => unknown, arg?: unknown) => session.run(handle, fn.toString(), arg)) as Tab['run'],
    goto: (url) => session.goto(handle, url),
    reload: () => session.reload(handle),
    close: () => session.closeWindow(handle),
  };
}

export const webkitEngine: Engine = {
  name: 'webkit',
  limits: { backgroundSync: false, persistGranted: null },
  async launch(profile = mkdtempSync(join(tmpdir(), 'ferry-webkit-'))): Promise<EngineBrowser> {
    const xvfb = await startXvfb();
    let driver: Awaited<ReturnType<typeof startDriver>> | null = null;
    try {
      driver = await startDriver(xvfb.display);
      const session = await createSession(driver.url, {
        'webkitgtk:browserOptions': { binary: WEBKIT_BROWSER, args: ['--automation', `--profile=${profile}`] },
      });
      const stop = driver.process;
      return {
        engine: 'webkit',
        profile,
        tab: async () => tabOf(session, session.first),
        newTab: async () => tabOf(session, await session.newWindow()),
        async close() {
          await session.quit();
          stop.kill();
          xvfb.process.kill();
          await Promise.all([stop.exited, xvfb.process.exited]);
        },
      };
    } catch (error) {
      driver?.process.kill();
      xvfb.process.kill();
      throw error;
    }
  },
};
