// The data worker: builds batches (decode-free: images are already in shared memory) off the
// main thread. Messages: { init: BatchSource & transform } once, then BatchRequests; replies are
// Batches with their buffers transferred.
import { parentPort } from 'node:worker_threads';
import type { ImageTransform, MixOptions } from './augment.js';
import { makeBatch, type BatchRequest, type BatchSource } from './batch.js';

let state: { src: BatchSource; transform: ImageTransform; mix: MixOptions | null } | null = null;

parentPort?.on('message', (msg: { init?: typeof state } & Partial<BatchRequest>) => {
  if (msg.init) {
    state = msg.init;
    return;
  }
  try {
    if (!state) throw new Error('data worker: batch requested before init');
    const b = makeBatch(state.src, state.transform, state.mix, msg as BatchRequest);
    const transfer = [b.x.buffer, b.labels.buffer, ...(b.targets ? [b.targets.buffer] : [])] as ArrayBuffer[];
    parentPort!.postMessage(b, transfer);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error).message });
  }
});
