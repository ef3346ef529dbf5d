// The batch loader: shuffles per epoch (seeded), hands batches to data workers (worker_threads)
// ahead of need, and yields them in order. The images live in one SharedArrayBuffer the workers
// read; each batch's pixels come back as transferred buffers. It measures how long the trainer
// waited for data (the time an awaited batch was not yet ready).
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native.js';
import { Rng } from '../nn/random.js';
import type { ImageTransform, MixOptions } from './augment.js';
import { batchSeed, makeBatch, type Batch, type BatchRequest, type BatchSource } from './batch.js';
import type { ImageSet } from './dataset.js';

export interface LoaderOptions {
  batchSize: number;
  transform: ImageTransform;
  mix?: MixOptions | null;
  /** Data workers (threads). 0: batches are built on the calling thread. Default 1. */
  workers?: number;
  /** Batches requested ahead. Default 4. */
  prefetch?: number;
  /** Drop the last incomplete batch (training). Default false. */
  dropLast?: boolean;
}

/** The order of an epoch's images: a Fisher-Yates shuffle seeded by (seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  const rng = new Rng(batchSeed(seed, epoch, -1));
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

function shared(a: Uint8Array): Uint8Array {
  const s = new Uint8Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

export class BatchLoader {
  readonly set: ImageSet;
  readonly options: Required<Omit<LoaderOptions, 'mix'>> & { mix: MixOptions | null };
  readonly #src: BatchSource;
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, { resolve: (b: Batch) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  /** Milliseconds spent waiting for batches since the last resetWait(). */
  waitMs = 0;

  constructor(set: ImageSet, options: LoaderOptions) {
    this.set = set;
    this.options = { workers: 1, prefetch: 4, dropLast: false, ...options, mix: options.mix ?? null };
    const workers = this.options.workers;
    this.#src = {
      pixels: workers > 0 ? shared(set.pixels) : set.pixels, labels: set.labels,
      height: set.height, width: set.width, channels: set.channels, classes: set.classes.length,
    };
    if (workers > 0) {
      const file = path.join(packageRoot(), 'dist', 'esm', 'data', 'worker.js');
      for (let i = 0; i < workers; i++) {
        const w = new Worker(file);
        w.unref();
        w.on('message', (b: Batch & { error?: string }) => {
          const p = this.#pending.get(b.id);
          if (!p) return;
          this.#pending.delete(b.id);
          if (b.error) p.reject(new Error(b.error));
          else p.resolve(b);
        });
        w.on('error', (e) => {
          for (const p of this.#pending.values()) p.reject(e);
          this.#pending.clear();
        });
        w.postMessage({ init: { src: this.#src, transform: this.options.transform, mix: this.options.mix } });
        this.#workers.push(w);
      }
    }
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.set.count, b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  #request(req: BatchRequest): Promise<Batch> {
    if (this.#workers.length === 0) {
      try {
        return Promise.resolve(makeBatch(this.#src, this.options.transform, this.options.mix, req));
      } catch (e) {
        return Promise.reject(e as Error);
      }
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(req.id, { resolve, reject });
      this.#workers[req.id % this.#workers.length].postMessage(req);
    });
  }

  /**
   * The batches of one epoch, in order. train: shuffled by (seed, epoch) and augmented with each
   * batch's own seed; otherwise in dataset order, unaugmented. `from` skips the first batches.
   */
  async *epoch(epoch: number, seed: number, train: boolean, from = 0): AsyncGenerator<Batch> {
    const order = train ? epochOrder(this.set.count, seed, epoch) : Int32Array.from({ length: this.set.count }, (_, i) => i);
    const b = this.options.batchSize, total = train ? this.length : Math.ceil(this.set.count / b);
    const queue: Promise<Batch>[] = [];
    let next = from;
    const fill = () => {
      while (queue.length < this.options.prefetch && next < total) {
        const idx = order.slice(next * b, Math.min((next + 1) * b, this.set.count));
        const p = this.#request({ id: this.#nextId++, indices: idx, seed: batchSeed(seed, epoch, next), train });
        p.catch(() => {});  // awaited in order below; avoids an unhandled rejection meanwhile
        queue.push(p);
        next++;
      }
    };
    fill();
    while (queue.length) {
      const p = queue.shift()!;
      // Whether the batch was already there when asked for: a settled promise's callbacks run
      // before a later microtask, so `ready` is true after one tick exactly when it had arrived.
      let ready = false;
      void p.then(() => { ready = true; }, () => { ready = true; });
      await Promise.resolve();
      const waited = !ready;
      const t = performance.now();
      const batch = await p;
      if (waited) this.waitMs += performance.now() - t;
      fill();
      yield batch;
    }
  }

  async close(): Promise<void> {
    const ws = this.#workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
    for (const p of this.#pending.values()) p.reject(new Error('BatchLoader: closed'));
    this.#pending.clear();
  }
}
