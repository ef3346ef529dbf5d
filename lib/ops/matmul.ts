import { handleOf, Tensor } from '../tensor.js';
import { native } from '../native.js';

/**
 * Matrix product, float32, CPU: a [M,K] or [B,M,K] times b [K,N] or [B,K,N] (a 2-D b is shared
 * by every batch). Runs on the native thread pool, off the JS thread.
 */
export async function matmul(a: Tensor, b: Tensor): Promise<Tensor> {
  return new Tensor(await native.matmul(handleOf(a, 'matmul', 'a'), handleOf(b, 'matmul', 'b')));
}

/** Synchronous `matmul` (blocks the calling thread; for benchmarks and worker threads). */
export function matmulSync(a: Tensor, b: Tensor): Tensor {
  return new Tensor(native.matmulSync(handleOf(a, 'matmul', 'a'), handleOf(b, 'matmul', 'b')));
}
