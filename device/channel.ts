// The BroadcastChannel between a device's contexts (its tabs and its Service Worker): the one module that
// opens it. Every context tells every other what changed, since a page must refresh its live queries
// whoever changed the replica: the worker applying an ack, another tab writing, another tab's socket.
import type { Channel } from './device.ts';
import { type Broadcast, isBroadcast } from './messages.ts';

/** The channel of one device database; a custom database name gets its own, so two never mix. */
export function channelName(dbName: string, defaultName: string): string {
  return dbName === defaultName ? 'ferry' : `ferry:${dbName}`;
}

/** A Channel over BroadcastChannel; a silent one where the context has none. */
export function createChannel(name: string): Channel {
  if (typeof BroadcastChannel === 'undefined') return { post() {}, listen() {}, close() {} };
  const channel = new BroadcastChannel(name);
  return {
    post(message) {
      try {
        channel.postMessage(message);
      } catch {
        // closed meanwhile; nothing to tell
      }
    },
    listen(receive) {
      channel.onmessage = (event: MessageEvent) => {
        if (isBroadcast(event.data)) receive(event.data);
      };
    },
    close: () => channel.close(),
  };
}
