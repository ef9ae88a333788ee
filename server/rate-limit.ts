// Per-device token buckets: one for requests, one for ops. Pure over `now`, so tests need no timers.
// A flood from one device is answered `rate_limited` with the wait that would make it fit.

export interface RateLimits {
  /** Pushes (HTTP or socket frames) per second, sustained, with a burst of twice that. */
  pushesPerSecond: number;
  /** Ops per second, sustained, with a burst of twice that. */
  opsPerSecond: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = { pushesPerSecond: 50, opsPerSecond: 20_000 };

interface Bucket {
  pushes: number;
  ops: number;
  at: number;
}

export interface RateLimiter {
  /** 0 when the push may proceed (and is counted), else the ms to wait. */
  take(device: string, ops: number, now: number): number;
}

export function createRateLimiter(limits: RateLimits = DEFAULT_RATE_LIMITS, maxDevices = 100_000): RateLimiter {
  const buckets = new Map<string, Bucket>();
  const burstPushes = limits.pushesPerSecond * 2;
  const burstOps = Math.max(limits.opsPerSecond * 2, 500);
  return {
    take(device, ops, now) {
      const bucket = buckets.get(device) ?? { pushes: burstPushes, ops: burstOps, at: now };
      const elapsed = Math.max(0, now - bucket.at) / 1000;
      bucket.pushes = Math.min(burstPushes, bucket.pushes + elapsed * limits.pushesPerSecond);
      bucket.ops = Math.min(burstOps, bucket.ops + elapsed * limits.opsPerSecond);
      bucket.at = now;
      buckets.delete(device); // re-insert so the map's order is least recently used first
      buckets.set(device, bucket);
      if (buckets.size > maxDevices) buckets.delete(buckets.keys().next().value!);
      const missingPushes = 1 - bucket.pushes;
      const missingOps = ops - bucket.ops;
      if (missingPushes <= 0 && missingOps <= 0) {
        bucket.pushes -= 1;
        bucket.ops -= ops;
        return 0;
      }
      const wait = Math.max(missingPushes / limits.pushesPerSecond, missingOps / limits.opsPerSecond);
      return Math.max(1, Math.ceil(wait * 1000));
    },
  };
}
