// When the engine asks the browser to keep its storage, and what it then says in the status: asked once,
// at the first offline write or at once when installed, never awaited, and the answer shown.
import { describe, expect, test } from 'bun:test';
import { createDurability, shouldAskPersist, type StoragePort } from './durable.ts';
import { createStatusTracker, EMPTY_OUTBOX, IDLE_DRAIN, UNKNOWN_STORAGE } from './status.ts';

const tracker = () => createStatusTracker({
  online: true, socket: { state: 'idle' }, welcomed: false, subscribed: 0, caughtUp: 0, drain: IDLE_DRAIN,
  outbox: EMPTY_OUTBOX, serverLag: null, socketError: null, signedOut: false, background: false, storage: UNKNOWN_STORAGE,
}, () => 0);
const immediate = { setTimeout: (fn: () => void) => (queueMicrotask(fn), 0), clearTimeout() {} };
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A StorageManager that grants (or never answers) persist(), counting the asks. */
function fakeStorage(options: { installed?: boolean; grant?: boolean | 'never' } = {}) {
  let persisted = false;
  const port: StoragePort & { asks: number } = {
    asks: 0,
    estimate: async () => ({ usage: 2048, quota: 1 << 30 }),
    persisted: async () => persisted,
    persist() {
      port.asks++;
      if (options.grant === 'never') return new Promise(() => {}); // a prompt nobody answers
      persisted = options.grant ?? true;
      return Promise.resolve(persisted);
    },
    installed: () => options.installed ?? false,
  };
  return port;
}

describe('when to ask for persistent storage', () => {
  test('installed, or a write kept offline; never twice, never once granted', () => {
    const moment = { asked: false, persisted: false, installed: false, offlineWrite: false };
    expect(shouldAskPersist(moment)).toBe(false); // an ordinary online page load: no prompt
    expect(shouldAskPersist({ ...moment, installed: true })).toBe(true);
    expect(shouldAskPersist({ ...moment, offlineWrite: true })).toBe(true);
    expect(shouldAskPersist({ ...moment, offlineWrite: true, asked: true })).toBe(false);
    expect(shouldAskPersist({ ...moment, installed: true, persisted: true })).toBe(false);
  });

  test('the first offline write asks; the status then says persisted with the estimate', async () => {
    const status = tracker();
    const storage = fakeStorage();
    const durability = createDurability(storage, status, immediate, (e) => { throw e; });
    await flush();
    expect(status.get().storage).toEqual({ persisted: false, usage: 2048, quota: 1 << 30 });
    durability.written(true); // online: nothing to ask for yet
    expect(storage.asks).toBe(0);
    durability.written(false);
    durability.written(false);
    await flush();
    await flush();
    expect(storage.asks).toBe(1);
    expect(status.get().storage.persisted).toBe(true);
  });

  test('an installed app asks at start; a prompt that never settles blocks nothing', async () => {
    const status = tracker();
    const storage = fakeStorage({ installed: true, grant: 'never' });
    const durability = createDurability(storage, status, immediate, (e) => { throw e; });
    durability.written(false);
    await flush();
    expect(storage.asks).toBe(1);
    expect(status.get().storage).toEqual({ persisted: false, usage: 2048, quota: 1 << 30 });
  });

  test('no StorageManager: nothing asked, the status says it cannot tell', async () => {
    const status = tracker();
    createDurability(undefined, status, immediate, () => {}).written(false);
    await flush();
    expect(status.get().storage).toEqual(UNKNOWN_STORAGE);
  });
});
