// Draws the PWA icons (a ferry on water) as PNGs with no image tooling: run once, commit the output.
//   bun scripts/make-icons.ts  → client/public/icons/icon-{192,512}.png, maskable-512.png
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (bytes: Uint8Array) => {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC[(c ^ b) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
function png(size: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const raw = Buffer.alloc(size * (size * 3 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0;
    for (let x = 0; x < size; x++) raw.set(pixel(x / size, y / size), y * (size * 3 + 1) + 1 + x * 3);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())]);
}

const NAVY: [number, number, number] = [15, 46, 76];
const SEA: [number, number, number] = [38, 132, 171];
const HULL: [number, number, number] = [245, 240, 225];
const FUNNEL: [number, number, number] = [230, 96, 60];
// A ferry drawn in unit coordinates; `pad` shrinks it into the maskable safe zone.
const ferry = (pad: number) => (x: number, y: number): [number, number, number] => {
  const u = (x - pad) / (1 - 2 * pad);
  const v = (y - pad) / (1 - 2 * pad);
  const wave = 0.68 + 0.025 * Math.sin(u * Math.PI * 6);
  if (v > wave) return SEA;
  const hull = v > 0.52 && v < wave + 0.02 && u > 0.14 + (v - 0.52) * 0.6 && u < 0.86 - (v - 0.52) * 0.6;
  if (hull) return HULL;
  if (v > 0.38 && v <= 0.52 && u > 0.28 && u < 0.72) return HULL;
  if (v > 0.22 && v <= 0.38 && u > 0.56 && u < 0.66) return FUNNEL;
  return NAVY;
};

const out = path.resolve(import.meta.dir, '../client/public/icons');
writeFileSync(path.join(out, 'icon-192.png'), png(192, ferry(0.08)));
writeFileSync(path.join(out, 'icon-512.png'), png(512, ferry(0.08)));
writeFileSync(path.join(out, 'maskable-512.png'), png(512, ferry(0.2)));
console.log(`icons written to ${out}`);
