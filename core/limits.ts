// Limits every part of Ferry agrees on. The server enforces them; devices check them before
// enqueuing so a person hears about a too-large value at once instead of as a dead letter later.

export const LIMITS = {
  /** Op ids, device ids, space ids and entity keys, in UTF-8 bytes. */
  idBytes: 128,
  /** A put/patch value, serialized as JSON, in UTF-8 bytes. */
  valueBytes: 64 * 1024,
  /** Ops in one batch. */
  batchOps: 500,
  /** One serialized batch (HTTP body or socket frame), in UTF-8 bytes: over it, `too_large`. */
  batchBytes: 1024 * 1024,
  /** A socket frame the server reads at all; a bigger one is closed by the runtime (1009). Between the
   * two, the frame is answered `too_large` like an HTTP body over `batchBytes`. */
  socketFrameBytes: 4 * 1024 * 1024,
} as const;

/** Collection and field names. */
export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/** UTF-8 length of a string without TextEncoder (core has no DOM or runtime types). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3; // lone high surrogate: encoders write U+FFFD (3 bytes)
    } else bytes += 3;
  }
  return bytes;
}
