// Image datasets held in memory as 8-bit pixels (interleaved, row-major: [N, H, W, C]), the form
// both IDX files and decoded image folders take. Everything here is pure JS (no addon), so the
// data worker can use it.
import { resizeLikePillow, type ResampleFilter } from '../vision/resize.js';

export interface ImageSet {
  /** 'fashion-mnist', or the folder's name. */
  name: string;
  /** Where it was read from (a directory). */
  source: string;
  count: number;
  height: number;
  width: number;
  channels: number;
  /** count * height * width * channels bytes. */
  pixels: Uint8Array;
  labels: Int32Array;
  classes: string[];
}

/** Images `indices` of `set` as a new set (pixels copied). */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const per = set.height * set.width * set.channels;
  const pixels = new Uint8Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    pixels.set(set.pixels.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j];
  }
  return { ...set, count: indices.length, pixels, labels };
}

/**
 * Every image resized to `size` x `size` (Pillow-exact, as the pipeline resizes: the same pixels
 * at training, evaluation and classification). Returns the set itself when it already has that size.
 */
export function resizeSet(set: ImageSet, size: number, filter: ResampleFilter): ImageSet {
  if (set.height === size && set.width === size) return set;
  const per = set.height * set.width * set.channels;
  const out = new Uint8Array(set.count * size * size * set.channels);
  for (let i = 0; i < set.count; i++) {
    const img = resizeLikePillow({ data: set.pixels.subarray(i * per, (i + 1) * per), width: set.width, height: set.height, channels: set.channels }, size, size, filter);
    out.set(img.data, i * size * size * set.channels);
  }
  return { ...set, height: size, width: size, pixels: out };
}

/** Per-channel mean and std of the pixels (in [0, 1]), for normalisation. */
export function pixelStats(set: ImageSet): { mean: number[]; std: number[] } {
  const c = set.channels;
  const s = new Float64Array(c), s2 = new Float64Array(c);
  for (let i = 0; i < set.pixels.length; i++) {
    const v = set.pixels[i] / 255;
    s[i % c] += v;
    s2[i % c] += v * v;
  }
  const n = set.pixels.length / c;
  const mean = Array.from(s, (x) => x / n);
  return { mean, std: Array.from(s2, (x, i) => Math.sqrt(Math.max(x / n - mean[i] * mean[i], 0))) };
}
