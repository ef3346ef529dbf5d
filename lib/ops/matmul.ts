import type { Tensor } from '../tensor.js';
import { defineOp } from './run.js';

const matmulOp = defineOp('matmul');

/**
 * Matrix product: a [M,K] or [B,M,K] times b [K,N] or [B,K,N] (a 2-D b is shared by every
 * batch). Queued on the inputs' device; returns at once (`await` works too, and reading waits).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulOp.run1([a, b]);
}

/** `matmul`, run and waited for (errors of the kernel throw here). */
export function matmulSync(a: Tensor, b: Tensor): Tensor {
  return matmulOp.run1([a, b], [], true);
}
