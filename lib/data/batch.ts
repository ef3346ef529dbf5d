// One training or evaluation batch from an in-memory image set: the work the data worker does
// (and the loader does itself with workers: 0). Pure JS.
import { Rng } from '../nn/random.js';
import { mixBatch, transformImage, type ImageTransform, type MixOptions } from './augment.js';

export interface BatchSource {
  pixels: Uint8Array;
  labels: Int32Array;
  height: number;
  width: number;
  channels: number;
  classes: number;
}

export interface BatchRequest {
  id: number;
  indices: Int32Array;
  /** The batch's own seed (see batchSeed); ignored for evaluation batches. */
  seed: number;
  train: boolean;
}

export interface Batch {
  id: number;
  /** [B, outChannels, size, size], normalised. */
  x: Float32Array;
  labels: Int32Array;
  /** Soft targets [B, classes] when the batch was mixed, else null. */
  targets: Float32Array | null;
}

/** A batch's seed from the run's seed, the epoch and the batch's index (murmur3's finaliser). */
export function batchSeed(seed: number, epoch: number, batch: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca77) ^ Math.imul(batch + 1, 0xc2b2ae3d)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function makeBatch(src: BatchSource, t: ImageTransform, mix: MixOptions | null, req: BatchRequest): Batch {
  const b = req.indices.length, per = src.height * src.width * src.channels;
  const outPer = t.outChannels * t.size * t.size;
  const x = new Float32Array(b * outPer);
  const labels = new Int32Array(b);
  const rng = req.train ? new Rng(req.seed) : null;
  const tt = { ...t, train: req.train };
  for (let i = 0; i < b; i++) {
    const j = req.indices[i];
    labels[i] = src.labels[j];
    transformImage(src.pixels.subarray(j * per, (j + 1) * per), src.height, src.width, src.channels, tt, rng, x, i * outPer);
  }
  const targets = req.train && mix && rng ? mixBatch(x, labels, src.classes, t.size, t.outChannels, mix, rng) : null;
  return { id: req.id, x, labels, targets };
}
