// Small datasets written to disk as users have them: IDX files (plain or gzipped) and image
// folders of PNGs. The images are learnable (each class a bright bar at its own place, plus
// seeded noise), so a few steps of training move the accuracy.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodePng } from '../../lib/vision/charts.js';
import { Rng } from './random.js';

export function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** count images of side x side, `classes` classes; label i % classes for image i. */
export function patternImages(count: number, side: number, classes: number, seed: number): { pixels: Uint8Array; labels: Uint8Array } {
  const rng = new Rng(seed);
  const pixels = new Uint8Array(count * side * side);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    labels[i] = c;
    const row = Math.floor(((c + 0.5) * side) / classes);
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const bar = Math.abs(y - row) <= 1 ? 200 : 0;
        pixels[i * side * side + y * side + x] = Math.min(255, bar + Math.floor(rng.next() * 40));
      }
  }
  return { pixels, labels };
}

/** An IDX dataset folder (train-* and t10k-*), gzipped or not. */
export function writeIdxDataset(dir: string, o: { train: number; test: number; side?: number; classes?: number; gzip?: boolean; seed?: number }): void {
  mkdirSync(dir, { recursive: true });
  const side = o.side ?? 28, classes = o.classes ?? 10;
  const z = (b: Uint8Array) => (o.gzip === false ? b : gzipSync(b));
  const ext = o.gzip === false ? '' : '.gz';
  for (const [prefix, n, seed] of [['train', o.train, o.seed ?? 1], ['t10k', o.test, (o.seed ?? 1) + 100]] as const) {
    if (n === 0) continue;
    const { pixels, labels } = patternImages(n, side, classes, seed);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${ext}`), z(idxBytes([n, side, side], pixels)));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${ext}`), z(idxBytes([n], labels)));
  }
}

/** An ImageFolder tree (train/ and val/, one folder per class) of RGB PNGs. */
export function writeImageFolder(dir: string, o: { classes: string[]; perClass: number; valPerClass: number; side?: number; seed?: number }): void {
  const side = o.side ?? 40;
  const rng = new Rng(o.seed ?? 3);
  for (const [split, n] of [['train', o.perClass], ['val', o.valPerClass]] as const)
    o.classes.forEach((name, c) => {
      const d = join(dir, split, name);
      mkdirSync(d, { recursive: true });
      for (let i = 0; i < n; i++) {
        const data = new Uint8Array(side * side * 3);
        for (let p = 0; p < side * side; p++) {
          const y = Math.floor(p / side);
          const on = Math.floor((y * o.classes.length) / side) === c;
          data[p * 3 + (c % 3)] = on ? 220 : Math.floor(rng.next() * 50);
          data[p * 3 + ((c + 1) % 3)] = Math.floor(rng.next() * 50);
          data[p * 3 + ((c + 2) % 3)] = Math.floor(rng.next() * 50);
        }
        writeFileSync(join(d, `${String(i).padStart(3, '0')}.png`), encodePng({ data, width: side, height: side }));
      }
    });
}
