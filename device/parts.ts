// The engine's parts as they are, for contexts that have them at once: a Service Worker (which cannot
// `import()`, so its bundle holds them) and the model suites. A page hands createDevice loaders of separate
// chunks instead (client/index.ts).
import type { DeviceParts } from './device.ts';
import { createDeviceSocket } from './device-socket.ts';
import { createDrainer, isSyncError } from './drainer.ts';

export const STATIC_PARTS: DeviceParts = {
  drainer: () => ({ createDrainer, isSyncError }),
  socket: () => ({ createDeviceSocket }),
};
