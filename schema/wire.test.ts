import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { PushBody, Up } from './wire.ts';

const op = (device: string) => ({ id: `${device}:1`, device, seq: 1, lamport: 1, space: 's', collection: 'items', key: 'k', kind: 'delete', at: 0 });

describe('wire envelope', () => {
  test('ids with lone surrogates are refused, so two ids can never collapse into one stored key', () => {
    expect(v.safeParse(PushBody, { protocol: 1, device: 'd\ud800', ops: [op('d\ud800')] }).success).toBe(false);
    expect(v.safeParse(PushBody, { protocol: 1, device: 'd😀', ops: [op('d😀')] }).success).toBe(true);
    // Every text field of an op, a low surrogate alone as well as a high one.
    for (const field of ['id', 'space', 'collection', 'key'] as const) {
      for (const lone of ['\ud800', '\udc00', 'x\udfffy']) {
        expect(v.safeParse(PushBody, { protocol: 1, device: 'd', ops: [{ ...op('d'), [field]: lone }] }).success).toBe(false);
      }
    }
  });

  test('a device id holding U+0000 is refused: the stamps of fields a server rule computes end a device id with it', () => {
    expect(v.safeParse(PushBody, { protocol: 1, device: 'd\u0000', ops: [op('d\u0000')] }).success).toBe(false);
    expect(v.safeParse(Up, { type: 'hello', protocol: 1, device: 'd\u0000' }).success).toBe(false);
    expect(v.safeParse(Up, { type: 'hello', protocol: 1, device: 'd' }).success).toBe(true);
  });

  test('a batch with another device\'s op or a seq gap inside is malformed', () => {
    expect(v.safeParse(PushBody, { protocol: 1, device: 'a', ops: [op('b')] }).success).toBe(false);
    expect(v.safeParse(Up, { type: 'push', rid: 1, device: 'a', ops: [op('b')] }).success).toBe(false);
    const gap = [op('a'), { ...op('a'), id: 'a:3', seq: 3 }];
    expect(v.safeParse(PushBody, { protocol: 1, device: 'a', ops: gap }).success).toBe(false);
  });
});
