// The page's StorageManager as the device engine's storage port (device/durable.ts): persistence, the
// usage estimate, and whether the app runs installed. Every answer degrades to null where the browser
// has no StorageManager (WebKitGTK) or refuses to say, so a missing API never stops the app.
import type { StoragePort } from '../device/durable.ts';

export function browserStorage(): StoragePort {
  const manager: Partial<StorageManager> | undefined = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  const ask = async <T>(call: (() => Promise<T>) | undefined): Promise<T | null> => {
    if (call === undefined) return null;
    try {
      return await call();
    } catch {
      return null;
    }
  };
  return {
    async estimate() {
      const estimate = await ask(manager?.estimate?.bind(manager));
      return estimate && typeof estimate.usage === 'number' && typeof estimate.quota === 'number'
        ? { usage: estimate.usage, quota: estimate.quota }
        : null;
    },
    persisted: () => ask(manager?.persisted?.bind(manager)),
    persist: () => ask(manager?.persist?.bind(manager)),
    installed() {
      // iOS Safari's home-screen apps say so with navigator.standalone; everyone else with the media query.
      const standalone = (navigator as Navigator & { standalone?: boolean }).standalone === true;
      return standalone || (typeof matchMedia === 'function' && matchMedia('(display-mode: standalone)').matches);
    },
  };
}
