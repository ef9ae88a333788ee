// What configures the Redis change bus, without loading a Redis client: the CLI's help and flags read these
// on every start, and server/redis-bus.ts (which loads ioredis, and with it `debug`, which reads the whole
// environment at import: on Deno, a permission) is imported only when --redis is given.

/** The pub/sub channel when none is given. Channels are global to a Redis server (not per db). */
export const DEFAULT_CHANNEL = 'ferry:changes';

/** The URL without its password, for messages. */
export function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the given Redis URL';
  }
}
